#!/usr/bin/env bash
# The CLI end to end (e2e tier): `kubectl slipway`, the kubectl plugin built here with cargo,
# driven as a user drives it, against the operator tests/e2e/deploy.sh deploys:
#   - `kubectl slipway build DIR -t $R/demo/go:1`, the README's first command, on a copy of
#     examples/go with a .dockerignore: the stages' logs with [stage]
#     prefixes, `ref@digest` on stdout, exit 0; the registry holds that digest, the image
#     runs; the uploaded context left out what .dockerignore names
#   - a failing RUN, created with --no-follow: `wait` exits 1 with the reason and message,
#     `logs` prints the finished pods' lines with their prefix, `build` following it exits 1
#   - get, list and --output json
#   - a context over a ConfigMap's 1 MiB goes to the registry (tests/e2e/oci_source_test.sh);
#     without --insecure, to this plain-HTTP registry: refused before anything is created,
#     naming the registry
#   - Ctrl-C without a terminal cancels the build the CLI started (the ImageBuild is deleted)
#   - `cancel NAME` of a running build: exit 0 once Cancelled, its Jobs and Pods gone; again:
#     exit 0, already cancelled; of a build that Succeeded: refused (exit 3), nothing changed
#   - `rebuild NAME` of a finished build: a new generation followed to ref@digest, a second
#     entry in status.history; two rebuilds at once both count (spec.rebuild up by 2)
set -uo pipefail
: "${KUBECONFIG:?run eval \"\$(tests/cluster/up.sh)\" first}" "${SLIPWAY_REGISTRY:?}"
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
R=$SLIPWAY_REGISTRY
ns=slipway-cli-$$
source "$here/lib.sh"
e2e_work cli-e2e
cleanup_cmds='kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1'
e2e_deploy "deploy.sh deploys Slipway"
e2e_cli
kubectl create namespace "$ns" >/dev/null
if kubectl plugin list 2>/dev/null | grep -q "kubectl-slipway$"; then
  ok "kubectl plugin list finds kubectl-slipway"
else
  bad "kubectl plugin list finds kubectl-slipway" "$(kubectl plugin list 2>&1 | tail -5)"
fi

# --- Build a directory, following it to the digest.
cp -r "$repo/examples/go" "$work/go"
mkdir -p "$work/go/notes"
echo "not for the build" > "$work/go/notes/todo.txt"
echo "not for the build" > "$work/go/README.md"
printf 'notes\n*.md\nimagebuild.yaml\n' > "$work/go/.dockerignore"
kubectl slipway build "$work/go" -t "$R/demo/go:1" -n "$ns" \
  >"$work/go.out" 2>"$work/go.err"
rc=$?
ref=$(tail -1 "$work/go.out")
if [[ $rc == 0 && $ref =~ ^$R/demo/go:1@sha256:[0-9a-f]{64}$ ]]; then
  ok "build examples/go: exit 0, prints $ref"
else
  bad "build examples/go: exit 0 and ref@digest" "exit $rc" "stdout: $(cat "$work/go.out")" "$(tail -15 "$work/go.err")"
fi
got=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$R/demo/go:1" 2>&1)
[[ $got == "${ref#*@}" ]] && ok "build examples/go: the registry holds the printed digest" \
  || bad "build examples/go: the registry holds the printed digest" "registry: $got" "printed: $ref"
# The stages' logs: the engine's step headers of both FROM-chains, and prefixed lines.
if grep -qE '^\[base [0-9]+/[0-9]+\] RUN go mod download$' "$work/go.err" &&
   grep -qE '^\[builder [0-9]+/[0-9]+\] RUN CGO_ENABLED=0 go build -o myapp$' "$work/go.err" &&
   grep -qE '^\[3 [0-9]+/[0-9]+\] COPY --from=builder /app/myapp \.$' "$work/go.err"; then
  ok "build examples/go: every stage's steps, prefixed [base n/m], [builder n/m], [3 n/m]"
