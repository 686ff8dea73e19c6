# Sourced by tests/engine/run.sh: an untrusted base image (A2) with a setuid-root binary, a
# world-writable block device node and overlayfs/SELinux xattrs (H6, L7). Local mode unpacks
# base images as root on the host; before the fix they landed in a 0755 state directory, where
# any local user could run the setuid binary or open the raw disk. The state directory must be
# 0700 with every setuid file and device node beneath it, and no trusted.* or security.selinux
# xattr may reach the unpacked tree.

HS=$WORK/hostile-setuid
mkdir -p "$HS/ctx"
# A state directory in a world-reachable place, as /var/lib/slipway is.
HS_PUB=$(mktemp -d /var/tmp/slipway-hostile-setuid.XXXXXX)
chmod 755 "$HS_PUB"
HS_STATE=$HS_PUB/state
HS_IMAGE=$R/slipway-test/hostile-setuid:latest

printf '#include <stdio.h>\n#include <unistd.h>\nint main(void) { printf("euid %%d\\n", (int)geteuid()); return 0; }\n' > "$HS/probe.c"
hs_image() {
  gcc -static -O2 -o "$HS/probe" "$HS/probe.c" || return 1
  python3 - "$HS/layout" "$HS/probe" <<'PY' || return 1
import gzip, hashlib, io, json, os, sys, tarfile
layout, probe = sys.argv[1], sys.argv[2]
buf = io.BytesIO()
def entry(tar, name, kind=tarfile.DIRTYPE, mode=0o755, data=None, link="", dev=(0, 0), xattrs=None):
    i = tarfile.TarInfo(name)
    i.type, i.mode, i.linkname = kind, mode, link
    i.devmajor, i.devminor = dev
    if xattrs:
        i.pax_headers = {"SCHILY.xattr." + k: v for k, v in xattrs.items()}
    if data is not None:
        i.size = len(data)
        tar.addfile(i, io.BytesIO(data))
    else:
        tar.addfile(i)
with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
    for d in ("bin", "etc", "evil", "opq"):
        entry(tar, d)
    entry(tar, "tmp", mode=0o1777)
    busybox = open("/bin/busybox", "rb").read()
    entry(tar, "bin/busybox", tarfile.REGTYPE, 0o755, busybox)
    for applet in ("sh", "cat", "ls", "head", "stat", "test", "echo", "id"):
        entry(tar, "bin/" + applet, tarfile.SYMTYPE, 0o777, link="busybox")
    entry(tar, "bin/suid-probe", tarfile.REGTYPE, 0o4755, open(probe, "rb").read())
    entry(tar, "evil/suid-shell", tarfile.REGTYPE, 0o4755, busybox)
    entry(tar, "evil/sda", tarfile.BLKTYPE, 0o666, dev=(8, 0))
    entry(tar, "evil/mem", tarfile.CHRTYPE, 0o666, dev=(1, 1))
    entry(tar, "evil/labelled", tarfile.REGTYPE, 0o644, b"x",
          xattrs={"security.selinux": "system_u:object_r:shadow_t:s0", "user.slipway": "kept"})
    entry(tar, "opq/keep", tarfile.REGTYPE, 0o644, b"k")
    entry(tar, "opq", xattrs={"trusted.overlay.opaque": "y", "trusted.overlay.redirect": "/etc"})
    entry(tar, "etc/passwd", tarfile.REGTYPE, 0o644,
          b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    entry(tar, "etc/group", tarfile.REGTYPE, 0o644, b"root:x:0:\nnogroup:x:65534:\n")
raw = buf.getvalue()
gz = gzip.compress(raw, mtime=0)
sha = lambda b: "sha256:" + hashlib.sha256(b).hexdigest()
os.makedirs(layout + "/blobs/sha256", exist_ok=True)
def blob(b):
    open(layout + "/blobs/sha256/" + sha(b)[7:], "wb").write(b)
    return sha(b)
config = json.dumps({"architecture": "amd64", "os": "linux",
    "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]},
    "rootfs": {"type": "layers", "diff_ids": [sha(raw)]}}).encode()
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blob(config), "size": len(config)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": blob(gz), "size": len(gz)}]}).encode()
md = blob(manifest)
json.dump({"imageLayoutVersion": "1.0.0"}, open(layout + "/oci-layout", "w"))
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": md, "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": "latest"}}]},
    open(layout + "/index.json", "w"))
PY
  skopeo copy -q --dest-tls-verify=false "oci:$HS/layout:latest" "docker://$HS_IMAGE"
}

