#!/usr/bin/env bash
# Hostile case T5 of the security review (H2, M3, M10) on the cluster: an A1 source whose
# Dockerfile or Dockerfile.dockerignore is a symlink to the git credentials
# (/.slipway/git-auth/token) or to a pull secret (/.slipway/auth/pull-0.json) of the prepare
# pod. Each build must fail with `<file>: symlink leaves the build context` (SourceFailed),
# and the token must appear nowhere: not in the ImageBuild's status, the Events, any build
# pod's log or spec, nor a pushed image. Also:
#   - the git Secret is mounted into the prepare pod's init container `fetch` only;
#   - a git URL with credentials in it is refused before any Job exists, and the controller's
#     log shows it redacted;
#   - the prepare pod passes Pod Security "restricted": in a namespace enforcing it, the
#     prepare pod is admitted and succeeds (stage pods, root, are then refused there: fine).
set -uo pipefail
: "${KUBECONFIG:?run eval \"\$(tests/cluster/up.sh)\" first}" "${SLIPWAY_REGISTRY:?}"
here=$(cd "$(dirname "$0")" && pwd)
R=$SLIPWAY_REGISTRY
NODE_IP=${R%%:*}
ns=slipway-hostile-$$
restricted=slipway-restricted-$$
source "$here/lib.sh"
e2e_work hostile-prepare
GIT_PID=
cleanup_cmds='[[ -n $GIT_PID ]] && kill "$GIT_PID" 2>/dev/null; kubectl delete namespace "$ns" "$restricted" --wait=false >/dev/null 2>&1'
e2e_deploy "deploy.sh deploys Slipway"
kubectl create namespace "$ns" >/dev/null

token="slipway-t5-token-$RANDOM$RANDOM"
status() { kubectl -n "$ns" get imagebuild "$1" -o jsonpath="$2"; }
describe() {
  echo "phase=$(status "$1" '{.status.phase}')"
  echo "condition=$(status "$1" '{.status.conditions[0].reason}: {.status.conditions[0].message}')"
  kubectl -n "$ns" get jobs,pods -l "build.slipway.dev/build=$1" 2>&1 | tail -8
}

# leaks NAME: where the token shows for the build NAME (nothing when it is nowhere).
leaks() {
  local name=$1 pod
  kubectl -n "$ns" get imagebuild "$name" -o yaml | grep -q -- "$token" && echo "the ImageBuild (status)"
  kubectl -n "$ns" get events -o yaml | grep -q -- "$token" && echo "the Events"
  kubectl -n "$ns" get jobs,pods -l "build.slipway.dev/build=$name" -o yaml | grep -q -- "$token" &&
    echo "a Job or pod spec"
  for pod in $(kubectl -n "$ns" get pods -l "build.slipway.dev/build=$name" -o name); do
    kubectl -n "$ns" logs "$pod" --all-containers 2>&1 | grep -q -- "$token" && echo "the log of $pod"
  done
  skopeo inspect --tls-verify=false "docker://$R/e2e/hostile-$name:1" >/dev/null 2>&1 && echo "a pushed image"
}

# refused NAME FILE: the build fails in prepare naming FILE, and the token is nowhere.
refused() {
  local name=$1 file=$2 got where
  if ! kubectl -n "$ns" wait --for=jsonpath='{.status.phase}'=Failed "imagebuild/$name" --timeout=300s >/dev/null 2>&1; then
    bad "$name: phase Failed" "$(describe "$name")"; return
  fi
  got=$(status "$name" '{.status.conditions[?(@.type=="Succeeded")].reason}|{.status.conditions[?(@.type=="Succeeded")].message}')
  if [[ $got == "SourceFailed|$file: symlink leaves the build context" ]]; then
    ok "$name: Failed, $got"
  else
    bad "$name: SourceFailed, $file: symlink leaves the build context" "$got"
  fi
  where=$(leaks "$name")
  if [[ -z $where ]]; then
    ok "$name: the token is in no status, Event, pod spec, pod log or image"
  else
    bad "$name: the token leaked" "$where"
  fi
}

# --- Git source with a token Secret, served by git daemon on the node's address.
kubectl -n "$ns" create secret generic git-token --from-literal=token="$token" \
  --from-literal=password="$token" --from-literal=username=e2e --from-literal=extra="$token" >/dev/null
