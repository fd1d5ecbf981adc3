#!/usr/bin/env bash
# Put DMTF DSP8010 (the Redfish schema bundle) into .redfish-schema/DSP8010_<version>/ (git-ignored).
# Source, in order: REDFISH_SCHEMA_DIR (copied), ../shared/redfish/DSP8010_<version> beside the repo
# (copied), else the official zip from dmtf.org. Any failure exits non-zero with the reason.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/schema-dir.sh"

dest="${REDFISH_SCHEMA_CACHE}"
src="${REDFISH_SCHEMA_DIR:-}"
if [[ -z "${src}" && -d "${REDFISH_SHARED_DEFAULT}/openapi" ]]; then src="${REDFISH_SHARED_DEFAULT}"; fi

check_bundle() {
  local dir="$1" sub
  for sub in openapi csdl registries; do
    if [[ ! -d "${dir}/${sub}" ]]; then
      echo "download-schema: ${dir} has no ${sub}/ folder; not a DSP8010 bundle" >&2
      return 1
    fi
  done
}

if [[ -n "${src}" ]]; then
  check_bundle "${src}" || exit 1
  rm -rf "${dest}.tmp" && mkdir -p "${dest}.tmp"
  cp -R "${src}/." "${dest}.tmp/"
  rm -rf "${dest}" && mv "${dest}.tmp" "${dest}"
  echo "download-schema: copied DSP8010 ${REDFISH_SCHEMA_VERSION} from local folder ${src} → ${dest}"
  exit 0
fi

url="https://www.dmtf.org/sites/default/files/standards/documents/DSP8010_${REDFISH_SCHEMA_VERSION}.zip"
command -v curl >/dev/null || { echo "download-schema: curl not found; set REDFISH_SCHEMA_DIR to a local DSP8010 folder" >&2; exit 1; }
command -v unzip >/dev/null || { echo "download-schema: unzip not found; set REDFISH_SCHEMA_DIR to a local DSP8010 folder" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT
echo "download-schema: downloading ${url}"
if ! curl -fsSL --retry 2 --max-time 120 -o "${tmp}/dsp8010.zip" "${url}"; then
  echo "download-schema: download of ${url} failed; set REDFISH_SCHEMA_DIR to a local DSP8010 ${REDFISH_SCHEMA_VERSION} folder" >&2
  exit 1
fi
unzip -q "${tmp}/dsp8010.zip" -d "${tmp}/x" || { echo "download-schema: ${url} is not a valid zip" >&2; exit 1; }
# The zip holds one top folder (DSP8010_<version>/) or the subfolders directly.
root="$(dirname "$(find "${tmp}/x" -maxdepth 3 -type d -name openapi | head -n1)")"
if [[ -z "${root}" || "${root}" == "." ]]; then echo "download-schema: no openapi/ folder in ${url}" >&2; exit 1; fi
check_bundle "${root}" || exit 1
rm -rf "${dest}" && mkdir -p "$(dirname "${dest}")" && mv "${root}" "${dest}"
echo "download-schema: downloaded DSP8010 ${REDFISH_SCHEMA_VERSION} from ${url} → ${dest}"
