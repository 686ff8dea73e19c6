#!/usr/bin/env python3
"""Reads images back for the engine tests, from an OCI layout that skopeo wrote.

  imagetool.py unpack OCI_DIR ROOTFS        apply the layers (whiteouts honoured) as root
  imagetool.py tree OCI_DIR                 the flattened file tree, one JSON line per path:
                                            type, mode, uid, gid, size, sha256, link (no mtimes)
  imagetool.py config OCI_DIR               the runtime config fields the fidelity test compares
  imagetool.py runspec OCI_DIR ROOTFS BUNDLE  a runc config.json that runs the image as Docker would
  imagetool.py layers OCI_DIR               per layer: digest, then its entries (whiteouts too)
  imagetool.py leaks OCI_DIR SECRET REGEX   fails, naming each, if the config or a layer holds
                                            SECRET's bytes or an entry whose path matches REGEX
                                            (the hostile tests' "nothing leaked into the image")
  imagetool.py compare [--peer NAME] [--known FILE --case CASE] OURS THEIRS OURS_CONFIG THEIRS_CONFIG
                                            file trees, runtime configs and history
                                            (created_by, empty_layer) equal, except the
                                            documented differences of CASE in FILE
                                            (see read_known; the configs are raw JSON)

Names are the tar's raw bytes (tarfile decodes them with surrogateescape, so unpack writes
them back byte for byte); where a name is printed, a byte that is not UTF-8 is shown as \\xNN
(`caf\\xe9`), so printing never fails whatever the locale.
"""
import gzip
import hashlib
import json
import os
import stat
import sys
import tarfile


def manifest(oci):
    with open(os.path.join(oci, "index.json")) as f:
        idx = json.load(f)
    desc = idx["manifests"][0]
    return blob_json(oci, desc["digest"])


def blob_path(oci, digest):
    algo, hexd = digest.split(":", 1)
    return os.path.join(oci, "blobs", algo, hexd)


def blob_json(oci, digest):
    with open(blob_path(oci, digest)) as f:
        return json.load(f)


def open_layer(oci, desc):
    p = blob_path(oci, desc["digest"])
    with open(p, "rb") as f:
        magic = f.read(2)
    raw = gzip.open(p, "rb") if magic == b"\x1f\x8b" else open(p, "rb")
    return tarfile.open(fileobj=raw, mode="r|")


