#!/usr/bin/env bash
# Makes sure Jazzer.js's native addon loads on this machine. The npm prebuild needs glibc 2.38 /
# GCC 13; when it does not load, build it from the Jazzer.js v4.0.0 addon sources that JAZZER_SRC
# names (its packages/fuzzer folder: the project does not ship another project's code) with the
# shim in hack/fuzz/jazzer-addon against Debian's libFuzzer, and install it in place of the
# prebuild. Idempotent; quiet when all is well.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "${ROOT}"
ADDON_DIR=node_modules/@jazzer.js/fuzzer/prebuilds
ADDON="${ADDON_DIR}/fuzzer-linux-x64.node"
loads() { node -e "require('./${ADDON}')" >/dev/null 2>&1; }
if [[ ! -d node_modules/@jazzer.js/fuzzer ]]; then
  echo "ensure-addon: @jazzer.js/fuzzer is not installed (run make deps)" >&2
  exit 1
fi
if [[ -f "${ADDON}" ]] && loads; then exit 0; fi
if [[ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]]; then
  echo "ensure-addon: the Jazzer.js prebuild does not load and the source build covers Linux x86_64 only" >&2
  exit 1
fi
LLVM=16
LIBFUZZER="/usr/lib/llvm-${LLVM}/lib/clang/${LLVM}/lib/linux/libclang_rt.fuzzer_no_main-x86_64.a"
NODE_INC="$(dirname "$(dirname "$(command -v node)")")/include/node"
[[ -f "${NODE_INC}/node_api.h" ]] || NODE_INC=/usr/include/node
if [[ ! -f "${LIBFUZZER}" || ! -f "${NODE_INC}/node_api.h" ]] || ! command -v g++ >/dev/null; then
  echo "ensure-addon: installing libclang-rt-${LLVM}-dev, g++ and the Node.js headers" >&2
  if [[ $(id -u) -eq 0 ]]; then SUDO=; else SUDO=sudo; fi
  ${SUDO} apt-get update -qq
  ${SUDO} apt-get install -y -qq "libclang-rt-${LLVM}-dev" g++ >/dev/null
  [[ -f "${NODE_INC}/node_api.h" ]] || ${SUDO} apt-get install -y -qq libnode-dev >/dev/null
  [[ -f "${NODE_INC}/node_api.h" ]] || NODE_INC=/usr/include/node
fi
SHIM=hack/fuzz/jazzer-addon/shim
SRC="${JAZZER_SRC:-}"
if [[ -z "${SRC}" || ! -f "${SRC}/addon.cpp" ]]; then
  echo "ensure-addon: the Jazzer.js prebuild does not load here (it needs glibc 2.38); set JAZZER_SRC to the" >&2
  echo "  packages/fuzzer folder of a Jazzer.js v4.0.0 checkout to build it (see hack/fuzz/jazzer-addon/README.md)" >&2
  exit 1
fi
OUT="$(mktemp -d)"
trap 'rm -rf "${OUT}"' EXIT
echo "ensure-addon: building the Jazzer.js addon against libFuzzer ${LLVM}" >&2
g++ -std=c++17 -O2 -fPIC -shared -fexceptions -DNAPI_VERSION=4 -DNAPI_CPP_EXCEPTIONS \
  -I"${NODE_INC}" -Inode_modules/node-addon-api -I"${SHIM}" -I"${SRC}" \
  "${SRC}"/*.cpp "${SRC}"/shared/*.cpp "${SHIM}"/*.cpp \
  -Wl,--whole-archive "${LIBFUZZER}" -Wl,--no-whole-archive -lpthread \
  -o "${OUT}/fuzzer-linux-x64.node"
mkdir -p "${ADDON_DIR}"
cp "${OUT}/fuzzer-linux-x64.node" "${ADDON}"
loads || { echo "ensure-addon: the built addon does not load" >&2; exit 1; }
echo "ensure-addon: installed ${ADDON}" >&2
