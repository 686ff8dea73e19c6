#!/usr/bin/env bash
# Hostile stage cases on the cluster (SECURITY.md H3, M1, T6, T9): a Secret bound with
# spec.secrets and mounted by RUN --mount=type=secret
#   - in a FROM scratch stage (T6): no layer or config of the pushed image holds the secret's
#     bytes or a file the engine made for a RUN (.slipway-run-*);
#   - after an earlier RUN (A2) planted links where the engine used to write secret copies
#     (T9): nothing is written through them;
#   - scoping: a stage Job whose RUNs name no secret has no /.slipway/secrets; the stand-in at
#     /run/secrets/<id> is gone for the next RUN. What still holds per Job only (a RUN of the
#     same Job without --mount can read /.slipway/secrets: closing that needs CAP_SYS_ADMIN)
#     is printed as a `#` line, not asserted.
set -uo pipefail
: "${KUBECONFIG:?run eval \"\$(tests/cluster/up.sh)\" first}" "${SLIPWAY_REGISTRY:?}"
here=$(cd "$(dirname "$0")" && pwd)
R=$SLIPWAY_REGISTRY
ns=slipway-hostile-stage-$$
source "$here/lib.sh"
e2e_work hostile-stage-e2e
cleanup_cmds='kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1'
e2e_deploy "deploy.sh deploys Slipway"
kubectl create namespace "$ns" >/dev/null
secret="slipway-e2e-secret-$$-$RANDOM"
kubectl -n "$ns" create secret generic hostile-token --from-literal=token="$secret" >/dev/null

status() { kubectl -n "$ns" get imagebuild "$1" -o jsonpath="$2"; }
describe() {
  echo "phase=$(status "$1" '{.status.phase}')"
  echo "condition=$(status "$1" '{.status.conditions[0].reason}: {.status.conditions[0].message}')"
  kubectl -n "$ns" get jobs,pods -l "build.slipway.dev/build=$1" 2>&1 | tail -8
}
finished() {
  local phase
  for _ in $(seq "$2"); do
    phase=$(status "$1" '{.status.phase}' 2>/dev/null)
    [[ $phase == Succeeded || $phase == Failed ]] && return 0
    sleep 1
  done
  return 1
}
run_image() {
  local ref digest
  ref=$(status "$1" '{.status.image.ref}') digest=$(status "$1" '{.status.image.digest}')
  kubectl -n "$ns" run "run-$1" --image="${ref%:*}@$digest" --restart=Never >/dev/null
  kubectl -n "$ns" wait --for=jsonpath='{.status.phase}'=Succeeded "pod/run-$1" --timeout=120s >/dev/null 2>&1
  kubectl -n "$ns" logs "run-$1" 2>&1
}
# apply NAME DOCKERFILE: an inline ImageBuild with the secret bound as `token`.
apply() {
  {
    printf 'apiVersion: build.slipway.dev/v1alpha1\nkind: ImageBuild\nmetadata: {name: %s}\nspec:\n' "$1"
    printf '  secrets: [{id: token, secretRef: {name: hostile-token, key: token}}]\n'
    printf '  source:\n    inline:\n      dockerfile: |\n'
    sed 's/^/        /' <<<"$2"
    printf '  output: {image: "%s/e2e/%s:1", insecureRegistry: true}\n' "$R" "$1"
  } > "$work/$1.yaml"
  kubectl -n "$ns" apply -f "$work/$1.yaml" >/dev/null
}
# built NAME: the build succeeded (else a not-ok line, and false)
built() {
  finished "$1" 900
  if kubectl -n "$ns" wait --for=condition=Succeeded "imagebuild/$1" --timeout=10s >/dev/null 2>&1; then
    ok "$1: Succeeded"
  else
    bad "$1: Succeeded" "$(describe "$1")"; return 1
  fi
}
# layers_clean NAME: no layer or config of the pushed image holds the secret, a file the
# engine made for a RUN, or a file written through a planted link (leak*).
layers_clean() {
  local out
  rm -rf "$work/oci-$1"
  skopeo copy -q --src-tls-verify=false "docker://$R/e2e/$1:1" "oci:$work/oci-$1:latest" \
    || { bad "$1: the pushed image can be read back"; return; }
  if out=$(python3 "$here/../engine/imagetool.py" leaks "$work/oci-$1" "$secret" '\.slipway-run-|/leak[^/]*$' 2>&1); then
    ok "$1: no layer or config holds the secret or a RUN's own file ($out)"
  else
    bad "$1: no layer holds the secret" "$out"
  fi
}

