#!/usr/bin/env bash
# Sourced by the Redfish scripts: sets REPO_ROOT, REDFISH_SCHEMA_VERSION and the helper
# redfish_schema_source, which prints the DSP8010 folder to read (no download).
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
REDFISH_SCHEMA_VERSION="${REDFISH_SCHEMA_VERSION:-2025.4}"
REDFISH_SCHEMA_CACHE="${REPO_ROOT}/.redfish-schema/DSP8010_${REDFISH_SCHEMA_VERSION}"
REDFISH_SHARED_DEFAULT="${REPO_ROOT}/../shared/redfish/DSP8010_${REDFISH_SCHEMA_VERSION}"

# Order: explicit REDFISH_SCHEMA_DIR, the download cache, the shared copy beside the repo.
redfish_schema_source() {
  if [[ -n "${REDFISH_SCHEMA_DIR:-}" ]]; then
    echo "${REDFISH_SCHEMA_DIR}"
  elif [[ -d "${REDFISH_SCHEMA_CACHE}/openapi" ]]; then
    echo "${REDFISH_SCHEMA_CACHE}"
  elif [[ -d "${REDFISH_SHARED_DEFAULT}/openapi" ]]; then
    echo "${REDFISH_SHARED_DEFAULT}"
  fi
}
