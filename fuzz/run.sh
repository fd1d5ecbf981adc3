#!/usr/bin/env bash
# Coverage-guided fuzzing with Jazzer.js (libFuzzer) of the targets in fuzz/*.fuzz.ts.
# Usage: fuzz/run.sh [target ...]   (default: all), FUZZ_SECONDS per target (default 60),
#        FUZZ_RUNS to stop after that many executions instead (e.g. 1000000).
# Seeds: fuzz/corpus/<target>/ (read only); what the fuzzer finds goes to $FUZZ_WORK/<target>/
# (default fuzz/.work), its log to $FUZZ_WORK/<target>.log.
# A crash leaves $FUZZ_WORK/<target>/crash-* and makes this script fail; copy the file into
# fuzz/regressions/<target>/ once fixed, and test/fuzz/regressions.test.ts replays it for good.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
ALL=(ipmi-codec ipmi-engine redfish-body json-patch)
SYNC=(ipmi-codec json-patch)
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${ALL[@]}")
seconds="${FUZZ_SECONDS:-60}"
work="${FUZZ_WORK:-fuzz/.work}"
bash hack/fuzz/ensure-addon.sh
mkdir -p fuzz/.build
status=0
for t in "${targets[@]}"; do
  [[ -f "fuzz/${t}.fuzz.ts" ]] || { echo "fuzz: no target ${t} (have: ${ALL[*]})" >&2; exit 2; }
  mkdir -p "${work}/${t}" "fuzz/corpus/${t}"
  # Jazzer.js imports a .js/.mjs target; the ESM wrapper loads the TypeScript through tsx, and
  # Jazzer's ESM loader instruments what tsx hands over (our code; node_modules are excluded).
  echo "export { fuzz } from '../${t}.fuzz.ts';" >"fuzz/.build/${t}.mjs"
  sync=()
  [[ " ${SYNC[*]} " == *" ${t} "* ]] && sync=(--sync)
  limits=(-max_total_time="${seconds}")
  [[ -n "${FUZZ_RUNS:-}" ]] && limits=(-runs="${FUZZ_RUNS}")
  log="${work}/${t}.log"
  if [[ -n "${FUZZ_RUNS:-}" ]]; then what="${FUZZ_RUNS} runs"; else what="${seconds} s"; fi
  echo "fuzz: ${t} (${what})" >&2
  t0=$(date +%s%N)
  set +e
  NODE_OPTIONS="--import tsx ${NODE_OPTIONS:-}" node_modules/.bin/jazzer "fuzz/.build/${t}.mjs" \
    "${work}/${t}" "fuzz/corpus/${t}" "${sync[@]}" -- \
    "${limits[@]}" -max_len=4096 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="${work}/${t}/" >"${log}" 2>&1
  rc=$?
  set -e
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  done_line="$(grep -E '^#[0-9]+[[:space:]]+DONE' "${log}" | tail -1 || true)"
  runs="$(grep -E '^stat::number_of_executed_units' "${log}" | awk '{print $2}' || true)"
  # Jazzer.js 4.0.0 sometimes aborts (SIGABRT, exit 134) while the process shuts down after
  # libFuzzer has finished and printed its final stats (seen on a cold start; not under gdb). A
  # finding never looks like that: it exits 77 and writes a crash-* file without a DONE line. So
  # an abort counts as a finished run only when the DONE line, the full execution count and the
  # final stats are all in the log and no artifact was written; anything else still fails.
  artifacts="$(find "${work}/${t}" -maxdepth 1 \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' \) | head -1)"
  shutdown_abort=0
  if [[ ${rc} -eq 134 && -n "${done_line}" && -n "${runs}" && -z "${artifacts}" ]] &&
    { [[ -z "${FUZZ_RUNS:-}" ]] || [[ "${runs}" -ge "${FUZZ_RUNS}" ]]; } &&
    ! grep -qE '==[0-9]+==|Uncaught Exception|Test unit written' "${log}"; then
    shutdown_abort=1
  fi
  if [[ ${rc} -ne 0 && ${shutdown_abort} -eq 0 ]]; then
    status=1
    echo "fuzz: ${t} FAILED (exit ${rc}) after ${ms} ms; log ${log}:" >&2
    grep -E 'Error|Invariant|crash-|Test unit written' "${log}" | head -20 >&2 || true
    tail -5 "${log}" >&2
  else
    stats="$(sed -E 's/.*DONE +//; s/ lim:.*//' <<<"${done_line}")"
    echo "fuzz: ${t} ok: ${runs:-?} executions in ${ms} ms, 0 crashes, ${stats}" >&2
    [[ ${shutdown_abort} -eq 1 ]] && echo "fuzz: ${t}: the run finished, then Jazzer.js aborted during process shutdown (exit 134, no finding; see hack/fuzz/README.md)" >&2
  fi
done
exit "${status}"
