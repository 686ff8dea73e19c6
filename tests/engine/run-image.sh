#!/usr/bin/env bash
# Runs an image from a registry with runc, as `docker run IMAGE` would (Entrypoint + Cmd, Env,
# WorkingDir, User), and prints what it prints. Usage: run-image.sh REF [OCI_DIR_TO_KEEP]
set -euo pipefail
ref=$1
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /var/tmp/slipway-run-image.XXXXXX)
trap 'runc --root /run/slipway-runc delete -f "img-$$" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
skopeo copy -q --src-tls-verify=false "docker://$ref" "oci:$work/oci:latest" >&2
python3 "$here/imagetool.py" unpack "$work/oci" "$work/rootfs"
python3 "$here/imagetool.py" runspec "$work/oci" "$work/rootfs" "$work/bundle"
if [[ -n "${2:-}" ]]; then rm -rf "$2"; cp -a "$work/oci" "$2"; fi
runc --root /run/slipway-runc run --bundle "$work/bundle" "img-$$" </dev/null
