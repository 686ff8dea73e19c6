#!/usr/bin/env python3
"""Slipway on the cluster against kaniko and BuildKit, the same work three ways, in one run.

Run after `eval "$(tests/cluster/up.sh)"` and `eval "$(tests/e2e/deploy.sh)"`, with the peers'
images in the cluster's registry (benches/peer_images.sh) and the contexts laid out by
benches/prepare.sh:
    benches/cluster_peers.py --ctx DIR --kaniko IMAGE --buildkit IMAGE [--builds go,node,...] [--reps 2]
For every build (examples go and node, fanout, gomod, npm, bigfile, files20k, chain, six), the context is one
ConfigMap (a tar.gz, as the ImageBuild docs say) and the image goes to the cluster's registry,
each run to a fresh repository:
  slipway   an ImageBuild (configMap source) with spec.cache: cold with an empty cache
            repository (it fills it), warm with the one the first cold run filled;
  kaniko    a Job (v1.24.0's executor in an image built with Slipway's local mode): an init
            container (busybox) unpacks the ConfigMap into an emptyDir, the executor builds it
            with --skip-unused-stages (Slipway and BuildKit never build unused stages),
            --cache=true: cold with an empty --cache-repo (it fills it), warm with the one the
            first cold run filled;
  buildkit  buildkitd v0.34.2 as a Deployment (rootful, privileged, OCI worker, overlayfs on an
            emptyDir; a Service on tcp 1234), and per build a Job that unpacks the same ConfigMap
            and runs `buildctl build` against it: cold after `buildctl prune --all`, warm right
            after a build of the same Dockerfile (the daemon's own cache).
Reported per build and mode, medians over --reps runs: wall time (POST of the object -> the
build seen finished), pods the build ran (the daemon, shared by all builds, counted apart as +d),
pods per build (Slipway cold:warm), peak memory of the largest build pod (cgroup v1 memory.max_usage_in_bytes of the pod, sampled
every 0.2 s: page cache included; for BuildKit the daemon's, reset before each build), and the
compressed bytes of the pushed image's layers that are not its base's; for Slipway also the
bytes its push pod uploaded (the image push and the cache write, from the pod's `push:` and
`cache: write:` lines), cold and warm;
ratios are peer / Slipway (above 1: Slipway is faster or smaller). Repositories are under
bench/<pid>-<time>/, so a rerun on the same cluster never finds an earlier run's cache.
  --slipway-only    no peer runs (profiling Slipway alone; no ratios)
  BENCH_TIMELINE=1  also prints, per Slipway build, each pod's created, scheduled and container
                    start and end times (seconds from the POST) and the push pod's log lines
                    with theirs: where the build's time goes between pods.
"""
import argparse, glob, json, os, signal, socket, statistics, subprocess, sys, tarfile, tempfile, threading, time
import urllib.request

R = os.environ["SLIPWAY_REGISTRY"]
NS = f"slipway-bench-peers-{os.getpid()}"
# Every repository this run pushes to is under bench/RUN/: a cache a run on the same cluster
# filled earlier is never taken for a cold one.
RUN = f"{os.getpid()}-{int(time.time())}"
BUSYBOX = f"{R}/slipway-test/busybox:latest"


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


PORT = free_port()
API = f"http://127.0.0.1:{PORT}"


def req(method, path, body=None, ctype="application/json"):
    data = json.dumps(body).encode() if body is not None else None
    r = urllib.request.Request(API + path, data=data, method=method, headers={"Content-Type": ctype})
    with urllib.request.urlopen(r) as resp:
        return json.loads(resp.read() or b"{}")


def kubectl(*args, check=True, **kw):
    return subprocess.run(["kubectl", "-n", NS, *args], check=check, capture_output=True, text=True, **kw)


