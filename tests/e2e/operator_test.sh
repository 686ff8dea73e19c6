#!/usr/bin/env bash
# The operator end to end (e2e tier): tests/e2e/deploy.sh deploys Slipway on the local
# cluster, then real ImageBuilds run as Jobs and push to the cluster's registry; each image
# is run as a Pod and its output checked.
#   - the article's Go and Node.js examples, applied from examples/ (ConfigMap sources)
#   - an inline source whose RUN checks that the stage pod has no service-account token
#   - a git source served by `git daemon` on the node's address (the harness's own)
#   - a fan-out whose independent stage Jobs overlap in time
#   - a later stage's base pulled ahead while the stage before it runs
#   - a base the node cannot pull (a layer the registry lost): ImagePullFailed, at once
#   - failures: a RUN exiting 3, an invalid Dockerfile
#   - the kstatus conditions of a success and of a failure (Ready, Stalled; no Reconciling)
set -uo pipefail
: "${KUBECONFIG:?run eval \"\$(tests/cluster/up.sh)\" first}" "${SLIPWAY_REGISTRY:?}"
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
R=$SLIPWAY_REGISTRY
NODE_IP=${R%%:*}
ns=slipway-e2e-$$
source "$here/lib.sh"
e2e_work operator-e2e
GIT_PID=
cleanup_cmds='[[ -n $GIT_PID ]] && kill "$GIT_PID" 2>/dev/null; kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1'
e2e_deploy "deploy.sh deploys Slipway"
ok "deploy.sh deploys Slipway (builder image $SLIPWAY_BUILDER_IMAGE)"
kubectl create namespace "$ns" >/dev/null

status() { kubectl -n "$ns" get imagebuild "$1" -o jsonpath="$2"; }
describe() { # NAME: what to print when a build did not do what was expected
  echo "phase=$(status "$1" '{.status.phase}')"
  echo "condition=$(status "$1" '{.status.conditions[0].reason}: {.status.conditions[0].message}')"
  kubectl -n "$ns" get jobs,pods -l "build.slipway.dev/build=$1" 2>&1 | tail -8
}
# finished NAME SECONDS: waits until the build Succeeded or Failed (a failure then shows at
# once instead of when `kubectl wait --for=condition=Succeeded` times out)
finished() {
  local phase
  for _ in $(seq "$2"); do
    phase=$(status "$1" '{.status.phase}' 2>/dev/null)
    [[ $phase == Succeeded || $phase == Failed ]] && return 0
    sleep 1
  done
  return 1
}
# wait_phase NAME PHASE SECONDS
wait_phase() {
  kubectl -n "$ns" wait --for=jsonpath='{.status.phase}'="$2" "imagebuild/$1" --timeout="$3s" >/dev/null 2>&1
}
# run_image NAME: runs the pushed image (by digest) as a Pod; prints its log
run_image() {
  local ref digest
  ref=$(status "$1" '{.status.image.ref}') digest=$(status "$1" '{.status.image.digest}')
  kubectl -n "$ns" run "run-$1" --image="${ref%:*}@$digest" --restart=Never >/dev/null
  kubectl -n "$ns" wait --for=jsonpath='{.status.phase}'=Succeeded "pod/run-$1" --timeout=120s >/dev/null 2>&1
  kubectl -n "$ns" logs "run-$1" 2>&1
}
# check_built NAME EXPECTED-OUTPUT: the build succeeded, the registry holds the digest the
# status reports, and the image prints what it should
check_built() {
  local name=$1 want=$2 digest ref got
  finished "$name" 900
  if ! kubectl -n "$ns" wait --for=condition=Succeeded "imagebuild/$name" --timeout=10s >/dev/null 2>&1; then
    bad "$name: condition Succeeded" "$(describe "$name")"; return
  fi
  ref=$(status "$name" '{.status.image.ref}') digest=$(status "$name" '{.status.image.digest}')
  # kstatus (Flux) reads Reconciling and Stalled, both gone now; Ready agrees with Succeeded.
  got=$(status "$name" '{range .status.conditions[*]}{.type}={.status},{end}')
  if [[ $got == "Succeeded=True,Ready=True," ]]; then
    ok "$name: conditions $got"
  else
    bad "$name: conditions Succeeded=True,Ready=True" "$got"
  fi
  got=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$ref" 2>&1)
  if [[ $got == "$digest" ]]; then
    ok "$name: Succeeded; $ref is $digest in the registry ($(status "$name" '{.status.duration}'))"
  else
    bad "$name: the registry holds the reported digest" "status: $digest" "registry: $got"
  fi
  got=$(run_image "$name")
  if grep -qF -- "$want" <<<"$got"; then
    ok "$name: the image runs as a Pod and prints: $want"
  else
    bad "$name: the image prints $want" "$got"
  fi
}

