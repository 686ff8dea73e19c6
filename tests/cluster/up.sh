#!/usr/bin/env bash
# Starts a real single-node Kubernetes on this machine, idempotently: registry, containerd,
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy.
# Progress goes to stderr; the last lines on stdout are exports, so that
#   eval "$(tests/cluster/up.sh)"
# sets up a shell. tests/cluster/README.md explains what runs where.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$here/env.sh"
[[ $(id -u) == 0 ]] || { echo "up.sh must run as root" >&2; exit 1; }

kubectl() { "$S/bin/kubectl" --kubeconfig "$S/pki/admin.kubeconfig" "$@"; }

print_exports() {
  echo "export KUBECONFIG=$S/pki/admin.kubeconfig"
  echo "export SLIPWAY_REGISTRY=$REGISTRY"
  echo "export PATH=$S/bin:\$PATH"
}

fail() { # component message
  log "FAILED: $1: $2"
  if [[ -f $S/logs/$1.log ]]; then
    log "last lines of $S/logs/$1.log:"
    tail -n 40 "$S/logs/$1.log" >&2
  fi
  exit 1
}

wait_for() { # component seconds command...
  local c=$1 t=$2; shift 2
  for ((i = 0; i < t * 2; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if [[ $c != - ]] && ! alive "$c"; then fail "$c" "exited"; fi
    sleep 0.5
  done
  fail "$c" "not ready after ${t}s"
}

start() { # component command...
  local c=$1; shift
  alive "$c" && return 0
  log "starting $c"
  # 9>&-: a daemon must not inherit the caller's cluster lock (tests/run.sh holds it on fd 9),
  # or a cluster left running would hold it after its caller is gone.
  setsid "$@" >>"$S/logs/$c.log" 2>&1 < /dev/null 9>&- &
  echo $! > "$S/pids/$c.pid"
}

all_alive() { for c in "${COMPONENTS[@]}"; do alive "$c" || return 1; done; }

# Fast path: everything already up. A cluster whose processes died (a killed session) leaves
# $S/ready behind; then the steps below restart what is missing.
if [[ -f $S/ready ]] && all_alive && kubectl get --raw /readyz >/dev/null 2>&1; then
  log "already running"
  print_exports
  exit 0
fi

# 1. Packages (Debian), installed only when missing.
pkgs=(containerd runc containernetworking-plugins docker-registry skopeo busybox-static iptables conntrack openssl gcc libc6-dev python3 curl debootstrap)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi

mkdir -p "$S"/{bin,logs,pids,pki,etcd,registry,kubelet,pod-logs,cni/net.d,cni/ipam,containerd/certs.d/$REGISTRY,images}

# 2. The Kubernetes binary, built from the Go module proxy and cached by version.
if [[ ! -x $K8S_BIN ]]; then
  log "building Kubernetes v$KV into $K8S_BIN (cold: tens of minutes)"
  "$here/allinone/build.sh" "$K8S_BIN" "$KV" >"$S/logs/build.log" 2>&1 || fail build "go build failed"
fi
for n in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
  ln -sf "$K8S_BIN" "$S/bin/$n"
done

# 3. Host: the node address on a dummy interface; remember what we change.
if ! ip link show "$NODE_DEV" >/dev/null 2>&1; then
  ip link add "$NODE_DEV" type bridge   # an empty bridge: a dummy device without the dummy driver
  ip addr add "$NODE_IP/32" dev "$NODE_DEV"
fi
ip link set "$NODE_DEV" up
[[ -f $S/orig-ip-forward ]] || cat /proc/sys/net/ipv4/ip_forward > "$S/orig-ip-forward"
if [[ ! -f $S/orig-root-propagation ]]; then
  if awk '$5 == "/" && /shared:/ {f=1} END {exit !f}' /proc/self/mountinfo; then
    echo shared > "$S/orig-root-propagation"
  else
    echo private > "$S/orig-root-propagation"
  fi
fi
mount --make-rshared /
# Paths that containerd, runc and the CNI plugins create outside our state dir: down.sh
# removes the ones that were not there before.
if [[ ! -f $S/orig-paths ]]; then
  for p in /var/lib/cni /run/containerd /run/netns; do
    if [[ -e $p ]]; then echo "keep $p"; else echo "remove $p"; fi
  done > "$S/orig-paths"
fi
# Pods may reach the node and Services only: nothing they send is forwarded anywhere.
iptables -C FORWARD -s "$POD_CIDR" -m comment --comment "$FWD_TAG" -j DROP 2>/dev/null ||
  iptables -I FORWARD -s "$POD_CIDR" -m comment --comment "$FWD_TAG" -j DROP

# 4. Registry, on the node address (reachable from this machine and from pods).
cat > "$S/registry.yml" <<YAML
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $S/registry}, delete: {enabled: true}}
http: {addr: "$REGISTRY"}
YAML
start registry docker-registry serve "$S/registry.yml"
wait_for registry 30 curl -sf "http://$REGISTRY/v2/"

