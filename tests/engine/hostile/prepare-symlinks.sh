# Sourced by run.sh. Security review H2 and T5 in local mode: an A1 context whose Dockerfile
# or ignore files are symlinks to a file outside the context (on the cluster a git token or a
# pull secret; here a file of A4's host). Each build must fail with
# `<file>: symlink leaves the build context`, push nothing, and show the file's content
# nowhere: not in its output, not in the engine's state (workspaces, logs). A link that stays
# inside the context is followed.

HP=$WORK/hostile-prepare
mkdir -p "$HP"
# Not a Dockerfile instruction: read as a Dockerfile it would come back in the parse error.
marker="slipway-h2-marker-$RANDOM$RANDOM"
echo "$marker" > "$HP/host-secret"

# hostile_symlink NAME CONTEXT PATTERN [build args...]
hostile_symlink() {
  local name=$1 ctx=$2 pattern=$3 out rc; shift 3
  out=$(build "$name" "$ctx" "$@" 2>&1); rc=$?
  if ((rc == 0)); then echo "the build succeeded"; echo "$out" | tail -10; return 1; fi
  if grep -q -- "$marker" <<<"$out"; then echo "the host file's content is in the output:"; echo "$out"; return 1; fi
  if ! grep -Eq -- "$pattern" <<<"$out"; then echo "no line matches: $pattern"; echo "$out" | tail -15; return 1; fi
  if skopeo inspect --tls-verify=false "docker://$R/engine-tests/$name:latest" >/dev/null 2>&1; then
    echo "an image was pushed"; return 1
  fi
  if grep -rqs -- "$marker" "$ENGINE_STATE"; then
    echo "the host file's content was copied into the engine's state:"
    grep -rls -- "$marker" "$ENGINE_STATE" | head -5
    return 1
  fi
  grep -E -- "$pattern" <<<"$out" | head -1
}

# Dockerfile -> the host file: its first line would be an "unknown instruction".
mkdir -p "$HP/dockerfile"
ln -sfn "$HP/host-secret" "$HP/dockerfile/Dockerfile"
run_test hostile-prepare-symlink-dockerfile hostile_symlink hostile-df "$HP/dockerfile" \
  '/Dockerfile: symlink leaves the build context$'

# Dockerfile.dockerignore -> the host file: it would be copied into the workspace, where the
# RUN step prints it.
mkdir -p "$HP/ignore"
printf 'FROM %s/slipway-test/busybox:latest\nRUN cat /.slipway/workspace/Dockerfile.dockerignore\n' "$R" > "$HP/ignore/Dockerfile"
ln -sfn "$HP/host-secret" "$HP/ignore/Dockerfile.dockerignore"
run_test hostile-prepare-symlink-dockerignore hostile_symlink hostile-ignore "$HP/ignore" \
  '/Dockerfile\.dockerignore: symlink leaves the build context$'

# The context's .dockerignore -> the host file, by a relative link climbing out.
mkdir -p "$HP/ctxignore"
printf 'FROM %s/slipway-test/busybox:latest\nRUN true\n' "$R" > "$HP/ctxignore/Dockerfile"
ln -sfn ../host-secret "$HP/ctxignore/.dockerignore"
run_test hostile-prepare-symlink-context-ignore hostile_symlink hostile-ctxignore "$HP/ctxignore" \
  '^\.dockerignore: symlink leaves the build context$'

# A directory component that leads out: --dockerfile <ctx>/up/host-secret with up -> ..
mkdir -p "$HP/dircomp"
printf 'FROM %s/slipway-test/busybox:latest\n' "$R" > "$HP/dircomp/Dockerfile"
ln -sfn .. "$HP/dircomp/up"
run_test hostile-prepare-symlink-directory hostile_symlink hostile-dircomp "$HP/dircomp" \
  '/up/host-secret: symlink leaves the build context$' --dockerfile "$HP/dircomp/up/host-secret"

# A link that stays inside the context is followed, as BuildKit follows it.
t_inside() {
  mkdir -p "$HP/inside/docker"
  printf 'FROM %s/slipway-test/busybox:latest\nCOPY docker/app.Dockerfile /app.Dockerfile\n' "$R" > "$HP/inside/docker/app.Dockerfile"
  printf '*.log\n' > "$HP/inside/docker/ignore"
  ln -sfn docker/app.Dockerfile "$HP/inside/Dockerfile"
  ln -sfn docker/ignore "$HP/inside/Dockerfile.dockerignore"
  build hostile-inside "$HP/inside" >"$WORK/build-hostile-inside.log" 2>&1 || { tail -20 "$WORK/build-hostile-inside.log"; return 1; }
}
run_test hostile-prepare-symlink-inside t_inside