# --- The article's examples, as a user applies them from examples/.
for ex in go node; do
  tar -czf "$work/$ex.tar.gz" -C "$repo/examples/$ex" .
  kubectl -n "$ns" create configmap "$ex-example-context" --from-file=context.tar.gz="$work/$ex.tar.gz" >/dev/null
  kubectl -n "$ns" apply -f "$repo/examples/$ex/imagebuild.yaml" >/dev/null
done
check_built go-example "Hello from the multi-stage Go build!"
check_built node-example "Hello from the multi-stage Node.js build!"
jobs=$(kubectl -n "$ns" get jobs -l build.slipway.dev/build=go-example -o name | sort | tr '\n' ' ')
if [[ $jobs == *go-example-1-prepare*go-example-1-push*go-example-1-s0-builder*go-example-1-s1-*" " ]]; then
  ok "go-example ran prepare, two stage Jobs (base+builder fused, final) and push: $jobs"
else
  bad "go-example's Jobs" "$jobs"
fi

# --- Inline source; the stage pod has no service-account token and no Service variables.
cat > "$work/inline.yaml" <<YAML
apiVersion: build.slipway.dev/v1alpha1
kind: ImageBuild
metadata: {name: inline}
spec:
  source:
    inline:
      dockerfile: |
        FROM $R/slipway-test/busybox:latest
        COPY greeting.txt /greeting.txt
        RUN if [ -e /var/run/secrets/kubernetes.io/serviceaccount/token ]; then echo token-mounted; else echo no-token; fi > /checks.txt && \\
            echo "service-vars=\$(env | grep -c '^KUBERNETES_' || true)" >> /checks.txt
        CMD ["sh", "-c", "cat /greeting.txt /checks.txt"]
      files:
        greeting.txt: "hello from an inline source\n"
  output: {image: "$R/e2e/inline:1", additionalTags: [latest], insecureRegistry: true}
YAML
kubectl -n "$ns" apply -f "$work/inline.yaml" >/dev/null
check_built inline "hello from an inline source"
out=$(kubectl -n "$ns" logs run-inline 2>&1)
if grep -qx no-token <<<"$out" && grep -qx service-vars=0 <<<"$out"; then
  ok "inline: RUN in the stage pod saw no service-account token and no Service variables"
else
  bad "inline: no token in the stage pod" "$out"
fi
pod_spec=$(kubectl -n "$ns" get pods -l build.slipway.dev/build=inline,build.slipway.dev/step=stage \
  -o jsonpath='{.items[0].spec.automountServiceAccountToken} {.items[0].spec.enableServiceLinks}')
[[ $pod_spec == "false false" ]] && ok "inline: stage pod spec has automountServiceAccountToken=false, enableServiceLinks=false" \
  || bad "inline: stage pod spec" "$pod_spec"
if skopeo inspect --tls-verify=false "docker://$R/e2e/inline:latest" >/dev/null 2>&1; then
  ok "inline: additionalTags pushed ($R/e2e/inline:latest)"
else
  bad "inline: additional tag latest pushed"