def shown(name):
    """A name for printing: its bytes as UTF-8, a byte that is not UTF-8 as \\xNN."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def norm(name):
    """A tar name relative to the root: `./a/`, `/a` and `a` are all `a`. Only `./` and `/`
    prefixes go (a leading `.` is part of the name: `.wh.x` at the top, `.profile`)."""
    while name.startswith(("./", "/")):
        name = name[1:] if name.startswith("/") else name[2:]
    name = name.rstrip("/")
    return "" if name == "." else name


def flatten(oci):
    """path -> entry dict, after applying every layer in order."""
    tree = {}
    for desc in manifest(oci)["layers"]:
        added = set()
        tf = open_layer(oci, desc)
        for m in tf:
            name = norm(m.name)
            if not name:
                continue
            d, base = os.path.split(name)
            if base == ".wh..wh..opq":
                prefix = d + "/"
                for k in [k for k in tree if k.startswith(prefix) and k not in added]:
                    del tree[k]
                continue
            if base.startswith(".wh."):
                gone = os.path.join(d, base[4:])
                for k in [k for k in tree if k == gone or k.startswith(gone + "/")]:
                    del tree[k]
                continue
            e = {"mode": oct(m.mode & 0o7777), "uid": m.uid, "gid": m.gid}
            if m.isdir():
                e["type"] = "dir"
            elif m.issym():
                e["type"] = "symlink"
                e["link"] = m.linkname
            elif m.islnk():
                target = tree.get(norm(m.linkname), {})
                e = dict(target)
                e["hardlink"] = True
            elif m.isfile():
                e["type"] = "file"
                e["size"] = m.size
                f = tf.extractfile(m)
                e["sha256"] = hashlib.sha256(f.read()).hexdigest()
            elif m.isfifo():
                e["type"] = "fifo"
            elif m.ischr() or m.isblk():
                e["type"] = "chr" if m.ischr() else "blk"
                e["dev"] = [m.devmajor, m.devminor]
            else:
                continue
            if e.get("type") != "dir" and name in tree and tree[name].get("type") == "dir":
                for k in [k for k in tree if k.startswith(name + "/")]:
                    del tree[k]
            tree[name] = e
            added.add(name)
    return tree


def cmd_tree(oci):
    for path in sorted(flatten(oci)):
        e = dict(flatten_cache[path])
        e.pop("hardlink", None)
        if "link" in e:
            e["link"] = shown(e["link"])
        print(json.dumps({"path": shown(path), **e}, sort_keys=True))


def cmd_config(oci):
    cfg = blob_json(oci, manifest(oci)["config"]["digest"]).get("config", {}) or {}
    keys = ["Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes",
            "Labels", "StopSignal", "Healthcheck", "Shell", "OnBuild"]
    out = {}
    for k in keys:
        v = cfg.get(k)
        if v in (None, "", [], {}):
            continue
        out[k] = v
    print(json.dumps(out, sort_keys=True, indent=1))


def cmd_unpack(oci, root):
    os.makedirs(root, exist_ok=True)
    for desc in manifest(oci)["layers"]:
        tf = open_layer(oci, desc)
        for m in tf:
            name = norm(m.name)
            if not name:
                continue
            d, base = os.path.split(name)
            if base == ".wh..wh..opq":
                target = os.path.join(root, d)
                for c in os.listdir(target):
                    remove(os.path.join(target, c))
                continue
            if base.startswith(".wh."):
                remove(os.path.join(root, d, base[4:]))
                continue
            dest = os.path.join(root, name)
            if os.path.lexists(dest) and not (m.isdir() and os.path.isdir(dest)):
                remove(dest)
            m.name = name
            if m.islnk():
                m.linkname = norm(m.linkname)
            tf.extract(m, root, set_attrs=True, numeric_owner=True, filter="fully_trusted")


def remove(p):
    if os.path.islink(p) or not os.path.isdir(p):
        if os.path.lexists(p):
            os.unlink(p)
    else:
        import shutil
        shutil.rmtree(p)


def cmd_runspec(oci, root, bundle):
    cfg = blob_json(oci, manifest(oci)["config"]["digest"]).get("config", {}) or {}
    args = (cfg.get("Entrypoint") or []) + (cfg.get("Cmd") or [])
    env = cfg.get("Env") or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    user = cfg.get("User") or "0"
    uid, gid = 0, 0
    u, _, g = user.partition(":")
    passwd = {}
    try:
        with open(os.path.join(root, "etc/passwd")) as f:
            for line in f:
                p = line.strip().split(":")
                if len(p) >= 4:
                    passwd[p[0]] = (int(p[2]), int(p[3]))
    except OSError:
        pass
    if u.isdigit():
        uid = int(u)
    elif u in passwd:
        uid, gid = passwd[u]
    if g.isdigit():
        gid = int(g)
    caps = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
            "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
            "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
    spec = {
        "ociVersion": "1.0.2",
        "process": {"terminal": False, "user": {"uid": uid, "gid": gid}, "args": args,
                    "env": env, "cwd": cfg.get("WorkingDir") or "/",
                    "capabilities": {"bounding": caps, "effective": caps, "permitted": caps}},
        "root": {"path": os.path.abspath(root), "readonly": False},
        "hostname": "image-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
        ],
        "linux": {"namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount")]},
    }
    os.makedirs(bundle, exist_ok=True)
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(spec, f, indent=1)


def config_of(oci, raw=None):
    if raw:
        with open(raw) as f:
            cfg = json.load(f).get("config", {}) or {}
    else:
        cfg = blob_json(oci, manifest(oci)["config"]["digest"]).get("config", {}) or {}
    keys = ["Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes",
            "Labels", "StopSignal", "Healthcheck", "Shell", "OnBuild"]
    out = {k: cfg.get(k) for k in keys if cfg.get(k) not in (None, "", [], {})}
    labels = {k: v for k, v in (out.get("Labels") or {}).items() if k != "io.buildah.version"}
    if labels:
        out["Labels"] = labels
    else:
        out.pop("Labels", None)
    return out


def history_of(raw):
    """(created_by, empty_layer) per history entry of a raw image config."""
    with open(raw) as f:
        return [(h.get("created_by", ""), bool(h.get("empty_layer")))
                for h in json.load(f).get("history") or []]


def read_known(path, case):
    """The documented differences of one case: lines `CASE path P` (P and all under it),
    `CASE mountpoint P` (P only where the peer has it as an empty directory and we have
    nothing), `CASE config FIELD`, `CASE history N` (the Nth entry, from 0) or `CASE history`
    (all); `#` starts a comment. CASE `*` is every case.
    Returns (paths, mount points, config fields, history entries or None for all)."""
    paths, mounts, config, history = set(), set(), set(), set()
    if path and os.path.exists(path):
        with open(path) as f:
            for line in f:
                words = line.split("#", 1)[0].split(None, 2)
                if len(words) < 2 or words[0] not in (case, "*"):
                    continue
                what, arg = words[1], (words[2].strip() if len(words) > 2 else "")
                if what == "path":
                    paths.add(arg)
                elif what == "mountpoint":
                    mounts.add(arg)
                elif what == "config":
                    config.add(arg)
                elif what == "history":
                    history = None if not arg else (history | {int(arg)} if history is not None else None)
                else:
                    raise SystemExit(f"{path}: unknown line: {line.strip()}")
    return paths, mounts, config, history


def differences(a, b, ca, cb, ha, hb, known, peer):
    """What differs between two images (ours first), less the known differences: one line
    each. a/b: flattened trees, ca/cb: runtime configs, ha/hb: history entries."""
    paths, mounts, fields, hist = known
    out = []
    for p in sorted(set(a) | set(b)):
        if p in paths or any(p.startswith(k + "/") for k in paths):
            continue
        if (p in mounts and p not in a and b[p].get("type") == "dir"
                and not any(k.startswith(p + "/") for k in b)):
            continue
        ea, eb = dict(a.get(p, {})), dict(b.get(p, {}))
        ea.pop("hardlink", None)
        eb.pop("hardlink", None)
        if ea != eb:
            out.append(f"tree {shown(p)}: slipway {ea or 'absent'} / {peer} {eb or 'absent'}")
    for k in sorted(set(ca) | set(cb)):
        if k not in fields and ca.get(k) != cb.get(k):
            out.append(f"config {k}: slipway {ca.get(k)!r} / {peer} {cb.get(k)!r}")
    if hist is not None:
        for i in range(max(len(ha), len(hb))):
            x = ha[i] if i < len(ha) else None
            y = hb[i] if i < len(hb) else None
            if i not in hist and x != y:
                out.append(f"history {i}: slipway {x!r} / {peer} {y!r}")
    return out


def cmd_compare(args):
    """compare [--peer NAME] [--known FILE --case CASE] OURS THEIRS OURS_CONFIG THEIRS_CONFIG"""
    opts = {"--peer": "peer", "--known": None, "--case": ""}
    rest = []
    while args:
        x = args.pop(0)
        if x in opts:
            opts[x] = args.pop(0)
        else:
            rest.append(x)
    ours, theirs, ours_config, theirs_config = rest
    a, b = flatten(ours), flatten(theirs)
    ca, cb = config_of(ours, ours_config), config_of(theirs, theirs_config)
    ha, hb = history_of(ours_config), history_of(theirs_config)
    known = read_known(opts["--known"], opts["--case"])
    bad = differences(a, b, ca, cb, ha, hb, known, opts["--peer"])
    for line in bad:
        print(line)
    print(f"compared {len(set(a) | set(b))} paths, {len(set(ca) | set(cb))} config fields and "
          f"{max(len(ha), len(hb))} history entries: {len(bad)} differences")
    sys.exit(1 if bad else 0)


def cmd_layers(oci):
    for desc in manifest(oci)["layers"]:
        print("layer", desc["digest"])
        for m in open_layer(oci, desc):
            kind = "d" if m.isdir() else "l" if m.issym() else "h" if m.islnk() else "f"
            print(" ", kind, shown(norm(m.name)), m.uid, m.gid, oct(m.mode & 0o7777))


def cmd_leaks(oci, secret, names):
    """Searches raw bytes, not the unpacked tree, so a secret in a whited-out file counts."""
    import re
    secret, names = secret.encode(), re.compile(names)
    man, bad = manifest(oci), []
    with open(blob_path(oci, man["config"]["digest"]), "rb") as f:
        if secret in f.read():
            bad.append("config holds the secret")
    for desc in man["layers"]:
        with open(blob_path(oci, desc["digest"]), "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        if secret in raw:
            bad.append(f"layer {desc['digest']} holds the secret")
        for m in open_layer(oci, desc):
            if names.search("/" + norm(m.name)):
                bad.append(f"layer {desc['digest']} has {shown(norm(m.name))}")
    print("\n".join(bad) if bad else f"{len(man['layers'])} layers clean")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "tree":
        flatten_cache = flatten(args[0])
        cmd_tree(args[0])
    elif cmd == "config":
        cmd_config(args[0])
    elif cmd == "unpack":
        cmd_unpack(*args)
    elif cmd == "runspec":
        cmd_runspec(*args)
    elif cmd == "compare":
        cmd_compare(list(args))
    elif cmd == "layers":
        cmd_layers(args[0])
    elif cmd == "leaks":
        cmd_leaks(*args)
    else:
        sys.exit(__doc__)
