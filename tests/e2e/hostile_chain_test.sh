#!/usr/bin/env bash
# Hostile chain cases on the cluster (issue 12, SECURITY.md H1, T2, T3): code in one stage
# (A2) rewrites what a later pod reads from the workspace.
#   (a) T3 exactly as reproduced: a side stage runs
#       sed -i 's/"targetIndex": *[0-9]*/"targetIndex": 0/' /.slipway/workspace/plan.json
#       The build either succeeds with the TARGET's image (its marker) or fails with a clear
#       reason; the side stage's image is never published.
#   (b) the same attack tolerated by the RUN (`|| ...`), and probes: the workspace is
#       read-only to a stage pod but for its own stages/<N>; the build succeeds with the
#       target's image; the stage pods' mounts and digest arguments are as rendered.
#   (c) T2 with spec.secrets: a stage without secrets rewrites the Dockerfile so that a later
#       stage's RUN --mount=type=secret line copies the secret into the image. The secret
#       reaches no layer or config, and there is no /stolen.
set -uo pipefail
: "${KUBECONFIG:?run eval \"\$(tests/cluster/up.sh)\" first}" "${SLIPWAY_REGISTRY:?}"
here=$(cd "$(dirname "$0")" && pwd)
R=$SLIPWAY_REGISTRY
ns=slipway-hostile-chain-$$
source "$here/lib.sh"
e2e_work hostile-chain-e2e
cleanup_cmds='kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1'
e2e_deploy "deploy.sh deploys Slipway"
kubectl create namespace "$ns" >/dev/null
BB=$R/slipway-test/busybox:latest
secret="slipway-e2e-chain-secret-$$-$RANDOM"
kubectl -n "$ns" create secret generic chain-token --from-literal=token="$secret" >/dev/null

status() { kubectl -n "$ns" get imagebuild "$1" -o jsonpath="$2" 2>/dev/null; }
phase() { status "$1" '{.status.phase}'; }
condition() { status "$1" '{.status.conditions[?(@.type=="Succeeded")].reason}|{.status.conditions[?(@.type=="Succeeded")].message}'; }
describe() {
  echo "phase=$(phase "$1") condition=$(condition "$1" | cut -c1-600)"
  kubectl -n "$ns" get jobs,pods -l "build.slipway.dev/build=$1" 2>&1 | tail -8
}
finished() { # NAME SECONDS
  local p
  for _ in $(seq "$2"); do
    p=$(phase "$1"); [[ $p == Succeeded || $p == Failed ]] && return 0; sleep 1
  done
  return 1
}
# apply NAME DOCKERFILE [SECRETS-LINE]: an inline ImageBuild pushed to $R/e2e/NAME:1.
apply() {
  {
    printf 'apiVersion: build.slipway.dev/v1alpha1\nkind: ImageBuild\nmetadata: {name: %s}\nspec:\n' "$1"
    [[ -n ${3:-} ]] && printf '  %s\n' "$3"
    printf '  source:\n    inline:\n      dockerfile: |\n'
    sed 's/^/        /' <<<"$2"
    printf '  output: {image: "%s/e2e/%s:1", insecureRegistry: true}\n' "$R" "$1"
  } > "$work/$1.yaml"
  kubectl -n "$ns" apply -f "$work/$1.yaml" >/dev/null
}
# cmd_of NAME: the Cmd of the image pushed under NAME, or nothing when there is none.
cmd_of() {
  skopeo inspect --tls-verify=false --config --raw "docker://$R/e2e/$1:1" 2>/dev/null \
    | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["config"].get("Cmd")))' 2>/dev/null
}
# run_image NAME: what the pushed image prints.
run_image() {
  local ref digest
  ref=$(status "$1" '{.status.image.ref}') digest=$(status "$1" '{.status.image.digest}')
  kubectl -n "$ns" run "run-$1" --image="${ref%:*}@$digest" --restart=Never >/dev/null
  kubectl -n "$ns" wait --for=jsonpath='{.status.phase}'=Succeeded "pod/run-$1" --timeout=120s >/dev/null 2>&1
  kubectl -n "$ns" logs "run-$1" 2>&1
}
TARGET_CMD='["cat", "/marker"]'
CLEAR='does not match (the|its) digest( the controller holds)?: the workspace was modified|Read-only file system|exit code [0-9]+'

