# Sourced by tests/engine/run.sh: a RUN step (A2, root in its stage container) attacks the host
# of a local build through the workspace (C1, T1) and the secrets of other stages (H6).
# Each test asserts that nothing reached the host, or the one clear error naming the stage.

HL=$WORK/hostile-local
mkdir -p "$HL"
# What a host file the attacker wants looks like: a marker made here, never /etc/shadow.
HL_MARK="slipway-host-marker-$RANDOM$RANDOM"
echo "$HL_MARK" > "$HL/host-marker"

# no_marker OUTPUT: the host marker's content did not reach the output.
hl_no_marker() {
  if grep -q "$HL_MARK" <<<"$1"; then echo "the host marker leaked:"; echo "$1" | tail -5; return 1; fi
}

# containers_gone: every container directory (roots, bundles, secret copies) was removed.
hl_containers_gone() {
  local left
  left=$(find "$ENGINE_STATE/containers" -mindepth 1 -maxdepth 1 2>/dev/null)
  if [[ -n $left ]]; then echo "container directories left: $left"; return 1; fi
}

# T1: stage a plants containers/1/upper -> /etc for the next container; stage b writes its root.
# Before C1's fix b's overlay upper was the host's /etc. The build may succeed or fail; the host
# file must not exist.
mkdir -p "$HL/t1"
cat > "$HL/t1/Dockerfile" <<DF
FROM $R/slipway-test/busybox:latest AS a
RUN mkdir -p /.slipway/workspace/containers/1 && ln -s /etc /.slipway/workspace/containers/1/upper || echo "attack refused: \$?"
RUN touch /.slipway/workspace/stages/1/planted-by-a || echo "other stage refused"
FROM $R/slipway-test/busybox:latest AS b
COPY --from=a /bin/true /x
RUN cat /hostname 2>/dev/null; touch /slipway-escape-proof
DF
t_hl_t1() {
  # A proof left by an older, vulnerable engine would fail this test for nothing.
  rm -f /etc/slipway-escape-proof
  local out
  out=$(build hostile-local-t1 "$HL/t1" 2>&1)
  if [[ -e /etc/slipway-escape-proof ]]; then echo "ESCAPED: /etc/slipway-escape-proof exists on the host"; return 1; fi
  grep -q 'attack refused' <<<"$out" || { echo "the RUN step was not refused:"; echo "$out" | tail -20; return 1; }
  grep -q 'other stage refused' <<<"$out" || { echo "a stage wrote another stage's directory:"; echo "$out" | tail -20; return 1; }
  grep -q 'Read-only file system' <<<"$out" || { echo "$out" | tail -20; return 1; }
  hl_containers_gone || return 1
  echo "no /etc/slipway-escape-proof; the workspace is read-only to stage a"
}
run_test hostile-local-t1-upper-symlink t_hl_t1

# T1's variant: error.txt is a symlink to a host file, and the stage fails. The host must not
# print the file; the error names the stage and the file. (A FIFO is refused unopened too, but
# the stage engine itself blocks writing its message into one: a unit test covers the host.)
mkdir -p "$HL/error-link"
cat > "$HL/error-link/Dockerfile" <<DF
FROM $R/slipway-test/busybox:latest
RUN ln -s $HL/host-marker /.slipway/workspace/stages/0/error.txt && false
DF
t_hl_error_link() {
  local out rc
  out=$(build hostile-local-error-link "$HL/error-link" 2>&1); rc=$?
  ((rc != 0)) || { echo "the build succeeded"; return 1; }
  hl_no_marker "$out" || return 1
  grep -Eq '^stage #0: .*/stages/0/error\.txt: a symlink \(not followed\)$' <<<"$out" \
    || { echo "$out" | tail -10; return 1; }
  grep -E '^stage #0: ' <<<"$out"
}
run_test hostile-local-error-symlink t_hl_error_link

