#!/usr/bin/env bash
# Smoke tests of the local cluster (e2e tier): what Slipway's Jobs will need from it.
# Needs KUBECONFIG, SLIPWAY_REGISTRY and PATH from `eval "$(tests/cluster/up.sh)"`.
set -uo pipefail
: "${KUBECONFIG:?run eval \"\$(tests/cluster/up.sh)\" first}" "${SLIPWAY_REGISTRY:?}"
R=$SLIPWAY_REGISTRY
ns=slipway-smoke-$$
pass=0 fail=0
run_id=$(date +%s%N)

ok() { pass=$((pass + 1)); echo "ok - $1"; }
bad() { fail=$((fail + 1)); echo "not ok - $1"; shift; for l in "$@"; do echo "#   $l"; done; }

job() { # name image script [pvc]: a Job; with a PVC name, that claim is mounted at /data
  local volumes=""
  if [[ -n ${4:-} ]]; then
    volumes="        volumeMounts: [{name: data, mountPath: /data}]
      volumes: [{name: data, persistentVolumeClaim: {claimName: $4}}]"
  fi
  kubectl -n "$ns" apply -f - >/dev/null <<YAML
apiVersion: batch/v1
kind: Job
metadata: {name: $1}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      automountServiceAccountToken: false
      containers:
      - name: main
        image: $2
        command: ["/bin/sh", "-c", $(printf '%s' "$3" | python3 -c 'import json,sys;print(json.dumps(sys.stdin.read()))')]
$volumes
YAML
}

wait_job() { # name -> 0 if Complete
  kubectl -n "$ns" wait --for=condition=Complete "job/$1" --timeout=180s >/dev/null 2>&1
}

job_logs() { kubectl -n "$ns" logs "job/$1" 2>&1; }

describe() { kubectl -n "$ns" describe "job/$1" 2>&1 | tail -5; kubectl -n "$ns" get pods -o wide 2>&1 | tail -5; }

kubectl create namespace "$ns" >/dev/null
trap 'kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1' EXIT
# Pods are refused until the namespace's default ServiceAccount exists.
for _ in $(seq 1 60); do kubectl -n "$ns" get sa default >/dev/null 2>&1 && break; sleep 0.5; done

# 1. A Job writes into a PVC, a second Job reads it back.
kubectl -n "$ns" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 64Mi}}}
YAML
job writer "$R/slipway-test/busybox" "echo $run_id > /data/msg" data
if wait_job writer; then
  job reader "$R/slipway-test/busybox" "cat /data/msg" data
  if wait_job reader && [[ $(job_logs reader) == "$run_id" ]]; then
    ok "a Job writes into a PVC and a second Job reads it back"
  else
    bad "a second Job reads the PVC back" "logs: $(job_logs reader)" "$(describe reader)"
  fi
else
  bad "a Job writes into a PVC" "$(kubectl -n "$ns" get pvc data 2>&1 | tail -1)" "$(describe writer)"
fi

# 2. A Pod runs an image from the registry and prints what it should.
job hello "$R/slipway-test/busybox" 'echo "hello from $(hostname)"'
if wait_job hello && [[ $(job_logs hello) == "hello from hello-"* ]]; then
  ok "a Pod runs an image from SLIPWAY_REGISTRY"
else
  bad "a Pod runs an image from SLIPWAY_REGISTRY" "logs: $(job_logs hello)" "$(describe hello)"
fi

# 3. A Pod pushes a new image to the registry; this machine reads it back and a Pod runs it.
pushed=$R/smoke/pushed:$run_id
job pusher "$R/slipway-test/tools" "
  set -e
  mkdir -p /l/etc && echo $run_id > /l/etc/pushed && tar -C /l -cf /tmp/layer.tar etc
  crane append --insecure -b $R/slipway-test/busybox -f /tmp/layer.tar -t $pushed"
if wait_job pusher && skopeo inspect --tls-verify=false "docker://$pushed" >/dev/null 2>&1; then
  job runpushed "$pushed" 'cat /etc/pushed'
  if wait_job runpushed && [[ $(job_logs runpushed) == "$run_id" ]]; then
    ok "a Pod pushes an image to SLIPWAY_REGISTRY (and a Pod runs it)"
  else
    bad "a Pod runs the image another Pod pushed" "logs: $(job_logs runpushed)" "$(describe runpushed)"
  fi
else
  bad "a Pod pushes an image to SLIPWAY_REGISTRY" "logs: $(job_logs pusher)" "$(describe pusher)"
fi

# 4. A Pod reaches the API server through the kubernetes Service (kube-proxy).
svc_ip=$(kubectl -n default get service kubernetes -o jsonpath='{.spec.clusterIP}')
job apisvc "$R/slipway-test/busybox" "nc -w 5 $svc_ip 443 </dev/null && echo reached"
if wait_job apisvc && [[ $(job_logs apisvc) == reached ]]; then
  ok "a Pod reaches the kubernetes Service ($svc_ip:443)"
else
  bad "a Pod reaches the kubernetes Service ($svc_ip:443)" "logs: $(job_logs apisvc)" "$(describe apisvc)"
fi

echo "cluster smoke: $pass passed, $fail failed"
echo "$pass passed, $fail failed"
[[ $fail == 0 ]]