fi

# --- Git source: a repository served by git daemon on the node's address.
mkdir -p "$work/git/app/sub"
(
  cd "$work/git/app"
  git init -q -b main
  printf 'FROM %s/slipway-test/busybox:latest\nCOPY message.txt /\nCMD ["cat", "/message.txt"]\n' "$R" > sub/Dockerfile
  echo "first revision" > sub/message.txt
  git add -A && git -c user.email=e2e@slipway -c user.name=e2e commit -qm one && git tag v1
  echo "second revision" > sub/message.txt
  git -c user.email=e2e@slipway -c user.name=e2e commit -qam two
)
git daemon --reuseaddr --export-all --base-path="$work/git" --listen="$NODE_IP" --port=9418 "$work/git" \
  >"$work/git-daemon.log" 2>&1 &
GIT_PID=$!
sleep 1
cat > "$work/git.yaml" <<YAML
apiVersion: build.slipway.dev/v1alpha1
kind: ImageBuild
metadata: {name: from-git}
spec:
  source: {git: {url: "git://$NODE_IP/app", revision: v1, contextDir: sub}}
  output: {image: "$R/e2e/from-git:v1", insecureRegistry: true}
YAML
kubectl -n "$ns" apply -f "$work/git.yaml" >/dev/null
check_built from-git "first revision"

# --- Fan-out: three independent stages, then a final one; their Jobs overlap in time.
cat > "$work/fanout.yaml" <<YAML
apiVersion: build.slipway.dev/v1alpha1
kind: ImageBuild
metadata: {name: fanout}
spec:
  source:
    inline:
      dockerfile: |
        FROM $R/slipway-test/busybox:latest AS a
        RUN sleep 12 && echo a > /out
        FROM $R/slipway-test/busybox:latest AS b
        RUN sleep 12 && echo b > /out
        FROM $R/slipway-test/busybox:latest AS c
        RUN sleep 12 && echo c > /out
        FROM $R/slipway-test/busybox:latest
        COPY --from=a /out /a
        COPY --from=b /out /b
        COPY --from=c /out /c
        CMD ["cat", "/a", "/b", "/c"]
  output: {image: "$R/e2e/fanout:1", insecureRegistry: true}
YAML
kubectl -n "$ns" apply -f "$work/fanout.yaml" >/dev/null
check_built fanout "c"
times=$(kubectl -n "$ns" get jobs -l build.slipway.dev/build=fanout,build.slipway.dev/step=stage \
  -o jsonpath='{range .items[*]}{.metadata.labels.build\.slipway\.dev/stage} {.status.startTime} {.status.completionTime}{"\n"}{end}')
overlap=$(python3 - "$times" <<'PY'
import sys, datetime
rows = [l.split() for l in sys.argv[1].splitlines() if l.strip()]
t = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
par = [(t(r[1]), t(r[2])) for r in rows if r[0] in ("a", "b", "c")]
print("yes" if len(par) == 3 and max(s for s, _ in par) < min(e for _, e in par) else "no")
PY
)
if [[ $overlap == yes ]]; then
  ok "fanout: stage Jobs a, b, c ran at the same time (every start before every completion)"
else
  bad "fanout: stage Jobs overlap" "$times"
fi

# --- A later stage's base is pulled while the stage before it runs: the first stage's pod
# carries a pull-ahead container for it, so the last stage's pod finds it on the node. The
# base is a copy of busybox under a repository made for this run, which no pod pulled before.
ahead="$R/e2e/pull-ahead-$$:1"
skopeo copy -q --src-tls-verify=false --dest-tls-verify=false \
  "docker://$R/slipway-test/busybox:latest" "docker://$ahead"