# ---- memory: every pod cgroup of the node, sampled -------------------------------------------
class Sampler(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.peak = {}  # pod uid -> bytes
        self.stop = threading.Event()

    @staticmethod
    def cgroups():
        for d in glob.glob("/sys/fs/cgroup/memory/kubepods*/pod*") + \
                 glob.glob("/sys/fs/cgroup/memory/kubepods*/*/pod*"):
            yield os.path.basename(d)[3:].replace("_", "-"), d

    def run(self):
        while not self.stop.is_set():
            for uid, d in self.cgroups():
                try:
                    v = int(open(f"{d}/memory.max_usage_in_bytes").read())
                except OSError:
                    continue
                if v > self.peak.get(uid, 0):
                    self.peak[uid] = v
            time.sleep(0.2)


def pod_cgroup(uid):
    for u, d in Sampler.cgroups():
        if u == uid:
            return d
    return None


# ---- registry: what a push uploaded ------------------------------------------------------------
def layers(ref):
    host, rest = ref.split("/", 1); name, tag = rest.rsplit(":", 1)
    r = urllib.request.Request(f"http://{host}/v2/{name}/manifests/{tag}", headers={"Accept": ",".join([
        "application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"])})
    return {l["digest"]: l["size"] for l in json.load(urllib.request.urlopen(r))["layers"]}


def own_bytes(ref, base):
    try:
        b = layers(base)
        return sum(s for d, s in layers(ref).items() if d not in b)
    except Exception as e:  # a failed build pushed nothing
        print(f"  bytes of {ref}: {e}", file=sys.stderr)
        return float("nan")


def final_base(ctx, name):
    """The final stage's base image, through the stages it is FROM (`FROM two`)."""
    base, stages = None, {}
    for line in open(f"{ctx}/{name}/Dockerfile"):
        if line.startswith("FROM "):
            words = line.split()
            base = stages.get(words[1], words[1])
            if len(words) == 4 and words[2].upper() == "AS":
                stages[words[3]] = base
    return base.replace("${BASE_REGISTRY}", R)


# ---- the three builders --------------------------------------------------------------------------
def wait(getter, timeout=1200):
    end = time.time() + timeout
    while time.time() < end:
        state = getter()
        if state:
            return state
        time.sleep(0.25)
    return "Timeout"


def pods_of(selector):
    return req("GET", f"/api/v1/namespaces/{NS}/pods?labelSelector={selector}")["items"]


def unpack_init():
    return {"name": "context", "image": BUSYBOX, "command": ["sh", "-c", "tar -xzf /cm/context.tar.gz -C /workspace"],
            "volumeMounts": [{"name": "cm", "mountPath": "/cm"}, {"name": "ws", "mountPath": "/workspace"}]}


def job(name, container, cm):
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never", "enableServiceLinks": False, "automountServiceAccountToken": False,
                "initContainers": [unpack_init()], "containers": [container],
                "volumes": [{"name": "cm", "configMap": {"name": cm}}, {"name": "ws", "emptyDir": {}}]}}}}


def job_done(name):
    def get():
        st = req("GET", f"/apis/batch/v1/namespaces/{NS}/jobs/{name}").get("status", {})
        if st.get("succeeded"):
            return "Succeeded"
        if st.get("failed"):
            return "Failed"
        return None
    return get


def run_slipway(name, build, dest, cache_repo):
    body = {"apiVersion": "build.slipway.dev/v1alpha1", "kind": "ImageBuild", "metadata": {"name": name},
            "spec": {"source": {"configMap": {"name": f"ctx-{build}"}},
                     "buildArgs": [{"name": "BASE_REGISTRY", "value": R}],
                     "cache": {"repository": cache_repo}, "sourceDateEpoch": 1700000000,
                     "output": {"image": dest, "insecureRegistry": True}, "timeout": "20m"}}
    t0 = time.time()
    req("POST", f"/apis/build.slipway.dev/v1alpha1/namespaces/{NS}/imagebuilds", body)
    path = f"/apis/build.slipway.dev/v1alpha1/namespaces/{NS}/imagebuilds/{name}"
    state = wait(lambda: (lambda p: p if p in ("Succeeded", "Failed") else None)(
        req("GET", path).get("status", {}).get("phase")))
    wall = time.time() - t0
    if state != "Succeeded":
        print(f"  {name}: {state}: {req('GET', path).get('status', {}).get('conditions')}", file=sys.stderr)
    pods = pods_of(f"build.slipway.dev/build={name}")
    if os.environ.get("BENCH_TIMELINE"):
        timeline(pods, t0)
        push_log(name, t0)
    return state, wall, pods


def stamp(s):
    from datetime import datetime
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").timestamp() if s else None


