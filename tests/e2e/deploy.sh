#!/usr/bin/env bash
# Deploys Slipway on the local cluster (after `eval "$(tests/cluster/up.sh)"`), idempotently:
#   1. builds the static slipway-builder and, with Slipway's own local mode, the builder
#      image (binary + the host's CA bundle); pushes it to
#      $SLIPWAY_REGISTRY/slipway/builder:<content hash>;
#   2. copies the test base images (busybox, golang, node, node-slim: built from Debian
#      packages by tests/images/build.sh, cached in the engine tier's registry) into
#      $SLIPWAY_REGISTRY/slipway-test/;
#   3. readies an existing CRD for the chart, which installs and upgrades it (templated):
#      one that `kubectl apply -f crds/` made (crd_test.sh) is adopted into the release;
#   4. builds the operator image the same way (static slipway-operator, non-root);
#   5. builds helm (pinned) from the Go module proxy once, cached under $SLIPWAY_CACHE/tools;
#   6. installs or upgrades the chart charts/slipway into namespace slipway-system: the
#      operator runs in-cluster with its least-privilege RBAC; waits until it is ready.
# Prints `export SLIPWAY_BUILDER_IMAGE=... SLIPWAY_OPERATOR_IMAGE=... SLIPWAY_HELM=...` for eval.
# Logs: kubectl -n slipway-system logs deploy/slipway-operator. SLIPWAY_HELM_ARGS adds helm flags.
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

# local_image BINARY DOCKERFILE NAME: a scratch image of a static binary and the host's CA
# bundle, built with Slipway's local mode and pushed as $R/slipway/NAME:<content hash>
# unless the registry has it; prints the reference.
local_image() {
  local bin=$1 dockerfile=$2 name=$3 ref ctx
  ref=$R/slipway/$name:$(cat "$bin" "$dockerfile" /etc/ssl/certs/ca-certificates.crt | sha256sum | cut -c1-16)
  if ! skopeo inspect --tls-verify=false "docker://$ref" >/dev/null 2>&1; then
    log "building the $name image $ref"
    ctx=$(mktemp -d "/var/tmp/slipway-$name-ctx.XXXXXX")
    cp "$bin" "$ctx/$(basename "$bin")"
    cp /etc/ssl/certs/ca-certificates.crt "$ctx/"
    "$engine" build --context "$ctx" --dockerfile "$dockerfile" \
      --destination "$ref" --insecure-registry "$R" --state-dir "$CACHE/local-builds" >&2
    rm -rf "$ctx"
  fi
  echo "$ref"
}

# 1. The builder image.
engine=$("$repo/scripts/build-engine.sh")
builder=$(local_image "$engine" "$repo/builder-image/Dockerfile.local" builder)

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

# 3. The CRD comes with the chart (templates/crd.yaml). Helm refuses to take over one it did
# not make: one applied with kubectl (crd_test.sh, or a cluster where the chart's 0.1.0
# installed it from its crds/) is adopted into this release, as the README tells users to.
crd=imagebuilds.build.slipway.dev
if kubectl get crd "$crd" >/dev/null 2>&1 &&
   [[ -z $(kubectl get crd "$crd" -o jsonpath='{.metadata.annotations.meta\.helm\.sh/release-name}') ]]; then
  log "adopting the CRD $crd into the release slipway"
  kubectl label crd "$crd" app.kubernetes.io/managed-by=Helm --overwrite >&2
  kubectl annotate crd "$crd" meta.helm.sh/release-name=slipway \
    meta.helm.sh/release-namespace=slipway-system --overwrite >&2
fi
# The chart's 0.1.0 selected the operator's pods by app.kubernetes.io/name=slipway-operator;
# a Deployment's selector cannot change, so an old one goes (the README's upgrade note).
if [[ $(kubectl -n slipway-system get deployment slipway-operator \
        -o jsonpath='{.spec.selector.matchLabels.app\.kubernetes\.io/name}' 2>/dev/null) == slipway-operator ]]; then
  log "deleting the operator Deployment of the chart's 0.1.0 (its selector changed)"
  kubectl -n slipway-system delete deployment slipway-operator --wait=true >&2
fi

# 4. The operator image: the static slipway-operator on an empty base, non-root.
operator=$(local_image "$("$repo/scripts/build-engine.sh" --operator)" "$repo/operator/Dockerfile.local" operator)

# 5. Helm, pinned, built once from the Go module proxy and cached.
HELM_VERSION=v3.22.0
helm=$CACHE/tools/helm-$HELM_VERSION/helm
if [[ ! -x $helm ]]; then
  log "building helm $HELM_VERSION from the Go module proxy (once)"
  mkdir -p "$(dirname "$helm")"
  (cd /tmp && GOFLAGS=-mod=mod GOBIN=$(dirname "$helm") go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION") >&2
fi

# 6. The operator, in-cluster, from the chart.
"$helm" upgrade --install slipway "$repo/charts/slipway" --namespace slipway-system --create-namespace \
  --set image.repository="${operator%:*}" --set-string image.tag="${operator##*:}" \
  --set builderImage.repository="${builder%:*}" --set-string builderImage.tag="${builder##*:}" \
  --set "insecureRegistries={$R}" --set defaultWorkspaceSize=2Gi --set image.pullPolicy=IfNotPresent \
  ${SLIPWAY_HELM_ARGS:-} --wait --timeout 180s >&2
kubectl -n slipway-system rollout status deployment/slipway-operator --timeout=120s >&2
kubectl wait --for=condition=Established "crd/$crd" --timeout=60s >&2
log "the operator runs in-cluster: $operator"
echo "export SLIPWAY_HELM=$helm"
echo "export SLIPWAY_OPERATOR_IMAGE=$operator"
echo "export SLIPWAY_BUILDER_IMAGE=$builder"
