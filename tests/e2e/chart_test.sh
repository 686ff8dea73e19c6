#!/usr/bin/env bash
# The Helm chart (e2e tier).
# Rendered (helm template, no cluster needed): helm lint; values.schema.json refuses wrong
# values; kubeVersion; the manifests checked (Recreate, or RollingUpdate with leader election;
# non-root, read-only root filesystem, no capabilities; least-privilege RBAC without secrets,
# core events read-only; default build resources; ImageBuilds aggregated into the built-in edit
# and view roles); the standard labels on every object; two releases in one namespace share no
# name and select only their own pods; the templated CRD is the generated one, kept on
# uninstall unless crds.keep=false; image repository/tag/digest; imagePullSecrets and the
# ServiceAccount's values; the optional PodDisruptionBudget and ServiceMonitor.
# Installed: the operator's rights (`kubectl auth can-i`) and a user's through the edit and
# view roles; NOTES.txt's first ImageBuild is one the API server accepts; a second release in
# another namespace runs beside the first on the first one's CRD, which a third release cannot
# take over and which outlives the second; `helm upgrade` of a chart whose CRD changed changes
# the CRD in the cluster (and back); two replicas elect one leader through a Lease and roll;
# `helm uninstall` keeps the CRD and the ImageBuilds, and a new install takes them up again.
set -uo pipefail
: "${KUBECONFIG:?run eval \"\$(tests/cluster/up.sh)\" first}" "${SLIPWAY_REGISTRY:?}"
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$here/lib.sh"
e2e_work chart
e2e_deploy "deploy.sh installs the chart"
helm=$SLIPWAY_HELM
chart=$repo/charts/slipway
R=$SLIPWAY_REGISTRY
crd=imagebuilds.build.slipway.dev
# deploy.sh builds helm with `go install`, without the ldflags that tell a release build which
# Kubernetes `helm template` assumes: it would assume 1.20, which the chart's kubeVersion refuses.
tpl() { "$helm" template "$@" --kube-version v1.36.3; }
img=(--set image.repository=reg.local/slipway/operator --set image.tag=v1
     --set builderImage.repository=reg.local/slipway/builder --set builderImage.tag=v1)
# render FILE ARGS...: helm template ARGS into FILE.yaml and, as JSON objects (any kind, even
# the ServiceMonitor, whose CRD this cluster lacks), into FILE.json.
render() {
  local f=$work/$1; shift
  tpl "$@" > "$f.yaml" 2>"$f.err" || { cat "$f.err"; return 1; }
  kubectl annotate --local -f "$f.yaml" slipway.dev/rendered=true -o json > "$f.json" 2>"$f.err" || { cat "$f.err"; return 1; }
}
# The JSON objects kubectl prints one after the other, as a Python list (objs.load(path)).
cat > "$work/objs.py" <<'PY'
import json
def load(path):
    text, items, pos, dec = open(path).read(), [], 0, json.JSONDecoder()
    while pos < len(text):
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos < len(text):
            obj, pos = dec.raw_decode(text, pos)
            items.extend(obj["items"] if obj.get("kind") == "List" else [obj])
    return items
def kind(items, k):
    return [i for i in items if i["kind"] == k]
PY
export PYTHONPATH=$work

# --- rendering ---------------------------------------------------------------------------
if out=$("$helm" lint --strict "$chart" "${img[@]}" 2>&1); then
  ok "helm lint --strict: $(grep -o '[0-9]* chart(s) linted, [0-9]* chart(s) failed' <<<"$out")"
else
  bad "helm lint --strict" "$out"
fi
if out=$(tpl t "$chart" 2>&1); then
  bad "the chart refuses to render without image.repository and builderImage.repository"
elif out2=$(tpl t "$chart" --set image.repository=op 2>&1); [[ $out == *"set image.repository"* && $out2 == *"set builderImage.repository"* ]]; then
  ok "the chart refuses to render without image.repository, then without builderImage.repository, and says so"