cat > "$work/ahead.yaml" <<YAML
apiVersion: build.slipway.dev/v1alpha1
kind: ImageBuild
metadata: {name: ahead}
spec:
  source:
    inline:
      dockerfile: |
        FROM $R/slipway-test/busybox:latest AS first
        RUN sleep 3 && echo pulled ahead > /out
        FROM $ahead
        COPY --from=first /out /out
        CMD ["cat", "/out"]
  output: {image: "$R/e2e/ahead:1", insecureRegistry: true}
YAML
kubectl -n "$ns" apply -f "$work/ahead.yaml" >/dev/null
check_built ahead "pulled ahead"
pod_of() { kubectl -n "$ns" get pods -l "build.slipway.dev/build=ahead,build.slipway.dev/stage=$1" -o name | head -1; }
# (The spec's image: a status names the image by the first name the node has for its content.)
got=$(kubectl -n "$ns" get "$(pod_of first)" \
  -o jsonpath='{range .spec.containers[*]}{.name}={.image} {end}{range .status.containerStatuses[*]}{.name}/{.state.terminated.exitCode} {end}')
if [[ $got == *"pull-ahead-0=$R/e2e/pull-ahead-$$@sha256:"* && $got == *"pull-ahead-0/0 "* ]]; then
  ok "ahead: the first stage's pod pulled the last stage's base and exited 0 ($got)"
else
  bad "ahead: a pull-ahead container in the first stage's pod" "$got"
fi
last=$(pod_of "$(kubectl -n "$ns" get jobs -l build.slipway.dev/build=ahead,build.slipway.dev/step=stage \
  -o jsonpath='{range .items[*]}{.metadata.labels.build\.slipway\.dev/stage}{"\n"}{end}' | grep -vx first | head -1)")
got=$(kubectl -n "$ns" get events --field-selector "involvedObject.name=${last#pod/},reason=Pulled" \
  -o jsonpath='{range .items[*]}{.message}{"\n"}{end}' 2>&1)
# Or, made beside the first stage once that one's pod was on the node (it awaits its outputs),
# the last stage's pod pulled its base itself while the first stage ran.
first_end=$(kubectl -n "$ns" get "$(pod_of first)" \
  -o jsonpath='{.status.containerStatuses[?(@.name=="stage")].state.terminated.finishedAt}')
last_made=$(kubectl -n "$ns" get "$last" -o jsonpath='{.metadata.creationTimestamp}')
if grep -q "pull-ahead-$$.*already present" <<<"$got"; then
  ok "ahead: the last stage's pod found its base on the node"
elif [[ -n $first_end && -n $last_made && $last_made < $first_end ]]; then
  ok "ahead: the last stage's pod was made at $last_made, beside the first stage (ended $first_end), and pulled its base while it ran"
else
  bad "ahead: the last stage's base pulled while the first stage ran" "pod: $last, made $last_made; first stage ended $first_end" "$got"
fi

# --- A base the node cannot pull: its manifest resolves (prepare pins it), but the registry
# lost its one layer (deleted through the registry's API), so the kubelet's pull fails. The
# build fails with ImagePullFailed naming the step and the image, not at its timeout: once for
# a stage's own base, once for a base the stage before pulls ahead.
lost="$R/e2e/lost-layer-$$"
mkdir -p "$work/lost/rootfs" && echo "$$ $(date +%s%N)" > "$work/lost/rootfs/unique"
python3 "$repo/tests/images/mkimage.py" "$work/lost/oci" "$work/lost/rootfs" >/dev/null
skopeo copy -q --dest-tls-verify=false "oci:$work/lost/oci:latest" "docker://$lost:1"
layer=$(skopeo inspect --tls-verify=false --raw "docker://$lost:1" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["layers"][0]["digest"])')
code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "http://$R/v2/e2e/lost-layer-$$/blobs/$layer")
cat > "$work/lost.yaml" <<YAML
apiVersion: build.slipway.dev/v1alpha1
kind: ImageBuild
metadata: {name: lost-own}
spec:
  source:
    inline:
      dockerfile: |
        FROM $lost:1
        RUN true
  output: {image: "$R/e2e/lost-own:1", insecureRegistry: true}
