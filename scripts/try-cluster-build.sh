#!/usr/bin/env bash
# One command, a real build on Kubernetes: starts the local single-node cluster
# (tests/cluster/up.sh; builds Kubernetes from the Go module proxy on the first run), deploys
# Slipway on it (tests/e2e/deploy.sh: builder image, base images, CRD, operator), builds the
# CLI, and builds one of the article's examples with it:
#   kubectl slipway build examples/go -t $SLIPWAY_REGISTRY/demo/go:1
# which packs the directory, uploads it, follows the build's stages and prints ref@digest;
# then runs the pushed image as a Pod. Needs root. The cluster stays up afterwards:
# tests/cluster/down.sh removes it.
#   scripts/try-cluster-build.sh go|node
set -euo pipefail
example=${1:-go}
repo=$(cd "$(dirname "$0")/.." && pwd)
[[ -f $repo/examples/$example/Dockerfile ]] || { echo "usage: $0 go|node" >&2; exit 2; }
export HOME=${HOME:-/root}
if [[ -z "${CARGO_TARGET_DIR:-}" ]]; then
  key=$(rustc --version | tr -c 'A-Za-z0-9.\n' '-' | tr -d '\n')
  export CARGO_TARGET_DIR="${SLIPWAY_CACHE:-/var/cache/slipway}/cargo-target/$key"
fi
echo "== starting the local cluster" >&2
eval "$("$repo/tests/cluster/up.sh")"
echo "== deploying Slipway" >&2
eval "$("$repo/tests/e2e/deploy.sh")"
echo "== building the CLI (cargo build --release -p slipway-cli)" >&2
(cd "$repo" && cargo build --release --quiet -p slipway-cli)
export PATH="$CARGO_TARGET_DIR/release:$PATH"
echo "== kubectl slipway build examples/$example -t $SLIPWAY_REGISTRY/demo/$example:1" >&2
cd "$repo"
image=$(kubectl slipway build "examples/$example" -t "$SLIPWAY_REGISTRY/demo/$example:1")
echo "$image"
name=run-$example-example
echo "== running ${image%%:1@*}@${image#*@} as a Pod" >&2
kubectl delete pod "$name" --ignore-not-found >/dev/null
kubectl run "$name" --image="${image%%:1@*}@${image#*@}" --restart=Never >/dev/null
kubectl wait --for=jsonpath='{.status.phase}'=Succeeded "pod/$name" --timeout=120s >/dev/null
kubectl logs "$name"
