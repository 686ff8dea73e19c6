#!/usr/bin/env bash
# One command, a real build on Kubernetes: starts the local single-node cluster
# (tests/cluster/up.sh; builds Kubernetes from the Go module proxy on the first run), deploys
# Slipway on it (tests/e2e/deploy.sh: builder image, base images, CRD, operator), applies one
# of the article's examples as an ImageBuild, waits for it, and runs the pushed image as a Pod.
# Needs root. The cluster stays up afterwards: tests/cluster/down.sh removes it.
#   scripts/try-cluster-build.sh go|node
set -euo pipefail
example=${1:-go}
repo=$(cd "$(dirname "$0")/.." && pwd)
[[ -f $repo/examples/$example/imagebuild.yaml ]] || { echo "usage: $0 go|node" >&2; exit 2; }
echo "== starting the local cluster" >&2
eval "$("$repo/tests/cluster/up.sh")"
echo "== deploying Slipway" >&2
eval "$("$repo/tests/e2e/deploy.sh")"
name=$example-example
kubectl delete imagebuild "$name" --ignore-not-found >/dev/null
kubectl delete configmap "$name-context" --ignore-not-found >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tar -czf "$tmp/context.tar.gz" -C "$repo/examples/$example" .
kubectl create configmap "$name-context" --from-file=context.tar.gz="$tmp/context.tar.gz" >/dev/null
echo "== kubectl apply -f examples/$example/imagebuild.yaml" >&2
kubectl apply -f "$repo/examples/$example/imagebuild.yaml"
for _ in $(seq 900); do
  phase=$(kubectl get imagebuild "$name" -o jsonpath='{.status.phase}')
  [[ $phase == Succeeded || $phase == Failed ]] && break
  sleep 1
done
kubectl wait --for=condition=Succeeded "imagebuild/$name" --timeout=5s >/dev/null || {
  kubectl get imagebuild "$name" -o jsonpath='{.status.conditions[0].reason}: {.status.conditions[0].message}{"\n"}' >&2
  exit 1
}
kubectl get imagebuild "$name"
ref=$(kubectl get imagebuild "$name" -o jsonpath='{.status.image.ref}')
digest=$(kubectl get imagebuild "$name" -o jsonpath='{.status.image.digest}')
echo "== running ${ref%:*}@$digest as a Pod" >&2
kubectl delete pod "run-$name" --ignore-not-found >/dev/null
kubectl run "run-$name" --image="${ref%:*}@$digest" --restart=Never >/dev/null
kubectl wait --for=jsonpath='{.status.phase}'=Succeeded "pod/run-$name" --timeout=120s >/dev/null
kubectl logs "run-$name"
