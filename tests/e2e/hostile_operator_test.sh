#!/usr/bin/env bash
# Hostile cases against the operator (e2e tier; issue 12, SECURITY.md M3, M5, M6, M8, L4, L5):
#   (a) an ImageBuild whose name is 253 characters long, with a stage named with 100, builds:
#       its objects get valid names and labels (a 64-bit hash), its push pod runs as uid
#       65532 with a read-only workspace, and a RUN step has no CAP_NET_RAW;
#   (b) in a namespace enforcing Pod Security "restricted" the build fails at once (not at its
#       timeout) with PodRejected naming the policy; one enforcing "baseline" builds;
#   (c) a Job made by someone else with the name the build needs is not adopted: the build
#       says so in its status and waits, the stranger's Job is untouched; once it is gone
#       the build goes on;
#   (d) a failing RUN whose text is 120 KB: the build reaches Failed with a bounded message
#       and bounded events.
set -uo pipefail
: "${KUBECONFIG:?run eval \"\$(tests/cluster/up.sh)\" first}" "${SLIPWAY_REGISTRY:?}"
here=$(cd "$(dirname "$0")" && pwd)
R=$SLIPWAY_REGISTRY
ns=slipway-hostile-$$
rns=slipway-hostile-restricted-$$
bns=slipway-hostile-baseline-$$
source "$here/lib.sh"
e2e_work hostile-operator
cleanup_cmds='kubectl delete namespace "$ns" "$rns" "$bns" --wait=false >/dev/null 2>&1'
e2e_deploy "deploy.sh deploys Slipway"
kubectl create namespace "$ns" >/dev/null
BB=$R/slipway-test/busybox:latest

# status NS NAME JSONPATH
status() { kubectl -n "$1" get imagebuild "$2" -o jsonpath="$3" 2>/dev/null; }
phase() { status "$1" "$2" '{.status.phase}'; }
condition() { status "$1" "$2" '{.status.conditions[?(@.type=="Succeeded")].reason}|{.status.conditions[?(@.type=="Succeeded")].message}'; }
describe() { # NS NAME
  echo "phase=$(phase "$1" "$2") condition=$(condition "$1" "$2" | cut -c1-600)"
  kubectl -n "$1" get jobs,pods 2>&1 | tail -8
}
finished() { # NS NAME SECONDS
  local p
  for _ in $(seq "$3"); do
    p=$(phase "$1" "$2"); [[ $p == Succeeded || $p == Failed ]] && return 0; sleep 1
  done
  return 1
}
# inline NS NAME OUTPUT-IMAGE DOCKERFILE: applies an inline ImageBuild
inline() {
  local df
  df=$(sed 's/^/        /' <<<"$4")
  kubectl -n "$1" apply -f - >/dev/null <<YAML
apiVersion: build.slipway.dev/v1alpha1
kind: ImageBuild
metadata: {name: $2}
spec:
  source:
    inline:
      dockerfile: |
$df
  output: {image: "$3", insecureRegistry: true}
YAML
}

