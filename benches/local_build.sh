#!/usr/bin/env bash
# Whole local builds, Slipway against buildah on the same Dockerfiles in the same run:
# examples/go, examples/node and benches/fanout (four independent stages). Each build ends
# with the image pushed to the same loopback registry. Prints per build the median wall time
# of RUNS runs (default 3) and the ratio buildah / slipway (above 1: Slipway is faster).
#   sudo benches/local_build.sh [RUNS]     (BENCH_BUILDS="go node fanout" picks builds)
# buildah: `bud --isolation chroot --format docker --layers=false`, then `push`; base images
# come from its local storage after the first pull, as Slipway's come from its blob cache.
# Both are also timed with the fan-out's stages in parallel where they can be: Slipway always,
# buildah with --jobs 4.
set -euo pipefail
runs=${1:-3}
repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tests/engine/lib.sh
source "$repo/tests/engine/lib.sh"
engine_setup
trap engine_teardown EXIT
R=$ENGINE_REGISTRY
state=$CACHE/bench-state

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
timed() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; return 1; }; e=$(date +%s.%N); echo "$e - $s" | bc; }

slipway() { # NAME DIR
  "$ENGINE" build --context "$2" --destination "$R/bench/slipway-$1:latest" --insecure-registry "$R" \
    --build-arg "BASE_REGISTRY=$R" --state-dir "$state"
}
buildah_build() { # NAME DIR [extra bud flags]
  local name=$1 dir=$2; shift 2
  buildah bud --isolation chroot --format docker --layers=false --tls-verify=false -q "$@" \
    --build-arg "BASE_REGISTRY=$R" -t "localhost/bench/$name" "$dir" &&
    buildah push -q --tls-verify=false "localhost/bench/$name" "docker://$R/bench/buildah-$name:latest" &&
    buildah rmi -f "localhost/bench/$name"
}

printf '%-10s %10s %10s %10s %8s %8s\n' build slipway_s buildah_s buildah4_s ratio ratio4
declare -A dirs=([go]=examples/go [node]=examples/node [fanout]=benches/fanout)
for name in ${BENCH_BUILDS:-go node fanout}; do
  dir=$repo/${dirs[$name]}
  # Warm-up: base images fetched by both, once, outside the timings.
  slipway "$name" "$dir" >/dev/null 2>&1; buildah_build "$name" "$dir" >/dev/null 2>&1
  s=() o=() o4=()
  for _ in $(seq "$runs"); do
    s+=("$(timed slipway "$name" "$dir")")
    o+=("$(timed buildah_build "$name" "$dir")")
    if [[ $name == fanout ]]; then o4+=("$(timed buildah_build "$name" "$dir" --jobs 4)"); fi
  done
  ms=$(printf '%s\n' "${s[@]}" | median); mo=$(printf '%s\n' "${o[@]}" | median)
  if ((${#o4[@]})); then mo4=$(printf '%s\n' "${o4[@]}" | median); r4=$(echo "scale=2; $mo4 / $ms" | bc); else mo4=-; r4=-; fi
  printf '%-10s %10.2f %10.2f %10s %8.2f %8s\n' "$name" "$ms" "$mo" "$mo4" "$(echo "scale=2; $mo / $ms" | bc)" "$r4"
  echo "  runs: slipway ${s[*]} | buildah ${o[*]} ${o4[*]:+| buildah --jobs 4 ${o4[*]}}" >&2
done