mkrepo() { # NAME LINK-NAME LINK-TARGET
  mkdir -p "$work/git/$1"
  (
    cd "$work/git/$1"
    git init -q -b main
    printf 'FROM %s/slipway-test/busybox:latest\nRUN cat /.slipway/workspace/Dockerfile.dockerignore /.slipway/git-auth/token || true\n' "$R" > Dockerfile
    ln -sfn "$3" "$2"
    git add -A && git -c user.email=e2e@slipway -c user.name=e2e commit -qm hostile
  )
}
mkrepo ignore Dockerfile.dockerignore /.slipway/git-auth/token
mkrepo dockerfile Dockerfile /.slipway/git-auth/token
git daemon --reuseaddr --export-all --base-path="$work/git" --listen="$NODE_IP" --port=9419 "$work/git" \
  >"$work/git-daemon.log" 2>&1 &
GIT_PID=$!
sleep 1
for name in ignore dockerfile; do
  cat <<YAML | kubectl -n "$ns" apply -f - >/dev/null
apiVersion: build.slipway.dev/v1alpha1
kind: ImageBuild
metadata: {name: git-$name}
spec:
  source: {git: {url: "git://$NODE_IP:9419/$name", secretRef: {name: git-token}}}
  output: {image: "$R/e2e/hostile-git-$name:1", insecureRegistry: true}
YAML
done
refused git-ignore Dockerfile.dockerignore
refused git-dockerfile Dockerfile

# The git Secret is the init container's only, and only the keys it reads.
mounts=$(kubectl -n "$ns" get pods -l build.slipway.dev/build=git-ignore,build.slipway.dev/step=prepare -o jsonpath='init:{range .items[0].spec.initContainers[*]}{.name}={.volumeMounts[*].name};{end} main:{range .items[0].spec.containers[*]}{.name}={.volumeMounts[*].name};{end} keys:{.items[0].spec.volumes[?(@.name=="git-auth")].secret.items[*].key}')
if [[ $mounts == "init:fetch=workspace git-auth; main:plan=workspace; keys:username password token" ]]; then
  ok "git-ignore: the git Secret (username, password, token only) is mounted in the fetch init container only"
else
  bad "git-ignore: the git Secret in fetch only" "$mounts"
fi

# --- ConfigMap source and a pull secret: Dockerfile.dockerignore -> /.slipway/auth/pull-0.json.
auth=$(printf 'e2e:%s' "$token" | base64 -w0)
printf '{"auths":{"registry.invalid":{"auth":"%s"}}}' "$auth" > "$work/pull.json"
kubectl -n "$ns" create secret generic pull-cred --type=kubernetes.io/dockerconfigjson \
  --from-file=.dockerconfigjson="$work/pull.json" >/dev/null
mkdir -p "$work/cm"
printf 'FROM %s/slipway-test/busybox:latest\nRUN cat /.slipway/workspace/Dockerfile.dockerignore || true\n' "$R" > "$work/cm/Dockerfile"
ln -sfn /.slipway/auth/pull-0.json "$work/cm/Dockerfile.dockerignore"
tar -czf "$work/cm.tar.gz" -C "$work/cm" .
kubectl -n "$ns" create configmap hostile-context --from-file=context.tar.gz="$work/cm.tar.gz" >/dev/null
cat <<YAML | kubectl -n "$ns" apply -f - >/dev/null
apiVersion: build.slipway.dev/v1alpha1
kind: ImageBuild
metadata: {name: cm-pull}
spec:
  source: {configMap: {name: hostile-context}}
  pullSecrets: [{name: pull-cred}]
  output: {image: "$R/e2e/hostile-cm-pull:1", insecureRegistry: true}
YAML
# The token is base64 in the secret: look for that form too.
token_plain=$token
refused cm-pull Dockerfile.dockerignore
token=$auth
where=$(leaks cm-pull)
[[ -z $where ]] && ok "cm-pull: the pull secret's auth string is nowhere either" || bad "cm-pull: the auth string leaked" "$where"
token=$token_plain

# --- A git URL with credentials: refused before any Job holds it; shown redacted.
cat <<YAML | kubectl -n "$ns" apply -f - >/dev/null
apiVersion: build.slipway.dev/v1alpha1
kind: ImageBuild
metadata: {name: url-creds}
spec:
  source: {git: {url: "https://e2e:$token@$NODE_IP:9443/app.git"}}
  output: {image: "$R/e2e/hostile-url-creds:1", insecureRegistry: true}
YAML
sleep 10
jobs=$(kubectl -n "$ns" get jobs -l build.slipway.dev/build=url-creds -o name)
oplog=$(kubectl -n slipway-system logs deploy/slipway-operator --tail=2000 2>&1)
if [[ -z $jobs ]] && grep -q 'https://\*\*\*@' <<<"$oplog" && ! grep -q -- "$token" <<<"$oplog"; then
  ok "url-creds: no Job was created; the controller's log shows the URL as https://***@..."
