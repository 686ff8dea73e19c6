# Shared by the engine tier's scripts: the loopback registry, the base images, the static
# engine binary, and pass/fail bookkeeping.
ENGINE_REGISTRY=${SLIPWAY_ENGINE_REGISTRY:-127.0.0.1:5055}
CACHE=${SLIPWAY_CACHE:-/var/cache/slipway}
# A registry on another address (a run beside CI's) keeps its own storage: two registries on
# one directory clobber each other's repositories and cache entries.
REG_DIR=$CACHE/engine-registry
[[ $ENGINE_REGISTRY == 127.0.0.1:5055 ]] || REG_DIR+=-${ENGINE_REGISTRY//[^0-9A-Za-z.]/_}
repo=${repo:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
passed=0 failed=0 skipped=0
REG_PID= BK_PID=

log() { printf '%s\n' "$*" >&2; }

engine_packages() {
  local pkgs=(runc docker-registry skopeo buildah busybox-static debootstrap python3 curl) missing=()
  for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
  fi
}

start_registry() {
  if curl -sf "http://$ENGINE_REGISTRY/v2/" >/dev/null; then return 0; fi
  mkdir -p "$REG_DIR/data"
  cat > "$REG_DIR/config.yml" <<YAML
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $REG_DIR/data}, delete: {enabled: true}}
http: {addr: $ENGINE_REGISTRY}
YAML
  docker-registry serve "$REG_DIR/config.yml" >"$REG_DIR/log" 2>&1 &
  REG_PID=$!
  for _ in $(seq 50); do
    curl -sf "http://$ENGINE_REGISTRY/v2/" >/dev/null && return 0
    sleep 0.2
  done
  log "registry did not start: $(tail -5 "$REG_DIR/log")"
  return 1
}

# Base images are rebuilt when the script that builds them changes.
ensure_images() {
  local stamp want
  want=$(cat "$repo/tests/images/build.sh" "$repo/tests/images/mkimage.py" | sha256sum | cut -c1-16)
  for name in "$@"; do
    stamp=$REG_DIR/stamp-$name
    if [[ "$(cat "$stamp" 2>/dev/null)" == "$want" ]] &&
       skopeo inspect --tls-verify=false "docker://$ENGINE_REGISTRY/slipway-test/$name:latest" >/dev/null 2>&1; then
      continue
    fi
    log "building base image $name"
    "$repo/tests/images/build.sh" "$ENGINE_REGISTRY" "$name" >&2 || return 1
    echo "$want" > "$stamp"
  done
}

# engine_setup [IMAGE...]: the base images a tier needs (default: all the engine tier uses).
engine_setup() {
  [[ $(id -u) == 0 ]] || { log "the engine tier needs root"; return 1; }
  engine_packages || return 1
  ENGINE=$("$repo/scripts/build-engine.sh") || return 1
  start_registry || return 1
  (($#)) || set -- busybox debian golang node node-slim
  ensure_images "$@" || return 1
  # SLIPWAY_WORK_PARENT: another filesystem for both builders' state (benches/local_build.sh).
  WORK=$(mktemp -d "${SLIPWAY_WORK_PARENT:-/var/tmp}/slipway-engine-tests.XXXXXX")
  ENGINE_STATE=$WORK/state
  export ENGINE WORK ENGINE_STATE
}

# BuildKit, the fidelity reference: buildkitd (OCI worker: runc, overlayfs) as root on a unix
# socket in $WORK, its state in $WORK too (every run starts cold, nothing stale is compared),
# pulling from and pushing to the loopback registry over plain http.
start_buildkitd() {
  local bin start=$SECONDS
  bin=$("$repo/tests/peers/build.sh" buildkit) || return 1
  log "buildkit ready in $((SECONDS - start))s ($bin)"
  BK=$WORK/buildkit
  mkdir -p "$BK"
  cat > "$BK/buildkitd.toml" <<TOML
root = "$BK/root"
[grpc]
  address = ["unix://$BK/buildkitd.sock"]
[otel]
  socketPath = "$BK/otel.sock"
[worker.oci]
  enabled = true
  snapshotter = "overlayfs"
  networkMode = "host"
  gc = false
[worker.containerd]
  enabled = false
[registry."$ENGINE_REGISTRY"]
  http = true
TOML
  PATH=$bin:$PATH buildkitd --config "$BK/buildkitd.toml" >"$BK/log" 2>&1 &
  BK_PID=$!
  BUILDCTL=("$bin/buildctl" --addr "unix://$BK/buildkitd.sock")
  for _ in $(seq 100); do
    "${BUILDCTL[@]}" debug workers >/dev/null 2>&1 && return 0
    kill -0 "$BK_PID" 2>/dev/null || break
    sleep 0.2
  done
  log "buildkitd did not start: $(tail -5 "$BK/log")"
  return 1
}

stop_buildkitd() {
  [[ -n $BK_PID ]] || return 0
  kill "$BK_PID" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$BK_PID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$BK_PID" 2>/dev/null || true; wait "$BK_PID" 2>/dev/null || true
  BK_PID=
  # Snapshots a killed daemon left mounted would stop the removal of $WORK.
  awk -v d="$WORK/buildkit/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

engine_teardown() {
  stop_buildkitd
  # Safe under `set -e` (the scripts that source this file use it): a killed registry's
  # wait status must not stop the clean-up.
  if [[ -n $REG_PID ]]; then kill "$REG_PID" 2>/dev/null; wait "$REG_PID" 2>/dev/null || true; fi
  if [[ -n ${WORK:-} && -z ${SLIPWAY_KEEP_WORK:-} ]]; then rm -rf "$WORK"; fi
}

run_test() { # NAME FUNCTION [ARGS...]
  local _t=$1 start out rc; shift
  start=$(date +%s)
  out=$("$@" 2>&1); rc=$?
  if ((rc == 0)); then
    passed=$((passed + 1)); echo "ok   $_t ($(( $(date +%s) - start ))s)"
    # SLIPWAY_TEST_VERBOSE=1: what a passing test printed too.
    [[ -z ${SLIPWAY_TEST_VERBOSE:-} ]] || sed 's/^/     /' <<<"$out" | tail -40
  else
    failed=$((failed + 1)); echo "FAIL $_t ($(( $(date +%s) - start ))s)"
    sed 's/^/     /' <<<"$out" | tail -40
  fi
}

skip_test() { skipped=$((skipped + 1)); echo "skip $1: $2"; }

engine_summary() {
  echo "engine: $passed passed, $failed failed, $skipped skipped"
  ((failed == 0))
}