# The target's result.json, with a layer at a host file. A forged result whose layer is the
# host marker, as any local user could leave in /tmp. Before C1's fix the host read the
# target's result.json through a symlink and pushed whatever file its layers named.
python3 - "$HL/host-marker" "$HL/forged-result.json" <<'PY'
import hashlib, json, sys
marker, out = sys.argv[1], sys.argv[2]
data = open(marker, "rb").read()
d = "sha256:" + hashlib.sha256(data).hexdigest()
json.dump({"index": 0, "name": None, "base": None, "config": {}, "history": [],
           "layers": [{"path": marker, "digest": d, "diffId": d, "size": len(data),
                       "mediaType": "application/vnd.oci.image.layer.v1.tar"}],
           "vars": [], "args": []}, open(out, "w"))
PY

# hl_not_pushed NAME: the marker is in no layer of the pushed image.
hl_not_pushed() {
  local d=$HL/pulled-$1 f
  rm -rf "$d"
  skopeo copy -q --src-tls-verify=false "docker://$R/engine-tests/$1:latest" "dir:$d" || return 1
  for f in "$d"/*; do
    if zcat -f "$f" 2>/dev/null | grep -qa "$HL_MARK"; then echo "the host marker was pushed in $f"; return 1; fi
  done
}

# (a) result.json.tmp planted as a symlink to the forged result: the stage engine's rename
# would have made result.json that symlink. The engine now writes its temporary file anew, so
# nothing happens: the build pushes the stage's own result.
mkdir -p "$HL/result-link"
cat > "$HL/result-link/Dockerfile" <<DF
FROM $R/slipway-test/busybox:latest
RUN mkdir -p $HL && ln -s $HL/forged-result.json /.slipway/workspace/stages/0/result.json.tmp
DF
t_hl_result_link() {
  local out
  out=$(build hostile-local-result-link "$HL/result-link" 2>&1) || { echo "$out" | tail -10; return 1; }
  hl_no_marker "$out" || return 1
  hl_not_pushed hostile-local-result-link || return 1
  echo "the planted result.json.tmp link was replaced; the stage's own result was pushed"
}
run_test hostile-local-result-symlink t_hl_result_link

# (b) result.json rewritten in place with the forged result by a background process of the
# last RUN step, right after the engine wrote it (a race the attacker wins almost always: the
# engine still frees a 100k-file snapshot before it exits). The host checks every layer path
# and refuses; if the race was lost, the stage's own result is pushed and the marker is not.
mkdir -p "$HL/result-forged"
cp "$HL/forged-result.json" "$HL/result-forged/forged.json"
cat > "$HL/result-forged/Dockerfile" <<DF
FROM $R/slipway-test/busybox:latest
COPY forged.json /forged.json
RUN mkdir /many && cd /many && seq 1 100000 | xargs touch
RUN F=\$(cat /forged.json); R=/.slipway/workspace/stages/0/result.json; (while :; do if [ -f \$R ]; then echo "\$F" > \$R; exit 0; fi; done) </dev/null >/dev/null 2>&1 &
DF
t_hl_result_forged() {
  local out rc
  # A tag an earlier run pushed (the race lost) would look like a push now.
  skopeo delete --tls-verify=false "docker://$R/engine-tests/hostile-local-result-forged:latest" >/dev/null 2>&1
  out=$(build hostile-local-result-forged "$HL/result-forged" 2>&1); rc=$?
  hl_no_marker "$out" || return 1
  if ((rc == 0)); then
    hl_not_pushed hostile-local-result-forged || return 1
    echo "the race was lost: the stage's own result was pushed, not the host file"
    return 0
  fi
  grep -Eq '^stage #0: .*/stages/0/result\.json: layer path ".*/host-marker" is not stages/<N>/layers/<digest hex>\.tar\.gz$' <<<"$out" \
    || { echo "$out" | tail -10; return 1; }
  if skopeo inspect --tls-verify=false "docker://$R/engine-tests/hostile-local-result-forged:latest" >/dev/null 2>&1; then
    echo "an image was pushed"; return 1
  fi
  grep -E '^stage #0: ' <<<"$out"
}
run_test hostile-local-result-forged t_hl_result_forged

