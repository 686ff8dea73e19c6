#!/usr/bin/env bash
# The ImageBuild API on the real API server (e2e tier): the CRD from crds/ is accepted and
# established, a valid ImageBuild is stored (short name, printer columns), and the schema's
# validation refuses an ImageBuild with two sources or without output.image.
set -uo pipefail
: "${KUBECONFIG:?run eval \"\$(tests/cluster/up.sh)\" first}"
here=$(cd "$(dirname "$0")" && pwd)
crd=$here/../../crds/imagebuilds.build.slipway.dev.json
ns=slipway-crd-$$
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
bad() { fail=$((fail + 1)); echo "not ok - $1"; shift; for l in "$@"; do echo "#   $l"; done; }

if out=$(kubectl apply -f "$crd" 2>&1) &&
   kubectl wait --for=condition=Established crd/imagebuilds.build.slipway.dev --timeout=60s >/dev/null 2>&1; then
  ok "the ImageBuild CRD from crds/ is accepted and established"
else
  bad "the ImageBuild CRD from crds/ is accepted and established" "$out"
fi
kubectl create namespace "$ns" >/dev/null

ib() { # name source-yaml output-yaml
  kubectl -n "$ns" apply -f - 2>&1 <<YAML
apiVersion: build.slipway.dev/v1alpha1
kind: ImageBuild
metadata: {name: $1}
spec:
  source:
$2
$3
YAML
}

if out=$(ib valid "    inline: {dockerfile: \"FROM busybox\"}" "  output: {image: registry.local/app:1}"); then
  cols=$(kubectl -n "$ns" get ib valid 2>&1 | head -1)
  wide=$(kubectl -n "$ns" get ib valid -o wide 2>&1 | head -1)
  if [[ $cols == *PHASE*REASON*DIGEST*DURATION*AGE* && $cols != *IMAGE* &&
        $wide == *AGE*IMAGE* ]]; then
    ok "a valid ImageBuild is stored; kubectl get ib shows PHASE REASON DIGEST DURATION AGE (-o wide: IMAGE)"
  else
    bad "kubectl get ib shows the printer columns" "$cols / $wide"
  fi
else
  bad "a valid ImageBuild is stored" "$out"
fi

out=$(ib two-sources "    inline: {dockerfile: \"FROM busybox\"}
    git: {url: https://example.invalid/repo.git}" "  output: {image: registry.local/app:1}")
if [[ $? != 0 && $out == *"exactly one of inline, configMap, git, tarball or oci must be set"* ]]; then
  ok "an ImageBuild with two sources is refused with the rule's message"
else
  bad "an ImageBuild with two sources is refused" "$out"
fi

out=$(ib no-image "    inline: {dockerfile: \"FROM busybox\"}" "  output: {additionalTags: [x]}")
if [[ $? != 0 && $out == *"spec.output.image"* ]]; then
  ok "an ImageBuild without output.image is refused"
else
  bad "an ImageBuild without output.image is refused" "$out"
fi

out=$(ib bad-timeout "    inline: {dockerfile: \"FROM busybox\"}" "  output: {image: registry.local/app:1}
  timeout: soon")
if [[ $? != 0 && $out == *"spec.timeout"* ]]; then
  ok "an ImageBuild with a timeout that is not a duration is refused: $(grep -o 'spec.timeout[^,]*' <<<"$out" | head -1)"
else
  bad "an ImageBuild with timeout: soon is refused" "$out"
fi

kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1
echo "$pass passed, $fail failed"
