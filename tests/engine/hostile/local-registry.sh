# Sourced by tests/engine/run.sh: a hostile registry (T7, H4) serves manifests whose layer
# digests are paths. Before the fix the blob cache joined the digest's hex to its directory:
# `sha256:../../../../../../var/tmp/x` wrote `/var/tmp/x.<pid>.partial` as root, and a digest
# naming an existing host file (`/etc/hostname`) was used as the blob. Each build must fail with
# the registry named, no blob asked for, and no file written outside the cache.

HR=$WORK/hostile-registry
HR_PORT=127.0.0.1:5058
HR_TAG="slipway-h4-$RANDOM$RANDOM"
mkdir -p "$HR/path" "$HR/hostfile"
python3 - "$HR" "$HR_TAG" <<'PY' >"$HR/server.log" 2>&1 &
import hashlib, http.server, json, sys
d, tag = sys.argv[1], sys.argv[2]
digest = lambda b: "sha256:" + hashlib.sha256(b).hexdigest()
layer_digest = {
    "path": "sha256:../../../../../../var/tmp/" + tag,
    "hostfile": "sha256:../../../../../../etc/hostname",
}
config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                     "rootfs": {"type": "layers", "diff_ids": [digest(b"pwned")]}}).encode()
def manifest(name):
    return json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest[name], "size": 5}]}).encode()
class H(http.server.BaseHTTPRequestHandler):
    def answer(self):
        parts = self.path.split("/")  # /v2/evil/NAME/(manifests|blobs)/REF
        ctype, body = "application/json", b""
        if self.path == "/v2/":
            body = b"{}"
        elif len(parts) == 6 and parts[4] == "manifests" and parts[3] in layer_digest:
            body, ctype = manifest(parts[3]), "application/vnd.oci.image.manifest.v1+json"
        elif len(parts) == 6 and parts[4] == "blobs" and parts[5] == digest(config):
            body = config
        elif len(parts) >= 5 and parts[4] == "blobs":
            with open(d + "/blob-requests", "a") as f:
                f.write(self.path + "\n")
            body = b"pwned"
        else:
            self.send_response(404); self.send_header("Content-Length", "0"); self.end_headers()
            return None
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return body
    def do_GET(self):
        body = self.answer()
        if body:
            self.wfile.write(body)
    def do_HEAD(self):
        self.answer()
http.server.HTTPServer(("127.0.0.1", 5058), H).serve_forever()
PY
hr_pid=$!
for _ in $(seq 50); do curl -sf "http://$HR_PORT/v2/" >/dev/null && break; sleep 0.2; done

printf 'FROM %s/evil/path:latest\nRUN true\n' "$HR_PORT" > "$HR/path/Dockerfile"
printf 'FROM %s/evil/hostfile:latest\nRUN true\n' "$HR_PORT" > "$HR/hostfile/Dockerfile"

# nothing_written: no blob was asked for, and no file of the attack exists anywhere it aimed.
hr_nothing_written() {
  if [[ -s $HR/blob-requests ]]; then echo "blobs were asked for:"; cat "$HR/blob-requests"; return 1; fi
  local stray
  # (Images' own trees may hold files named *.partial: only the cache's temporary files count.)
  stray=$(ls -d /var/tmp/"$HR_TAG"* 2>/dev/null; find "$ENGINE_STATE" -name "$HR_TAG*" 2>/dev/null
          find "$ENGINE_STATE/blobs" -name '*.partial' 2>/dev/null
          find "$ENGINE_STATE/base-trees" -maxdepth 1 -name '*.partial' 2>/dev/null)
  if [[ -n $stray ]]; then echo "files written: $stray"; return 1; fi
}
t_hr_path() {
  expect_failure hostile-local-registry-path "$HR/path" \
    "^registry $HR_PORT: pull $HR_PORT/evil/path:latest: layer: invalid digest \"sha256:\.\./\.\./\.\./\.\./\.\./\.\./var/tmp/$HR_TAG\" \(want sha256: and 64 lowercase hex digits\)$" \
    --insecure-registry "$HR_PORT" || return 1
  hr_nothing_written
}
run_test hostile-local-registry-digest-path t_hr_path
t_hr_hostfile() {
  expect_failure hostile-local-registry-hostfile "$HR/hostfile" \
    "^registry $HR_PORT: pull $HR_PORT/evil/hostfile:latest: layer: invalid digest \"sha256:\.\./\.\./\.\./\.\./\.\./\.\./etc/hostname\"" \
    --insecure-registry "$HR_PORT" || return 1
  hr_nothing_written
}
run_test hostile-local-registry-digest-hostfile t_hr_hostfile

kill "$hr_pid" 2>/dev/null; wait "$hr_pid" 2>/dev/null