else
  bad "the chart's message without images" "$out" "$out2"
fi

# values.schema.json: each of these fails helm lint (and so install and template) on the schema.
wrong=("image=op:1" "builderImage=b:1" "image.pullPolicy=Sometimes" "image.digest=latest"
       "image.repository=op:1" "replicas=two" "metricsPort=70000" "imagee.repository=typo"
       "crds.enabled=yes" "serviceAccount.annotations.a=1" "imagePullSecrets[0].nam=x"
       "podDisruptionBudget.minAvailable=1,podDisruptionBudget.maxUnavailable=1"
       "buildSizeLimit=1GB" "image.tag=2" "serviceMonitor.interval=often" "defaultTtlSecondsAfterFinished=-1")
passed=()
for w in "${wrong[@]}"; do
  out=$("$helm" lint "$chart" "${img[@]}" --set "$w" 2>&1) && passed+=("$w (lint passed)") && continue
  grep -q "don't meet the specifications of the schema" <<<"$out" || passed+=("$w (failed, not on the schema: $(grep ERROR <<<"$out" | head -1))")
done
good=(--set image.digest=sha256:$(printf '%064d' 0) --set image.pullPolicy=Always --set replicas=3
      --set podDisruptionBudget.enabled=true --set podDisruptionBudget.minAvailable=50% --set serviceMonitor.enabled=true
      --set serviceMonitor.labels.release=prometheus --set serviceAccount.annotations.x=y --set "imagePullSecrets[0].name=reg"
      --set crds.keep=false --set defaultBuildResources=null --set image.repository=reg.local:5000/a/op --set leaderElection.enabled=true)
if ! out=$("$helm" lint "$chart" "${img[@]}" "${good[@]}" 2>&1); then
  bad "values.schema.json accepts valid values" "$out"