cat > "$HS/ctx/Dockerfile" <<DF
FROM $HS_IMAGE
USER nobody
RUN /bin/suid-probe > /tmp/probe-as-nobody
USER root
RUN head -c 1 /evil/sda >/dev/null 2>&1 && echo "raw disk read" > /tmp/disk || echo "no raw disk" > /tmp/disk
CMD ["/bin/sh", "-c", "cat /tmp/probe-as-nobody /tmp/disk"]
DF

t_hs_base() {
  hs_image || { echo "could not make the hostile image"; return 1; }
  local out
  out=$("$ENGINE" build --context "$HS/ctx" --destination "$R/engine-tests/hostile-local-setuid:latest" \
    --insecure-registry "$R" --state-dir "$HS_STATE" 2>&1) || { echo "$out" | tail -20; return 1; }
  # The state directory is root's alone; every setuid file and device node is beneath it.
  [[ $(stat -c %a "$HS_STATE") == 700 ]] || { echo "state directory mode $(stat -c %a "$HS_STATE")"; return 1; }
  local found outside
  found=$(find "$HS_PUB" \( -perm -4000 -o -type b -o -type c \) 2>/dev/null)
  [[ -n $found ]] || { echo "the base image was not unpacked where expected"; return 1; }
  outside=$(grep -v "^$HS_STATE/" <<<"$found")
  [[ -z $outside ]] || { echo "outside the state directory: $outside"; return 1; }
  # Another user of the host reaches none of it.
  local suid
  suid=$(grep -m1 'evil/suid-shell$' <<<"$found")
  if setpriv --reuid=65534 --regid=65534 --clear-groups test -e "$suid" 2>/dev/null ||
     setpriv --reuid=65534 --regid=65534 --clear-groups ls "$HS_STATE" >/dev/null 2>&1; then
    echo "user nobody reaches $suid"; return 1
  fi
  # L7: no trusted.* or security.selinux xattr from the layer on the host's tree.
  local tree
  tree=$(dirname "$(dirname "$suid")")
  python3 - "$tree" <<'PY' || return 1
import os, sys
tree = sys.argv[1]
bad = []
for p in ("opq", "evil/labelled"):
    names = os.listxattr(os.path.join(tree, p), follow_symlinks=False)
    bad += [f"{p}: {n}" for n in names if n.startswith("trusted.") or n == "security.selinux"]
if bad and not os.path.exists("/sys/fs/selinux/enforce"):
    sys.exit("xattrs from the layer on the host: " + ", ".join(bad))
if not os.path.exists(os.path.join(tree, "opq/keep")):
    sys.exit("opq/keep was hidden")
PY
  echo "state 0700; $(wc -l <<<"$found") setuid files and device nodes, all under it"
}
run_test hostile-local-setuid-base t_hs_base

# noNewPrivileges stays false, as in Docker and BuildKit: after USER nobody a setuid-root binary
# of the image still runs as root (`RUN sudo ...` works), and the image's device node cannot be
# opened (the container's device rules).
t_hs_run() {
  [[ -d $HS_STATE ]] || { echo "needs hostile-local-setuid-base"; return 1; }
  check_run hostile-local-setuid <(printf 'euid 0\nno raw disk\n')
}
run_test hostile-local-setuid-run-as-docker t_hs_run

rm -rf "$HS_PUB"
