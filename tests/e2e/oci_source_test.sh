#!/usr/bin/env bash
# Contexts too large for a ConfigMap (e2e tier), through the CLI as a user runs it, against the
# operator tests/e2e/deploy.sh deploys:
#   - a directory with a 50 MiB file of random bytes (made here, never committed):
#     `kubectl slipway build` pushes it as an OCI artifact to the image's own repository and
#     the ImageBuild pins it (spec.source.oci, no ConfigMap); the build reaches ref@digest and
#     the image holds the file, byte for byte (its sha256 in a Pod of the image)
#   - the artifact in the registry: one tar+gzip layer, artifactType of a Slipway context
#   - --context-repo: a small context goes to that repository instead
#   - hostile: an ImageBuild pinning a digest the repository does not have, and one pinning
#     a manifest that is not a context (the built image: several layers), end Failed with
#     SourceFailed and a message naming what was refused; one naming two sources is refused
#     by the API server with the CRD's message
set -uo pipefail
: "${KUBECONFIG:?run eval \"\$(tests/cluster/up.sh)\" first}" "${SLIPWAY_REGISTRY:?}"
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
R=$SLIPWAY_REGISTRY
ns=slipway-oci-$$
source "$here/lib.sh"
e2e_work oci-source-e2e
cleanup_cmds='kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1'
e2e_deploy "deploy.sh deploys Slipway"
e2e_cli
kubectl create namespace "$ns" >/dev/null

# --- A 50 MiB context: pushed to the registry, pinned by digest, built.
mkdir -p "$work/big/data"
printf 'FROM %s/slipway-test/busybox:latest\nCOPY data/ /data/\n' "$R" > "$work/big/Dockerfile"
head -c $((50 * 1024 * 1024)) /dev/urandom > "$work/big/data/random.bin"
want=$(sha256sum "$work/big/data/random.bin" | cut -d' ' -f1)
kubectl slipway build "$work/big" -t "$R/demo/oci-source:1" -n "$ns" --insecure \
  >"$work/big.out" 2>"$work/big.err"
rc=$?
ref=$(tail -1 "$work/big.out")
if [[ $rc == 0 && $ref =~ ^$R/demo/oci-source:1@sha256:[0-9a-f]{64}$ ]]; then
  ok "build of a 50 MiB context: exit 0, prints $ref"
else
  bad "build of a 50 MiB context: exit 0 and ref@digest" "exit $rc" "stdout: $(cat "$work/big.out")" "$(tail -15 "$work/big.err")"
fi
name=$(sed -n 's|^imagebuild/\([^ ]*\) created in namespace.*|\1|p' "$work/big.err")
src=$(kubectl -n "$ns" get imagebuild "$name" -o jsonpath='{.spec.source}' 2>&1)
ctx_image=$(jq -r '.oci.image // empty' <<<"$src" 2>/dev/null)
ctx_digest=$(jq -r '.oci.digest // empty' <<<"$src" 2>/dev/null)
if [[ $ctx_image == "$R/demo/oci-source" && $ctx_digest =~ ^sha256:[0-9a-f]{64}$ && $(jq -r '.configMap // empty' <<<"$src") == "" ]]; then
  ok "the ImageBuild pins the context: spec.source.oci $ctx_image@$ctx_digest, no ConfigMap"
else
  bad "spec.source.oci of the build" "$src"
fi
grep -q "pushed to $R/demo/oci-source@sha256:" "$work/big.err" && ok "the CLI says where the context went" \
  || bad "the CLI names the context's artifact" "$(grep -m3 created "$work/big.err")"
raw=$(skopeo inspect --tls-verify=false --raw "docker://$R/demo/oci-source@$ctx_digest" 2>&1)
if [[ $(jq -r '.artifactType' <<<"$raw" 2>/dev/null) == application/vnd.slipway.context.v1 &&
      $(jq -r '.layers | length' <<<"$raw" 2>/dev/null) == 1 &&
      $(jq -r '.layers[0].mediaType' <<<"$raw" 2>/dev/null) == application/vnd.oci.image.layer.v1.tar+gzip &&
      $(jq -r '.config.mediaType' <<<"$raw" 2>/dev/null) == application/vnd.oci.empty.v1+json &&
      $(printf '%s' "$raw" | sha256sum | cut -d' ' -f1) == "${ctx_digest#sha256:}" ]]; then
  ok "the registry holds the context artifact: one tar+gzip layer, empty config, its digest pinned"
else
  bad "the context artifact in the registry" "$raw"
