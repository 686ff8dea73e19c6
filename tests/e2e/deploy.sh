#!/usr/bin/env bash
# Deploys Slipway on the local cluster (after `eval "$(tests/cluster/up.sh)"`), idempotently:
#   1. builds the static slipway-builder and, with Slipway's own local mode, the builder
#      image (binary + the host's CA bundle); pushes it to
#      $SLIPWAY_REGISTRY/slipway/builder:<content hash>;
#   2. copies the test base images (busybox, golang, node, node-slim: built from Debian
#      packages by tests/images/build.sh, cached in the engine tier's registry) into
#      $SLIPWAY_REGISTRY/slipway-test/;
#   3. installs the CRD (crds/);
#   4. runs the operator as a local process using KUBECONFIG (PID in the cluster's state
#      dir, stopped by tests/cluster/down.sh), restarted only when its binary or the builder
#      image changed; waits until it watches ImageBuilds.
# Prints `export SLIPWAY_BUILDER_IMAGE=...` for eval. The operator's log:
# $SLIPWAY_CLUSTER_STATE/logs/slipway-operator.log.
set -euo pipefail
: "${KUBECONFIG:?run eval \"\$(tests/cluster/up.sh)\" first}" "${SLIPWAY_REGISTRY:?}"
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$repo/tests/cluster/env.sh"
R=$SLIPWAY_REGISTRY
export HOME=${HOME:-/root}
if [[ -z "${CARGO_TARGET_DIR:-}" ]]; then
  key=$(rustc --version | tr -c 'A-Za-z0-9.\n' '-' | tr -d '\n')
  export CARGO_TARGET_DIR="${SLIPWAY_CACHE:-/var/cache/slipway}/cargo-target/$key"
fi

# 1. The builder image, tagged by the binary's content.
engine=$("$repo/scripts/build-engine.sh")
tag=$(cat "$engine" "$repo/builder-image/Dockerfile.local" /etc/ssl/certs/ca-certificates.crt | sha256sum | cut -c1-16)
builder=$R/slipway/builder:$tag
if ! skopeo inspect --tls-verify=false "docker://$builder" >/dev/null 2>&1; then
  log "building the builder image $builder"
  ctx=$(mktemp -d /var/tmp/slipway-builder-ctx.XXXXXX)
  cp "$engine" "$ctx/slipway-builder"
  cp /etc/ssl/certs/ca-certificates.crt "$ctx/"
  "$engine" build --context "$ctx" --dockerfile "$repo/builder-image/Dockerfile.local" \
    --destination "$builder" --insecure-registry "$R" --state-dir "$CACHE/local-builds" >&2
  rm -rf "$ctx"
fi

# 2. Base images, from the engine tier's registry (built there when missing or stale).
repo=$repo source "$repo/tests/engine/lib.sh"
engine_packages
start_registry
trap '[[ -n $REG_PID ]] && kill "$REG_PID" 2>/dev/null; true' EXIT
ensure_images busybox golang node node-slim
for name in busybox golang node node-slim; do
  src=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$ENGINE_REGISTRY/slipway-test/$name:latest")
  dst=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$R/slipway-test/$name:latest" 2>/dev/null || true)
  if [[ $src != "$dst" ]]; then
    log "copying base image $name to $R"
    skopeo copy --quiet --src-tls-verify=false --dest-tls-verify=false --preserve-digests \
      "docker://$ENGINE_REGISTRY/slipway-test/$name:latest" "docker://$R/slipway-test/$name:latest" >&2
  fi
done

# 3. The CRD.
kubectl apply -f "$repo/crds/" >&2
kubectl wait --for=condition=Established crd/imagebuilds.build.slipway.dev --timeout=60s >&2

# 4. The operator.
cargo build --quiet -p slipway-operator >&2
op=$CARGO_TARGET_DIR/debug/slipway-operator
want="$(sha256sum "$op" | cut -c1-16) $builder"
pidf=$S/pids/slipway-operator.pid
logf=$S/logs/slipway-operator.log
mkdir -p "$S/pids" "$S/logs"
if alive slipway-operator && [[ "$(cat "$S/slipway-operator.version" 2>/dev/null)" == "$want" ]]; then
  log "the operator is running ($(cat "$pidf"))"
else
  if alive slipway-operator; then
    log "restarting the operator"
    kill "$(cat "$pidf")"
    for _ in $(seq 40); do alive slipway-operator || break; sleep 0.25; done
  fi
  : > "$logf"
  setsid "$op" run --builder-image "$builder" --insecure-registry "$R" \
    --default-workspace-size 2Gi --metrics-addr 127.0.0.1:18080 >>"$logf" 2>&1 < /dev/null &
  echo $! > "$pidf"
  echo "$want" > "$S/slipway-operator.version"
  for _ in $(seq 60); do
    grep -q "watching ImageBuilds" "$logf" && break
    alive slipway-operator || { cat "$logf" >&2; echo "the operator exited" >&2; exit 1; }
    sleep 0.5
  done
  grep -q "watching ImageBuilds" "$logf" || { cat "$logf" >&2; echo "the operator did not start" >&2; exit 1; }
  log "the operator runs ($(cat "$pidf")), log $logf"
fi
echo "export SLIPWAY_BUILDER_IMAGE=$builder"
