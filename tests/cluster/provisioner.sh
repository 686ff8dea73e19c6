#!/usr/bin/env bash
# The test cluster's volume provisioner, a component of up.sh (PID file, log): each claim of
# the default StorageClass (`local-dir`) gets a `local` PersistentVolume on a new directory of
# this node, pre-bound to the claim; a released volume is deleted with its directory.
#
# Why not the in-tree hostPath provisioner: it makes each directory root-owned with mode 0750
# (k8s.io/kubernetes pkg/volume/hostpath/host_path.go, Provision), and the kubelet applies no
# fsGroup to hostPath volumes, so a non-root pod (Slipway's prepare pod, uid 65532) could not
# write its workspace. The kubelet applies a pod's fsGroup to `local` volumes as it does to
# CSI ones (pkg/volume/local/local.go, SetUpAt): this behaves like the storage of a real
# cluster. A loop over kubectl, polling once a second: no image to build or pull.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/env.sh"

kubectl() { "$S/bin/kubectl" --kubeconfig "$S/pki/admin.kubeconfig" "$@"; }
mkdir -p "$LOCAL_PV"

provision() { # namespace name uid size access-modes-json
  local ns=$1 name=$2 uid=$3 size=$4 modes=$5 dir=$LOCAL_PV/pvc-$3
  mkdir -p "$dir"
  kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: PersistentVolume
metadata:
  name: pvc-$uid
  annotations: {pv.kubernetes.io/provisioned-by: $PROVISIONER}
spec:
  capacity: {storage: "$size"}
  accessModes: $modes
  persistentVolumeReclaimPolicy: Delete
  storageClassName: $STORAGE_CLASS
  claimRef: {namespace: "$ns", name: "$name", uid: "$uid"}
  local: {path: "$dir"}
  nodeAffinity:
    required:
      nodeSelectorTerms:
        - matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: ["$NODE"]}]
YAML
}

log "provisioner $PROVISIONER: volumes under $LOCAL_PV"
while :; do
  # Claims of our class that no volume is bound to yet.
  kubectl get pvc -A -o jsonpath='{range .items[*]}{.metadata.namespace}{"\t"}{.metadata.name}{"\t"}{.metadata.uid}{"\t"}{.spec.storageClassName}{"\t"}{.status.phase}{"\t"}{.spec.resources.requests.storage}{"\t"}{.spec.accessModes}{"\n"}{end}' 2>/dev/null |
    while IFS=$'\t' read -r ns name uid class phase size modes; do
      [[ $class == "$STORAGE_CLASS" && $phase == Pending && -n $uid ]] || continue
      provision "$ns" "$name" "$uid" "${size:-1Gi}" "${modes:-[ReadWriteOnce]}" &&
        log "provisioned pvc-$uid for $ns/$name" || log "could not provision $ns/$name"
    done
  # Our volumes whose claim is gone: the directory, then the volume.
  kubectl get pv -o jsonpath='{range .items[*]}{.metadata.name}{"\t"}{.metadata.annotations.pv\.kubernetes\.io/provisioned-by}{"\t"}{.status.phase}{"\t"}{.spec.local.path}{"\n"}{end}' 2>/dev/null |
    while IFS=$'\t' read -r pv by phase path; do
      [[ $by == "$PROVISIONER" && ( $phase == Released || $phase == Failed ) ]] || continue
      [[ $path == "$LOCAL_PV"/pvc-* ]] && rm -rf "$path"
      kubectl delete pv "$pv" --wait=false >/dev/null 2>&1 && log "deleted $pv"
    done
  sleep 1
done
