#!/usr/bin/env bash
# Installs the real clients the tests drive (Debian packages). Idempotent: does nothing when all
# are present. Needs root (CI runs as root) or sudo.
set -euo pipefail
need=()
command -v ipmitool >/dev/null || need+=(ipmitool)
command -v ipmipower >/dev/null || need+=(freeipmi-tools)
command -v ipmiconsole >/dev/null || need+=(freeipmi-tools)
# SOL: ipmi_sim is the reference SOL the bench measures beside ours; script gives the clients a pty;
# unshare/nsenter put ipmiconsole (UDP 623 only) in a network namespace of its own
command -v ipmi_sim >/dev/null || need+=(openipmi)
command -v script >/dev/null || need+=(bsdutils)
command -v unshare >/dev/null || need+=(util-linux)
command -v nsenter >/dev/null || need+=(util-linux)
command -v ip >/dev/null || need+=(iproute2)
command -v redfishtool >/dev/null || need+=(redfishtool)
command -v curl >/dev/null || need+=(curl)
/usr/bin/python3 -c 'import requests' 2>/dev/null || need+=(python3-requests)
command -v wrk >/dev/null || need+=(wrk)
/usr/bin/python3 -c 'import pyghmi' 2>/dev/null || need+=(python3-pyghmi)
/usr/bin/python3 -c 'import sushy' 2>/dev/null || need+=(python3-sushy)
command -v kubectl >/dev/null || need+=(kubectl)
# the web page's browser tests drive Debian's chromium with playwright-core (test/redfish/ui-browser.test.ts)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing test clients: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# kubectl is not in every Debian release; install the rest even when it is missing.
pkgs=()
for p in "${need[@]}"; do
  if [ "$p" = kubectl ] && ! apt-cache show kubectl >/dev/null 2>&1; then
    echo "kubectl is not available from apt here; kustomize render tests will be skipped" >&2
    continue
  fi
  pkgs+=("$p")
done
[ ${#pkgs[@]} -eq 0 ] || $SUDO apt-get install -y -qq "${pkgs[@]}" >/dev/null