else
  bad "url-creds: refused and redacted" "jobs: $jobs" "$(grep -- 'url-creds' <<<"$oplog" | tail -3)"
fi
where=$(leaks url-creds | grep -v 'the ImageBuild')
# (the spec itself holds what the user wrote; nothing derived from it may)
[[ -z $where ]] && ok "url-creds: the token is in no Event, pod or Job" || bad "url-creds: leaked" "$where"

# --- The prepare pod (not root) leaves the images stages copy from as layers; the stage pod
# (root) unpacks them, owners kept.
cat <<YAML | kubectl -n "$ns" apply -f - >/dev/null
apiVersion: build.slipway.dev/v1alpha1
kind: ImageBuild
metadata: {name: copy-from-image}
spec:
  source:
    inline:
      dockerfile: |
        FROM $R/slipway-test/busybox:latest
        COPY --from=$R/slipway-test/busybox:latest /bin/busybox /copied-busybox
        RUN echo "\$(stat -c %u:%g /copied-busybox) copied" > /ok
        CMD ["cat", "/ok"]
  output: {image: "$R/e2e/copy-from-image:1", insecureRegistry: true}
YAML
if kubectl -n "$ns" wait --for=jsonpath='{.status.phase}'=Succeeded imagebuild/copy-from-image --timeout=300s >/dev/null 2>&1; then
  digest=$(status copy-from-image '{.status.image.digest}')
  kubectl -n "$ns" run run-copy-from-image --image="$R/e2e/copy-from-image@$digest" --restart=Never >/dev/null
  kubectl -n "$ns" wait --for=jsonpath='{.status.phase}'=Succeeded pod/run-copy-from-image --timeout=120s >/dev/null 2>&1
  got=$(kubectl -n "$ns" logs run-copy-from-image 2>&1)
  [[ $got == "0:0 copied" ]] && ok "copy-from-image: COPY --from=<image> works with the non-root prepare pod (owner 0:0 kept)" \
    || bad "copy-from-image: the image prints 0:0 copied" "$got"
else
  bad "copy-from-image: Succeeded" "$(describe copy-from-image)"
fi

# --- Pod Security "restricted": the prepare pod is admitted and runs as 65532.
kubectl create namespace "$restricted" >/dev/null
kubectl label namespace "$restricted" pod-security.kubernetes.io/enforce=restricted >/dev/null
# Every state of the prepare pod, watched from before it exists: the build fails as soon as
# the (root) stage pod is refused, and its pods may be gone before a poll sees them.
kubectl -n "$restricted" get pods -l build.slipway.dev/build=restricted,build.slipway.dev/step=prepare --watch \
  -o jsonpath='{.status.phase} {.spec.securityContext.runAsUser}/{.spec.securityContext.runAsNonRoot}/{.spec.securityContext.fsGroup}{"\n"}' \
  >"$work/restricted-prepare.watch" 2>/dev/null &
watch_pid=$!
cat <<YAML | kubectl -n "$restricted" apply -f - >/dev/null
apiVersion: build.slipway.dev/v1alpha1
kind: ImageBuild
metadata: {name: restricted}
spec:
  source:
    inline:
      dockerfile: |
        FROM $R/slipway-test/busybox:latest
        RUN true
  output: {image: "$R/e2e/hostile-restricted:1", insecureRegistry: true}
  timeout: 5m
YAML
for _ in $(seq 180); do
  grep -qE '^(Succeeded|Failed) ' "$work/restricted-prepare.watch" && break
  sleep 1
done
kill "$watch_pid" 2>/dev/null; wait "$watch_pid" 2>/dev/null
last=$(grep -E '^(Succeeded|Failed) ' "$work/restricted-prepare.watch" | tail -1)
phase=${last%% *} ctx=${last#* }
if [[ $phase == Succeeded && $ctx == 65532/true/65532 ]]; then
  ok "restricted: the prepare pod was admitted under enforce=restricted and succeeded as uid 65532 (fsGroup 65532)"
else
  bad "restricted: prepare pod admitted and Succeeded as 65532" "phase=$phase context=$ctx" \
    "$(tail -3 "$work/restricted-prepare.watch")" "$(kubectl -n "$restricted" get events --sort-by=.lastTimestamp 2>&1 | tail -5)"
fi
summary