else
  bad "build examples/go: the stages' step lines" "$(head -40 "$work/go.err")"
fi
unprefixed=$(grep -vE '^(\[[^]]+\] |imagebuild/|phase |stage )' "$work/go.err" | head -5)
[[ -z $unprefixed ]] && ok "build examples/go: every log line carries its [stage] prefix (no terminal: plain lines)" \
  || bad "build examples/go: every line prefixed" "$unprefixed"
if grep -q '^phase Building$' "$work/go.err" && grep -q '^phase Succeeded$' "$work/go.err" &&
   grep -q '^stage builder Succeeded$' "$work/go.err"; then
  ok "build examples/go: phase and stage changes as plain lines"
else
  bad "build examples/go: phase and stage lines" "$(grep -E '^(phase|stage) ' "$work/go.err")"
fi
name=$(sed -n 's|^imagebuild/\([^ ]*\) created in namespace.*|\1|p' "$work/go.err")
cm=$(kubectl -n "$ns" get imagebuild "$name" -o jsonpath='{.spec.source.configMap.name}' 2>&1)
listing=$(kubectl -n "$ns" get configmap "$cm" -o jsonpath='{.binaryData.context\.tar\.gz}' | base64 -d | tar -tz 2>&1 | LC_ALL=C sort | tr '\n' ' ')
if [[ $listing == ".dockerignore Dockerfile go.mod go.sum main.go main_test.go " ]]; then
  ok "build examples/go: the uploaded context honours .dockerignore ($listing)"
else
  bad "build examples/go: the context honours .dockerignore" "$listing"
fi
owner=$(kubectl -n "$ns" get configmap "$cm" -o jsonpath='{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}')
[[ $owner == "ImageBuild/$name" ]] && ok "build examples/go: the ImageBuild owns its context's ConfigMap" \
  || bad "the context's ConfigMap owned by the ImageBuild" "$owner"
kubectl -n "$ns" run run-go --image="${ref%%:1@*}@${ref#*@}" --restart=Never >/dev/null
kubectl -n "$ns" wait --for=jsonpath='{.status.phase}'=Succeeded pod/run-go --timeout=120s >/dev/null 2>&1
got=$(kubectl -n "$ns" logs run-go 2>&1)
[[ $got == *"Hello from the multi-stage Go build!"* ]] && ok "build examples/go: the image runs as a Pod" \
  || bad "build examples/go: the image runs" "$got"

# --- get, list, wait and JSON output of the finished build.
out=$(kubectl slipway get "$name" -n "$ns" -o json 2>&1)
if [[ $(jq -r .phase <<<"$out") == Succeeded && $(jq -r .image <<<"$out") == "$ref" ]]; then
  ok "get -o json: phase Succeeded, image $ref"
else
  bad "get -o json" "$out"
fi
out=$(kubectl slipway list -n "$ns" 2>&1)
short=$(cut -c1-12 <<<"${ref#*@sha256:}")
if grep -qE "^$name +Succeeded +- +$short +[0-9ms]+ +[0-9]+[smhd]$" <<<"$out"; then
  ok "list: $name Succeeded with its short digest"
else
  bad "list" "$out"
fi
out=$(kubectl slipway wait "$name" -n "$ns" 2>&1); rc=$?
[[ $rc == 0 && $out == "$ref" ]] && ok "wait on a finished build: exit 0, $ref" || bad "wait" "exit $rc" "$out"

# --- A failing build: --no-follow, then wait, logs, and a followed one.
mkdir -p "$work/fail"
printf 'FROM %s/slipway-test/busybox:latest AS check\nRUN echo "about to fail" && exit 3\n' "$R" > "$work/fail/Dockerfile"
fname=$(kubectl slipway build "$work/fail" -t "$R/demo/fail:1" -n "$ns" --no-follow 2>"$work/nofollow.err")
rc=$?
[[ $rc == 0 && $fname == fail-* ]] && ok "build --no-follow: prints the name ($fname) and returns" \
  || bad "build --no-follow" "exit $rc" "$fname" "$(cat "$work/nofollow.err")"
