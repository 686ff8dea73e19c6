#!/usr/bin/env python3
"""Slipway's operator on the local cluster, measured (issue: operator in production).

Run after `eval "$(tests/cluster/up.sh)"` and `eval "$(tests/e2e/deploy.sh)"`:
    benches/cluster.py [--builds 20] [--concurrent 20]
It talks to the API server through `kubectl proxy` (started and stopped here) and prints:
  1. apply -> prepare Job created: p50 and p95 over N builds applied one after another,
     timed on this machine's clock from the POST of the ImageBuild to the Job's ADDED event
     on a watch opened before;
  2. per-stage overhead on a Dockerfile of 6 trivial stages (5 independent + a final one):
     Job created -> container running -> stage done (medians, from the Job and pod times,
     which the API server keeps to the second);
  3. N builds at once, end to end: wall time, the operator's CPU seconds and peak memory
     (its cgroup, read on this node), and API requests per build (the API server's
     apiserver_request_total for the resources the operator touches, before and after;
     that counter also holds the Job controller's and kubelet's requests for the same
     resources, so it is an upper bound);
  4. the same Dockerfiles built with buildah locally in the same run (the peer): the 20
     concurrent builds' Dockerfiles one after another, and the 6-stage one 3 times.
"""
import argparse, json, os, re, signal, socket, statistics, subprocess, sys, threading, time
import urllib.request

R = os.environ["SLIPWAY_REGISTRY"]
BB = f"{R}/slipway-test/busybox:latest"
NS = f"slipway-bench-{os.getpid()}"

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

PORT = free_port()
API = f"http://127.0.0.1:{PORT}"