elif ((${#passed[@]})); then
  bad "values.schema.json refuses wrong values" "${passed[@]}"
else
  ok "values.schema.json: helm lint fails ${#wrong[@]} wrong values on the schema (${wrong[*]:0:4} ...) and passes valid ones"
fi

if out=$("$helm" template t "$chart" "${img[@]}" --kube-version v1.30.0 2>&1); then
  bad "kubeVersion refuses Kubernetes 1.30"
elif grep -q 'incompatible with Kubernetes v1.30' <<<"$out" && tpl t "$chart" "${img[@]}" >/dev/null; then
  ok "kubeVersion: the chart refuses Kubernetes 1.30 and renders for 1.36"
else
  bad "kubeVersion" "$out"
fi

tpl slipway "$chart" --namespace slipway-system "${img[@]}" --set replicas=2 > "$work/rendered.yaml" 2>&1
kubectl create --dry-run=client -o json -f "$work/rendered.yaml" > "$work/rendered.json" 2>"$work/kubectl.err" \
  || bad "the rendered manifests are valid objects" "$(cat "$work/kubectl.err")"
if out=$(python3 - "$work/rendered.json" <<'PY'
import json, sys, objs
items = objs.load(sys.argv[1])
by_kind = {}
for i in items:
    by_kind.setdefault(i["kind"], []).append(i)
problems = []
dep = by_kind["Deployment"][0]
spec = dep["spec"]["template"]["spec"]
c = spec["containers"][0]
if dep["spec"]["strategy"]["type"] != "RollingUpdate": problems.append("2 replicas (leader election) without RollingUpdate")
if dep["spec"]["strategy"].get("rollingUpdate", {}).get("maxUnavailable") != 0: problems.append("rolling update may stop the old pods first")
if not spec["securityContext"].get("runAsNonRoot"): problems.append("not runAsNonRoot")
sc = c["securityContext"]
if not sc.get("readOnlyRootFilesystem"): problems.append("root filesystem writable")
if sc.get("capabilities", {}).get("drop") != ["ALL"]: problems.append("capabilities not dropped")
if sc.get("allowPrivilegeEscalation") is not False: problems.append("privilege escalation allowed")
if "--leader-election" not in c["args"] or "--lease-name=slipway-operator" not in c["args"]:
    problems.append(f"2 replicas without --leader-election --lease-name=slipway-operator: {c['args']}")
if c["image"] != "reg.local/slipway/operator:v1" or "--builder-image=reg.local/slipway/builder:v1" not in c["args"]:
    problems.append(f"images: {c['image']} {c['args']}")
rules = [r for role in by_kind["ClusterRole"] + by_kind["Role"] for r in role["rules"]]
res = {(g, r): set(rule["verbs"]) for rule in rules for g in rule["apiGroups"] for r in rule["resources"]}
if any(r == "secrets" or r == "*" for _, r in res): problems.append("RBAC names secrets or *")
if any("*" in v for v in res.values()): problems.append("a * verb")
operator_roles = [r for r in by_kind["ClusterRole"] + by_kind["Role"] if r["metadata"]["name"] in ("slipway-operator", "slipway-operator-leader")]
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
# The labels of Helm practice on every object; the operator's pods selected by the Deployment
# and the Service alike.
want_labels = {"helm.sh/chart": "slipway-", "app.kubernetes.io/name": "slipway", "app.kubernetes.io/instance": "slipway",
               "app.kubernetes.io/version": "", "app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/part-of": "slipway"}
for i in items:
    labels = i["metadata"].get("labels", {})
    for k, v in want_labels.items():
        if k not in labels or not labels[k].startswith(v):
            problems.append(f"{i['kind']}/{i['metadata']['name']}: label {k}={labels.get(k)}")
sel = dep["spec"]["selector"]["matchLabels"]
pod = dep["spec"]["template"]["metadata"]["labels"]
if sel.get("app.kubernetes.io/component") != "operator" or any(pod.get(k) != v for k, v in sel.items()):
    problems.append(f"selector {sel} vs pod labels {pod}")
if by_kind["Service"][0]["spec"]["selector"] != sel: problems.append("the Service selects other pods than the Deployment")
print("; ".join(problems) if problems else f"{len(items)} objects, {len(rules)} operator RBAC rules")
sys.exit(1 if problems else 0)
PY
); then
  ok "rendered chart: RollingUpdate with leader election, non-root, read-only root, caps dropped, RBAC least privilege, ImageBuilds in edit and view, default build resources, standard labels ($out)"
else
  bad "rendered chart" "$out"
fi

# (Rendered into files first: grep -q leaving a pipe early would fail helm's write, and pipefail the test.)
tpl t "$chart" "${img[@]}" --set rbac.aggregateToDefaultRoles=false --set defaultBuildResources=null > "$work/noagg.yaml"
if [[ -s $work/noagg.yaml ]] && ! grep -q 'aggregate-to-\|--default-build-resources' "$work/noagg.yaml"; then
  ok "rbac.aggregateToDefaultRoles=false and defaultBuildResources=null render neither"
else
  bad "rbac.aggregateToDefaultRoles=false / defaultBuildResources=null still rendered"
fi

tpl t "$chart" "${img[@]}" > "$work/defaults.yaml"
tpl t "$chart" "${img[@]}" --set jsonLogs=true > "$work/json.yaml"
tpl t "$chart" "${img[@]}" --set leaderElection.enabled=true > "$work/leader.yaml"
if grep -q -- '- --json-logs' "$work/json.yaml" && grep -q -- '^    type: Recreate' "$work/defaults.yaml" &&
   ! grep -q -- '--json-logs\|--leader-election\|RollingUpdate' "$work/defaults.yaml" &&
   grep -q -- '- --leader-election' "$work/leader.yaml" && grep -q 'type: RollingUpdate' "$work/leader.yaml"; then
  ok "jsonLogs=true asks for JSON logs; the defaults log as text, one replica, Recreate, no leader election; leaderElection.enabled elects and rolls"
else
  bad "jsonLogs / defaults / leaderElection.enabled rendered"
fi

# Two releases in one namespace (everything on): no object of one has the name of one of the
# other, and each selects, binds and scrapes only its own.
all_on=(--set podDisruptionBudget.enabled=true --set serviceMonitor.enabled=true)
if render one one "$chart" -n shared "${img[@]}" "${all_on[@]}" && render two two "$chart" -n shared "${img[@]}" "${all_on[@]}" \
     --set crds.enabled=false && out=$(python3 - "$work/one.json" "$work/two.json" <<'PY'
import sys, objs
one, two = objs.load(sys.argv[1]), objs.load(sys.argv[2])
problems = []
key = lambda i: (i["kind"], i["metadata"].get("namespace", ""), i["metadata"]["name"])
names = [{key(i) for i in rel} for rel in (one, two)]
if len(names[0]) != len(one) or len(names[1]) != len(two): problems.append("one release names two objects alike")
if names[0] & names[1]: problems.append(f"both releases name {sorted(names[0] & names[1])}")
if any(i["kind"] == "CustomResourceDefinition" for i in two): problems.append("crds.enabled=false renders the CRD")
for rel, this, other in ((one, "one", two), (two, "two", one)):
    pods = [i["spec"]["template"]["metadata"]["labels"] for i in objs.kind(other, "Deployment")]
    own_pods = [i["spec"]["template"]["metadata"]["labels"] for i in objs.kind(rel, "Deployment")]
    sas = {i["metadata"]["name"] for i in objs.kind(rel, "ServiceAccount")}
    for i in rel:
        s = i.get("spec", {})
        sel = s.get("selector", {}) if i["kind"] == "Service" else s.get("selector", {}).get("matchLabels")
        if i["kind"] in ("Deployment", "Service", "PodDisruptionBudget", "ServiceMonitor"):
            if not all(all(p.get(k) == v for k, v in sel.items()) for p in own_pods): problems.append(f"{this}: {i['kind']} misses its pods")
            if any(all(p.get(k) == v for k, v in sel.items()) for p in pods): problems.append(f"{this}: {i['kind']} selects the other's pods")
        for sub in i.get("subjects", []):
            if sub["name"] not in sas: problems.append(f"{this}: {i['kind']} binds {sub['name']}, not its own ServiceAccount")
        if i["metadata"].get("labels", {}).get("app.kubernetes.io/instance") != this: problems.append(f"{this}: {key(i)} instance label")
print("; ".join(problems) or f"{len(one)} + {len(two)} objects, every name, selector and binding its own")
sys.exit(1 if problems else 0)
PY
); then
  ok "two releases in one namespace: $out"
else
  bad "two releases in one namespace" "$out"
fi

# The templated CRD is the generated one (files/, which a unit test checks against the types),
# with the release's labels, kept on uninstall unless crds.keep=false.
render crd "$chart" "${img[@]}" --show-only templates/crd.yaml
render crd-nokeep "$chart" "${img[@]}" --show-only templates/crd.yaml --set crds.keep=false
if out=$(python3 - "$work/crd.json" "$work/crd-nokeep.json" "$chart/files/$crd.json" "$repo/crds/$crd.json" <<'PY'
import json, sys, objs
(crd,), (nokeep,) = objs.load(sys.argv[1]), objs.load(sys.argv[2])
gen, top = json.load(open(sys.argv[3])), json.load(open(sys.argv[4]))
problems = []
if gen != top: problems.append("the chart's files/ and crds/ differ")
if crd["spec"] != gen["spec"] or crd["metadata"]["name"] != gen["metadata"]["name"]: problems.append("the rendered CRD is not the generated one")
if crd["metadata"].get("annotations", {}).get("helm.sh/resource-policy") != "keep": problems.append("no helm.sh/resource-policy: keep")
if "helm.sh/resource-policy" in nokeep["metadata"].get("annotations", {}): problems.append("crds.keep=false still keeps it")
if not crd["metadata"].get("labels", {}).get("helm.sh/chart"): problems.append("the CRD has no chart labels")
print("; ".join(problems) or f"{len(json.dumps(gen['spec']))} bytes of spec")
sys.exit(1 if problems else 0)
PY
) && tpl t "$chart" "${img[@]}" --set crds.enabled=false > "$work/nocrd.yaml" &&
   ! grep -q 'kind: CustomResourceDefinition' "$work/nocrd.yaml"; then
  ok "the templated CRD is the generated one ($out), kept on uninstall (crds.keep); crds.keep=false and crds.enabled=false render no keep and no CRD"
else
  bad "the templated CRD" "$out"
fi

# image and builderImage: repository@digest when a digest is set, else repository:tag, the tag
# defaulting to the chart's appVersion.
app=$("$helm" show chart "$chart" | sed -n 's/^appVersion: "*\([^"]*\)"*$/\1/p')
d=sha256:$(printf '%064d' 7)
got=$(tpl t "$chart" --set image.repository=reg.local:5000/op --set builderImage.repository=reg.local:5000/b \
      --set builderImage.digest=$d --set-string builderImage.tag=9 --show-only templates/deployment.yaml | grep -o 'image: .*\|--builder-image=.*')
want=$(printf 'image: "reg.local:5000/op:%s"\n--builder-image=reg.local:5000/b@%s' "$app" "$d")
[[ $got == "$want" ]] && ok "image without tag is repository:appVersion ($app); builderImage with a digest is repository@digest" \
  || bad "image references" "got: $got" "want: $want"

# imagePullSecrets, the ServiceAccount's annotations, an existing ServiceAccount, pod values.
if render pod "$chart" "${img[@]}" --set "imagePullSecrets[0].name=regcred" --set serviceAccount.annotations.role=arn \
     --set podAnnotations.a=b --set priorityClassName=high --set "extraArgs[0]=--x" --set logLevel=debug &&
   render ownsa "$chart" "${img[@]}" --set serviceAccount.create=false --set serviceAccount.name=mine &&
   out=$(python3 - "$work/pod.json" "$work/ownsa.json" <<'PY'
import sys, objs
pod, own = objs.load(sys.argv[1]), objs.load(sys.argv[2])
p = []
spec = objs.kind(pod, "Deployment")[0]["spec"]["template"]
c = spec["spec"]["containers"][0]
if spec["spec"].get("imagePullSecrets") != [{"name": "regcred"}]: p.append("imagePullSecrets")
if objs.kind(pod, "ServiceAccount")[0]["metadata"].get("annotations", {}).get("role") != "arn": p.append("serviceAccount.annotations")
if spec["metadata"].get("annotations", {}).get("a") != "b" or spec["spec"].get("priorityClassName") != "high": p.append("podAnnotations / priorityClassName")
if c["args"][-1] != "--x" or {"name": "RUST_LOG", "value": "debug"} not in c["env"]: p.append("extraArgs / logLevel")
if objs.kind(own, "ServiceAccount"): p.append("serviceAccount.create=false still creates one")
if objs.kind(own, "Deployment")[0]["spec"]["template"]["spec"]["serviceAccountName"] != "mine": p.append("serviceAccount.name not run as")
if {s["name"] for i in own for s in i.get("subjects", [])} != {"mine"}: p.append("bindings not to serviceAccount.name")
print("; ".join(p))
sys.exit(1 if p else 0)
PY
); then
  ok "imagePullSecrets, serviceAccount.annotations, serviceAccount.create=false with name, podAnnotations, priorityClassName, extraArgs, logLevel"
else
  bad "pod and ServiceAccount values" "$out"
fi

# PodDisruptionBudget and ServiceMonitor: neither by default; when asked, each selects the
# operator's pods (the ServiceMonitor through the metrics Service's port).
none=$(grep -c 'kind: PodDisruptionBudget\|kind: ServiceMonitor' "$work/defaults.yaml")
if render mon "$chart" -n ops "${img[@]}" "${all_on[@]}" --set serviceMonitor.labels.release=prom --set serviceMonitor.interval=15s &&
   render pdb-min "$chart" "${img[@]}" --set podDisruptionBudget.enabled=true --set podDisruptionBudget.minAvailable=1 &&
   kubectl create --dry-run=client -f "$work/pdb-min.yaml" >/dev/null 2>"$work/pdb.err" &&
   out=$(python3 - "$work/mon.json" "$work/pdb-min.json" <<'PY'
import sys, objs
mon, pmin = objs.load(sys.argv[1]), objs.load(sys.argv[2])
p = []
dep, svc = objs.kind(mon, "Deployment")[0], objs.kind(mon, "Service")[0]
pods = dep["spec"]["template"]["metadata"]["labels"]
sm = objs.kind(mon, "ServiceMonitor")
if len(sm) != 1 or sm[0]["apiVersion"] != "monitoring.coreos.com/v1": p.append("no monitoring.coreos.com/v1 ServiceMonitor")
else:
    s = sm[0]["spec"]
    if any(svc["metadata"]["labels"].get(k) != v for k, v in s["selector"]["matchLabels"].items()): p.append("it does not select the metrics Service")
    if s["namespaceSelector"]["matchNames"] != ["ops"]: p.append("namespaceSelector")
    ports = {pt["name"] for pt in svc["spec"]["ports"]}
    if [e["port"] for e in s["endpoints"]] != ["metrics"] or "metrics" not in ports or s["endpoints"][0]["interval"] != "15s":
        p.append(f"endpoints {s['endpoints']} vs Service ports {ports}")
    if sm[0]["metadata"]["labels"].get("release") != "prom": p.append("serviceMonitor.labels")
for pdbs, want in ((objs.kind(mon, "PodDisruptionBudget"), {"maxUnavailable": 1}), (objs.kind(pmin, "PodDisruptionBudget"), {"minAvailable": 1})):
    if len(pdbs) != 1: p.append("no PodDisruptionBudget"); continue
    s = dict(pdbs[0]["spec"]); sel = s.pop("selector")["matchLabels"]
    if s != want: p.append(f"PDB {s}, want {want}")
    if sel != dep["spec"]["selector"]["matchLabels"]: p.append("the PDB selects other pods than the Deployment")
print("; ".join(p))
sys.exit(1 if p else 0)
PY
) && [[ $none == 0 ]]; then
  ok "no PodDisruptionBudget or ServiceMonitor by default; podDisruptionBudget.enabled (maxUnavailable 1, or minAvailable) and serviceMonitor.enabled select the operator"
else
  bad "PodDisruptionBudget / ServiceMonitor" "by default: $none" "$out" "$(cat "$work/pdb.err" 2>/dev/null)"
fi

# --- installed ---------------------------------------------------------------------------
sa=system:serviceaccount:slipway-system:slipway-operator
rights=""
for check in "yes create jobs.batch -n default" "yes list pods -n default" "yes get pods/log -n default" \
             "yes patch imagebuilds.build.slipway.dev/status -n default" "yes create persistentvolumeclaims -n default" \
             "yes update persistentvolumeclaims -n default" \
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

# NOTES.txt: its first build is an ImageBuild the API server accepts (as a user bound to edit),
# once REGISTRY is a registry.
"$helm" get notes slipway -n slipway-system > "$work/notes.txt" 2>&1
sed -n "/<<'YAML'/,/^  YAML/p" "$work/notes.txt" | sed '1d;$d;s/^  //' | sed "s#REGISTRY#$R#" > "$work/first.yaml"
if grep -q 'kind: ImageBuild' "$work/first.yaml" && grep -q 'kubectl slipway build' "$work/notes.txt" &&
   grep -q 'deployment/slipway-operator' "$work/notes.txt" &&
   out=$(kubectl -n "$users_ns" apply --dry-run=server --as=slipway-editor -f "$work/first.yaml" 2>&1); then
  ok "NOTES.txt: the first ImageBuild it shows is accepted by the API server ($out), and the CLI's build"
else
  bad "NOTES.txt's first build" "${out:-}" "$(cat "$work/notes.txt")"
fi

# A second release in another namespace beside the first: it runs on the first one's CRD
# (crds.enabled=false). A third release that wants the CRD too is refused it (one owner), and
# uninstalling the second leaves the CRD and the first release working.
ns_b=slipway-chart-b-$$
cleanup_cmds+='; "$helm" uninstall second third -n "$ns_b" >/dev/null 2>&1; kubectl delete namespace "$ns_b" --wait=false >/dev/null 2>&1'
b_img=(--set image.repository="${SLIPWAY_OPERATOR_IMAGE%:*}" --set-string image.tag="${SLIPWAY_OPERATOR_IMAGE##*:}"
       --set builderImage.repository="${SLIPWAY_BUILDER_IMAGE%:*}" --set-string builderImage.tag="${SLIPWAY_BUILDER_IMAGE##*:}")
owner() { kubectl get crd "$crd" -o jsonpath='{.metadata.annotations.meta\.helm\.sh/release-name}/{.metadata.annotations.meta\.helm\.sh/release-namespace} {.metadata.uid}'; }
before=$(owner)
if out=$("$helm" install second "$chart" -n "$ns_b" --create-namespace "${b_img[@]}" --set crds.enabled=false --wait --timeout 120s 2>&1) &&
   kubectl -n "$ns_b" wait --for=condition=Available deployment/second-slipway-operator --timeout=60s >/dev/null 2>&1 &&
   kubectl -n slipway-system wait --for=condition=Available deployment/slipway-operator --timeout=60s >/dev/null 2>&1 &&
   [[ $(owner) == "$before" && $before == slipway/slipway-system* ]] &&
   [[ $(kubectl auth can-i create jobs.batch -n default --as="system:serviceaccount:$ns_b:second-slipway-operator") == yes ]]; then
  ok "a second release (second, in $ns_b, crds.enabled=false) runs beside slipway: both Deployments Available, the CRD still slipway's, its own ServiceAccount bound"
else
  bad "a second release beside the first" "$out" "CRD owner before/after: $before / $(owner)" "$(kubectl -n "$ns_b" get pods 2>&1)"
fi
if out=$("$helm" install third "$chart" -n "$ns_b" "${b_img[@]}" 2>&1); then
  bad "a third release that installs the CRD too is refused it" "$out"
elif grep -q "$crd.*exists and cannot be imported" <<<"$out" && [[ $(owner) == "$before" ]] &&
     [[ -z $(kubectl get clusterroles -l app.kubernetes.io/instance=third -o name) ]]; then
  ok "a third release that installs the CRD too is refused before it creates anything (the CRD belongs to slipway)"
else
  bad "a third release that installs the CRD too" "$out"
fi
if "$helm" uninstall second -n "$ns_b" --wait >/dev/null 2>&1 && [[ $(owner) == "$before" ]] &&
   kubectl -n slipway-system wait --for=condition=Available deployment/slipway-operator --timeout=30s >/dev/null 2>&1 &&
   [[ -z $(kubectl get clusterroles,clusterrolebindings -l app.kubernetes.io/instance=second -o name) ]]; then
  ok "uninstalling the second release leaves the CRD and the first release as they were, and removes its own cluster roles"
else
  bad "uninstalling the second release" "CRD owner: $(owner) (was $before)"
fi

# helm upgrade to a chart whose CRD changed (a printer column more) changes the CRD in the
# cluster; the upgrade back removes the column again.
cp -r "$chart" "$work/chart-next"
python3 - "$work/chart-next/files/$crd.json" <<'PY'
import json, sys
crd = json.load(open(sys.argv[1]))
crd["spec"]["versions"][0]["additionalPrinterColumns"].append(
    {"name": "ChartTest", "type": "string", "jsonPath": ".spec.output.image", "priority": 1})
json.dump(crd, open(sys.argv[1], "w"), indent=2)
PY
columns() { kubectl get crd "$crd" -o jsonpath='{.spec.versions[0].additionalPrinterColumns[*].name}'; }
up=$("$helm" upgrade slipway "$work/chart-next" -n slipway-system --reuse-values --wait --timeout 120s 2>&1) || true
next=$(columns)
down=$("$helm" upgrade slipway "$chart" -n slipway-system --reuse-values --wait --timeout 120s 2>&1) || true
back=$(columns)
if [[ $next == *ChartTest* && $back != *ChartTest* && -n $back ]]; then
  ok "helm upgrade to a chart whose CRD has a new printer column adds it in the cluster ($next); the upgrade back removes it"
else
  bad "helm upgrade changes the CRD" "after the upgrade: $next" "after the upgrade back: $back" "$up" "$down"
fi

# Two replicas: one holds the Lease and reconciles, the other waits for it; the Deployment rolls.
SLIPWAY_HELM_ARGS="--set replicas=2" "$here/deploy.sh" >/dev/null 2>"$work/deploy2.log"
sel=app.kubernetes.io/instance=slipway,app.kubernetes.io/component=operator
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
strategy=$(kubectl -n slipway-system get deployment slipway-operator -o jsonpath='{.spec.strategy.type}')
[[ -n $leader && $strategy == RollingUpdate ]] && ok "2 replicas: $leader holds the Lease and reconciles, $other waits for it; strategy RollingUpdate" \
  || bad "leader election" "pods: $pods" "holder: $holder" "strategy: $strategy" "$(tail -5 "$work/deploy2.log")"

# helm uninstall keeps the CRD (crds.keep) and so the ImageBuilds; installing again takes the
# CRD up as it is (deploy.sh, which also brings the operator back to one replica).
# (NOTES.txt's ImageBuild, cancelled from the start: it runs nothing.)
sed 's/^spec:$/spec:\n  cancel: true/' "$work/first.yaml" | kubectl -n "$users_ns" apply -f - >/dev/null 2>&1
uid=$(kubectl get crd "$crd" -o jsonpath='{.metadata.uid}')
out=$("$helm" uninstall slipway -n slipway-system --wait 2>&1)
kept=$(kubectl get crd "$crd" -o jsonpath='{.metadata.uid}' 2>&1)
ibs=$(kubectl -n "$users_ns" get imagebuilds -o name 2>&1)
gone=$(kubectl -n slipway-system get deployment,serviceaccount -l app.kubernetes.io/instance=slipway -o name 2>&1)
"$here/deploy.sh" >/dev/null 2>"$work/deploy3.log" || bad "installing again after the uninstall" "$(tail -5 "$work/deploy3.log")"
if [[ $kept == "$uid" && $ibs == imagebuild*/hello && -z $gone && $(owner) == "slipway/slipway-system $uid" ]] &&
   kubectl -n slipway-system wait --for=condition=Available deployment/slipway-operator --timeout=60s >/dev/null 2>&1; then
  ok "helm uninstall removes the operator but keeps the CRD (same uid) and its ImageBuilds; a new install takes the CRD up again"
else
  bad "crds.keep through uninstall and install" "$out" "CRD uid: $kept (was $uid)" "ImageBuilds: $ibs" "left: $gone" "owner: $(owner)"
fi
summary