# --- (a) The longest ImageBuild name (253: four dotted parts), and a 100-character stage.
long=$(python3 -c 'print(".".join(["hostile-long-" + "a" * 50, "b" * 63, "c" * 63, "d" * 61]))')
stage=s$(printf 'x%.0s' $(seq 99))
inline "$ns" "$long" "$R/e2e/hostile-long:1" "FROM $BB AS $stage
RUN echo long > /long && grep CapEff /proc/self/status > /caps
FROM $BB
COPY --from=$stage /long /caps /
CMD [\"cat\", \"/long\", \"/caps\"]"
if finished "$ns" "$long" 300 && [[ $(phase "$ns" "$long") == Succeeded ]]; then
  digest=$(status "$ns" "$long" '{.status.image.digest}')
  pushed=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$R/e2e/hostile-long:1" 2>&1)
  [[ -n $digest && $digest == "$pushed" ]] && ok "a 253-character ImageBuild name with a 100-character stage builds (${#long} characters, $digest)" \
    || bad "253-character name: the registry holds the digest" "status: $digest" "registry: $pushed"
else
  bad "a 253-character ImageBuild name builds" "$(describe "$ns" "$long")"
fi
# Its objects: named within 63 characters, labelled within 63, all owned by it (a spare claim
# it made too).
if out=$(kubectl -n "$ns" get jobs,pvc -o json | python3 /dev/fd/3 "$long" 3<<'PY'
import json, re, sys
long = sys.argv[1]
items = [i for i in json.load(sys.stdin)["items"]
         if any(o["name"] == long for o in i["metadata"].get("ownerReferences", []))]
dns = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
label = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
problems = []
for i in items:
    n = i["metadata"]["name"]
    if len(n) > 63 or not dns.match(n): problems.append(f"name {n}")
    for k, v in i["metadata"].get("labels", {}).items():
        if len(v) > 63 or not label.match(v): problems.append(f"label {k}={v}")
# Its workspace, and at most one spare claim its start made for the next build (not its own).
spare = lambda i: i["metadata"].get("labels", {}).get("build.slipway.dev/spare") == "true"
kinds = sorted(i["kind"] + (" (spare)" if spare(i) else "") for i in items)
if kinds.count("Job") != 4 or kinds.count("PersistentVolumeClaim") != 1 or kinds.count("PersistentVolumeClaim (spare)") > 1:
    problems.append(f"objects: {kinds}")
print("; ".join(problems) if problems else f"{len(items)} objects: " + ", ".join(sorted(i["metadata"]["name"] for i in items)))
sys.exit(1 if problems else 0)
PY
); then
  ok "its Jobs and workspace have names and labels of at most 63 characters: $out"
else
  bad "names and labels of the 253-character build" "$out"
fi
# Its pods: push as uid 65532 (restricted, read-only workspace), stage with RuntimeDefault seccomp.
pods=$(kubectl -n "$ns" get pods -o json | python3 -c '
import json, sys
out = []
for p in json.load(sys.stdin)["items"]:
    step = p["metadata"].get("labels", {}).get("build.slipway.dev/step")
    s, c = p["spec"].get("securityContext", {}), p["spec"]["containers"][0]
    cs = c.get("securityContext", {})
    if step == "push":
        ws = [m for m in c["volumeMounts"] if m["mountPath"] == "/.slipway/workspace"]
        out.append("push uid=%s nonroot=%s rootfs-ro=%s caps=%s workspace-ro=%s" % (s.get("runAsUser"), s.get("runAsNonRoot"),
                   cs.get("readOnlyRootFilesystem"), cs.get("capabilities", {}).get("drop"), ws and ws[0].get("readOnly")))
    if step == "stage":
        out.append("stage seccomp=%s drop=%s" % (s.get("seccompProfile", {}).get("type"), cs.get("capabilities", {}).get("drop")))
print("; ".join(sorted(set(out))))')
want="push uid=65532 nonroot=True rootfs-ro=True caps=['ALL'] workspace-ro=True; stage seccomp=RuntimeDefault drop=['NET_RAW']"
[[ $pods == "$want" ]] && ok "its push pod ran as uid 65532 with no capabilities and a read-only workspace; its stage pods with RuntimeDefault seccomp, without NET_RAW" \
  || bad "pod security contexts" "got:  $pods" "want: $want"
# A RUN step's effective capabilities (the image records them): NET_RAW (bit 13) is not one.
if [[ $(phase "$ns" "$long") == Succeeded ]]; then
  kubectl -n "$ns" run hostile-long-run --image="$R/e2e/hostile-long@$(status "$ns" "$long" '{.status.image.digest}')" --restart=Never >/dev/null
  kubectl -n "$ns" wait --for=jsonpath='{.status.phase}'=Succeeded pod/hostile-long-run --timeout=120s >/dev/null 2>&1
  caps=$(kubectl -n "$ns" logs hostile-long-run 2>&1)
  eff=$(awk '/^CapEff:/ {print $2}' <<<"$caps")
  if [[ -n $eff ]] && (( (16#$eff & (1 << 13)) == 0 && (16#$eff & 1) == 1 )); then
    ok "a RUN step ran as root without CAP_NET_RAW (CapEff $eff, CAP_CHOWN kept)"
  else
    bad "RUN without NET_RAW" "$caps"
  fi
fi

# --- (b) Pod Security "restricted" enforced: the build pods (root) are refused, and the
# build fails at once with the policy in its message, not at its timeout.
kubectl create namespace "$rns" >/dev/null
kubectl label namespace "$rns" pod-security.kubernetes.io/enforce=restricted >/dev/null
start=$(date +%s)
inline "$rns" refused "$R/e2e/never:restricted" "FROM $BB
RUN true"
finished "$rns" refused 120
took=$(( $(date +%s) - start ))
got=$(condition "$rns" refused)
if [[ $(phase "$rns" refused) == Failed && $got == "PodRejected|"*'pod rejected: violates PodSecurity "restricted:latest"'* && $took -le 60 ]]; then
  ok "restricted namespace: Failed in ${took}s (timeout 1h) with $(cut -c1-160 <<<"$got")…"
else
  bad "restricted namespace: PodRejected within 60 s" "after ${took}s" "$(describe "$rns" refused)"
fi
active=$(kubectl -n "$rns" get jobs -o jsonpath='{range .items[*]}{.status.active}{end}' 2>/dev/null)
[[ -z ${active//0/} ]] && ok "restricted namespace: no Job of the refused build is left running" \
  || bad "restricted namespace: Jobs stopped" "$(kubectl -n "$rns" get jobs 2>&1)"
# Pod Security "baseline" enforced: stage pods (root, RuntimeDefault, no NET_RAW) and the
# restricted push pod pass it.
kubectl create namespace "$bns" >/dev/null
kubectl label namespace "$bns" pod-security.kubernetes.io/enforce=baseline >/dev/null
inline "$bns" allowed "$R/e2e/hostile-baseline:1" "FROM $BB
RUN echo baseline > /baseline"
if finished "$bns" allowed 300 && [[ $(phase "$bns" allowed) == Succeeded ]]; then
  ok "baseline namespace: the build's pods are admitted and it Succeeded"
else
  bad "baseline namespace: Succeeded" "$(describe "$bns" allowed)"
fi

# --- (c) A Job nobody owns holds the name of the build's prepare Job.
kubectl -n "$ns" create job squatted-1-prepare --image="$BB" -- sleep 600 >/dev/null
before=$(kubectl -n "$ns" get job squatted-1-prepare -o jsonpath='{.metadata.uid}|{.metadata.ownerReferences}|{.spec.template.spec.containers[0].command}')
inline "$ns" squatted "$R/e2e/hostile-squatted:1" "FROM $BB
RUN echo squatted > /squatted"
want="Job $ns/squatted-1-prepare exists and is not owned by ImageBuild $ns/squatted: it is not adopted"
got=""
for _ in $(seq 60); do
  got=$(status "$ns" squatted '{.status.conditions[?(@.type=="Succeeded")].message}')
  [[ $got == "$want" ]] && break
  sleep 1
done
[[ $got == "$want" ]] && ok "a stranger's Job in the way is not adopted; the status says: $got" \
  || bad "squatted: the status names the stranger's Job" "got: $got" "$(describe "$ns" squatted)"
after=$(kubectl -n "$ns" get job squatted-1-prepare -o jsonpath='{.metadata.uid}|{.metadata.ownerReferences}|{.spec.template.spec.containers[0].command}')
ours=$(kubectl -n "$ns" get pods -l build.slipway.dev/build=squatted --no-headers 2>/dev/null | wc -l)
[[ $before == "$after" && $ours == 0 && $(phase "$ns" squatted) != Failed ]] \
  && ok "the stranger's Job is untouched (uid, owners, command: $after) and the build runs no pod meanwhile" \
  || bad "the stranger's Job untouched" "before: $before" "after:  $after" "build pods: $ours"
kubectl -n "$ns" delete job squatted-1-prepare --wait=true >/dev/null 2>&1
if finished "$ns" squatted 400 && [[ $(phase "$ns" squatted) == Succeeded ]]; then
  ok "once the stranger's Job is gone the build goes on and Succeeded"
else
  bad "squatted: Succeeded after the stranger's Job went" "$(describe "$ns" squatted)"
fi

# --- (d) A failing RUN whose text is 120 KB: four continued lines of 30 000 characters (a
# Dockerfile line holds at most 64 KiB, as with BuildKit; one argument to `sh -c` at most
# 128 KiB, the kernel's MAX_ARG_STRLEN), from a ConfigMap context (an environment variable
# holds at most 128 KiB: an inline source that large cannot start the prepare pod).
mkdir -p "$work/big"
python3 -c 'import sys; x = "x" * 30000; sys.stdout.write("FROM %s\nRUN false # %s \\\n%s \\\n%s \\\n%s\n" % (sys.argv[1], x, x, x, x))' "$BB" > "$work/big/Dockerfile"
tar -czf "$work/big.tar.gz" -C "$work/big" .
kubectl -n "$ns" create configmap big-run-context --from-file=context.tar.gz="$work/big.tar.gz" >/dev/null
kubectl -n "$ns" apply -f - >/dev/null <<YAML
apiVersion: build.slipway.dev/v1alpha1
kind: ImageBuild
metadata: {name: big-run}
spec:
  source: {configMap: {name: big-run-context}}
  output: {image: "$R/e2e/never:big", insecureRegistry: true}
YAML
if finished "$ns" big-run 300 && [[ $(phase "$ns" big-run) == Failed ]]; then
  msg=$(status "$ns" big-run '{.status.conditions[?(@.type=="Succeeded")].message}')
  reason=$(status "$ns" big-run '{.status.conditions[?(@.type=="Succeeded")].reason}')
  bytes=$(printf '%s' "$msg" | wc -c)
  size=$(kubectl -n "$ns" get imagebuild big-run -o json | python3 -c 'import json,sys; print(len(json.dumps(json.load(sys.stdin)["status"])))')
  if [[ $reason == StageFailed && $msg == *"Dockerfile:2: RUN false # xxxxxxxx"* && $msg == *"…" && $bytes -le 1024 && $size -lt 8192 ]]; then
    ok "a failing 120 KB RUN: Failed, StageFailed, a $bytes-byte message ($(cut -c1-60 <<<"$msg")…), a $size-byte status"
  else
    bad "120 KB RUN: a bounded message" "reason=$reason bytes=$bytes status=$size" "$(cut -c1-300 <<<"$msg")"
  fi
  notes=$(kubectl -n "$ns" get events --field-selector involvedObject.name=big-run -o json |
    python3 -c 'import json,sys; print(max((len(e.get("message") or "") for e in json.load(sys.stdin)["items"]), default=0))')
  [[ $notes -le 1024 ]] && ok "a failing 120 KB RUN: its events' notes are at most 1024 bytes ($notes)" \
    || bad "120 KB RUN: bounded events" "longest note: $notes"
else
  bad "120 KB RUN: phase Failed" "$(describe "$ns" big-run)"
fi
summary
