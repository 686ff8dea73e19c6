# Sourced by run.sh: builds that must fail, each with one clear message naming the place,
# and never a pushed image.


F=$WORK/failures
mkdir -p "$F"/{run,outside/ctx,symlink,tar,base,parse,push}

cat > "$F/run/Dockerfile" <<DF
FROM $R/slipway-test/busybox:latest AS ok
RUN sleep 2 && echo fine > /fine
FROM $R/slipway-test/busybox:latest AS build
RUN echo before
RUN echo failing && exit 3
FROM scratch
COPY --from=ok /fine /fine
COPY --from=build /bin/busybox /busybox
DF
run_test fail-run-exit-code expect_failure fail-run "$F/run" \
  '^stage "build" \(#1\): Dockerfile:5: RUN echo failing && exit 3: exit code 3$'

echo secret > "$F/outside/secret.txt"
printf 'FROM %s/slipway-test/busybox:latest\nCOPY ../secret.txt /x\n' "$R" > "$F/outside/ctx/Dockerfile"
run_test fail-copy-outside-context expect_failure fail-outside "$F/outside/ctx" \
  'Dockerfile:2: COPY: \.\./secret\.txt: forbidden path outside the build context'

ln -sfn /etc "$F/symlink/escape"
printf 'FROM %s/slipway-test/busybox:latest\nRUN true\nCOPY escape/passwd /x\n' "$R" > "$F/symlink/Dockerfile"
run_test fail-copy-symlink-escape expect_failure fail-symlink "$F/symlink" \
  'Dockerfile:3: COPY: escape/passwd: forbidden path outside the build context'

python3 - "$F/tar/evil.tar" <<'PY'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w") as t:
    data = b"owned\n"
    for name in ("ok.txt", "../../evil.txt"):
        i = tarfile.TarInfo(name); i.size = len(data)
        t.addfile(i, io.BytesIO(data))
PY
printf 'FROM %s/slipway-test/busybox:latest\nADD evil.tar /x/\n' "$R" > "$F/tar/Dockerfile"
run_test fail-add-tar-escape expect_failure fail-tar "$F/tar" \
  'Dockerfile:2: ADD: .*evil\.tar: layer entry "\.\./\.\./evil\.txt" would land outside the root'

printf 'FROM %s/slipway-test/does-not-exist:latest\nRUN true\n' "$R" > "$F/base/Dockerfile"
run_test fail-missing-base expect_failure fail-base "$F/base" \
  "registry $R: pull $R/slipway-test/does-not-exist:latest: .*HTTP 404"

printf 'FROM %s/slipway-test/busybox:latest\nRUN true\nCOPY onlyone\n' "$R" > "$F/parse/Dockerfile"
run_test fail-invalid-dockerfile expect_failure fail-parse "$F/parse" \
  'Dockerfile:3: COPY: COPY requires at least two arguments'
printf 'FROM %s/slipway-test/busybox:latest\nRUN <<EOF\necho never closed\n' "$R" > "$F/parse/Dockerfile"
run_test fail-unterminated-heredoc expect_failure fail-parse "$F/parse" \
  'Dockerfile:2: unterminated heredoc'

# A registry that refuses writes (read-only maintenance mode), on its own loopback port.
RO=127.0.0.1:5056
mkdir -p "$F/ro-registry"
cat > "$F/ro-registry/config.yml" <<YAML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $F/ro-registry/data}, maintenance: {readonly: {enabled: true}}}
http: {addr: $RO}
YAML
docker-registry serve "$F/ro-registry/config.yml" >"$F/ro-registry/log" 2>&1 &
ro_pid=$!
for _ in $(seq 50); do curl -sf "http://$RO/v2/" >/dev/null && break; sleep 0.2; done
printf 'FROM %s/slipway-test/busybox:latest\nRUN echo x > /x\n' "$R" > "$F/push/Dockerfile"
t_push_refused() {
  local out rc
  out=$("$ENGINE" build --context "$F/push" --destination "$RO/refused/image:latest" \
    --insecure-registry "$R" --insecure-registry "$RO" --state-dir "$ENGINE_STATE" 2>&1); rc=$?
  ((rc != 0)) || { echo "push succeeded"; return 1; }
  grep -Eq "^registry $RO: push $RO/refused/image:latest: .*HTTP (405|503)" <<<"$out" || { echo "$out" | tail -5; return 1; }
  grep -E "^registry $RO" <<<"$out" | head -1
}
run_test fail-push-refused t_push_refused
kill "$ro_pid" 2>/dev/null; wait "$ro_pid" 2>/dev/null
