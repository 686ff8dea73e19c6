#!/usr/bin/env bash
# Rebuilds with a registry cache, Slipway against BuildKit in the same run (issue 13, part 8):
# for examples/go, examples/node and benches/fanout, each builder does a cold build that
# exports its cache to the loopback registry, then RUNS times a no-change rebuild and a rebuild
# after one source file changed, importing the cache from the registry. Before every rebuild
# both start from an empty local state, as a fresh CI runner would: BuildKit's local cache is
# pruned (`buildctl prune --all`), Slipway gets a new --state-dir; so what a rebuild reuses
# comes from the registry cache alone. Wall time from start to image pushed; medians and the
# ratio slipway / buildkit (below 1: Slipway is faster). Also the containers Slipway started.
# CACHE_BENCH_STATE=warm keeps the local state instead (one Slipway state directory, no prune):
# the same machine building again, where both also have the base images unpacked.
#   sudo benches/cache_rebuild.sh [RUNS]      (CACHE_BENCH_BUILDS="go node fanout" picks builds,
#                                              CACHE_BENCH_KINDS="no-change one-file" rebuilds)
# Slipway: `--cache-repo R/bench-cache/slipway-NAME --source-date-epoch 1700000000`.
# BuildKit: `--export-cache type=registry,ref=R/bench-cache/buildkit-NAME:cache,mode=max`
#           `--import-cache type=registry,ref=...` (mode=max: every stage, as Slipway stores).
set -euo pipefail
runs=${1:-3}
repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tests/engine/lib.sh
source "$repo/tests/engine/lib.sh"
engine_setup
trap engine_teardown EXIT
start_buildkitd
R=$ENGINE_REGISTRY
tag=$(date +%s)

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
now() { date +%s.%N; }

# slipway NAME CTX LOG: a build from an empty state directory, with the cache.
warm=${CACHE_BENCH_STATE:-fresh}
slipway() {
  local state=$WORK/state-warm
  [[ $warm == warm ]] || state=$(mktemp -d "$WORK/state.XXXXXX")
  "$ENGINE" build --context "$2" --destination "$R/bench/slipway-$1:latest" --insecure-registry "$R" \
    --build-arg "BASE_REGISTRY=$R" --state-dir "$state" --source-date-epoch 1700000000 \
    --cache-repo "$R/bench-cache/slipway-$1-$tag" >"$3" 2>&1
  [[ $warm == warm ]] || rm -rf "$state"
}
# buildkit NAME CTX LOG: a build after the local cache is pruned, with the registry cache.
buildkit() {
  local ref=$R/bench-cache/buildkit-$1-$tag:cache
  [[ $warm == warm ]] || "${BUILDCTL[@]}" prune --all >/dev/null 2>&1
  "${BUILDCTL[@]}" build --progress plain --frontend dockerfile.v0 \
    --local "context=$2" --local "dockerfile=$2" --opt "build-arg:BASE_REGISTRY=$R" \
    --output "type=image,name=$R/bench/buildkit-$1:latest,push=true,registry.insecure=true" \
    --export-cache "type=registry,ref=$ref,mode=max,registry.insecure=true" \
    --import-cache "type=registry,ref=$ref,registry.insecure=true" >"$3" 2>&1
}
timed() { local s; s=$(now); "$@" || { echo "failed: $1 $2 (${*: -1})" >&2; tail -5 "${*: -1}" >&2; return 1; }; echo "$(now) - $s" | bc; }

# The one source file each build changes for the second kind of rebuild.
declare -A dirs=([go]=examples/go [node]=examples/node [fanout]=benches/fanout)
declare -A edit=([go]=main.go [node]=src/index.js [fanout]=Dockerfile)
printf '%-8s %-10s %10s %10s %8s %s\n' build rebuild slipway_s buildkit_s ratio slipway_containers
for name in ${CACHE_BENCH_BUILDS:-go node fanout}; do
  ctx=$WORK/ctx-$name
  rm -rf "$ctx"; cp -r "$repo/${dirs[$name]}" "$ctx"
  # Cold: both fill their registry cache.
  cs=$(timed slipway "$name" "$ctx" "$WORK/s-cold-$name.log")
  cb=$(timed buildkit "$name" "$ctx" "$WORK/b-cold-$name.log")
  printf '%-8s %-10s %10.2f %10.2f %8.2f %s\n' "$name" cold "$cs" "$cb" "$(echo "scale=2; $cs / $cb" | bc)" \
    "$(grep -c 'container exited' "$WORK/s-cold-$name.log" || true)"
  for kind in ${CACHE_BENCH_KINDS:-no-change one-file}; do
    s=() b=() containers=()
    for i in $(seq "$runs"); do
      if [[ $kind == one-file ]]; then
        # A new comment line each time: a change no earlier run has cached.
        case $name in
          # The final stage changes (a label): the four stages it copies from do not.
          fanout) sed -i '/^LABEL change=/d' "$ctx/Dockerfile"
                  echo "LABEL change=$i-$(date +%N)" >> "$ctx/Dockerfile" ;;
          *) echo "// change $i $(date +%N)" >> "$ctx/${edit[$name]}" ;;
        esac
      fi
      s+=("$(timed slipway "$name" "$ctx" "$WORK/s-$kind-$name-$i.log")")
      containers+=("$(grep -c 'container exited' "$WORK/s-$kind-$name-$i.log" || true)")
      # BuildKit rebuilds the same input (the change is already made).
      b+=("$(timed buildkit "$name" "$ctx" "$WORK/b-$kind-$name-$i.log")")
    done
    ms=$(printf '%s\n' "${s[@]}" | median); mb=$(printf '%s\n' "${b[@]}" | median)
    printf '%-8s %-10s %10.2f %10.2f %8.2f %s\n' "$name" "$kind" "$ms" "$mb" "$(echo "scale=2; $ms / $mb" | bc)" "${containers[*]}"
    echo "  runs: slipway ${s[*]} | buildkit ${b[*]}" >&2
  done
done