# --- T6: FROM scratch, the secret mounted as a file and as a variable, a #! script, and a
# link planted where the engine used to put secret copies in a scratch root.
apply h-scratch "FROM $R/slipway-test/busybox:latest AS bb
FROM scratch
COPY --from=bb /bin/busybox /bin/busybox
RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox mkdir -p /.slipway-run/secrets && /bin/busybox ln -s /leak /.slipway-run/secrets/token\"]
RUN --mount=type=secret,id=token [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox test -s /run/secrets/token && /bin/busybox echo mounted > /mounted\"]
RUN --mount=type=secret,id=token,env=TOKEN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox test -n \\\"\$TOKEN\\\" && /bin/busybox echo env > /env\"]
# A #! script still goes through SHELL (BuildKit: /bin/sh -c /dev/pipes/EOT): scratch has none.
SHELL [\"/bin/busybox\", \"sh\", \"-c\"]
RUN <<EOT
#!/bin/busybox sh
/bin/busybox echo script > /script
EOT
CMD [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox cat /mounted /env /script; /bin/busybox test -e /leak && /bin/busybox echo LEAK; /bin/busybox echo end\"]"

# --- T9 and scoping: stage 0 names no secret (a Job of its own, without the secret volume);
# stage 1 plants links where copies and scripts used to go, mounts the secret, then looks for
# what is left; the final stage copies their findings.
apply h-scope "FROM $R/slipway-test/busybox:latest AS nosecret
RUN if [ -e /.slipway/secrets ]; then echo secrets-volume-present; else echo no-secrets-volume; fi > /scope.txt
FROM $R/slipway-test/busybox:latest AS withsecret
RUN W=/.slipway/workspace/stages/1/work/run && mkdir -p \$W/secrets /planted-pipes \\
 && ln -s /leak \$W/secrets/token && rm -rf /dev/pipes && ln -s /planted-pipes /dev/pipes
RUN --mount=type=secret,id=token test -s /run/secrets/token && echo mounted > /mounted.txt
RUN if [ -e /run/secrets/token ] || [ -e /dev/pipes ] || ls /.slipway | grep -q '^run-'; then echo stand-in-left; else echo stand-in-gone; fi > /after.txt \\
 && if cat /.slipway/secrets/token >/dev/null 2>&1; then echo same-job-readable; else echo same-job-unreadable; fi > /same-job.txt \\
 && if [ -e /leak ] || [ -n \"\$(ls -A /planted-pipes)\" ]; then echo written-through-link; else echo links-untouched; fi > /links.txt
FROM $R/slipway-test/busybox:latest
COPY --from=nosecret /scope.txt /scope.txt
COPY --from=withsecret /mounted.txt /after.txt /same-job.txt /links.txt /
CMD [\"sh\", \"-c\", \"cat /scope.txt /mounted.txt /after.txt /links.txt /same-job.txt\"]"

if built h-scratch; then
  layers_clean h-scratch
  out=$(run_image h-scratch)
  if [[ $out == $'mounted\nenv\nscript\nend' ]]; then
    ok "h-scratch: the scratch RUNs saw the secret as a file and a variable, ran the script, wrote nothing through the planted link"
  else
    bad "h-scratch: the image prints mounted, env, script, end" "$out"
  fi
fi

if built h-scope; then
  layers_clean h-scope
  out=$(run_image h-scope)
  for want in no-secrets-volume mounted stand-in-gone links-untouched; do
    if grep -qx "$want" <<<"$out"; then
      ok "h-scope: $want"
    else
      bad "h-scope: $want" "$out"
    fi
  done
  echo "# h-scope: a RUN without --mount in the Job that mounts the secret: $(grep -E '^same-job-' <<<"$out") (per-Job scope, SECURITY.md M1)"
fi

summary
[[ $fail == 0 ]]
