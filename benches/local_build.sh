#!/usr/bin/env bash
# Whole local builds, Slipway's local mode against BuildKit (buildkitd v0.34.2, OCI worker,
# the same daemon the engine tier starts) on the same Dockerfiles in the same run:
#   go, node      the article's examples (examples/)
#   fanout        four independent stages with real work, one final stage copying from them
#   bigfile       one stage writes 128 MB of random data and 256 MB of zeros; COPY --from them
#   files20k      one stage writes 20,000 small files; COPY --from them
#   gomod         go build (and vet) of a real program on vendored real modules
#   npm           npm ci --offline of a real lockfile from a cache made on the host
#   chain, six    trivial steps: a three-stage chain and a six-stage build (a build's fixed cost)
# (contexts laid out by benches/prepare.sh; nothing in a build reaches a network). Every build
# ends with the image pushed to the same loopback registry, each run to a fresh repository, so
# every layer the build made is uploaded every time. Per build, medians of RUNS runs (default 3):
#   cold       Slipway with an empty state directory | BuildKit after `buildctl prune --all`:
#              base images pulled from the loopback registry and unpacked, nothing cached
#   bases      base images cached, every step run: Slipway with its state directory kept |
#              BuildKit `--no-cache` (its content store keeps the bases)
#   bk-local   BuildKit's own layer cache, warm (the same build again: every step a hit)
#   bk-reg     BuildKit after `prune --all`, `--import-cache type=registry` (mode=max, exported
#              by an earlier run)
#   sw-reg     Slipway with its registry cache (`--cache-repo`, filled by one build first), from
#              an empty state directory each time: measured like bk-reg.
# Ratios are BuildKit / Slipway (above 1: Slipway is faster). Also the compressed bytes of the
# layers each side pushed (the base's layers mounted or skipped are not counted).
#   sudo benches/local_build.sh [RUNS]      BENCH_BUILDS="go fanout" picks builds,
#   BENCH_CTX=DIR reuses contexts laid out by benches/prepare.sh DIR, BENCH_ONLY=bases times
#   only the issue's pair (Slipway with its bases cached | BuildKit --no-cache, in turn), and
#   BENCH_BEFORE=ENGINE times another slipway-builder binary (an older commit's, say) just
#   before each of this tree's runs, with its own state directory. The slot just after a
#   build pays for the files that build deleted (ext4 with online discard): with BENCH_ONLY=bases
#   Slipway and BuildKit take turns going first (use an even RUNS); BENCH_ENGINE=ENGINE times
#   another engine in this tree's slot. SLIPWAY_WORK_PARENT=DIR puts both builders' state
#   (Slipway's state directory, buildkitd's root) on DIR's filesystem instead of /var/tmp's:
#   for one mounted without online discard, say (benches/nodiscard.sh makes one).
set -euo pipefail
runs=${1:-3}
repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tests/engine/lib.sh
source "$repo/tests/engine/lib.sh"
ctx=${BENCH_CTX:-$("$repo/benches/prepare.sh")}
engine_setup
ENGINE=${BENCH_ENGINE:-$ENGINE}
trap 'engine_teardown; [[ -n ${BENCH_CTX:-} ]] || rm -rf "$ctx"' EXIT
start_buildkitd
R=$ENGINE_REGISTRY
state=$WORK/bench-state
seq_no=0