# 5. Base images: pause (the sandbox), busybox, tools (busybox + crane).
for img in pause busybox tools; do
  [[ -f $S/images/$img ]] && curl -sf "http://$REGISTRY/v2/slipway-test/$img/tags/list" >/dev/null && continue
  log "building image $img"
  PAUSE_C=$(dirname "$K8S_BIN")/pause.c "$repo/tests/images/build.sh" "$REGISTRY" "$img" >"$S/images/$img" 2>"$S/logs/image-$img.log" ||
    fail "image-$img" "image build failed"
done

# 6. containerd (its own root, state and socket) with the bridge CNI.
cat > "$S/containerd/config.toml" <<TOML
version = 2
root = "$S/containerd/root"
state = "$CTR_STATE"
[grpc]
  address = "$CTR_SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$REGISTRY/slipway-test/pause:3.10"
  # This machine may not lower oom_score_adj (the kubelet asks -998 for sandboxes): keep
  # every container's value at or above containerd's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "/usr/sbin/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$S/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$S/containerd/certs.d"
TOML
cat > "$S/containerd/certs.d/$REGISTRY/hosts.toml" <<TOML
server = "http://$REGISTRY"
[host."http://$REGISTRY"]
  capabilities = ["pull", "resolve", "push"]
  skip_verify = true
TOML
cat > "$S/cni/net.d/10-slipway.conflist" <<JSON
{ "cniVersion": "1.0.0", "name": "slipway",
  "plugins": [
    { "type": "bridge", "bridge": "$POD_BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": { "type": "host-local", "dataDir": "$S/cni/ipam", "ranges": [[{"subnet": "$POD_CIDR"}]],
                "routes": [{"dst": "$NODE_IP/32"}, {"dst": "$SVC_CIDR"}] } } ] }
JSON
start containerd containerd --config "$S/containerd/config.toml"
wait_for containerd 30 ctr --address "$CTR_SOCK" version

# 7. PKI: one CA, client and serving certificates, kubeconfigs (once).
if [[ ! -f $S/pki/admin.kubeconfig ]]; then
  log "creating certificates"
  (
    cd "$S/pki"
    exec >>"$S/logs/pki.log" 2>&1
    openssl genrsa -out ca.key 2048
    openssl req -x509 -new -key ca.key -subj /CN=slipway-cluster-ca -days 3650 -out ca.crt -config <(printf \
      '[req]\ndistinguished_name=dn\nx509_extensions=v3\n[dn]\n[v3]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\nsubjectKeyIdentifier=hash\n')
    leaf() { # file CN [O] [SAN]
      openssl req -new -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$2${3:+/O=$3}"
      printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n%s\n' "${4:+subjectAltName=$4}" > "$1.ext"
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 -sha256 -extfile "$1.ext" -out "$1.crt"
    }
    leaf apiserver kube-apiserver "" "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:$NODE_IP,IP:${SVC_CIDR%.0/*}.1"
    leaf admin admin system:masters
    leaf kcm system:kube-controller-manager
    leaf scheduler system:kube-scheduler
    leaf kubelet "system:node:$NODE" system:nodes "DNS:$NODE,IP:$NODE_IP"
    leaf apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
    leaf kube-proxy system:kube-proxy
    openssl genrsa -out sa.key 2048
    openssl rsa -in sa.key -pubout -out sa.pub
    for n in admin kcm scheduler kubelet kube-proxy; do
      cat > "$n.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters: [{name: slipway, cluster: {server: "https://$NODE_IP:6443", certificate-authority-data: $(base64 -w0 ca.crt)}}]
users: [{name: $n, user: {client-certificate-data: $(base64 -w0 "$n.crt"), client-key-data: $(base64 -w0 "$n.key")}}]
contexts: [{name: slipway, context: {cluster: slipway, user: $n}}]
current-context: slipway
KC
    done
  ) || fail pki "openssl failed"