def req(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    r = urllib.request.Request(API + path, data=data, method=method,
                               headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(r) as resp:
        return json.loads(resp.read() or b"{}")

def build(name, dockerfile, image):
    return {"apiVersion": "build.slipway.dev/v1alpha1", "kind": "ImageBuild",
            "metadata": {"name": name},
            "spec": {"source": {"inline": {"dockerfile": dockerfile}},
                     "output": {"image": image, "insecureRegistry": True},
                     "ttlSecondsAfterFinished": 60}}

def ib_path(name=""):
    return f"/apis/build.slipway.dev/v1alpha1/namespaces/{NS}/imagebuilds" + (f"/{name}" if name else "")

def wait_done(names, timeout=900):
    end = time.time() + timeout
    left = set(names)
    while left and time.time() < end:
        for n in list(left):
            ph = req("GET", ib_path(n)).get("status", {}).get("phase")
            if ph in ("Succeeded", "Failed"):
                if ph == "Failed":
                    print(f"  {n} failed", file=sys.stderr)
                left.discard(n)
        time.sleep(0.5)
    return not left

def pct(xs, p):
    xs = sorted(xs); k = (len(xs) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)

def ts(s):
    from datetime import datetime
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()

TRIVIAL = f"FROM {BB}\nRUN echo ok > /ok\n"
SIX = "".join(f"FROM {BB} AS s{i}\nRUN echo {i} > /{i}\n" for i in range(5)) + \
      f"FROM {BB}\n" + "".join(f"COPY --from=s{i} /{i} /{i}\n" for i in range(5))

def apply_latency(n):
    seen = {}
    stop = threading.Event()
    def watch():
        with urllib.request.urlopen(API + f"/apis/batch/v1/namespaces/{NS}/jobs?watch=1&timeoutSeconds=600") as r:
            for line in r:
                ev = json.loads(line)
                name = ev["object"]["metadata"]["name"]
                if ev["type"] == "ADDED" and name.endswith("-prepare") and name not in seen:
                    seen[name] = time.time()
                if stop.is_set():
                    return
    t = threading.Thread(target=watch, daemon=True); t.start()
    time.sleep(1)
    lat, names = [], []
    for i in range(n):
        name = f"apply-{i}"
        t0 = time.time()
        req("POST", ib_path(), build(name, TRIVIAL, f"{R}/bench/apply:{i}"))
        job = f"{name}-1-prepare"
        while job not in seen and time.time() - t0 < 30:
            time.sleep(0.005)
        lat.append((seen.get(job, float("nan")) - t0) * 1000)
        names.append(name)
        wait_done([name])
    stop.set()
    return lat

def stage_overhead():
    req("POST", ib_path(), build("six", SIX, f"{R}/bench/six:1"))
    wait_done(["six"])
    created_to_running, running_to_done, total = [], [], []
    jobs = req("GET", f"/apis/batch/v1/namespaces/{NS}/jobs?labelSelector=build.slipway.dev/build=six,build.slipway.dev/step=stage")
    for j in jobs["items"]:
        created = ts(j["metadata"]["creationTimestamp"])
        pods = req("GET", f"/api/v1/namespaces/{NS}/pods?labelSelector=job-name={j['metadata']['name']}")
        term = pods["items"][0]["status"]["containerStatuses"][0]["state"]["terminated"]
        started, finished = ts(term["startedAt"]), ts(term["finishedAt"])
        created_to_running.append(started - created)
        running_to_done.append(finished - started)
        total.append(finished - created)
    return created_to_running, running_to_done, total

def operator_cgroup():
    out = subprocess.run(["pgrep", "-f", "/slipway-operator run"], capture_output=True, text=True).stdout.split()
    if not out:
        return None
    pid = out[0]
    cg = {}
    for line in open(f"/proc/{pid}/cgroup"):
        _, ctrl, path = line.strip().split(":", 2)
        for c in ctrl.split(","):
            cg[c] = path
    return pid, cg

def cpu_seconds(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

def peak_rss_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0

RES = re.compile(r'^apiserver_request_total\{(.*)\} (\S+)$')
def api_requests():
    text = urllib.request.urlopen(API + "/metrics").read().decode()
    total = 0.0
    for line in text.splitlines():
        m = RES.match(line)
        if not m:
            continue
        labels = dict(kv.split("=", 1) for kv in re.findall(r'(\w+="[^"]*")', m.group(1)))
        res = labels.get("resource", "").strip('"')
        if res in ("imagebuilds", "jobs", "persistentvolumeclaims", "events", "leases") or \
           (res == "pods" and labels.get("subresource", '""') in ('""', '"log"')):
            total += float(m.group(2))
    return total

def concurrent(n):
    op = operator_cgroup()
    cpu0 = cpu_seconds(op[0]) if op else 0
    api0 = api_requests()
    t0 = time.time()
    names = [f"many-{i}" for i in range(n)]
    for i, name in enumerate(names):
        req("POST", ib_path(), build(name, SIX.replace("echo", f"echo {i}"), f"{R}/bench/many:{i}"))
    ok = wait_done(names, 1800)
    wall = time.time() - t0
    api = api_requests() - api0
    cpu = (cpu_seconds(op[0]) - cpu0) if op else float("nan")
    rss = peak_rss_kb(op[0]) if op else 0
    return ok, wall, cpu, rss, api / n

def buildah_many(n):
    """The concurrent builds' Dockerfiles, built by buildah one after another on this machine."""
    t0 = time.time()
    for i in range(n):
        buildah_peer(SIX.replace("echo", f"echo {i}"), runs=1)
    return time.time() - t0

def buildah_peer(dockerfile, runs=3):
    import tempfile
    times = []
    for _ in range(runs):
        d = tempfile.mkdtemp()
        open(f"{d}/Dockerfile", "w").write(dockerfile)
        t0 = time.time()
        subprocess.run(["buildah", "bud", "--isolation", "chroot", "--layers=false", "--tls-verify=false",
                        "-q", "--jobs", "6", "-t", "localhost/bench/six", d], check=True, capture_output=True)
        subprocess.run(["buildah", "push", "-q", "--tls-verify=false", "localhost/bench/six",
                        f"docker://{R}/bench/buildah-six:1"], check=True, capture_output=True)
        times.append(time.time() - t0)
        subprocess.run(["buildah", "rmi", "-f", "localhost/bench/six"], capture_output=True)
        subprocess.run(["rm", "-rf", d])
    return times

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--builds", type=int, default=20)
    ap.add_argument("--concurrent", type=int, default=20)
    a = ap.parse_args()
    proxy = subprocess.Popen(["kubectl", "proxy", f"--port={PORT}"], stdout=subprocess.DEVNULL)
    try:
        for _ in range(50):
            try:
                req("GET", "/version"); break
            except Exception:
                time.sleep(0.2)
        req("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})
        lat = apply_latency(a.builds)
        print(f"apply -> prepare Job created, {a.builds} builds: p50 {pct(lat, 50):.0f} ms, p95 {pct(lat, 95):.0f} ms, max {max(lat):.0f} ms")
        c2r, r2d, tot = stage_overhead()
        print(f"6 trivial stages, per stage Job (medians): created -> running {statistics.median(c2r):.1f} s, "
              f"running -> done {statistics.median(r2d):.1f} s, created -> done {statistics.median(tot):.1f} s")
        six = req("GET", ib_path("six"))["status"]
        d = ts(six["completionTime"]) - ts(six["startTime"])
        ok, wall, cpu, rss, api = concurrent(a.concurrent)
        print(f"{a.concurrent} builds at once (6 stages each): {'all finished' if ok else 'NOT all finished'} in {wall:.1f} s; "
              f"operator CPU {cpu:.2f} s, peak RSS {rss / 1024:.1f} MB; API requests per build <= {api:.0f}")
        many = buildah_many(a.concurrent)
        print(f"the same {a.concurrent} Dockerfiles with buildah (bud --jobs 6 + push), one after another: "
              f"{many:.1f} s; ratio Slipway/buildah {wall / many:.2f}")
        peer = buildah_peer(SIX)
        print(f"the 6-stage Dockerfile: one ImageBuild {d:.0f} s (status start -> completion); "
              f"buildah bud --jobs 6 + push, median of {len(peer)}: {statistics.median(peer):.1f} s; "
              f"ratio Slipway/buildah {d / statistics.median(peer):.1f}")
    finally:
        try:
            req("DELETE", f"/api/v1/namespaces/{NS}")
        except Exception:
            pass
        proxy.send_signal(signal.SIGTERM)

if __name__ == "__main__":
    main()
