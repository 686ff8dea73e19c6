#!/usr/bin/env bash
# Rebuilds, cancel and what image automation reads (e2e tier, issue 15 parts 3 and 5), on the
# real cluster and registry:
#   - spec.cancel on a running build: phase Cancelled, reason Cancelled in Succeeded and Ready,
#     Stalled, the Jobs and Pods gone, and it stays so (nothing starts again);
#   - spec.rebuild on an unchanged spec: a second build runs and pushes, and status.history
#     holds both digests;
#   - a git build's manifest, read back with skopeo: the OCI annotations source, revision,
#     base.name, base.digest and created (sourceDateEpoch: git); status.sourceRevision and
#     status.image.size agree with it; an inline build without an epoch has no created.
set -uo pipefail
: "${KUBECONFIG:?run eval \"\$(tests/cluster/up.sh)\" first}" "${SLIPWAY_REGISTRY:?}"
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$repo/tests/cluster/env.sh"   # NODE_IP
R=$SLIPWAY_REGISTRY
ns=slipway-rebuild-$$
source "$here/lib.sh"
e2e_work rebuild-e2e
GIT_PID=
cleanup_cmds='[[ -n $GIT_PID ]] && kill "$GIT_PID" 2>/dev/null; kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1'
e2e_deploy "deploy.sh deploys Slipway"
kubectl create namespace "$ns" >/dev/null
BB=$R/slipway-test/busybox:latest

status() { kubectl -n "$ns" get imagebuild "$1" -o jsonpath="$2" 2>/dev/null; }
phase() { status "$1" '{.status.phase}'; }
describe() {
  echo "phase=$(phase "$1") generation=$(status "$1" '{.metadata.generation}') observed=$(status "$1" '{.status.observedGeneration}')"
  echo "conditions=$(status "$1" '{range .status.conditions[*]}{.type}={.status}/{.reason}: {.message}; {end}')"
  echo "history=$(status "$1" '{.status.history}')"
  kubectl -n "$ns" get jobs,pods -l "build.slipway.dev/build=$1" 2>&1 | tail -8
}
# until_status NAME JSONPATH VALUE SECONDS
until_status() {
  for _ in $(seq "$(($4 * 2))"); do [[ $(status "$1" "$2") == "$3" ]] && return 0; sleep 0.5; done
  return 1
}
# inline NAME OUTPUT-IMAGE DOCKERFILE [MORE-SPEC-YAML]: applies an inline ImageBuild
inline() {
  local df
  df=$(sed 's/^/        /' <<<"$3")
  kubectl -n "$ns" apply -f - >/dev/null <<YAML
apiVersion: build.slipway.dev/v1alpha1
kind: ImageBuild
metadata: {name: $1}
spec:
  source:
    inline:
      dockerfile: |
$df
  output: {image: "$2", insecureRegistry: true}
${4:-}
YAML
}
objects() { kubectl -n "$ns" get jobs,pods -l "build.slipway.dev/build=$1" --no-headers 2>/dev/null | wc -l; }

# --- Cancel a running build.
inline cancelled "$R/e2e/cancelled:1" "FROM $BB
RUN sleep 600"
running=no
for _ in $(seq 240); do
  n=$(kubectl -n "$ns" get pods -l build.slipway.dev/build=cancelled,build.slipway.dev/step=stage \
    --field-selector=status.phase=Running --no-headers 2>/dev/null | wc -l)
  [[ $n -gt 0 ]] && { running=yes; break; }
  sleep 0.5
done
[[ $running == yes ]] && ok "cancel: the stage pod runs (RUN sleep 600)" \
  || bad "cancel: the stage pod runs" "$(describe cancelled)"
kubectl -n "$ns" patch imagebuild cancelled --type=merge -p '{"spec":{"cancel":true}}' >/dev/null
if until_status cancelled '{.status.phase}' Cancelled 60; then
  got=$(status cancelled '{range .status.conditions[*]}{.type}={.status}/{.reason} {end}')
  if [[ $got == "Succeeded=False/Cancelled Ready=False/Cancelled Stalled=True/Cancelled " ]]; then
    ok "cancel: phase Cancelled; $got"
  else
    bad "cancel: conditions" "$got"
  fi
else
  bad "cancel: phase Cancelled within 60 s" "$(describe cancelled)"
fi
gone=no
for _ in $(seq 60); do [[ $(objects cancelled) == 0 ]] && { gone=yes; break; }; sleep 1; done
[[ $gone == yes ]] && ok "cancel: the build's Jobs and Pods are gone" \
  || bad "cancel: Jobs and Pods gone" "$(describe cancelled)"
sleep 10   # final: nothing starts again
got="$(phase cancelled) $(objects cancelled) $(status cancelled '{.status.history[0].phase}/{.status.history[0].reason}')"
[[ $got == "Cancelled 0 Cancelled/Cancelled" ]] && ok "cancel: still Cancelled 10 s later, no Job, recorded in the history" \
  || bad "cancel: stays Cancelled" "$got" "$(describe cancelled)"
col=$(kubectl -n "$ns" get imagebuild cancelled --no-headers 2>&1 | awk '{print $2, $3}')
[[ $col == "Cancelled Cancelled" ]] && ok "cancel: kubectl get shows Phase and Reason Cancelled" \
  || bad "cancel: printer columns" "$col"