# --- (a) T3 exactly as the issue reproduced it.
apply h-t3 "FROM $BB AS side
RUN echo evil > /evil && sed -i 's/\"targetIndex\": *[0-9]*/\"targetIndex\": 0/' /.slipway/workspace/plan.json
CMD [\"echo\", \"side\"]
FROM $BB
COPY --from=side /evil /evil
RUN echo target > /marker
CMD [\"cat\", \"/marker\"]"

# --- (b) The same, tolerated, with probes of what a stage pod may write.
apply h-t3-probe "FROM $BB AS side
RUN W=/.slipway/workspace; { sed -i 's/\"targetIndex\": *[0-9]*/\"targetIndex\": 0/' \$W/plan.json 2>/dev/null && echo 'plan: rewritten' || echo 'plan: read-only'; touch \$W/Dockerfile 2>/dev/null && echo 'dockerfile: writable' || echo 'dockerfile: read-only'; mkdir -p \$W/stages/1 2>/dev/null; touch \$W/stages/1/planted 2>/dev/null && echo 'other stage: writable' || echo 'other stage: read-only'; touch \$W/stages/0/mine && echo 'own stage: writable' || echo 'own stage: read-only'; touch /.slipway/bin/planted 2>/dev/null && echo 'engine folder: writable' || echo 'engine folder: read-only'; rm /.slipway/bin/slipway-builder 2>/dev/null && echo 'engine: removed' || echo 'engine: kept'; } > /probe.txt; cat /probe.txt
CMD [\"echo\", \"side\"]
FROM $BB
COPY --from=side /probe.txt /probe.txt
RUN echo target > /marker
CMD [\"cat\", \"/marker\", \"/probe.txt\"]"

# --- (c) T2: the Dockerfile rewritten to copy a later stage's secret into the image.
apply h-t2 "FROM $BB AS untrusted
RUN sed -i 's#RUN --mount=type=secret,id=token true#RUN cp /.slipway/secrets/token /stolen#' /.slipway/workspace/Dockerfile 2>/dev/null && echo 'Dockerfile: rewritten' || echo 'Dockerfile: read-only'; echo done > /done
FROM $BB AS deploy
COPY --from=untrusted /done /done
RUN --mount=type=secret,id=token true
RUN echo target > /marker
CMD [\"cat\", \"/marker\"]" "secrets: [{id: token, secretRef: {name: chain-token, key: token}}]"

# --- (d) A stage's RUN writes its own stages/0/outputs.json ahead of its end: the file a pod
#     made while the stage runs takes the stage's outputs from (--await-outputs). The next
#     stage's pod is made once this one is on the node, so it reads the forged digests.
apply h-await "FROM $BB AS early
RUN printf '{\"result\":\"sha256:%064d\",\"exports\":\"sha256:%064d\"}' 0 0 > /.slipway/workspace/stages/0/outputs.json; sleep 8; echo real > /real
FROM $BB
COPY --from=early /real /real
CMD [\"cat\", \"/real\"]"

# (a): the target's image, or a clear failure; never the side stage's.
if ! finished h-t3 900; then
  bad "t3: the build finishes" "$(describe h-t3)"
else
  got=$(condition h-t3) cmd=$(cmd_of h-t3)
  if [[ $cmd == '["echo", "side"]' ]]; then
    bad "t3: the side stage's image was published" "condition: $got"
  elif [[ $(phase h-t3) == Succeeded ]]; then
    out=$(run_image h-t3)
    [[ $cmd == "$TARGET_CMD" && $out == target ]] && ok "t3: the target's image was pushed (Cmd $cmd, prints $out)" \
      || bad "t3: the pushed image is the target's" "Cmd $cmd" "prints: $out"
  elif [[ $got == StageFailed\|* || $got == PushFailed\|* ]] && grep -Eq -- "$CLEAR" <<<"$got" && [[ -z $cmd ]]; then
    ok "t3: the build failed with a clear reason and pushed nothing: $(cut -c1-300 <<<"$got")"
  else
    bad "t3: a clear failure, nothing pushed" "condition: $got" "pushed Cmd: ${cmd:-none}" "$(describe h-t3)"
  fi
fi

# (b): succeeds with the target's image; the probe says what the side stage could write.
if finished h-t3-probe 900 && [[ $(phase h-t3-probe) == Succeeded ]]; then
  out=$(run_image h-t3-probe) cmd=$(cmd_of h-t3-probe)
  want=$'target\nplan: read-only\ndockerfile: read-only\nother stage: read-only\nown stage: writable\nengine folder: read-only\nengine: kept'
  [[ $cmd == '["cat", "/marker", "/probe.txt"]' && $out == "$want" ]] \
    && ok "t3 tolerated: the target's image was pushed; the side stage could write its own stages/0 only (not the engine the next stage pod runs)" \
    || bad "t3 tolerated: the target's image, a read-only workspace" "Cmd $cmd" "got:" "$out" "want:" "$want"
else
  bad "t3 tolerated: Succeeded" "$(describe h-t3-probe)"
fi
# The stage pods as rendered: the workspace read-only, each its own stages/<N> writable by
# subPath, the engine (the prepare pod's copy in the workspace) read-only by subPath, the
# digests of what it reads in its arguments.
mounts=$(kubectl -n "$ns" get pods -l build.slipway.dev/build=h-t3-probe -o json | python3 -c '
import json, sys
out = []
for p in json.load(sys.stdin)["items"]:
    if p["metadata"].get("labels", {}).get("build.slipway.dev/step") != "stage":
        continue
    c = p["spec"]["containers"][0]
    ws = sorted((m["mountPath"], m.get("subPath", ""), bool(m.get("readOnly")))
                for m in c["volumeMounts"] if m["name"] == "workspace")
    args = c.get("args", [])
    # A stage whose pod was on the node when this one was made is awaited, not given.
    flags = sorted({a for a in args if a.endswith("-digest") or a == "--await-outputs"})
    out.append("%s %s" % (ws, ",".join(flags)))
print("\n".join(sorted(out)))')
want_mounts="[('/.slipway/bin', 'engine', True), ('/.slipway/workspace', '', True), ('/.slipway/workspace/stages/0', 'stages/0', False)] --dockerfile-digest,--image-digest,--plan-digest
[('/.slipway/bin', 'engine', True), ('/.slipway/workspace', '', True), ('/.slipway/workspace/stages/1', 'stages/1', False)] --dockerfile-digest,--exports-digest,--image-digest,--plan-digest,--result-digest"
# Or stage 1's pod was made while stage 0's ran: it awaits stage 0's outputs.
awaiting=${want_mounts/--dockerfile-digest,--exports-digest,--image-digest,--plan-digest,--result-digest/--await-outputs,--dockerfile-digest,--image-digest,--plan-digest}
[[ $mounts == "$want_mounts" || $mounts == "$awaiting" ]] && ok "stage pods: the workspace and the engine read-only, their own stages/<N> writable, the digests of what they read in their arguments" \
  || bad "stage pod mounts and digests" "got:" "$mounts" "want:" "$want_mounts"

# (c): no secret in any layer, config or log; no /stolen.
if ! finished h-t2 900; then
  bad "t2: the build finishes" "$(describe h-t2)"
else
  got=$(condition h-t2)
  logs=$(kubectl -n "$ns" logs -l build.slipway.dev/build=h-t2 --all-containers --tail=-1 2>&1)
  if grep -q "$secret" <<<"$logs$got"; then
    bad "t2: the secret is in a pod log or the status"
  fi
  if [[ $(phase h-t2) == Succeeded ]]; then
    rm -rf "$work/oci-h-t2"
    skopeo copy -q --src-tls-verify=false "docker://$R/e2e/h-t2:1" "oci:$work/oci-h-t2:latest" \
      || bad "t2: the pushed image can be read back"
    if out=$(python3 "$here/../engine/imagetool.py" leaks "$work/oci-h-t2" "$secret" '^/stolen$' 2>&1); then
      ok "t2: the Dockerfile could not be rewritten; the secret is in no layer or config, no /stolen ($out)"
    else
      bad "t2: no layer holds the secret" "$out"
    fi
  elif grep -Eq -- "$CLEAR" <<<"$got" && ! skopeo inspect --tls-verify=false "docker://$R/e2e/h-t2:1" >/dev/null 2>&1; then
    ok "t2: the build failed with a clear reason and pushed nothing: $(cut -c1-300 <<<"$got")"
  else
    bad "t2: Succeeded without the secret, or a clear failure" "$(describe h-t2)"
  fi
fi

# (d): a clear failure naming the workspace file, and nothing pushed.
if ! finished h-await 300; then
  bad "await: the build finishes" "$(describe h-await)"
else
  got=$(condition h-await) args=$(kubectl -n "$ns" get pods -l build.slipway.dev/build=h-await \
    -o jsonpath='{range .items[*]}{.spec.containers[0].args}{"\n"}{end}' | grep -c -- --await-outputs)
  if [[ $(phase h-await) == Failed && $got == StageFailed\|* && $got == *stages/0/* && $args -ge 1 ]] \
    && ! skopeo inspect --tls-verify=false "docker://$R/e2e/h-await:1" >/dev/null 2>&1; then
    ok "await: forged outputs.json: the build failed naming the file and pushed nothing: $(cut -c1-200 <<<"$got")"
  else
    bad "await: a clear failure, an awaiting pod, nothing pushed" "awaiting pods: $args" "$(describe h-await)"
  fi
fi

summary
((fail == 0))