out=$(kubectl slipway wait "$fname" -n "$ns" --timeout 10m 2>&1); rc=$?
want="error: build $fname failed: StageFailed: stage \"check\" (#0): Dockerfile:2: RUN echo \"about to fail\" && exit 3: exit code 3"
[[ $rc == 1 && $out == "$want" ]] && ok "wait on a failing build: exit 1 and: $want" \
  || bad "wait on a failing build" "exit $rc" "$out"
out=$(kubectl slipway logs "$fname" -n "$ns" 2>&1)
if grep -qx '\[check 2/2\] RUN echo "about to fail" && exit 3' <<<"$out" && grep -qx '\[check\] about to fail' <<<"$out"; then
  ok "logs of a finished build: its stage's lines, prefixed [check]"
else
  bad "logs of a finished build" "$out"
fi
kubectl slipway build "$work/fail" -t "$R/demo/fail:2" -n "$ns" >"$work/fail.out" 2>"$work/fail.err"
rc=$?
if [[ $rc == 1 && ! -s $work/fail.out ]] && tail -1 "$work/fail.err" | grep -q 'failed: StageFailed: stage "check" (#0): Dockerfile:2: RUN echo "about to fail" && exit 3: exit code 3$' &&
   grep -qx '\[check\] about to fail' "$work/fail.err"; then
  ok "build of a failing Dockerfile: exit 1, the RUN's output and the reason on stderr"
else
  bad "build of a failing Dockerfile" "exit $rc" "stdout: $(cat "$work/fail.out")" "$(tail -8 "$work/fail.err")"
fi
out=$(kubectl slipway build "$work/fail" -t "$R/demo/fail:3" -n "$ns" -o json 2>&1); rc=$?
if [[ $rc == 1 ]] && [[ $(tail -1 <<<"$out" | jq -r '.event + " " + .phase + " " + .reason') == "result Failed StageFailed" ]] &&
   grep '^{' <<<"$out" | jq -s -e 'any(.[]; .event == "log" and .stage == "check" and .line == "about to fail")' >/dev/null; then
  ok "build -o json: JSON lines (created, phases, logs), a result event with the reason; exit 1"
else
  bad "build -o json" "exit $rc" "$(tail -5 <<<"$out")"
fi

# --- A context over what a ConfigMap holds goes to the registry; spoken to over https (no
# --insecure), this one refuses, and nothing is created.
mkdir -p "$work/big"
printf 'FROM %s/slipway-test/busybox:latest\nCOPY . /\n' "$R" > "$work/big/Dockerfile"
head -c 1500000 /dev/urandom > "$work/big/blob.bin"
before=$(kubectl -n "$ns" get imagebuilds,configmaps -o name | wc -l)
out=$(kubectl slipway build "$work/big" -t "$R/demo/big:1" -n "$ns" 2>&1); rc=$?
after=$(kubectl -n "$ns" get imagebuilds,configmaps -o name | wc -l)
if [[ $rc == 3 && $out == "error: registry $R: push the context to $R/demo/big: authenticate: "* && $before == "$after" ]]; then
  ok "a 1.4 MiB context to a plain-HTTP registry without --insecure: exit 3, nothing created: $out"
else
  bad "an over-large context" "exit $rc" "$out" "objects before $before, after $after"
fi

# --- Ctrl-C (SIGINT) without a terminal: the build the CLI started is cancelled.
mkdir -p "$work/slow"
printf 'FROM %s/slipway-test/busybox:latest\nRUN sleep 120\n' "$R" > "$work/slow/Dockerfile"
kubectl slipway build "$work/slow" -t "$R/demo/slow:1" -n "$ns" --name slow >"$work/slow.out" 2>"$work/slow.err" &
pid=$!
for _ in $(seq 60); do
  [[ $(kubectl -n "$ns" get imagebuild slow -o jsonpath='{.status.phase}' 2>/dev/null) == Building ]] && break
  sleep 1
