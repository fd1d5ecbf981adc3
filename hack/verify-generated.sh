#!/usr/bin/env bash
# Fail (with the diff) if regenerating generated/redfish changes anything.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT
bash "${root}/hack/redfish/generate.sh" "${tmp}/redfish" >/dev/null
if ! diff -ru "${root}/generated/redfish" "${tmp}/redfish"; then
  echo "verify-generated: generated/redfish is stale; run 'make generate-redfish-api' and commit the result" >&2
  exit 1
fi
echo "verify-generated: generated/redfish is up to date"
