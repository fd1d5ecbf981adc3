#!/usr/bin/env bash
# Regenerate generated/redfish/ from hack/redfish/spec/openapi.yaml and the DSP8010 bundle.
# Usage: generate.sh [OUT_DIR]   (default: generated/redfish)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/schema-dir.sh"
out="${1:-${REPO_ROOT}/generated/redfish}"
dir="$(redfish_schema_source)"
if [[ -z "${dir}" ]]; then
  echo "generate: no DSP8010 bundle found; running download-schema.sh" >&2
  bash "${REPO_ROOT}/hack/redfish/download-schema.sh"
  dir="${REDFISH_SCHEMA_CACHE}"
fi
echo "generate: using DSP8010 schemas from ${dir}" >&2
cd "${REPO_ROOT}"
node --import tsx hack/redfish/generate.ts --schema-dir "${dir}" --spec hack/redfish/spec/openapi.yaml --out "${out}"