# --- Rebuild an unchanged spec.
inline rebuilt "$R/e2e/rebuilt:1" "FROM $BB
RUN head -c 32 /dev/urandom > /random"
if until_status rebuilt '{.status.phase}' Succeeded 240; then
  first=$(status rebuilt '{.status.image.digest}')
  ok "rebuild: the first build pushed $first"
else
  first=
  bad "rebuild: the first build succeeds" "$(describe rebuilt)"
fi
kubectl -n "$ns" patch imagebuild rebuilt --type=merge -p '{"spec":{"rebuild":1}}' >/dev/null
if until_status rebuilt '{.status.observedGeneration}/{.status.phase}' 2/Succeeded 240; then
  second=$(status rebuilt '{.status.image.digest}')
  history=$(status rebuilt '{range .status.history[*]}{.generation}={.digest} {end}')
  pushed=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$R/e2e/rebuilt:1" 2>&1)
  jobs=$(kubectl -n "$ns" get jobs -l build.slipway.dev/build=rebuilt -o name | sort | tr '\n' ' ')
  if [[ -n $first && $second != "$first" && $history == "2=$second 1=$first " && $pushed == "$second" ]]; then
    ok "rebuild: spec.rebuild built again: $second, history $history"
  else
    bad "rebuild: a second build and both digests in the history" "first $first, second $second" \
      "history $history" "registry $pushed"
  fi
  [[ $jobs == *rebuilt-2-push* && $jobs != *rebuilt-1-* ]] && ok "rebuild: generation 2's Jobs ran, generation 1's were removed" \
    || bad "rebuild: Jobs" "$jobs"
else
  bad "rebuild: generation 2 succeeds" "$(describe rebuilt)"
fi

# --- Annotations of a git build, read back from the registry.
mkdir -p "$work/git/app"
(
  cd "$work/git/app"
  git init -q -b main
  printf 'FROM %s\nCOPY message.txt /\n' "$BB" > Dockerfile
  echo "annotated" > message.txt
  git add -A
  GIT_COMMITTER_DATE="2024-03-01T12:00:00Z" git -c user.email=e2e@slipway -c user.name=e2e commit -qm one
)
rev=$(git -C "$work/git/app" rev-parse HEAD)
git daemon --reuseaddr --export-all --base-path="$work/git" --listen="$NODE_IP" --port=9420 "$work/git" \
  >"$work/git-daemon.log" 2>&1 &
GIT_PID=$!
sleep 1
kubectl -n "$ns" apply -f - >/dev/null <<YAML
apiVersion: build.slipway.dev/v1alpha1
kind: ImageBuild
metadata: {name: annotated}
spec:
  source: {git: {url: "git://$NODE_IP:9420/app"}}
  output: {image: "$R/e2e/annotated:1", insecureRegistry: true}
  sourceDateEpoch: git
YAML
if until_status annotated '{.status.phase}' Succeeded 240; then
  digest=$(status annotated '{.status.image.digest}')
  manifest=$(skopeo inspect --raw --tls-verify=false "docker://$R/e2e/annotated@$digest" 2>&1)
  base=$(status annotated '{.status.baseImages[?(@.target==true)].digest}')
  want=$(jq -cn --arg src "git://$NODE_IP:9420/app" --arg rev "$rev" --arg bn "$BB" --arg bd "$base" '{
    "org.opencontainers.image.base.digest": $bd, "org.opencontainers.image.base.name": $bn,
    "org.opencontainers.image.created": "2024-03-01T12:00:00Z",
    "org.opencontainers.image.revision": $rev, "org.opencontainers.image.source": $src}')
  got=$(jq -c '.annotations' <<<"$manifest" 2>&1)
  [[ -n $base && $got == "$want" ]] && ok "annotations on the pushed manifest: $got" \
    || bad "annotations on the pushed manifest" "got  $got" "want $want"
  size=$(jq '[.config.size] + [.layers[].size] | add' <<<"$manifest" 2>&1)
  got="$(status annotated '{.status.sourceRevision} {.status.image.size} {.status.history[0].sourceRevision}')"
  [[ $got == "$rev $size $rev" ]] && ok "status: sourceRevision $rev, image.size $size (the manifest's config and layers)" \
    || bad "status: sourceRevision and image.size" "got $got" "want $rev $size $rev"
else
  bad "annotated: the git build succeeds" "$(describe annotated)"
fi
# Without an epoch and without git: the base only, no created.
inline plain "$R/e2e/plain:1" "FROM $BB
RUN echo plain > /plain"
if until_status plain '{.status.phase}' Succeeded 240; then
  got=$(skopeo inspect --raw --tls-verify=false "docker://$R/e2e/plain:1" 2>&1 | jq -c '.annotations | keys' 2>&1)
  [[ $got == '["org.opencontainers.image.base.digest","org.opencontainers.image.base.name"]' ]] \
    && ok "an inline build without sourceDateEpoch: base annotations only ($got)" \
    || bad "inline build annotations" "$got"
else
  bad "plain: the build succeeds" "$(describe plain)"
fi
summary
[[ $fail == 0 ]]
