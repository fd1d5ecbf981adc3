#!/usr/bin/env bash
# Code coverage (istanbul: statements, branches, functions) of the code the fuzz targets' corpora
# reach: every input in fuzz/corpus/<target>/ and $FUZZ_WORK/<target>/ (default fuzz/.work, what
# earlier fuzz/run.sh runs found) replayed once by Jazzer.js in regression mode, no fuzzing.
# Usage: fuzz/coverage.sh [target ...]; reports in $FUZZ_WORK/coverage/<target>/ (json-summary,
# text). Line figures are not meaningful (tsx hands Jazzer one-line transforms); use statements.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
ALL=(ipmi-codec ipmi-engine redfish-body json-patch)
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${ALL[@]}")
work="${FUZZ_WORK:-fuzz/.work}"
bash hack/fuzz/ensure-addon.sh
mkdir -p fuzz/.build
for t in "${targets[@]}"; do
  [[ -f "fuzz/${t}.fuzz.ts" ]] || { echo "fuzz-coverage: no target ${t} (have: ${ALL[*]})" >&2; exit 2; }
  mkdir -p "${work}/${t}"
  echo "export { fuzz } from '../${t}.fuzz.ts';" >"fuzz/.build/${t}.mjs"
  out="${work}/coverage/${t}"
  rm -rf "${out}"
  mkdir -p "${work}/coverage"
  NODE_OPTIONS="--import tsx ${NODE_OPTIONS:-}" node_modules/.bin/jazzer "fuzz/.build/${t}.mjs" \
    "${work}/${t}" "fuzz/corpus/${t}" -m regression --coverage --coverage_directory "${out}" \
    --coverage_reporters json-summary --coverage_reporters text >"${out}.log" 2>&1
  inputs=$(( $(find "${work}/${t}" "fuzz/corpus/${t}" -type f ! -name '*.md' | wc -l) ))
  # totals over the code under test (src/, or test/emulator for json-patch); the harness in fuzz/ is left out
  node -e '
    const sum = require(process.argv[1]);
    const files = Object.keys(sum).filter((k) => k !== "total" && !k.includes("/fuzz/"));
    const f = (k) => {
      const c = files.reduce((a, x) => a + sum[x][k].covered, 0);
      const n = files.reduce((a, x) => a + sum[x][k].total, 0);
      return `${((100 * c) / n).toFixed(1)}% ${k} (${c}/${n})`;
    };
    console.error(`fuzz-coverage: ${process.argv[2]}, ${process.argv[3]} inputs, ${files.length} files under test: ${f("statements")}, ${f("branches")}, ${f("functions")}`);
  ' "$(cd "${out}" && pwd)/coverage-summary.json" "${t}" "${inputs}"
done
