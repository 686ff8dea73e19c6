#!/usr/bin/env bash
# The builder image (e2e tier): built from the locally built static binary with Slipway's own
# local mode, pushed to the cluster's registry, and run by the cluster as a Pod.
set -uo pipefail
: "${KUBECONFIG:?run eval \"\$(tests/cluster/up.sh)\" first}" "${SLIPWAY_REGISTRY:?}"
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
R=$SLIPWAY_REGISTRY
ns=slipway-builder-image-$$
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
bad() { fail=$((fail + 1)); echo "not ok - $1"; shift; for l in "$@"; do echo "#   $l"; done; }
work=$(mktemp -d /var/tmp/slipway-builder-image.XXXXXX)
trap 'kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1; rm -rf "$work"' EXIT

# The multi-stage Dockerfile for builds with internet access at least plans.
engine=$("$repo/scripts/build-engine.sh")
if out=$("$engine" plan \
      --dockerfile "$repo/builder-image/Dockerfile" 2>&1) && grep -q '"target": 1' <<<"$out"; then
  ok "builder-image/Dockerfile plans (build stage, then the scratch image)"
else
  bad "builder-image/Dockerfile plans" "$out"
fi

mkdir -p "$work/ctx" && cp "$engine" "$work/ctx/slipway-builder" && cp /etc/ssl/certs/ca-certificates.crt "$work/ctx/"
image=$R/slipway/builder:e2e-$$
if out=$("$engine" build --context "$work/ctx" --dockerfile "$repo/builder-image/Dockerfile.local" \
      --destination "$image" --insecure-registry "$R" --state-dir "$work/state" 2>&1); then
  ok "slipway-builder build makes the builder image and pushes it to $R"
else
  bad "slipway-builder build makes the builder image" "$(tail -5 <<<"$out")"
fi

kubectl create namespace "$ns" >/dev/null
kubectl -n "$ns" run builder --image="$image" --restart=Never -- --version >/dev/null
for _ in $(seq 90); do
  phase=$(kubectl -n "$ns" get pod builder -o jsonpath='{.status.phase}' 2>/dev/null)
  [[ $phase == Succeeded || $phase == Failed ]] && break
  sleep 1
done
logs=$(kubectl -n "$ns" logs builder 2>&1)
if [[ $phase == Succeeded && $logs == "slipway-builder "* ]]; then
  ok "the cluster runs the builder image: $logs"
else
  bad "the cluster runs the builder image" "phase: $phase" "logs: $logs"
fi
echo "$pass passed, $fail failed"