fi
layer_size=$(jq -r '.layers[0].size' <<<"$raw" 2>/dev/null)
((layer_size > 50 * 1024 * 1024)) && ok "the artifact's layer holds the 50 MiB (random bytes do not compress): $layer_size bytes" \
  || bad "the artifact's layer size" "$layer_size"
kubectl -n "$ns" run sum-big --image="${ref%%:1@*}@${ref#*@}" --restart=Never --command -- sha256sum /data/random.bin >/dev/null
kubectl -n "$ns" wait --for=jsonpath='{.status.phase}'=Succeeded pod/sum-big --timeout=180s >/dev/null 2>&1
got=$(kubectl -n "$ns" logs sum-big 2>&1)
[[ $got == "$want  /data/random.bin" ]] && ok "the image holds the 50 MiB file, byte for byte (sha256 $want)" \
  || bad "the file in the built image" "want $want" "got $got"

# --- --context-repo: a small context goes to that repository.
mkdir -p "$work/small"
printf 'FROM %s/slipway-test/busybox:latest\nCOPY hello.txt /\n' "$R" > "$work/small/Dockerfile"
echo hello > "$work/small/hello.txt"
kubectl slipway build "$work/small" -t "$R/demo/oci-small:1" -n "$ns" --insecure \
  --context-repo "$R/demo/contexts" >"$work/small.out" 2>"$work/small.err"
rc=$?
sname=$(sed -n 's|^imagebuild/\([^ ]*\) created in namespace.*|\1|p' "$work/small.err")
simage=$(kubectl -n "$ns" get imagebuild "$sname" -o jsonpath='{.spec.source.oci.image}' 2>&1)
[[ $rc == 0 && $simage == "$R/demo/contexts" ]] && ok "--context-repo: a small context goes to $simage and builds" \
  || bad "--context-repo" "exit $rc" "source image: $simage" "$(tail -5 "$work/small.err")"

# --- Hostile: what the registry has is not what the ImageBuild pins, or not a context.
hostile() { # NAME DIGEST
  kubectl -n "$ns" apply -f - >/dev/null <<YAML
apiVersion: build.slipway.dev/v1alpha1
kind: ImageBuild
metadata: {name: $1}
spec:
  source:
    oci: {image: "$R/demo/oci-source", digest: "$2"}
  output: {image: "$R/demo/$1:1", insecureRegistry: true}
YAML
}
# failed NAME: the Succeeded condition's reason|message once the build is Failed.
failed() {
  kubectl -n "$ns" wait --for=jsonpath='{.status.phase}'=Failed "imagebuild/$1" --timeout=300s >/dev/null 2>&1 ||
    { echo "not Failed: $(kubectl -n "$ns" get imagebuild "$1" -o jsonpath='{.status.phase}' 2>&1)"; return; }
  kubectl -n "$ns" get imagebuild "$1" \
    -o jsonpath='{.status.conditions[?(@.type=="Succeeded")].reason}|{.status.conditions[?(@.type=="Succeeded")].message}'
}
missing=sha256:$(printf 'not the context' | sha256sum | cut -d' ' -f1)
hostile oci-missing "$missing"
got=$(failed oci-missing)
if [[ $got == "SourceFailed|"*"registry $R: pull context $R/demo/oci-source@$missing: "* ]]; then
  ok "a pinned digest the repository does not have: Failed: $got"
else
  bad "a pinned digest that is not there: SourceFailed naming the registry and the pin" "$got"
fi
hostile oci-not-a-context "${ref#*@}"
got=$(failed oci-not-a-context)
if [[ $got == "SourceFailed|"*"registry $R: pull context "*"layers; a context artifact has exactly one"* ]]; then
  ok "a pinned manifest that is an image, not a context: Failed: $got"
else
  bad "a pinned image manifest as a context: SourceFailed, too many layers" "$got"
fi
out=$(kubectl -n "$ns" apply -f - 2>&1 <<YAML
apiVersion: build.slipway.dev/v1alpha1
kind: ImageBuild
metadata: {name: oci-two-sources}
spec:
  source:
    oci: {image: "$R/demo/oci-source", digest: "$ctx_digest"}
    inline: {dockerfile: "FROM scratch"}
  output: {image: "$R/demo/two:1"}
YAML
)
rc=$?
[[ $rc != 0 && $out == *"exactly one of inline, configMap, git, tarball or oci must be set"* ]] \
  && ok "two sources, one of them oci: refused by the API server" || bad "two sources refused" "exit $rc" "$out"
summary
[[ $fail == 0 ]]
