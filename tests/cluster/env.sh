# Shared settings of tests/cluster/{up,down}.sh (sourced). Every address here is one the
# harness creates itself: the node address on its own empty bridge, pods on another bridge.
KV=1.36.3                                   # Kubernetes (see README.md for why)
S=${SLIPWAY_CLUSTER_STATE:-/var/lib/slipway-cluster}
CACHE=${SLIPWAY_CACHE:-/var/cache/slipway}
NODE=slipway-node
NODE_DEV=slw-node                           # empty bridge holding NODE_IP (this kernel has no dummy driver)
NODE_IP=10.233.0.1
POD_CIDR=10.234.0.0/24                      # bridge slw-br0, gateway .1
POD_BRIDGE=slw-br0
SVC_CIDR=10.235.0.0/24                      # the kubernetes Service is 10.235.0.1
REGISTRY=$NODE_IP:5000
CTR_STATE=/run/slipway-containerd
CTR_SOCK=$CTR_STATE/containerd.sock
HOSTPATH_PV=/tmp/hostpath_pv                # where the in-tree hostPath provisioner wrote (older states)
LOCAL_PV=$S/local-pv                        # provisioner.sh: one directory per claim
STORAGE_CLASS=local-dir                     # the default StorageClass (provisioner.sh)
PROVISIONER=slipway.test/local-dir
FWD_TAG=slipway-cluster                     # comment on the harness's own iptables rule
K8S_BIN=$CACHE/k8s/v$KV-$(GOTOOLCHAIN=local go env GOVERSION 2>/dev/null || echo go)/k8s
COMPONENTS=(registry containerd etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy provisioner)

log() { echo "[cluster $(date +%T)] $*" >&2; }
alive() { [[ -f $S/pids/$1.pid ]] && kill -0 "$(cat "$S/pids/$1.pid")" 2>/dev/null; }
