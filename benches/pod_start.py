#!/usr/bin/env python3
"""What an init container costs a pod, on the running cluster (after
`eval "$(tests/cluster/up.sh)"`): the time from `kubectl create` of a pod to the watch seeing
its container terminated, for a pod of one container (`true`) and for the same pod with an
init container (`true`) before it, alternately, medians of N (default 6). The kubelet starts
a pod's next container only once it has seen the last one exit, so each init container adds
about one of its status rounds. Uses the test base busybox in the cluster's registry.

    benches/pod_start.py [N]
"""
import json, os, statistics, subprocess, sys, time

NS = f"slipway-pod-start-{os.getpid()}"
IMAGE = f"{os.environ['SLIPWAY_REGISTRY']}/slipway-test/busybox:latest"


def pod(name, init):
    spec = {"restartPolicy": "Never", "automountServiceAccountToken": False, "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "main", "image": IMAGE, "command": ["true"]}]}
    if init:
        spec["initContainers"] = [{"name": "init", "image": IMAGE, "command": ["true"]}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def once(name, init):
    """Seconds from create to the main container seen terminated."""
    watch = subprocess.Popen(["kubectl", "-n", NS, "get", "pods", "-w", "--field-selector",
                              f"metadata.name={name}", "-o", "json"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    time.sleep(0.3)
    t0 = time.time()
    subprocess.run(["kubectl", "-n", NS, "create", "-f", "-"], input=json.dumps(pod(name, init)),
                   text=True, capture_output=True, check=True)
    buf, done, dec = "", None, json.JSONDecoder()
    while done is None:
        line = watch.stdout.readline()
        if not line:
            break
        buf += line
        try:
            obj, _ = dec.raw_decode(buf)
        except ValueError:
            continue
        buf = ""
        for c in obj.get("status", {}).get("containerStatuses") or []:
            if c["name"] == "main" and c.get("state", {}).get("terminated"):
                done = time.time() - t0
    watch.kill()
    subprocess.run(["kubectl", "-n", NS, "delete", "pod", name, "--wait=false"], capture_output=True)
    return done


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 6
    subprocess.run(["kubectl", "create", "namespace", NS], capture_output=True, check=True)
    for _ in range(50):  # the namespace's default service account
        if subprocess.run(["kubectl", "-n", NS, "get", "sa", "default"], capture_output=True).returncode == 0:
            break
        time.sleep(0.2)
    res = {False: [], True: []}
    try:
        for i in range(n):
            for init in (False, True):
                res[init].append(once(f"p{i}-{int(init)}", init))
    finally:
        subprocess.run(["kubectl", "delete", "namespace", NS, "--wait=false"], capture_output=True)
    for init, xs in res.items():
        ok = [x for x in xs if x is not None]
        print(f"{'with an init container' if init else 'one container':24} median {statistics.median(ok):.2f} s"
              f"  ({' '.join(f'{x:.2f}' for x in ok)}; {len(xs) - len(ok)} not seen)")


if __name__ == "__main__":
    main()
