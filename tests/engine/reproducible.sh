# Sourced by tests/engine/run.sh: reproducible images (issue 13, part 5). Two local builds of
# the same input with the same SOURCE_DATE_EPOCH, a while apart and with the context's files
# touched in between, push the same manifest digest; the config's and the new history's
# `created` say the epoch, and the base image's layers are the very blobs of the base. Without
# SOURCE_DATE_EPOCH the two builds differ, and the test says where.

RP=$WORK/reproducible
mkdir -p "$RP/ctx"
cat > "$RP/ctx/Dockerfile" <<'DF'
ARG BASE_REGISTRY=127.0.0.1:5055
FROM ${BASE_REGISTRY}/slipway-test/busybox:latest
COPY app.txt /app/
RUN mkdir -p /out/sub && echo built > /out/sub/file && ln -s sub/file /out/link && touch /app/app.txt
WORKDIR /work
ENV MODE=repro
CMD ["cat", "/out/sub/file"]
DF
echo "hello reproducible" > "$RP/ctx/app.txt"
RP_EPOCH=1700000000

# rp_build NAME [args...]: a build whose context files and new files are all newer than the
# epoch (touched now), so every time in the new layers is clamped.
rp_build() {
  local name=$1; shift
  touch "$RP/ctx/app.txt" "$RP/ctx/Dockerfile"
  build "$name" "$RP/ctx" "$@" >"$WORK/build-$name.log" 2>&1 || { tail -20 "$WORK/build-$name.log"; return 1; }
}
rp_digest() { skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$R/engine-tests/$1:latest"; }
rp_layers() { skopeo inspect --tls-verify=false --format '{{range .Layers}}{{.}} {{end}}' "docker://$R/engine-tests/$1:latest"; }
rp_config() { skopeo inspect --tls-verify=false --config --raw "docker://$R/engine-tests/$1:latest"; }

if want reproducible; then
  t_reproducible() {
    SOURCE_DATE_EPOCH=$RP_EPOCH rp_build repro-a || return 1
    sleep 2   # a later second: a time that leaked through would show
    rp_build repro-b --source-date-epoch "$RP_EPOCH" || return 1
    local a b
    a=$(rp_digest repro-a) && b=$(rp_digest repro-b) || return 1
    echo "with SOURCE_DATE_EPOCH=$RP_EPOCH: repro-a $a"
    echo "with SOURCE_DATE_EPOCH=$RP_EPOCH: repro-b $b"
    [[ $a == "$b" ]] || { echo "the digests differ"; diff <(rp_config repro-a | python3 -m json.tool) <(rp_config repro-b | python3 -m json.tool); return 1; }
    # created: the config's and every history entry this build added.
    rp_config repro-a | python3 -c '
import json, sys
c = json.load(sys.stdin)
want = "2023-11-14T22:13:20Z"
assert c["created"] == want, c.get("created")
new = [h for h in c["history"] if h.get("comment") == "buildkit.dockerfile.v0"]
assert len(new) == 5 and all(h.get("created") == want for h in new), new
print("config and %d new history entries created %s" % (len(new), want))
' || return 1
    # Base layers untouched: the image starts with the base's own blobs.
    local base ours
    base=$(skopeo inspect --tls-verify=false --format '{{range .Layers}}{{.}} {{end}}' "docker://$R/slipway-test/busybox:latest") || return 1
    ours=$(rp_layers repro-a) || return 1
    [[ $ours == "$base"* ]] || { echo "base layers changed: $base / $ours"; return 1; }
    echo "base layers kept: $base"
    # No time in the new layers is later than the epoch; what this build wrote (touched now)
    # says the epoch itself.
    rm -rf "$WORK/oci-repro-a"
    skopeo copy -q --src-tls-verify=false "docker://$R/engine-tests/repro-a:latest" "oci:$WORK/oci-repro-a:latest" || return 1
    python3 - "$WORK/oci-repro-a" "$RP_EPOCH" "$base" <<'PY' || return 1
import json, sys, tarfile
layout, epoch, base = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
blob = lambda d: layout + "/blobs/sha256/" + d.split(":")[1]
index = json.load(open(layout + "/index.json"))
manifest = json.load(open(blob(index["manifests"][0]["digest"])))
n, at = 0, {}
for l in manifest["layers"]:
    if l["digest"] in base:
        continue
    with tarfile.open(blob(l["digest"])) as t:
        for m in t.getmembers():
            assert m.mtime <= epoch, (m.name, m.mtime)
            at[m.name] = m.mtime
            n += 1
for p in ("app/app.txt", "out/sub/file", "out/link", "work"):
    assert at.get(p) == epoch, (p, at.get(p))
print("%d entries in the new layers, none after %d: %s" % (n, epoch, sorted(at.items())))
PY
    check_run repro-a <(echo built)
  }
  # What it found, shown also when it passes.
  t_reproducible_shown() { t_reproducible | tee "$RP/reproducible.txt"; return "${PIPESTATUS[0]}"; }
  run_test reproducible t_reproducible_shown
  sed 's/^/     /' "$RP/reproducible.txt"

  # Without SOURCE_DATE_EPOCH, as before: no created, and the RUN layer holds the time it ran.
  t_not_reproducible() {
    rp_build repro-c || return 1
    sleep 2
    rp_build repro-d || return 1
    local c d
    c=$(rp_digest repro-c) && d=$(rp_digest repro-d) || return 1
    echo "without: repro-c $c"
    echo "without: repro-d $d"
    [[ $c != "$d" ]] || { echo "the same digest without SOURCE_DATE_EPOCH: times were not kept"; return 1; }
    rp_config repro-c | python3 -c 'import json, sys; c = json.load(sys.stdin); assert "created" not in c, c["created"]' || return 1
    local lc=($(rp_layers repro-c)) ld=($(rp_layers repro-d)) i
    for i in "${!lc[@]}"; do
      [[ ${lc[i]} == "${ld[i]}" ]] && echo "layer $i same" || echo "layer $i differs: mtimes of the files it adds"
    done
  }
  t_not_reproducible_shown() { t_not_reproducible | tee "$RP/without.txt"; return "${PIPESTATUS[0]}"; }
  run_test reproducible-without-epoch t_not_reproducible_shown
  sed 's/^/     /' "$RP/without.txt"
fi
