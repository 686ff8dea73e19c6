#!/usr/bin/env bash
# Stops what up.sh started (by the PIDs it recorded), removes the pods' containers and
# mounts, the harness's network devices and iptables rules, and its state; restores what
# up.sh changed on the host. The build cache ($CACHE) is kept.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/env.sh"
[[ $(id -u) == 0 ]] || { echo "down.sh must run as root" >&2; exit 1; }
[[ -d $S ]] || { log "nothing to stop"; exit 0; }

stop() { # component
  local f=$S/pids/$1.pid
  [[ -f $f ]] || return 0
  local pid; pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $1 ($pid)"
    kill "$pid" 2>/dev/null
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  fi
  rm -f "$f"
}

# Control plane and node agents first, so nothing restarts pods while they go.
for c in provisioner kube-proxy kubelet kube-scheduler kube-controller-manager kube-apiserver etcd; do stop "$c"; done

# Pod sandboxes and containers: kill their tasks, then containerd and the shims it started.
if [[ -S $CTR_SOCK ]]; then
  for id in $(ctr --address "$CTR_SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
    ctr --address "$CTR_SOCK" -n k8s.io tasks kill -s SIGKILL "$id" >/dev/null 2>&1
  done
  sleep 1
  for id in $(ctr --address "$CTR_SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
    ctr --address "$CTR_SOCK" -n k8s.io tasks delete -f "$id" >/dev/null 2>&1
  done
fi
# Shims are children of no one we track by PID file: find them by the socket they serve.
for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $CTR_SOCK" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
stop containerd
stop registry

# kube-proxy's iptables rules, then ours.
[[ -x $S/bin/kube-proxy ]] && "$S/bin/kube-proxy" --cleanup >/dev/null 2>&1
while iptables -D FORWARD -s "$POD_CIDR" -m comment --comment "$FWD_TAG" -j DROP 2>/dev/null; do :; done
# The kubelet's own chains (KUBE-FIREWALL, KUBE-KUBELET-CANARY, ...): the rules that jump to
# them, then the chains themselves.
for ipt in iptables ip6tables; do
  for table in filter nat mangle; do
    "$ipt" -t "$table" -S 2>/dev/null | awk '/^-A / && / -j KUBE-/' | while read -r rule; do
      eval "$ipt -t $table ${rule/-A/-D}" 2>/dev/null
    done
    for chain in $("$ipt" -t "$table" -S 2>/dev/null | awk '/^-N KUBE-/ {print $2}'); do
      "$ipt" -t "$table" -F "$chain" 2>/dev/null
    done
    for chain in $("$ipt" -t "$table" -S 2>/dev/null | awk '/^-N KUBE-/ {print $2}'); do
      "$ipt" -t "$table" -X "$chain" 2>/dev/null
    done
  done
done

# Mounts under the state dir and containerd's state (deepest first).
for _ in 1 2 3; do
  mapfile -t mnts < <(awk -v s="$S" -v r="$CTR_STATE" '$5 ~ "^"s || $5 ~ "^"r {print $5}' /proc/self/mountinfo | sort -r)
  ((${#mnts[@]})) || break
  for m in "${mnts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
done

# Cgroups the kubelet and the pods created.
for h in /sys/fs/cgroup/*/; do
  for d in "$h"kubepods "$h"kubepods.slice; do
    [[ -d $d ]] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
  done
done

# Network devices: the pod bridge (and its veths) and the node address.
for dev in $(ip -o link show master "$POD_BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
  ip link del "$dev" 2>/dev/null
done
ip link del "$POD_BRIDGE" 2>/dev/null
ip link del "$NODE_DEV" 2>/dev/null
# Network namespaces of pod sandboxes (containerd names them cni-<uuid>).
for ns in $(ip netns list 2>/dev/null | awk '/^cni-/ {print $1}'); do ip netns del "$ns" 2>/dev/null; done

# Host settings up.sh changed.
[[ -f $S/orig-ip-forward ]] && cat "$S/orig-ip-forward" > /proc/sys/net/ipv4/ip_forward
[[ $(cat "$S/orig-root-propagation" 2>/dev/null) == private ]] && mount --make-rprivate /
while read -r what path; do
  [[ $what == remove ]] || continue
  mountpoint -q "$path" 2>/dev/null && umount "$path"
  rm -rf "$path"
done < <(cat "$S/orig-paths" 2>/dev/null)
rm -rf "$HOSTPATH_PV" "$CTR_STATE"
rm -rf "$S"
log "cluster stopped and removed"