fi
P=$S/pki

# 8. Control plane.
start etcd "$S/bin/etcd" --name slipway --data-dir "$S/etcd" \
  --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster slipway=http://127.0.0.1:2380 --unsafe-no-fsync --log-level=warn
wait_for etcd 60 curl -sf http://127.0.0.1:2379/health

start kube-apiserver "$S/bin/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
  --advertise-address="$NODE_IP" --bind-address="$NODE_IP" --secure-port=6443 \
  --service-cluster-ip-range="$SVC_CIDR" \
  --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" --client-ca-file="$P/ca.crt" \
  --kubelet-client-certificate="$P/apiserver-kubelet-client.crt" --kubelet-client-key="$P/apiserver-kubelet-client.key" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
  --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
  --allow-privileged=true --cert-dir="$S/apiserver-certs" \
  --kubelet-preferred-address-types=InternalIP,Hostname --v=1
wait_for kube-apiserver 120 kubectl get --raw /readyz

start kube-controller-manager "$S/bin/kube-controller-manager" --kubeconfig="$P/kcm.kubeconfig" \
  --authentication-kubeconfig="$P/kcm.kubeconfig" --authorization-kubeconfig="$P/kcm.kubeconfig" \
  --service-account-private-key-file="$P/sa.key" --root-ca-file="$P/ca.crt" \
  --cluster-signing-cert-file="$P/ca.crt" --cluster-signing-key-file="$P/ca.key" \
  --use-service-account-credentials=true --controllers='*' --leader-elect=false \
  --service-cluster-ip-range="$SVC_CIDR" \
  --bind-address=127.0.0.1 --v=1
start kube-scheduler "$S/bin/kube-scheduler" --kubeconfig="$P/scheduler.kubeconfig" \
  --authentication-kubeconfig="$P/scheduler.kubeconfig" --authorization-kubeconfig="$P/scheduler.kubeconfig" \
  --leader-elect=false --bind-address=127.0.0.1 --v=1

# 9. Node: kubelet and kube-proxy.
cat > "$S/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$CTR_SOCK
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
authentication: {anonymous: {enabled: false}, webhook: {enabled: true}, x509: {clientCAFile: $P/ca.crt}}
authorization: {mode: Webhook}
tlsCertFile: $P/kubelet.crt
tlsPrivateKeyFile: $P/kubelet.key
address: $NODE_IP
healthzBindAddress: 127.0.0.1
rotateCertificates: false
serverTLSBootstrap: false
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
podLogsDir: $S/pod-logs
imageGCHighThresholdPercent: 100
evictionHard: {memory.available: "100Mi", nodefs.available: "0%", nodefs.inodesFree: "0%", imagefs.available: "0%"}
serializeImagePulls: false
runtimeRequestTimeout: 5m
YAML
start kubelet "$S/bin/kubelet" --config="$S/kubelet.yaml" --kubeconfig="$P/kubelet.kubeconfig" \
  --root-dir="$S/kubelet" --node-ip="$NODE_IP" --hostname-override="$NODE" --v=1

cat > "$S/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $P/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["$NODE_IP/32"]
iptables: {localhostNodePorts: false}
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
start kube-proxy "$S/bin/kube-proxy" --config="$S/kube-proxy.yaml" --v=1

wait_for kubelet 180 kubectl wait --for=condition=Ready "node/$NODE" --timeout=2s
wait_for kube-controller-manager 120 kubectl -n default get serviceaccount default
wait_for kube-proxy 60 curl -sf http://127.0.0.1:10256/healthz

# 10. Storage: provisioner.sh's `local` volumes (fsGroup applies, as on CSI storage) as the
# default StorageClass; the in-tree hostPath class of older states goes.
kubectl delete storageclass hostpath --ignore-not-found >/dev/null
kubectl apply -f - >/dev/null <<YAML
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: $STORAGE_CLASS
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: $PROVISIONER
reclaimPolicy: Delete
volumeBindingMode: Immediate
YAML
start provisioner "$here/provisioner.sh"

touch "$S/ready"
log "cluster ready: node $NODE ($NODE_IP), registry $REGISTRY"
print_exports
