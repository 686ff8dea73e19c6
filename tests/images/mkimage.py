#!/usr/bin/env python3
"""Writes a one-layer OCI image layout from a root filesystem folder, deterministically
(sorted entries, mtime 0, owner root unless the file says otherwise), so tests build their
base images locally and push them with skopeo. Standard library only.

usage: mkimage.py LAYOUT_DIR ROOTFS_DIR [--entrypoint JSON] [--cmd JSON] [--env K=V]...
                  [--workdir DIR] [--tag TAG]
"""
import argparse, gzip, hashlib, io, json, os, tarfile


def sha256(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def layer_tar(root):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(dirnames) + sorted(filenames):
                full = os.path.join(dirpath, name)
                arc = os.path.relpath(full, root)
                info = tar.gettarinfo(full, arcname=arc)
                info.mtime = 0
                info.uname = info.gname = ""
                if info.isfile():
                    with open(full, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
    return buf.getvalue()


def write_blob(layout, data):
    d = sha256(data)
    path = os.path.join(layout, "blobs", "sha256", d.split(":")[1])
    with open(path, "wb") as f:
        f.write(data)
    return d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("layout")
    ap.add_argument("rootfs")
    ap.add_argument("--entrypoint")
    ap.add_argument("--cmd")
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--workdir")
    ap.add_argument("--tag", default="latest")
    a = ap.parse_args()

    os.makedirs(os.path.join(a.layout, "blobs", "sha256"), exist_ok=True)
    raw = layer_tar(a.rootfs)
    gz = gzip.compress(raw, compresslevel=6, mtime=0)
    layer = write_blob(a.layout, gz)
    env = a.env or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    cfg = {"Env": env}
    if a.entrypoint:
        cfg["Entrypoint"] = json.loads(a.entrypoint)
    if a.cmd:
        cfg["Cmd"] = json.loads(a.cmd)
    if a.workdir:
        cfg["WorkingDir"] = a.workdir
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": [sha256(raw)]},
        "history": [{"created_by": "slipway tests/images/mkimage.py"}],
    }, sort_keys=True).encode()
    config_d = write_blob(a.layout, config)
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_d, "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": len(gz)}],
    }, sort_keys=True).encode()
    manifest_d = write_blob(a.layout, manifest)
    with open(os.path.join(a.layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with open(os.path.join(a.layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_d,
            "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": a.tag}}]}, f)
    print(manifest_d)


if __name__ == "__main__":
    main()