done
kill -INT "$pid"
wait "$pid"; rc=$?
for _ in $(seq 15); do kubectl -n "$ns" get imagebuild slow >/dev/null 2>&1 || break; sleep 1; done
if [[ $rc == 130 ]] && ! kubectl -n "$ns" get imagebuild slow >/dev/null 2>&1 && grep -q 'imagebuild/slow cancelled' "$work/slow.err"; then
  ok "Ctrl-C while following, no terminal: exit 130, the ImageBuild deleted"
else
  bad "Ctrl-C cancels the build" "exit $rc" "$(tail -5 "$work/slow.err")" "$(kubectl -n "$ns" get imagebuild slow 2>&1)"
fi

# --- cancel NAME: a running build ends Cancelled; its Jobs and Pods go.
ib() { kubectl -n "$ns" get imagebuild "$1" -o jsonpath="$2" 2>/dev/null; }
describe() {
  echo "generation=$(ib "$1" '{.metadata.generation}') observed=$(ib "$1" '{.status.observedGeneration}') phase=$(ib "$1" '{.status.phase}') spec.rebuild=$(ib "$1" '{.spec.rebuild}') spec.cancel=$(ib "$1" '{.spec.cancel}')"
  echo "history=$(ib "$1" '{.status.history}')"
  kubectl -n "$ns" get jobs,pods -l "build.slipway.dev/build=$1" 2>&1 | tail -6
}
kubectl slipway build "$work/slow" -t "$R/demo/slow:2" -n "$ns" --name slow2 --no-follow >/dev/null 2>"$work/slow2.err"
running=no
for _ in $(seq 240); do
  n=$(kubectl -n "$ns" get pods -l build.slipway.dev/build=slow2,build.slipway.dev/step=stage \
    --field-selector=status.phase=Running --no-headers 2>/dev/null | wc -l)
  [[ $n -gt 0 ]] && { running=yes; break; }
  sleep 0.5
done
[[ $running == yes ]] || bad "cancel: the stage pod of slow2 runs (RUN sleep 120)" "$(cat "$work/slow2.err")" "$(describe slow2)"
# -o json: what the CLI itself saw at its end (a cancel that did not wait would say Building).
out=$(kubectl slipway cancel slow2 -n "$ns" --timeout 2m -o json 2>"$work/cancel.err"); rc=$?
events=$(jq -r '[.event, .phase // "", .reason // ""] | join(" ")' <<<"$out" 2>&1 | tr '\n' ';')
got="$(ib slow2 '{.status.phase}/{.status.conditions[?(@.type=="Succeeded")].reason}')"
if [[ $rc == 0 && $events == "cancel  ;result Cancelled Cancelled;" && $got == Cancelled/Cancelled ]]; then
  ok "cancel slow2 while it runs: exit 0 once Cancelled (-o json: $events); phase and reason $got"
else
  bad "cancel of a running build" "exit $rc" "stdout: $out" "events: $events" "$(cat "$work/cancel.err")" "$(describe slow2)"
fi
left=
for _ in $(seq 60); do
  left=$(kubectl -n "$ns" get jobs,pods -l build.slipway.dev/build=slow2 --no-headers 2>/dev/null)
  [[ -z $left ]] && break
  sleep 1
done
[[ -z $left ]] && ok "cancel: slow2's Jobs and Pods are gone" || bad "cancel: Jobs and Pods gone" "$left"
out=$(kubectl slipway cancel slow2 -n "$ns" 2>&1); rc=$?
[[ $rc == 0 && $out == "imagebuild/slow2 was already cancelled" ]] && ok "cancel of a cancelled build: exit 0, $out" \
  || bad "cancel again" "exit $rc" "$out"