# A layer the result names, replaced after it was written by a later RUN of the same stage
# (its stages/<N> is writable to it) with a symlink to a host file: the host must not push the
# host file. (A background process of the first RUN no longer outlives it: M2.)
mkdir -p "$HL/layer-link"
cat > "$HL/layer-link/Dockerfile" <<DF
FROM $R/slipway-test/busybox:latest
RUN echo one > /one
RUN for f in /.slipway/workspace/stages/0/layers/*.tar.gz; do rm -f "\$f"; ln -s $HL/host-marker "\$f"; done
DF
t_hl_layer_link() {
  local out
  out=$(expect_failure hostile-local-layer-link "$HL/layer-link" \
    'stages/0/layers/[0-9a-f]{64}\.tar\.gz: a symlink \(not followed\)$') || { echo "$out"; return 1; }
  echo "$out"
}
run_test hostile-local-layer-symlink t_hl_layer_link

# H6: a container gets only the secrets its own RUN steps mount, and no copy outlives the build.
mkdir -p "$HL/secrets" "$HL/secrets-fail"
HL_SECRET="slipway-secret-$RANDOM$RANDOM"
echo "$HL_SECRET-one" > "$HL/secret-one"
echo "$HL_SECRET-two" > "$HL/secret-two"
cat > "$HL/secrets/Dockerfile" <<DF
FROM $R/slipway-test/busybox:latest AS a
RUN --mount=type=secret,id=one test -s /run/secrets/one && ls /.slipway/secrets > /a-sees
FROM $R/slipway-test/busybox:latest AS b
RUN ls /.slipway/secrets > /b-sees; cat /.slipway/secrets/* 2>/dev/null | wc -c > /b-read
FROM $R/slipway-test/busybox:latest
COPY --from=a /a-sees /a-sees
COPY --from=b /b-sees /b-read /
CMD ["/bin/sh", "-c", "echo a: \$(cat /a-sees); echo b: \$(cat /b-sees) \$(cat /b-read)"]
DF
cat > "$HL/secrets-fail/Dockerfile" <<DF
FROM $R/slipway-test/busybox:latest
RUN --mount=type=secret,id=one test -s /run/secrets/one && exit 7
DF
t_hl_secrets() {
  build hostile-local-secrets "$HL/secrets" --secret "id=one,src=$HL/secret-one" \
    --secret "id=two,src=$HL/secret-two" >"$HL/secrets.log" 2>&1 || { tail -20 "$HL/secrets.log"; return 1; }
  check_run hostile-local-secrets <(printf 'a: one\nb: 0\n') || return 1
  hl_containers_gone || return 1
  if grep -rlF "$HL_SECRET" "$ENGINE_STATE" 2>/dev/null; then echo "a secret copy outlived the build"; return 1; fi
  echo "stage a saw only 'one', stage b none; no copy left in the state directory"
}
run_test hostile-local-secrets-scoped t_hl_secrets
t_hl_secrets_fail() {
  expect_failure hostile-local-secrets-fail "$HL/secrets-fail" 'exit code 7' \
    --secret "id=one,src=$HL/secret-one" || return 1
  hl_containers_gone || return 1
  if grep -rlF "$HL_SECRET" "$ENGINE_STATE" 2>/dev/null; then echo "a secret copy outlived the failed build"; return 1; fi
}
run_test hostile-local-secrets-removed-on-failure t_hl_secrets_fail

# H6: RUN steps run under Docker's default seccomp profile. Without it a root RUN step (no
# CAP_SYS_ADMIN) could still make a user namespace, in which it holds every capability: the
# first step of most kernel exploits.
mkdir -p "$HL/seccomp"
cat > "$HL/seccomp/Dockerfile" <<DF
FROM $R/slipway-test/busybox:latest
RUN grep '^Seccomp:' /proc/self/status > /seen; (unshare -U true && echo "user namespace made" || echo "unshare refused") >> /seen 2>&1
CMD ["cat", "/seen"]
DF
t_hl_seccomp() {
  build hostile-local-seccomp "$HL/seccomp" >"$HL/seccomp.log" 2>&1 || { tail -20 "$HL/seccomp.log"; return 1; }
  check_run hostile-local-seccomp <(printf 'Seccomp:\t2\nunshare: unshare(0x10000000): Operation not permitted\nunshare refused\n')
}
run_test hostile-local-seccomp t_hl_seccomp
