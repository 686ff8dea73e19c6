#!/usr/bin/env bash
# The Helm chart (e2e tier): helm lint; the rendered manifests checked (Recreate, non-root,
# read-only root filesystem, no capabilities, least-privilege RBAC without secrets, core events
# read-only, default build resources, ImageBuilds aggregated into the built-in edit and view
# roles, leader election with more than one replica); the installed operator's rights checked
# with `kubectl auth can-i`, and a user's through the edit and view roles; two replicas elect
# one leader through a Lease.
set -uo pipefail
: "${KUBECONFIG:?run eval \"\$(tests/cluster/up.sh)\" first}" "${SLIPWAY_REGISTRY:?}"
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$here/lib.sh"
e2e_work chart
e2e_deploy "deploy.sh installs the chart"
helm=$SLIPWAY_HELM
chart=$repo/charts/slipway

if out=$("$helm" lint "$chart" --set image=x --set builderImage=y 2>&1); then
  ok "helm lint: $(grep -o '[0-9]* chart(s) linted, [0-9]* chart(s) failed' <<<"$out")"
else
  bad "helm lint" "$out"
fi
if "$helm" template t "$chart" >/dev/null 2>&1; then
  bad "the chart refuses to render without image and builderImage"
else
  ok "the chart refuses to render without image and builderImage"
fi

"$helm" template t "$chart" --namespace slipway-system --set image=op:1 --set builderImage=b:1 \
  --set replicas=2 > "$work/rendered.yaml" 2>&1
kubectl create --dry-run=client -o json -f "$work/rendered.yaml" > "$work/rendered.json" 2>"$work/kubectl.err" \
  || bad "the rendered manifests are valid objects" "$(cat "$work/kubectl.err")"