# The hook for Slipway's registry cache (issue 13): print the flags that make
# `slipway-builder build` import from and export to REF, or nothing while there are none.
slipway_registry_cache_flags() { # REF
  echo --cache-repo "$1"
}

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
# Each build is charged the writes it leaves in the page cache (`sync` at both ends), so the
# next one does not pay for them. BENCH_SETTLE=S waits S seconds more before each: on this
# project's VM disk (ext4, online discard) creating files right after a build deleted tens of
# thousands runs up to 10x slower for a minute or more, which no sync absorbs.
timed() { local s e; sync; sleep "${BENCH_SETTLE:-0}"; s=$(date +%s.%N); "$@" >/dev/null 2>"$WORK/last.err" || { echo "failed: $*" >&2; tail -5 "$WORK/last.err" >&2; return 1; }; sync; e=$(date +%s.%N); echo "$e - $s" | bc; }
ratio() { if [[ $1 == - || $2 == - ]]; then echo -; else echo "scale=2; $1 / $2" | bc; fi; }
next() { seq_no=$((seq_no + 1)); DEST=$R/bench/$1-$seq_no:latest; } # a fresh repository

slipway() { # NAME DEST [extra flags]
  local name=$1 dest=$2; shift 2
  "$ENGINE" build --context "$ctx/$name" --destination "$dest" --insecure-registry "$R" \
    --build-arg "BASE_REGISTRY=$R" --state-dir "$state" "$@"
}
buildkit() { # NAME DEST [extra buildctl flags]
  local name=$1 dest=$2; shift 2
  "${BUILDCTL[@]}" build --frontend dockerfile.v0 --local "context=$ctx/$name" --local "dockerfile=$ctx/$name" \
    --opt "build-arg:BASE_REGISTRY=$R" --output "type=image,name=$dest,push=true,registry.insecure=true" "$@"
}
# Compressed bytes of the layers of REF that are not layers of its base image.
own_bytes() { # REF BASE_REF...
  python3 - "$@" <<'PY'
import json, sys, urllib.request
def layers(ref):
    host, rest = ref.split("/", 1); name, tag = rest.rsplit(":", 1)
    r = urllib.request.Request(f"http://{host}/v2/{name}/manifests/{tag}", headers={"Accept": ",".join([
        "application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"])})
    return {l["digest"]: l["size"] for l in json.load(urllib.request.urlopen(r))["layers"]}
own = layers(sys.argv[1]); base = {}
for b in sys.argv[2:]: base.update(layers(b))
print(sum(s for d, s in own.items() if d not in base))
PY
}
final_base() { # NAME: the final stage's base image, as the Dockerfile names it
  awk -v r="$R" '/^FROM /{b=($2 in as) ? as[$2] : $2; if (toupper($3) == "AS") as[$4]=b}
    END{gsub(/\$\{BASE_REGISTRY\}/, r, b); print b}' "$ctx/$1/Dockerfile"
}

[[ ${BENCH_ONLY:-} == bases ]] ||
  printf '%-9s | %8s %8s %6s | %8s %8s %6s | %8s %8s %8s | %9s %9s\n' build sw_cold bk_cold ratio \
    sw_bases bk_nocch ratio bk_local bk_reg sw_reg sw_MB bk_MB
