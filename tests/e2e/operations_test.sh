#!/usr/bin/env bash
# The operator in production (e2e tier): every failure produced on purpose and read back from
# status, with nothing left running; cleanup (deletion, ttlSecondsAfterFinished, a superseded
# generation); restarts (the controller killed mid-build, a stage pod evicted); metrics and
# health endpoints.
set -uo pipefail
: "${KUBECONFIG:?run eval \"\$(tests/cluster/up.sh)\" first}" "${SLIPWAY_REGISTRY:?}"
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$repo/tests/cluster/env.sh"   # NODE_IP
R=$SLIPWAY_REGISTRY
RO=$NODE_IP:5001            # a read-only registry this test starts on the node's address
SLOW=$NODE_IP:5002          # the registry behind a slow proxy this test starts there too
ns=slipway-ops-$$
source "$here/lib.sh"
e2e_work ops-e2e
RO_PID=
SLOW_PID=
cleanup_cmds='[[ -n $RO_PID ]] && kill "$RO_PID" 2>/dev/null; [[ -n $SLOW_PID ]] && kill "$SLOW_PID" 2>/dev/null; kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1'
e2e_deploy "deploy.sh deploys Slipway"
kubectl create namespace "$ns" >/dev/null
BB=$R/slipway-test/busybox:latest

status() { kubectl -n "$ns" get imagebuild "$1" -o jsonpath="$2" 2>/dev/null; }
phase() { status "$1" '{.status.phase}'; }
describe() {
  echo "phase=$(phase "$1") condition=$(status "$1" '{.status.conditions[0].reason}: {.status.conditions[0].message}')"
  kubectl -n "$ns" get jobs,pods,pvc -l "build.slipway.dev/build=$1" 2>&1 | tail -8
}
finished() { # NAME SECONDS
  local p
  for _ in $(seq "$2"); do
    p=$(phase "$1"); [[ $p == Succeeded || $p == Failed ]] && return 0; sleep 1
  done
  return 1
}
until_phase() { # NAME PHASE SECONDS
  for _ in $(seq "$3"); do [[ $(phase "$1") == "$2" ]] && return 0; sleep 0.5; done; return 1
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
running_pods() { kubectl -n "$ns" get pods -l "build.slipway.dev/build=$1" --no-headers 2>/dev/null | grep -cvE 'Completed|Error|Terminating' ; }

# --- Failures, each read back from status; then nothing of the build runs.
mkdir -p "$work/ro/data"
cat > "$work/ro/config.yml" <<YAML
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $work/ro/data}, maintenance: {readonly: {enabled: true}}}
http: {addr: $RO}
YAML
docker-registry serve "$work/ro/config.yml" >"$work/ro/log" 2>&1 &
RO_PID=$!
inline unknown-target "$R/e2e/x:1" "FROM $BB AS build
RUN true" "  target: nosuchstage"
inline missing-base "$R/e2e/x:2" "FROM $R/slipway-test/does-not-exist:latest
RUN true"
inline push-refused "$RO/e2e/x:3" "FROM $BB
RUN echo built > /built"
inline source-unreachable "$R/e2e/x:4" "FROM $BB"
kubectl -n "$ns" patch imagebuild source-unreachable --type=json -p \
  "[{\"op\":\"replace\",\"path\":\"/spec/source\",\"value\":{\"git\":{\"url\":\"git://$NODE_IP:9/nothing\"}}}]" >/dev/null
inline timeout "$R/e2e/x:5" "FROM $BB
RUN sleep 300" "  timeout: 20s"
for case in "unknown-target|InvalidDockerfile|nosuchstage" \
            "missing-base|BaseImageNotFound|HTTP 404" \
            "push-refused|PushFailed|registry $RO: push" \
            "source-unreachable|SourceFailed|git git://$NODE_IP:9/nothing" \
            "timeout|Timeout|20s"; do
  IFS='|' read -r name reason text <<<"$case"
  if ! finished "$name" 240 || [[ $(phase "$name") != Failed ]]; then
    bad "$name: phase Failed" "$(describe "$name")"; continue
  fi
  got=$(status "$name" '{.status.conditions[?(@.type=="Succeeded")].reason}|{.status.conditions[?(@.type=="Succeeded")].message}')
  if [[ $got == "$reason|"*"$text"* ]]; then ok "$name: $got"; else bad "$name: $reason, $text" "$got"; fi
