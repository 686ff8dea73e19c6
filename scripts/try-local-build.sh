#!/usr/bin/env bash
# One command, a real build: builds one of the article's examples with Slipway's local mode
# (stages in runc containers), pushes it to a registry on 127.0.0.1:5055, and runs the image.
# Needs root. Installs what it needs from Debian (runc, docker-registry, skopeo, buildah,
# busybox-static, debootstrap), builds the base images locally on the first run (a few
# minutes), and the static slipway-builder binary.
#   scripts/try-local-build.sh go|node
set -euo pipefail
example=${1:-go}
repo=$(cd "$(dirname "$0")/.." && pwd)
[[ -d $repo/examples/$example ]] || { echo "usage: $0 go|node" >&2; exit 2; }
# shellcheck source=tests/engine/lib.sh
source "$repo/tests/engine/lib.sh"
engine_setup
trap engine_teardown EXIT
dest=$ENGINE_REGISTRY/examples/$example:latest
echo "== slipway-builder build --context examples/$example --destination $dest" >&2
time "$ENGINE" build --context "$repo/examples/$example" --destination "$dest" \
  --insecure-registry "$ENGINE_REGISTRY" --build-arg "BASE_REGISTRY=$ENGINE_REGISTRY" \
  --state-dir "$CACHE/local-builds"
echo "== running $dest with runc" >&2
"$repo/tests/engine/run-image.sh" "$dest"