---
apiVersion: build.slipway.dev/v1alpha1
kind: ImageBuild
metadata: {name: lost-ahead}
spec:
  source:
    inline:
      dockerfile: |
        FROM $R/slipway-test/busybox:latest AS first
        RUN sleep 2 && echo x > /out
        FROM $lost:1
        COPY --from=first /out /out
  output: {image: "$R/e2e/lost-ahead:1", insecureRegistry: true}
YAML
t0=$SECONDS
kubectl -n "$ns" apply -f "$work/lost.yaml" >/dev/null
for name in lost-own lost-ahead; do
  finished "$name" 300
  took=$((SECONDS - t0))
  got=$(status "$name" '{.status.conditions[?(@.type=="Succeeded")].reason}|{.status.conditions[?(@.type=="Succeeded")].message}')
  case $name in
    lost-own) want="ImagePullFailed|stage \"0\": the node cannot pull image $lost@sha256:*ImagePullBackOff*" ;;
    lost-ahead) want="ImagePullFailed|stage \"first\": the node cannot pull image $lost@sha256:* (pulled ahead for a later stage): ImagePullBackOff*" ;;
  esac
  # shellcheck disable=SC2053 # $want is a pattern
  if [[ $code == 202 && $(status "$name" '{.status.phase}') == Failed && $got == $want && $took -le 120 ]]; then
    ok "$name: a base whose layer the registry lost fails the build with ImagePullFailed in ${took}s: $(cut -c1-240 <<<"$got")"
  else
    bad "$name: ImagePullFailed within 120 s" "layer DELETE: HTTP $code, after ${took}s" "got:  $got" "want: $want" "$(describe "$name")"
  fi
done

# --- Failures read back from status.
cat > "$work/fail.yaml" <<YAML
apiVersion: build.slipway.dev/v1alpha1
kind: ImageBuild
metadata: {name: run-fails}
spec:
  source:
    inline:
      dockerfile: |
        FROM $R/slipway-test/busybox:latest AS build
        RUN echo failing && exit 3
        FROM $R/slipway-test/busybox:latest
        COPY --from=build / /
  output: {image: "$R/e2e/never:1", insecureRegistry: true}
---
apiVersion: build.slipway.dev/v1alpha1
kind: ImageBuild
metadata: {name: bad-dockerfile}
spec:
  source:
    inline:
      dockerfile: |
        FROM $R/slipway-test/busybox:latest
        FORM nothing
  output: {image: "$R/e2e/never:2", insecureRegistry: true}
YAML
kubectl -n "$ns" apply -f "$work/fail.yaml" >/dev/null
for case in "run-fails|StageFailed|Dockerfile:2: RUN echo failing && exit 3: exit code 3" \
            "bad-dockerfile|InvalidDockerfile|Dockerfile:2:"; do
  IFS='|' read -r name reason text <<<"$case"
  if wait_phase "$name" Failed 300; then
    got=$(status "$name" '{.status.conditions[?(@.type=="Succeeded")].reason}|{.status.conditions[?(@.type=="Succeeded")].message}')
    if [[ $got == "$reason|"*"$text"* ]]; then
      ok "$name: Failed, $got"
    else
      bad "$name: condition says $reason and $text" "$got"
    fi
    got=$(status "$name" '{range .status.conditions[*]}{.type}={.status}/{.reason},{end}')
    if [[ $got == "Succeeded=False/$reason,Ready=False/$reason,Stalled=True/$reason," ]]; then
      ok "$name: conditions $got"
    else
      bad "$name: conditions Succeeded=False, Ready=False, Stalled=True" "$got"
    fi
  else
    bad "$name: phase Failed" "$(describe "$name")"
  fi
done
if skopeo inspect --tls-verify=false "docker://$R/e2e/never:1" >/dev/null 2>&1; then
  bad "run-fails: nothing pushed"
else
  ok "run-fails: nothing was pushed"
fi
summary
