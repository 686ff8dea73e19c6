#!/usr/bin/env bash
# Builds the peers' images for the cluster benchmark (benches/cluster_peers.py) with Slipway's
# local mode, and pushes them to REGISTRY (plain HTTP):
#   REGISTRY/bench/kaniko:<hash>    kaniko v1.24.0's executor FROM scratch (peers/kaniko.Dockerfile)
#   REGISTRY/bench/buildkit:<hash>  buildkitd + buildctl v0.34.2 + runc on slipway-test/debian
#                                   (peers/buildkit.Dockerfile), configured for CLUSTER_REGISTRY
# The peers are built from the Go module proxy by tests/peers/build.sh (cached); the bases are
# the test images of REGISTRY (nothing from Docker Hub). Prints the references (BENCH_PEERS=kaniko builds one).
#   benches/peer_images.sh REGISTRY [CLUSTER_REGISTRY (default 10.233.0.1:5000)]
set -euo pipefail
R=$1 CR=${2:-10.233.0.1:5000}
repo=$(cd "$(dirname "$0")/.." && pwd)
engine=$("$repo/scripts/build-engine.sh")
state=${SLIPWAY_CACHE:-/var/cache/slipway}/bench-peer-images
peers=${BENCH_PEERS:-kaniko buildkit}
ctx=$(mktemp -d /var/tmp/slipway-peer-images.XXXXXX)
trap 'rm -rf "$ctx"' EXIT
mkdir "$ctx/kaniko" "$ctx/buildkit"
if [[ $peers == *kaniko* ]]; then
  kaniko=$("$repo/tests/peers/build.sh" kaniko)
  cp "$kaniko/executor" /etc/ssl/certs/ca-certificates.crt "$ctx/kaniko/"
  echo '{}' > "$ctx/kaniko/docker-config.json"
fi
if [[ $peers == *buildkit* ]]; then
  buildkit=$("$repo/tests/peers/build.sh" buildkit)
  cp "$buildkit/buildkitd" "$buildkit/buildctl" "$(command -v runc)" /etc/ssl/certs/ca-certificates.crt "$ctx/buildkit/"
fi
cat > "$ctx/buildkit/buildkitd.toml" <<TOML
[worker.oci]
  enabled = true
  snapshotter = "overlayfs"
  networkMode = "host"
  gc = false
[worker.containerd]
  enabled = false
[registry."$CR"]
  http = true
TOML
for p in $peers; do
  cp "$repo/benches/peers/$p.Dockerfile" "$ctx/$p/Dockerfile"
  ref=$R/bench/$p:$(cd "$ctx/$p" && cat ./* | sha256sum | cut -c1-16)
  if ! skopeo inspect --tls-verify=false "docker://$ref" >/dev/null 2>&1; then
    "$engine" build --context "$ctx/$p" --destination "$ref" --insecure-registry "$R" \
      --build-arg "BASE_REGISTRY=$R" --state-dir "$state" >&2
  fi
  echo "$ref"
done
