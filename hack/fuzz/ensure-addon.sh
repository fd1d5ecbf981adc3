#!/usr/bin/env bash
# Makes sure Jazzer.js's native addon loads on this machine. The npm prebuild of
# @jazzer.js/fuzzer 4.0.0 is linked against glibc 2.38 / libstdc++ 13, yet it asks for only three
# symbols newer than Debian 12's glibc 2.36 / libstdc++ 12; hack/fuzz/glibc236-prebuild.ts
# retargets those in the file's ELF version tables (hack/fuzz/README.md). The npm package stays the
# only source: nothing is downloaded or compiled. The untouched prebuild is kept beside it as
# *.orig. Idempotent; quiet when all is well.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "${ROOT}"
ADDON_DIR=node_modules/@jazzer.js/fuzzer/prebuilds
ADDON="${ADDON_DIR}/fuzzer-$(node -p 'process.platform + "-" + process.arch').node"
loads() { node -e "require('./$1')" >/dev/null 2>&1; }
if [[ ! -d node_modules/@jazzer.js/fuzzer ]]; then
  echo "ensure-addon: @jazzer.js/fuzzer is not installed (run make deps)" >&2
  exit 1
fi
if [[ ! -f "${ADDON}" ]]; then
  echo "ensure-addon: @jazzer.js/fuzzer has no prebuild for this platform (${ADDON})" >&2
  exit 1
fi
if loads "${ADDON}"; then exit 0; fi
if [[ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]]; then
  echo "ensure-addon: the Jazzer.js prebuild does not load here, and the glibc retargeting covers Linux x86_64 only" >&2
  node -e "require('./${ADDON}')" 2>&1 | head -3 >&2 || true
  exit 1
fi
[[ -f "${ADDON}.orig" ]] || cp "${ADDON}" "${ADDON}.orig"
tmp="${ADDON%.node}.tmp$$.node"
trap 'rm -f "${tmp}"' EXIT
node_modules/.bin/tsx hack/fuzz/glibc236-prebuild.ts "${ADDON}.orig" "${tmp}"
if ! loads "${tmp}"; then
  echo "ensure-addon: the retargeted prebuild does not load either:" >&2
  node -e "require('./${tmp}')" 2>&1 | head -3 >&2 || true
  exit 1
fi
mv -f "${tmp}" "${ADDON}"
echo "ensure-addon: installed ${ADDON} (retargeted to glibc 2.36; original in ${ADDON}.orig)" >&2