def timeline(pods, t0):
    """One line per pod: seconds after the POST at which it was created, scheduled, and its
    containers (init containers first) ran; Kubernetes stamps whole seconds."""
    rows = []
    for p in pods:
        m, st = p["metadata"], p.get("status", {})
        sched = next((c.get("lastTransitionTime") for c in st.get("conditions", []) if c["type"] == "PodScheduled"), None)
        parts = [f"created {stamp(m['creationTimestamp']) - t0:5.1f}", f"scheduled {(stamp(sched) or t0) - t0:5.1f}"]
        for c in st.get("initContainerStatuses", []) + st.get("containerStatuses", []):
            t = c.get("state", {}).get("terminated") or {}
            if t:
                parts.append(f"{c['name']} {stamp(t.get('startedAt')) - t0:5.1f}..{stamp(t.get('finishedAt')) - t0:5.1f}")
        rows.append((stamp(m["creationTimestamp"]), f"    {m['name'][-28:]:28} " + "  ".join(parts)))
    for _, line in sorted(rows):
        print(line, file=sys.stderr)


def push_log(name, t0):
    """The push pod's lines, each with its time after the POST (the kubelet's stamps)."""
    from datetime import datetime
    out = kubectl("logs", "--tail=-1", "--timestamps", "-l",
                  f"build.slipway.dev/build={name},build.slipway.dev/step=push", check=False).stdout
    for line in out.splitlines():
        stamp_, _, text = line.partition(" ")
        try:
            t = datetime.fromisoformat(stamp_[:26].rstrip("Z") + "+00:00").timestamp()
        except ValueError:
            continue
        if not text.startswith("slipway-result:"):
            print(f"      {t - t0:6.2f} {text[:110]}", file=sys.stderr)


def uploaded(name):
    """Bytes the build's push pod uploaded: its `push:` and `cache: write:` lines."""
    out = kubectl("logs", "--tail=-1", "-l",
                  f"build.slipway.dev/build={name},build.slipway.dev/step=push", check=False).stdout
    total = 0
    for line in out.splitlines():
        if line.startswith(("push: ", "cache: write: ")) and line.endswith(" bytes)"):
            total += int(line.rsplit("(", 1)[1].split()[0])
    return total


def run_kaniko(name, build, dest, image, cache_repo):
    c = {"name": "kaniko", "image": image,
         "args": ["--context=dir:///workspace", "--dockerfile=/workspace/Dockerfile", f"--destination={dest}",
                  f"--build-arg=BASE_REGISTRY={R}", "--skip-unused-stages",
                  "--insecure", "--insecure-pull", "--skip-tls-verify", "--skip-tls-verify-pull",
                  f"--insecure-registry={R}", f"--skip-tls-verify-registry={R}",
                  "--cache=true", f"--cache-repo={cache_repo}"],
         "volumeMounts": [{"name": "ws", "mountPath": "/workspace"}]}
    t0 = time.time()
    req("POST", f"/apis/batch/v1/namespaces/{NS}/jobs", job(name, c, f"ctx-{build}"))
    state = wait(job_done(name))
    wall = time.time() - t0
    pods = pods_of(f"job-name={name}")
    if state != "Succeeded":
        print(f"  {name}: {state}\n" + kubectl("logs", f"job/{name}", "--tail=15", check=False).stdout, file=sys.stderr)
    return state, wall, pods


