#!/usr/bin/env bash
# Usage: hack/deploy.sh apply|delete IMG AGENT_IMG
# Renders config/default with the controller image IMG and the agent image AGENT_IMG (in a temporary
# copy, so the tree stays clean) and pipes it to kubectl apply/delete. PRINT_ONLY=1 prints instead.
set -euo pipefail
action="${1:-}"; img="${2:-}"; agent_img="${3:-}"
case "$action" in apply|delete) ;; *) echo "usage: $0 apply|delete IMG AGENT_IMG" >&2; exit 2 ;; esac
[ -n "$img" ] && [ -n "$agent_img" ] || { echo "usage: $0 apply|delete IMG AGENT_IMG" >&2; exit 2; }
KUBECTL="${KUBECTL:-kubectl}"
command -v "$KUBECTL" >/dev/null || { echo "$KUBECTL not found" >&2; exit 1; }
root="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cp -r "$root/config" "$tmp/config"
# Split IMG into name and tag/digest for kustomize's images: transformer.
name="$img"; tag=""; digest=""
if [[ "$img" == *@* ]]; then name="${img%@*}"; digest="${img#*@}";
elif [[ "${img##*/}" == *:* ]]; then name="${img%:*}"; tag="${img##*:}"; fi
{
  echo "images:"
  echo "  - name: virtbmc-controller"
  echo "    newName: $name"
  [ -n "$tag" ] && echo "    newTag: \"$tag\""
  [ -n "$digest" ] && echo "    digest: $digest"
  true
} > "$tmp/images.yaml"
# replace the images: block of config/manager/kustomization.yaml
awk '/^images:/{skip=1; next} skip && /^[^ -]/{skip=0} !skip' "$tmp/config/manager/kustomization.yaml" > "$tmp/k.yaml"
cat "$tmp/k.yaml" "$tmp/images.yaml" > "$tmp/config/manager/kustomization.yaml"
# the agent image travels in the manager's VIRTBMC_AGENT_IMAGE env var
AGENT_IMG="$agent_img" awk '
  /- name: VIRTBMC_AGENT_IMAGE/ { print; getline; sub(/value: .*/, "value: \"" ENVIRON["AGENT_IMG"] "\""); print; next }
  { print }' "$tmp/config/manager/manager.yaml" > "$tmp/m.yaml" && mv "$tmp/m.yaml" "$tmp/config/manager/manager.yaml"
if [ "${PRINT_ONLY:-}" = 1 ]; then
  "$KUBECTL" kustomize "$tmp/config/default"
elif [ "$action" = apply ]; then
  "$KUBECTL" kustomize "$tmp/config/default" | "$KUBECTL" apply -f -
else
  "$KUBECTL" kustomize "$tmp/config/default" | "$KUBECTL" delete --ignore-not-found -f -
fi
