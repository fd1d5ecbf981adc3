#!/usr/bin/env bash
# `make bench`: runs every benchmark in bench/ one after the other and prints each one's summary.
# Benchmarks are measurements, not tests: they print figures (rates as ratios against a baseline
# measured in the same run, plus the server's CPU time per request) and never fail on a number.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
run() {
  local f=$1
  echo "=== $f ==="
  case "$f" in
    *.sh) bash "$f" ;;
    *.ts) npx tsx "$f" ;;
  esac || { echo "benchmark $f failed" >&2; status=1; }
}
for f in bench/cold*.ts bench/scale*.ts bench/ipmi*.sh bench/ipmi*.ts bench/sol*.ts bench/redfish*.sh bench/redfish*.ts bench/controller*.sh bench/controller*.ts bench/media*.ts bench/events*.ts; do
  [ -e "$f" ] || continue
  # helper modules (imported by a benchmark) end in .lib.ts and are not run by themselves
  case "$f" in *.lib.ts) continue ;; esac
  run "$f"
done
exit $status