class BuildKit:
    def __init__(self, image):
        self.image = image
        dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "buildkitd"},
               "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "buildkitd"}},
                        "template": {"metadata": {"labels": {"app": "buildkitd"}}, "spec": {
                            "enableServiceLinks": False, "automountServiceAccountToken": False,
                            "hostNetwork": True,
                            "containers": [{"name": "buildkitd", "image": image,
                                            "args": ["--config", "/etc/buildkit/buildkitd.toml",
                                                     "--addr", "unix:///run/buildkit/buildkitd.sock",
                                                     "--addr", "tcp://0.0.0.0:1234"],
                                            "securityContext": {"privileged": True},
                                            "readinessProbe": {"exec": {"command": ["buildctl", "debug", "workers"]},
                                                               "periodSeconds": 2},
                                            "volumeMounts": [{"name": "state", "mountPath": "/var/lib/buildkit"}]}],
                            "volumes": [{"name": "state", "emptyDir": {}}]}}}}
        req("POST", f"/apis/apps/v1/namespaces/{NS}/deployments", dep)
        kubectl("rollout", "status", "deployment/buildkitd", "--timeout=180s")
        self.pod = pods_of("app=buildkitd")[0]
        # On the node's address: the test cluster drops traffic forwarded from one pod to
        # another (tests/cluster keeps pods off every network but the node's), which buildctl
        # to buildkitd at a pod or Service address is.
        self.ip = self.pod["status"]["hostIP"]

    def prune(self):
        kubectl("exec", self.pod["metadata"]["name"], "--", "buildctl", "prune", "--all")

    def run(self, name, build, dest):
        cg = pod_cgroup(self.pod["metadata"]["uid"])
        if cg:
            open(f"{cg}/memory.max_usage_in_bytes", "w").write("0")
        c = {"name": "buildctl", "image": self.image, "command": [
            "buildctl", "--addr", f"tcp://{self.ip}:1234", "build", "--frontend", "dockerfile.v0",
            "--local", "context=/workspace", "--local", "dockerfile=/workspace",
            "--opt", f"build-arg:BASE_REGISTRY={R}",
            "--output", f"type=image,name={dest},push=true,registry.insecure=true"],
             "volumeMounts": [{"name": "ws", "mountPath": "/workspace"}]}
        t0 = time.time()
        req("POST", f"/apis/batch/v1/namespaces/{NS}/jobs", job(name, c, f"ctx-{build}"))
        state = wait(job_done(name))
        wall = time.time() - t0
        pods = pods_of(f"job-name={name}")
        if state != "Succeeded":
            print(f"  {name}: {state}\n" + kubectl("logs", f"job/{name}", "--tail=15", check=False).stdout, file=sys.stderr)
        daemon = int(open(f"{cg}/memory.max_usage_in_bytes").read()) if cg else float("nan")
        return state, wall, pods, daemon


