# Sourced by run.sh (SLIPWAY_ENGINE_ONLY=hostile-stage-processes): T10 (M2). A RUN (A2) leaves
# a process appending to a big file while the engine walks the tree and writes the layer.
# Before, the layer's tar entry was longer than its header said (a corrupt or smuggled layer)
# and the process kept running into the next RUN. Now every process a RUN started is killed
# and reaped before the walk: the build succeeds, its layers read back whole, the next RUN
# sees no such process, and none is left on the host.

HP=$WORK/hostile-stage-processes
mkdir -p "$HP/ctx"
# The marker is put together at run time, so no command line but the loop's holds it.
hp_marker="slipway-hostile-m2-loop-$$"
cat > "$HP/ctx/Dockerfile" <<DF
FROM $R/slipway-test/busybox:latest
RUN printf 'while :; do echo x >> /big; done\n' > /$hp_marker.sh \
 && dd if=/dev/zero of=/big bs=1M count=64 2>/dev/null \
 && (sh /$hp_marker.sh </dev/null >/dev/null 2>&1 &) && sleep 1
RUN m=slipway-hostile-m2; for p in /proc/[0-9]*; do \
      if grep -q "\$m-loop" \$p/cmdline 2>/dev/null; then echo "still running: \$p"; exit 1; fi; \
    done
RUN true
DF
t_hp_background() {
  build hostile-stage-processes "$HP/ctx" >"$HP/build.log" 2>&1 || { tail -20 "$HP/build.log"; return 1; }
  if pgrep -f "$hp_marker" >/dev/null; then
    echo "left running on the host:"; pgrep -af "$hp_marker"
    pgrep -f "$hp_marker" | xargs -r kill -9
    return 1
  fi
  # Every layer reads back: each tar entry as long as its header says (imagetool unpack
  # reads them all, and fails on a short or overlong entry).
  rm -rf "$HP/oci" "$HP/rootfs"
  skopeo copy -q --src-tls-verify=false "docker://$R/engine-tests/hostile-stage-processes:latest" "oci:$HP/oci:latest" || return 1
  python3 "$here/imagetool.py" unpack "$HP/oci" "$HP/rootfs" || return 1
  python3 - "$HP/oci" <<'PY' || return 1
import gzip, json, os, sys, tarfile
oci = sys.argv[1]
blob = lambda d: os.path.join(oci, "blobs", *d.split(":", 1))
man = json.load(open(blob(json.load(open(os.path.join(oci, "index.json")))["manifests"][0]["digest"])))
for l in man["layers"]:
    with gzip.open(blob(l["digest"])) as f:
        t = tarfile.open(fileobj=f, mode="r|")
        for m in t:
            if m.isfile():
                n = len(t.extractfile(m).read())
                assert n == m.size, f"{m.name}: {n} bytes, header says {m.size}"
        # After the last entry: only the zero blocks of the end of the archive.
        rest = f.read()
        assert rest.strip(b"\0") == b"", f"{len(rest)} bytes after the end of {l['digest']}"
print(len(man["layers"]), "layers whole")
PY
  local size; size=$(stat -c %s "$HP/rootfs/big")
  ((size > 64 * 1024 * 1024)) || { echo "/big has $size bytes"; return 1; }
  rm -rf "$HP/rootfs"
}
run_test hostile-stage-background-process t_hp_background