out=$(kubectl slipway cancel slow2 -n "$ns" -o json 2>&1); rc=$?
[[ $rc == 0 && $(jq -r '.event + " " + .phase + " " + .reason' <<<"$out" 2>&1) == "result Cancelled Cancelled" ]] \
  && ok "cancel -o json: a result event, phase and reason Cancelled" || bad "cancel -o json" "exit $rc" "$out"
gen=$(ib "$name" '{.metadata.generation}')
out=$(kubectl slipway cancel "$name" -n "$ns" 2>&1); rc=$?
want="error: imagebuild $name: already Succeeded; a build that ended cannot be cancelled"
after="$(ib "$name" '{.metadata.generation}/{.spec.cancel}/{.status.phase}')"
[[ $rc == 3 && $out == "$want" && $after == "$gen//Succeeded" ]] && ok "cancel of a build that Succeeded: exit 3, $out; spec unchanged" \
  || bad "cancel of a Succeeded build" "exit $rc" "$out" "generation/cancel/phase: $after (was generation $gen)"

# --- rebuild NAME: a finished build built again, followed to its digest.
mkdir -p "$work/tiny"
printf 'FROM %s/slipway-test/busybox:latest\nRUN head -c 16 /dev/urandom > /random\n' "$R" > "$work/tiny/Dockerfile"
out=$(kubectl slipway build "$work/tiny" -t "$R/demo/tiny:1" -n "$ns" --name tiny 2>"$work/tiny.err"); rc=$?
first=${out#*@}
[[ $rc == 0 && $first == sha256:* ]] || bad "rebuild: the first build of tiny" "exit $rc" "$out" "$(tail -5 "$work/tiny.err")"
kubectl slipway rebuild tiny -n "$ns" >"$work/rebuild.out" 2>"$work/rebuild.err"; rc=$?
ref=$(tail -1 "$work/rebuild.out")
history=$(ib tiny '{range .status.history[*]}{.generation}={.phase}@{.digest} {end}')
got="$(ib tiny '{.metadata.generation}/{.status.observedGeneration}/{.spec.rebuild}')"
if [[ $rc == 0 && $ref =~ ^$R/demo/tiny:1@sha256:[0-9a-f]{64}$ && $got == 2/2/1 &&
      $history == "2=Succeeded@${ref#*@} 1=Succeeded@$first " ]]; then
  ok "rebuild tiny: exit 0, prints $ref; generation 2, history: $history"
else
  bad "rebuild of a finished build" "exit $rc" "stdout: $(cat "$work/rebuild.out")" "generation/observed/rebuild $got" \
    "history $history (first $first)" "$(tail -8 "$work/rebuild.err")"
fi
if grep -qx 'imagebuild/tiny in namespace '"$ns"': rebuild 1 requested (generation 2)' "$work/rebuild.err" &&
   grep -qE '^\[0 2/2\] RUN head -c 16 /dev/urandom > /random$' "$work/rebuild.err" &&
   [[ $(grep -m1 '^phase ' "$work/rebuild.err") != "phase Succeeded" ]]; then
  ok "rebuild tiny: the new build's logs and phases, none of the previous generation's"
else
  bad "rebuild: what it prints" "$(head -20 "$work/rebuild.err")"
fi
# Two rebuilds at once: each counts on from what the other wrote (a 409 is retried).
kubectl slipway rebuild tiny -n "$ns" --no-follow >/dev/null 2>"$work/r1.err" &
p1=$!
kubectl slipway rebuild tiny -n "$ns" --no-follow >/dev/null 2>"$work/r2.err" &
p2=$!
wait "$p1"; rc1=$?
wait "$p2"; rc2=$?
got=$(ib tiny '{.spec.rebuild}')
[[ $rc1 == 0 && $rc2 == 0 && $got == 3 ]] && ok "two rebuilds at once: both exit 0, spec.rebuild 1 -> $got" \
  || bad "two concurrent rebuilds" "exit $rc1 and $rc2, spec.rebuild $got (want 3)" "$(cat "$work/r1.err" "$work/r2.err")"

summary
[[ $fail == 0 ]]