def med(xs):
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ctx", required=True)
    ap.add_argument("--kaniko", required=True)
    ap.add_argument("--buildkit", required=True)
    ap.add_argument("--builds", default="go,node,fanout,gomod,npm,bigfile,files20k,chain,six")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--slipway-only", action="store_true", help="no peer runs (profiling; no ratios)")
    a = ap.parse_args()
    proxy = subprocess.Popen(["kubectl", "proxy", f"--port={PORT}"], stdout=subprocess.DEVNULL)
    sampler = Sampler(); sampler.start()
    seq = [0]

    def fresh(kind, build):
        seq[0] += 1
        return f"{kind}-{build}-{seq[0]}", f"{R}/bench/{RUN}/{kind}-{build}-{seq[0]}:latest"

    rows = []
    try:
        for _ in range(50):
            try:
                req("GET", "/version"); break
            except Exception:
                time.sleep(0.2)
        req("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})
        bk = None if a.slipway_only else BuildKit(a.buildkit)
        for build in a.builds.split(","):
            with tempfile.TemporaryDirectory() as t:
                with tarfile.open(f"{t}/context.tar.gz", "w:gz") as tf:
                    tf.add(f"{a.ctx}/{build}", arcname=".")
                kubectl("create", "configmap", f"ctx-{build}", f"--from-file=context.tar.gz={t}/context.tar.gz")
            base = final_base(a.ctx, build)
            res = {m: [] for m in ("sc", "sw", "kc", "kw", "bc", "bw")}

            def record(mode, state, wall, pods, extra_mem=None):
                peaks = [sampler.peak.get(p["metadata"]["uid"], 0) for p in pods]
                mem = max(peaks + ([extra_mem] if extra_mem is not None else []), default=0)
                res[mode].append({"ok": state == "Succeeded", "wall": wall, "pods": len(pods), "mem": mem})
                print(f"  {build} {mode}: {state} {wall:.1f} s, {len(pods)} pods, peak {mem / 1e6:.0f} MB", file=sys.stderr)

            for rep in range(a.reps):
                n, dest = fresh("sc", build)
                st, wall, pods = run_slipway(n, build, dest, f"{R}/bench/{RUN}/scache-{build}-{seq[0]}")
                first_scache = first_scache if rep else f"{R}/bench/{RUN}/scache-{build}-{seq[0]}"
                time.sleep(1)
                record("sc", st, wall, pods); res["sc"][-1]["bytes"] = own_bytes(dest, base)
                res["sc"][-1]["up"] = uploaded(n)
                n, dest = fresh("sw", build)
                st, wall, pods = run_slipway(n, build, dest, first_scache)
                time.sleep(1)
                record("sw", st, wall, pods); res["sw"][-1]["up"] = uploaded(n)
                if bk is None:
                    continue
                n, dest = fresh("kc", build)
                st, wall, pods = run_kaniko(n, build, dest, a.kaniko, f"{R}/bench/{RUN}/kcache-{build}-{seq[0]}")
                first_cache = first_cache if rep else f"{R}/bench/{RUN}/kcache-{build}-{seq[0]}"
                time.sleep(1)
                record("kc", st, wall, pods); res["kc"][-1]["bytes"] = own_bytes(dest, base)
                n, dest = fresh("kw", build)
                st, wall, pods = run_kaniko(n, build, dest, a.kaniko, first_cache)
                time.sleep(1)
                record("kw", st, wall, pods)
                bk.prune()
                n, dest = fresh("bc", build)
                st, wall, pods, dm = bk.run(n, build, dest)
                time.sleep(1)
                record("bc", st, wall, pods, dm); res["bc"][-1]["bytes"] = own_bytes(dest, base)
                n, dest = fresh("bw", build)
                st, wall, pods, dm = bk.run(n, build, dest)
                time.sleep(1)
                record("bw", st, wall, pods, dm)
            rows.append((build, res))
            summarize(rows[-1:], header=not rows[:-1])
        print("\nall builds (medians):")
        summarize(rows, header=True)
    finally:
        sampler.stop.set()
        try:
            req("DELETE", f"/api/v1/namespaces/{NS}")
        except Exception:
            pass
        proxy.send_signal(signal.SIGTERM)
        proxy.wait()


def summarize(rows, header):
    if header:
        print(f"{'build':9} | {'slipway':>8} {'kaniko':>8} {'ratio':>5} {'buildkit':>8} {'ratio':>5} | "
              f"{'sw_warm':>8} {'kaniko_w':>8} {'ratio':>5} {'bk_warm':>8} {'ratio':>5} | {'pods s/k/b':>10} | "
              f"{'MB s/k/b':>14} | {'pushed MB s/k/b':>16} | {'sw up MB c/w':>12}")
    for build, res in rows:
        def m(mode, key):
            return med([r[key] for r in res[mode] if r["ok"]])
        def fails(mode):
            f = sum(not r["ok"] for r in res[mode])
            return f"!{f}" if f else ""
        sc, sw = m("sc", "wall"), m("sw", "wall")
        def rt(x, by):
            return f"{x / by:5.2f}" if by == by and x == x else "    -"
        kc, kw, bc, bw = m("kc", "wall"), m("kw", "wall"), m("bc", "wall"), m("bw", "wall")
        pods = f"{m('sc', 'pods'):.0f}:{m('sw', 'pods'):.0f}/{m('kc', 'pods'):.0f}/{m('bc', 'pods'):.0f}+d"
        mem = f"{m('sc', 'mem') / 1e6:.0f}/{m('kc', 'mem') / 1e6:.0f}/{m('bc', 'mem') / 1e6:.0f}"
        by = f"{m('sc', 'bytes') / 1e6:.1f}/{m('kc', 'bytes') / 1e6:.1f}/{m('bc', 'bytes') / 1e6:.1f}"
        up = f"{m('sc', 'up') / 1e6:.1f}/{m('sw', 'up') / 1e6:.1f}"
        print(f"{build:9} | {sc:8.1f} {kc:8.1f}{fails('kc')} {rt(kc, sc)} {bc:8.1f}{fails('bc')} {rt(bc, sc)} | "
              f"{sw:8.1f}{fails('sw')} {kw:8.1f}{fails('kw')} {rt(kw, sw)} {bw:8.1f}{fails('bw')} {rt(bw, sw)} | "
              f"{pods:>10} | {mem:>14} | {by:>16} | {up:>12}"
              + (f"  slipway failed {fails('sc')}" if fails("sc") else ""))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