for name in ${BENCH_BUILDS:-go node fanout bigfile files20k gomod npm chain six}; do
  # Warm-up outside the timings: bases fetched by both, BuildKit's registry cache exported.
  next "sw-$name"; slipway "$name" "$DEST" >/dev/null 2>&1
  next "bk-$name"; buildkit "$name" "$DEST" --export-cache "type=registry,ref=$R/bench/bkcache-$name:latest,mode=max,registry.insecure=true" >/dev/null 2>&1
  sc=() bc=() sb=() bn=() bl=() br=()
  if [[ ${BENCH_ONLY:-} == bases ]]; then
    before=()
    if [[ -n ${BENCH_BEFORE:-} ]]; then # warm the other engine's own state directory too
      next "sw-$name"; ENGINE=$BENCH_BEFORE state=$state-before slipway "$name" "$DEST" >/dev/null 2>&1
    fi
    for i in $(seq "$runs"); do
      if [[ -n ${BENCH_BEFORE:-} ]]; then
        next "sw-$name"; before+=("$(ENGINE=$BENCH_BEFORE state=$state-before timed slipway "$name" "$DEST")")
      fi
      # The slot after a build pays for the files it deleted (ext4 with online discard): the
      # two take turns going first, so that each median holds both slots.
      if ((i % 2)); then
        next "sw-$name"; sb+=("$(timed slipway "$name" "$DEST")")
        next "bk-$name"; bn+=("$(timed buildkit "$name" "$DEST" --no-cache)")
      else
        next "bk-$name"; bn+=("$(timed buildkit "$name" "$DEST" --no-cache)")
        next "sw-$name"; sb+=("$(timed slipway "$name" "$DEST")")
      fi
    done
    m() { printf '%s\n' "$@" | median; }
    mb=$(m "${bn[@]}")
    printf '%-9s | bases: slipway %8.2f  buildkit --no-cache %8.2f  slipway/buildkit %s' "$name" \
      "$(m "${sb[@]}")" "$mb" "$(ratio "$(m "${sb[@]}")" "$mb")"
    if ((${#before[@]})); then
      printf '  | before %8.2f  before/buildkit %s' "$(m "${before[@]}")" "$(ratio "$(m "${before[@]}")" "$mb")"
    fi
    printf '\n'
    echo "  runs: sw bases ${sb[*]} | bk no-cache ${bn[*]} | before ${before[*]}" >&2
    continue
  fi
  for _ in $(seq "$runs"); do
    rm -rf "$state"; next "sw-$name"; sc+=("$(timed slipway "$name" "$DEST")")
    "${BUILDCTL[@]}" prune --all >/dev/null; next "bk-$name"; bc+=("$(timed buildkit "$name" "$DEST")")
    next "sw-$name"; sw_ref=$DEST; sb+=("$(timed slipway "$name" "$DEST")")
    next "bk-$name"; bk_ref=$DEST; bn+=("$(timed buildkit "$name" "$DEST" --no-cache)")
    next "bk-$name"; bl+=("$(timed buildkit "$name" "$DEST")")
    "${BUILDCTL[@]}" prune --all >/dev/null
    next "bk-$name"; br+=("$(timed buildkit "$name" "$DEST" --import-cache "type=registry,ref=$R/bench/bkcache-$name:latest,registry.insecure=true")")
  done
  base=$(final_base "$name")
  swb=$(own_bytes "$sw_ref" "$base") bkb=$(own_bytes "$bk_ref" "$base")
  m() { printf '%s\n' "$@" | median; }
  msc=$(m "${sc[@]}") mbc=$(m "${bc[@]}") msb=$(m "${sb[@]}") mbn=$(m "${bn[@]}") mbl=$(m "${bl[@]}") mbr=$(m "${br[@]}")
  msr=-
  if [[ -n $(slipway_registry_cache_flags x) ]]; then
    sr=()
    # shellcheck disable=SC2046
    next "sw-$name"; timed slipway "$name" "$DEST" $(slipway_registry_cache_flags "$R/bench/swcache-$name") >/dev/null
    for _ in $(seq "$runs"); do
      rm -rf "$state"
      # shellcheck disable=SC2046
      next "sw-$name"; sr+=("$(timed slipway "$name" "$DEST" $(slipway_registry_cache_flags "$R/bench/swcache-$name"))")
    done
    msr=$(m "${sr[@]}")
  fi
  printf '%-9s | %8.2f %8.2f %6s | %8.2f %8.2f %6s | %8.2f %8.2f %8s | %9.1f %9.1f\n' "$name" \
    "$msc" "$mbc" "$(ratio "$mbc" "$msc")" "$msb" "$mbn" "$(ratio "$mbn" "$msb")" "$mbl" "$mbr" "$msr" \
    "$(echo "scale=1; $swb / 1000000" | bc)" "$(echo "scale=1; $bkb / 1000000" | bc)"
  echo "  runs: sw cold ${sc[*]} | bk cold ${bc[*]} | sw bases ${sb[*]} | bk no-cache ${bn[*]} | bk local ${bl[*]} | bk reg ${br[*]}" >&2
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)" >&2