if out=$(python3 - "$work/rendered.json" <<'PY'
import json, sys
# kubectl prints one JSON document per object, one after the other.
text, items, pos, dec = open(sys.argv[1]).read(), [], 0, json.JSONDecoder()
while pos < len(text):
    while pos < len(text) and text[pos].isspace():
        pos += 1
    if pos < len(text):
        obj, pos = dec.raw_decode(text, pos)
        items.extend(obj["items"] if obj.get("kind") == "List" else [obj])
by_kind = {}
for i in items:
    by_kind.setdefault(i["kind"], []).append(i)
problems = []
dep = by_kind["Deployment"][0]
spec = dep["spec"]["template"]["spec"]
c = spec["containers"][0]
if dep["spec"]["strategy"]["type"] != "Recreate": problems.append("strategy is not Recreate")
if not spec["securityContext"].get("runAsNonRoot"): problems.append("not runAsNonRoot")
sc = c["securityContext"]
if not sc.get("readOnlyRootFilesystem"): problems.append("root filesystem writable")
if sc.get("capabilities", {}).get("drop") != ["ALL"]: problems.append("capabilities not dropped")
if sc.get("allowPrivilegeEscalation") is not False: problems.append("privilege escalation allowed")
if "--leader-election" not in c["args"]: problems.append("2 replicas without --leader-election")
rules = [r for role in by_kind["ClusterRole"] + by_kind["Role"] for r in role["rules"]]
res = {(g, r): set(rule["verbs"]) for rule in rules for g in rule["apiGroups"] for r in rule["resources"]}
if any(r == "secrets" or r == "*" for _, r in res): problems.append("RBAC names secrets or *")
if any("*" in v for v in res.values()): problems.append("a * verb")
operator_roles = [r for r in by_kind["ClusterRole"] + by_kind["Role"] if r["metadata"]["name"].endswith("slipway-operator") or r["metadata"]["name"].endswith("slipway-operator-leader")]
rules = [r for role in operator_roles for r in role["rules"]]
res = {(g, r): set(rule["verbs"]) for rule in rules for g in rule["apiGroups"] for r in rule["resources"]}
want = {("build.slipway.dev", "imagebuilds/status"), ("build.slipway.dev", "imagebuilds/finalizers"),
        ("batch", "jobs"), ("", "persistentvolumeclaims"), ("", "pods/log"), ("", "events"),
        ("events.k8s.io", "events"), ("coordination.k8s.io", "leases")}
for w in want:
    if w not in res: problems.append(f"no rule for {w}")
if res.get(("", "pods"), set()) - {"get", "list", "watch"}: problems.append("pods not read-only")
if res.get(("", "pods/log"), set()) - {"get", "list", "watch"}: problems.append("pods/log not read-only")
if res.get(("", "events"), set()) - {"get", "list", "watch"}: problems.append("core events not read-only")
# ImageBuilds in the built-in roles: edit may write them, view only read them.
agg = {}
for role in by_kind["ClusterRole"]:
    labels = role["metadata"].get("labels", {})
    for to in ("edit", "view"):
        if labels.get(f"rbac.authorization.k8s.io/aggregate-to-{to}") == "true":
            agg[to] = {(g, r): set(rule["verbs"]) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
ib = ("build.slipway.dev", "imagebuilds")
if agg.get("edit", {}).get(ib) != {"create", "update", "patch", "delete", "deletecollection", "get", "list", "watch"}:
    problems.append(f"edit aggregation: {agg.get('edit')}")
if agg.get("view", {}).get(ib) != {"get", "list", "watch"}: problems.append(f"view aggregation: {agg.get('view')}")
if any(r != ib[1] and not r.startswith("imagebuilds/") for v in agg.values() for _, r in v):
    problems.append("an aggregated role names more than ImageBuilds")
# Default build resources, as JSON the operator parses.
flag = [a for a in c["args"] if a.startswith("--default-build-resources=")]
if len(flag) != 1: problems.append("no --default-build-resources")
else:
    r = json.loads(flag[0].split("=", 1)[1])
    if not (r.get("limits", {}).get("memory") and r.get("limits", {}).get("ephemeral-storage")
            and r.get("requests", {}).get("memory")):
        problems.append(f"default build resources: {r}")
print("; ".join(problems) if problems else f"{len(items)} objects, {len(rules)} RBAC rules")
sys.exit(1 if problems else 0)
PY
); then
  ok "rendered chart: Recreate, non-root, read-only root, caps dropped, RBAC least privilege, ImageBuilds in edit and view, default build resources ($out)"
else
  bad "rendered chart" "$out"
fi

if ! "$helm" template t "$chart" --set image=op:1 --set builderImage=b:1 --set rbac.aggregateToDefaultRoles=false \
     --set defaultBuildResources=null | grep -q 'aggregate-to-\|--default-build-resources'; then
  ok "rbac.aggregateToDefaultRoles=false and defaultBuildResources=null render neither"
else
  bad "rbac.aggregateToDefaultRoles=false / defaultBuildResources=null still rendered"
fi

if "$helm" template t "$chart" --set image=op:1 --set builderImage=b:1 --set jsonLogs=true | grep -q -- '- --json-logs' &&
   ! "$helm" template t "$chart" --set image=op:1 --set builderImage=b:1 | grep -q -- '--json-logs\|--leader-election'; then
  ok "jsonLogs=true asks for JSON logs; the defaults log as text without leader election"
else
  bad "jsonLogs / defaults rendered"
fi

sa=system:serviceaccount:slipway-system:slipway-operator
rights=""
for check in "yes create jobs.batch -n default" "yes list pods -n default" "yes get pods/log -n default" \
             "yes patch imagebuilds.build.slipway.dev/status -n default" "yes create persistentvolumeclaims -n default" \
             "yes create events.events.k8s.io -n default" "yes update leases.coordination.k8s.io -n slipway-system" \
             "yes list events -n default" "no create events -n default" \
             "no get secrets -n default" "no list secrets -n slipway-system" "no delete pods -n default" \
             "no create pods -n default" "no update leases.coordination.k8s.io -n default"; do
  read -r want verb what rest <<<"$check"
  # shellcheck disable=SC2086
  got=$(kubectl auth can-i "$verb" "$what" $rest --as="$sa" 2>/dev/null)
  [[ $got == "$want" ]] || rights+="$verb $what $rest: $got (want $want); "
done
[[ -z $rights ]] && ok "the installed operator may do what builds need and nothing else (14 kubectl auth can-i checks; no secrets)" \
  || bad "operator rights" "$rights"

# A user bound to the built-in edit role in a namespace may create ImageBuilds there (the
# aggregated role); one bound to view may only read them; one bound to nothing may not.
users_ns=slipway-chart-users-$$
cleanup_cmds="${cleanup_cmds:+$cleanup_cmds; }"'kubectl delete namespace "$users_ns" --wait=false >/dev/null 2>&1'
kubectl create namespace "$users_ns" >/dev/null
kubectl -n "$users_ns" create rolebinding editor --clusterrole=edit --user=slipway-editor >/dev/null
kubectl -n "$users_ns" create rolebinding viewer --clusterrole=view --user=slipway-viewer >/dev/null
can() { kubectl auth can-i "$2" imagebuilds.build.slipway.dev -n "$users_ns" --as="$1" 2>/dev/null; }
got=""
for _ in $(seq 30); do  # the aggregation controller fills the roles in a moment
  got="$(can slipway-editor create) $(can slipway-editor delete) $(can slipway-viewer list) $(can slipway-viewer create) $(can slipway-nobody list)"
  [[ $got == "yes yes yes no no" ]] && break
  sleep 1
done
[[ $got == "yes yes yes no no" ]] \
  && ok "a user bound to edit may create and delete ImageBuilds, one bound to view only list them, one bound to nothing neither" \
  || bad "ImageBuilds through edit and view" "editor create, editor delete, viewer list, viewer create, nobody list: $got (want yes yes yes no no)"

# Two replicas: one holds the Lease and reconciles, the other waits for it.
SLIPWAY_HELM_ARGS="--set replicas=2" "$here/deploy.sh" >/dev/null 2>"$work/deploy2.log"
sel=app.kubernetes.io/name=slipway-operator
leader="" other=""
for _ in $(seq 60); do
  pods=$(kubectl -n slipway-system get pods -l "$sel" --field-selector=status.phase=Running -o name | cut -d/ -f2)
  holder=$(kubectl -n slipway-system get lease slipway-operator -o jsonpath='{.spec.holderIdentity}' 2>/dev/null)
  if [[ $(grep -c . <<<"$pods") == 2 ]] && grep -qx "$holder" <<<"$pods"; then
    other=$(grep -vx "$holder" <<<"$pods")
    if kubectl -n slipway-system logs "$other" 2>/dev/null | grep -q "waiting for lease" &&
       ! kubectl -n slipway-system logs "$other" 2>/dev/null | grep -q "holding lease" &&
       kubectl -n slipway-system logs "$holder" 2>/dev/null | grep -q "holding lease"; then
      leader=$holder; break
    fi
  fi
  sleep 2
done
[[ -n $leader ]] && ok "2 replicas: $leader holds the Lease and reconciles, $other waits for it" \
  || bad "leader election" "pods: $pods" "holder: $holder" "$(tail -5 "$work/deploy2.log")"
"$here/deploy.sh" >/dev/null 2>"$work/deploy3.log" || bad "back to one replica" "$(tail -5 "$work/deploy3.log")"
summary