done
got=$(status push-refused '{.status.conditions[0].message}')
[[ $got == *"HTTP 405"* || $got == *"HTTP 503"* ]] && ok "push-refused names the HTTP status" || bad "push-refused: HTTP status" "$got"
sleep 10
left=0
for b in unknown-target missing-base push-refused source-unreachable timeout; do
  n=$(running_pods "$b"); left=$((left + n))
  j=$(kubectl -n "$ns" get jobs -l "build.slipway.dev/build=$b" -o jsonpath='{range .items[*]}{.status.active}{end}')
  [[ -n ${j//0/} ]] && left=$((left + 1))
done
[[ $left == 0 ]] && ok "no Job or Pod of a failed build is still running" \
  || bad "nothing runs after a failure" "$(kubectl -n "$ns" get jobs,pods 2>&1)"

# --- Cleanup: deleting a running build removes its Jobs, Pods and workspace.
inline deleted "$R/e2e/deleted:1" "FROM $BB
RUN sleep 120"
until_phase deleted Building 120
kubectl -n "$ns" delete imagebuild deleted --wait=false >/dev/null
gone=no
for _ in $(seq 90); do
  n=$(kubectl -n "$ns" get jobs,pods,pvc -l build.slipway.dev/build=deleted --no-headers 2>/dev/null | wc -l)
  [[ $n == 0 ]] && { gone=yes; break; }
  sleep 1
done
[[ $gone == yes ]] && ok "deleting a running ImageBuild removes its Jobs, Pods and PVC" \
  || bad "deleted build cleaned up" "$(kubectl -n "$ns" get jobs,pods,pvc -l build.slipway.dev/build=deleted 2>&1)"

# --- ttlSecondsAfterFinished: Jobs and PVC go, the ImageBuild and its status stay.
# Spare workspace claims: a build before it (kept) leaves a spare; the ttl build takes it (its
# prepare Job mounts a claim named slipway-spare-*) and at its TTL every claim it owns goes.
inline spare-maker "$R/e2e/spare-maker:1" "FROM $BB
RUN echo spare > /spare"
finished spare-maker 240
inline ttl "$R/e2e/ttl:1" "FROM $BB
RUN echo ttl > /ttl" "  ttlSecondsAfterFinished: 10"
ttl_claim=
for _ in $(seq 120); do
  ttl_claim=$(kubectl -n "$ns" get jobs -l build.slipway.dev/build=ttl,build.slipway.dev/step=prepare \
    -o jsonpath='{.items[0].spec.template.spec.volumes[?(@.name=="workspace")].persistentVolumeClaim.claimName}' 2>/dev/null)
  [[ -n $ttl_claim ]] && break
  sleep 0.5
done
ttl_uid=$(status ttl '{.metadata.uid}')
finished ttl 240
owned_by_ttl() { # claims (its own, taken, and spares it made) whose owner is the ttl build
  kubectl -n "$ns" get pvc -o json | python3 -c 'import json,sys
uid = sys.argv[1]
print(" ".join(c["metadata"]["name"] for c in json.load(sys.stdin)["items"]
               if any(o["uid"] == uid for o in c["metadata"].get("ownerReferences", []))))' "$ttl_uid"
}
ttl_made=$(owned_by_ttl)
spares_left=$(kubectl -n "$ns" get pvc -l build.slipway.dev/spare=true -o jsonpath='{.items[*].metadata.name}')
gone=no
for _ in $(seq 60); do
  n=$(kubectl -n "$ns" get jobs,pvc -l build.slipway.dev/build=ttl --no-headers 2>/dev/null | wc -l)
  [[ $n == 0 && -z $(owned_by_ttl) ]] && { gone=yes; break; }
  sleep 1
done
if [[ $gone == yes && $(phase ttl) == Succeeded && -n $(status ttl '{.status.image.digest}') ]]; then
  ok "ttlSecondsAfterFinished: 10 removed the Jobs and PVC (claims it owned: $ttl_made); status stays Succeeded with its digest"
else
  bad "ttl cleanup" "$(describe ttl; echo "claims it owns: $(owned_by_ttl)")"
fi
# The claim it took is its own (it went at its TTL above), and a spare waits for the next.
if [[ $ttl_claim == slipway-spare-* && " $ttl_made " == *" $ttl_claim "* && -n $spares_left && " $spares_left " != *" $ttl_claim "* ]]; then
  ok "spare workspace: the build took a spare ($ttl_claim) as its own claim; spare left for the next: $spares_left"
else
  bad "spare workspace taken" "prepare mounted '$ttl_claim'; claims it owned when done: '$ttl_made'; spares: '$spares_left'"
fi

# --- A superseded generation: a changed spec builds again and the old Jobs and PVC go.
inline superseded "$R/e2e/superseded:1" "FROM $BB
ARG MESSAGE
RUN sleep 20 && echo \$MESSAGE > /message" "  buildArgs: [{name: MESSAGE, value: one}]"
until_phase superseded Building 120
kubectl -n "$ns" patch imagebuild superseded --type=merge -p '{"spec":{"buildArgs":[{"name":"MESSAGE","value":"two"}]}}' >/dev/null
# The old Jobs go at once; the old PVC once their pods (stopped within their 5 s grace) let go.
for _ in $(seq 60); do
  old=$(kubectl -n "$ns" get jobs,pods,pvc -l build.slipway.dev/build=superseded,build.slipway.dev/generation=1 --no-headers 2>/dev/null | wc -l)
  [[ $old == 0 ]] && break
  sleep 1
done
finished superseded 240
if [[ $old == 0 && $(phase superseded) == Succeeded && $(status superseded '{.status.observedGeneration}') == 2 ]]; then
  ok "a new generation builds again; generation 1's Jobs, Pods and PVC were removed when it started"
else
  bad "superseded generation" "generation-1 objects left: $old" "$(describe superseded)"
fi

# --- Restarts: the controller killed mid-build finishes it, without a duplicate Job.
op_sel=app.kubernetes.io/instance=slipway,app.kubernetes.io/component=operator
op_ready() { # waits for a ready operator pod other than $1
  for _ in $(seq 120); do
    kubectl -n slipway-system get pods -l "$op_sel" \
      -o jsonpath='{range .items[*]}{.metadata.name} {.status.containerStatuses[0].ready}{"\n"}{end}' 2>/dev/null |
      grep -v "^$1 " | grep -q " true$" && return 0
    sleep 1
  done
  return 1
}
# The push goes through a proxy that passes 8 MiB/s: the 64 MB of random bytes in the last
# layer keep it going for about 8 s, which the push, starting beside the stages, needs to still
# run once they are done (the Pushing phase).
python3 "$here/slow_proxy.py" "$SLOW" "$R" 8388608 >"$work/slow_proxy.log" 2>&1 &
SLOW_PID=$!
# Its own workspace size, so no spare claim: its prepare pod waits for a claim to be provisioned
# (about a second), long enough for the Preparing phase to be seen (with a spare, the whole
# prepare can pass between two polls).
inline restarted "$SLOW/e2e/restarted:1" "FROM $BB AS a
RUN sleep 15 && echo a > /a
FROM $BB
COPY --from=a /a /a
RUN head -c 67108864 /dev/urandom > /random" "  workspace: {size: 1536Mi}"
killed=()
for p in Preparing Building Pushing; do
  if until_phase restarted "$p" 120; then
    old=$(kubectl -n slipway-system get pods -l "$op_sel" -o jsonpath='{.items[0].metadata.name}')
    if [[ $p == Preparing ]]; then  # SIGTERM: a graceful shutdown
      kubectl -n slipway-system delete pod "$old" --wait=false >/dev/null
    else                            # SIGKILL, no grace
      kubectl -n slipway-system delete pod "$old" --grace-period=0 --force >/dev/null 2>&1
    fi
    killed+=("$p ($old)")
    op_ready "$old" || bad "a new operator pod became ready after $old was deleted"
  fi
done
finished restarted 300
jobs=$(kubectl -n "$ns" get jobs -l build.slipway.dev/build=restarted -o name | sort | tr '\n' ' ')
digest=$(status restarted '{.status.image.digest}')
pushed=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$R/e2e/restarted:1" 2>&1)
pods=$(kubectl -n "$ns" get pods -l build.slipway.dev/build=restarted --no-headers | wc -l)
if [[ $(phase restarted) == Succeeded && ${#killed[@]} == 3 \
      && $jobs == "job.batch/restarted-1-prepare job.batch/restarted-1-push job.batch/restarted-1-s0-a job.batch/restarted-1-s1-1 " \
      && $digest == "$pushed" && $pods == 4 ]]; then
  ok "controller killed while ${killed[*]}: the build finished with one Job per step, one pod each, digest $digest"
else
  bad "restart mid-build" "killed while: ${killed[*]}" "jobs: $jobs" "pods: $pods" "status $digest, registry $pushed" "$(describe restarted)"
fi
# --- A stage pod evicted mid-run is replaced (the disruption does not count) and the build ends.
inline evicted "$R/e2e/evicted:1" "FROM $BB
RUN sleep 30 && echo done > /done"
until_phase evicted Building 120
pod=
for _ in $(seq 60); do
  pod=$(kubectl -n "$ns" get pods -l build.slipway.dev/build=evicted,build.slipway.dev/step=stage \
    --field-selector=status.phase=Running -o jsonpath='{.items[0].metadata.name}' 2>/dev/null)
  [[ -n $pod ]] && break; sleep 1
done
if [[ -n $pod ]]; then
  kubectl create --raw "/api/v1/namespaces/$ns/pods/$pod/eviction" -f - >/dev/null <<JSON
{"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "$pod", "namespace": "$ns"}}
JSON
fi
finished evicted 300
# The evicted pod is gone (eviction deletes it); the one that finished the stage is another.
now=$(kubectl -n "$ns" get pods -l build.slipway.dev/build=evicted,build.slipway.dev/step=stage \
  -o jsonpath='{.items[*].metadata.name}')
failed=$(kubectl -n "$ns" get jobs -l build.slipway.dev/build=evicted,build.slipway.dev/step=stage \
  -o jsonpath='{.items[0].status.failed}')
if [[ -n $pod && $(phase evicted) == Succeeded && -n $now && $now != *"$pod"* && ${failed:-0} == 0 ]]; then
  ok "an evicted stage pod ($pod) was replaced by $now within its Job, not counted as a failure; the build succeeded"
else
  bad "eviction mid-stage" "evicted: $pod" "stage pods now: $now" "job failed count: $failed" "$(describe evicted)"
fi

# --- Metrics and health, from the operator pod (the pod network is reachable from the node).
# The pod restarted above: one more failed build, so that this pod counted a failure too.
inline metrics-failure "$R/e2e/never:9" "FROM $BB
FORM x"
finished metrics-failure 120
ip=$(kubectl -n slipway-system get pods -l app.kubernetes.io/instance=slipway,app.kubernetes.io/component=operator \
  -o jsonpath='{.items[?(@.status.containerStatuses[0].ready==true)].status.podIP}' | cut -d' ' -f1)
m=$(curl -sf "http://$ip:8080/metrics")
if grep -qE '^slipway_builds_total\{result="succeeded",reason="Pushed"\} [1-9]' <<<"$m" &&
   grep -qE '^slipway_builds_total\{result="failed",reason="InvalidDockerfile"\} [1-9]' <<<"$m" &&
   grep -qE '^slipway_stage_duration_seconds_count [1-9]' <<<"$m" &&
   grep -q '^slipway_builds_in_progress ' <<<"$m" && grep -q '^slipway_reconcile_errors_total ' <<<"$m"; then
  ok "/metrics counts builds by result and reason, stage durations, builds in progress, reconcile errors"
else
  bad "/metrics" "$(grep -v '^#' <<<"$m" | head -20)"
fi
[[ $(curl -sf "http://$ip:8080/healthz") == ok && $(curl -sf "http://$ip:8080/readyz") == ok ]] \
  && ok "/healthz and /readyz answer ok" || bad "/healthz, /readyz"
summary
