# Sourced by tests/engine/run.sh: the layer cache (issue 13), local mode with --cache-repo.
# - cold ≡ warm: every case and example built twice with a fresh cache repository and the
#   same SOURCE_DATE_EPOCH: the second build starts no container (only stages that cannot be
#   cached run), and pushes the same manifest digest;
# - must-miss: each mutation (a renamed file, a mode, --chown, a build arg only RUN uses, ARG
#   values with separators, a COPY --from stage that makes other bytes of the same size, a
#   .dockerignore that lets a file in, the base image moved behind its tag or the same one under another name) misses exactly
#   where it must, and gives the digest of a build of the mutated input without the cache;
# - must-hit: a change in a stage the target does not need, and an upstream stage rebuilt to
#   the same bytes (the slow key);
# - the Go example: a no-change rebuild runs nothing; a change to main.go reruns the stages
#   that read it and not the one that downloads modules;
# - a stage stored without its layers (read only through COPY --from, no checkpoint) serves a
#   build that copies from it and is refused by one built FROM it.
# The registry's storage is kept across runs: each test uses a cache repository of its own.

CE=1700000000
CACHE_RUN=$(date +%s)-$$
# A fresh cache repository for test NAME.
crepo() { echo "$R/engine-cache/$1-$CACHE_RUN"; }

# cbuild NAME CTX REPO [args]: a build with the cache (REPO "" for none) and the epoch; its
# log is $WORK/cache-NAME.log.
cbuild() {
  local name=$1 ctx=$2 cr=$3 log=$WORK/cache-$1.log; shift 3
  local with=()
  [[ -n $cr ]] && with=(--cache-repo "$cr")
  build "$name" "$ctx" --source-date-epoch "$CE" "${with[@]}" "$@" >"$log" 2>&1 ||
    { tail -20 "$log"; return 1; }
}
cdigest() { skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$R/engine-tests/$1:latest"; }
# The build's cache line: `cache: H hits, M misses, U not cacheable, B bytes reused`.
coutcome() { grep -E '^cache: [0-9]+ hits' "$WORK/cache-$1.log" | tail -1; }
# Containers the build started (one line each as they end).
ccontainers() { grep -c 'container exited with' "$WORK/cache-$1.log"; }
# The stages that hit, by index: `0 2 3`.
chits() { grep -oE '^cache: stage #[0-9]+ hit' "$WORK/cache-$1.log" | grep -oE '[0-9]+' | tr '\n' ' ' | sed 's/ $//'; }
# field N of the outcome line: 2 hits, 4 misses, 6 not cacheable
cfield() { coutcome "$1" | awk -v n="$2" '{ print $n }'; }

# cold_warm NAME CTX [args]: cold then warm with one fresh repository; same digest, and the
# warm build ran only what cannot be cached.
cold_warm() {
  local name=$1 ctx=$2 cr; shift 2
  cr=$(crepo "$name")
  cbuild "$name-cold" "$ctx" "$cr" "$@" || return 1
  cbuild "$name-warm" "$ctx" "$cr" "$@" || return 1
  local a b
  a=$(cdigest "$name-cold") && b=$(cdigest "$name-warm") || return 1
  echo "cold: $(coutcome "$name-cold") -> $a"
  echo "warm: $(coutcome "$name-warm") -> $b"
  [[ $a == "$b" ]] || { echo "the warm build's digest differs"; return 1; }
  [[ $(cfield "$name-cold" 2) == 0 ]] || { echo "the cold build hit a fresh repository"; return 1; }
  [[ $(cfield "$name-warm" 4) == 0 ]] || { echo "the warm build missed"; return 1; }
  local unc containers
  unc=$(cfield "$name-warm" 6); containers=$(ccontainers "$name-warm")
  if ((unc == 0)) && ((containers != 0)); then
    echo "the warm build started $containers containers"; return 1
  fi
  echo "warm build: $containers containers ($unc stages not cacheable)"
}

if want cache-cold-warm; then
  for d in "$here"/cases/*/; do
    name=$(basename "$d")
    t_cache_case() {
      local args=()
      if [[ -x $d/prepare ]]; then (cd "$d" && ./prepare) || return 1; fi
      while IFS= read -r -d '' a; do args+=("$a"); done < <(case_build_args "$name" "$d")
      cold_warm "cache-$name" "$d" "${args[@]}"
    }
    run_test "cache-cold-warm-$name" t_cache_case
  done
  for ex in go node; do
    run_test "cache-cold-warm-example-$ex" cold_warm "cache-example-$ex" "$repo/examples/$ex"
  done
fi

# --- must-miss and must-hit --------------------------------------------------------------
CM=$WORK/cache-mutations
# A three-stage build: `gen` makes a file from a build arg, `app` copies context files
# (with --chown) and gen's output, `unused` is not needed by the target.
cm_reset() {
  rm -rf "$CM"; mkdir -p "$CM/ctx/files"
  cat > "$CM/ctx/Dockerfile" <<'DF'
ARG BASE_REGISTRY=127.0.0.1:5055
FROM ${BASE_REGISTRY}/slipway-test/busybox:latest AS gen
ARG FLAVOUR=plain
ARG A
ARG B
RUN echo "flavour $FLAVOUR" > /gen.txt && echo "a=$A b=$B" >> /gen.txt
FROM ${BASE_REGISTRY}/slipway-test/busybox:latest AS unused
RUN echo unused > /u
FROM ${BASE_REGISTRY}/slipway-test/busybox:latest
COPY --chown=1000:1000 files/ /app/
COPY --from=gen /gen.txt /app/gen.txt
CMD ["cat", "/app/gen.txt"]
DF
  echo one > "$CM/ctx/files/one.txt"
  echo two > "$CM/ctx/files/two.txt"
  echo 'files/secret.txt' > "$CM/ctx/.dockerignore"
  echo hidden > "$CM/ctx/files/secret.txt"
}

# mutation NAME WANT_HITS SETUP [build args...]: cold build into a fresh repository, the
# mutation (SETUP, a function), then a warm build that must hit exactly WANT_HITS (stage
# indexes, "" for none) and push the digest a build of the mutated input without the cache
# pushes.
mutation() {
  local name=$1 want=$2 setup=$3 cr; shift 3
  cr=$(crepo "$name")
  cm_reset
  cbuild "$name-cold" "$CM/ctx" "$cr" "$@" || return 1
  "$setup" || return 1
  cbuild "$name-warm" "$CM/ctx" "$cr" "${CM_ARGS[@]}" || return 1
  cbuild "$name-none" "$CM/ctx" "" "${CM_ARGS[@]}" || return 1
  local hits a b
  hits=$(chits "$name-warm")
  a=$(cdigest "$name-warm") && b=$(cdigest "$name-none") || return 1
  echo "$name: warm build hit stages [$hits] ($(coutcome "$name-warm")); want [$want]"
  [[ $hits == "$want" ]] || return 1
  [[ $a == "$b" ]] || { echo "digest with the cache $a, without $b"; return 1; }
  echo "digest $a, the same without the cache"
}
CM_ARGS=()
# The plan numbers stages from 0 in Dockerfile order: gen 0, unused 1 (the target does not
# need it), the target 2.
m_rename() { mv "$CM/ctx/files/two.txt" "$CM/ctx/files/deux.txt"; }
m_mode() { chmod 0755 "$CM/ctx/files/one.txt"; }
m_chown() { sed -i 's/--chown=1000:1000/--chown=1000:1001/' "$CM/ctx/Dockerfile"; }
m_ignore() { : > "$CM/ctx/.dockerignore"; }
m_gen_same_size() { sed -i 's/flavour \$FLAVOUR/flavouR $FLAVOUR/' "$CM/ctx/Dockerfile"; }
m_unused() { sed -i 's/echo unused/echo changed/' "$CM/ctx/Dockerfile"; }
m_gen_same_bytes() { sed -i 's/> \/gen.txt/>\/gen.txt/' "$CM/ctx/Dockerfile"; }
m_touch() { touch "$CM/ctx/files/one.txt"; }
m_none() { :; }

if want cache-must; then
  run_test cache-must-miss-rename mutation cache-rename "0" m_rename
  run_test cache-must-miss-mode mutation cache-mode "0" m_mode
  run_test cache-must-miss-chown mutation cache-chown "0" m_chown
  run_test cache-must-miss-dockerignore mutation cache-ignore "0" m_ignore
  # Same size, other bytes: the target's COPY --from must miss.
  run_test cache-must-miss-copy-from mutation cache-copy-from "" m_gen_same_size
  t_arg_run() { CM_ARGS=(--build-arg FLAVOUR=spicy); mutation cache-arg-run "" m_none; local r=$?; CM_ARGS=(); return $r; }
  run_test cache-must-miss-build-arg t_arg_run
  # A=x,B=y with B unset, against A=x and B=y: joined with a separator they would collide.
  t_arg_sep() {
    CM_ARGS=(--build-arg A=x --build-arg B=y)
    mutation cache-arg-sep "" m_none --build-arg "A=x b=y" --build-arg "B="
    local r=$?; CM_ARGS=(); return $r
  }
  run_test cache-must-miss-arg-separators t_arg_sep
  run_test cache-must-hit-unneeded-stage mutation cache-unneeded "0 2" m_unused
  run_test cache-must-hit-same-bytes mutation cache-same-bytes "2" m_gen_same_bytes
  run_test cache-must-hit-touched-file mutation cache-touch "0 2" m_touch
  # The base image moved behind the same tag: every stage built on it misses.
  t_base_moved() {
    local base=$R/engine-cache/base-$CACHE_RUN:latest cr
    cr=$(crepo cache-base-moved)
    skopeo copy -q --src-tls-verify=false --dest-tls-verify=false \
      "docker://$R/slipway-test/busybox:latest" "docker://$base" || return 1
    mkdir -p "$WORK/cache-base"
    printf 'FROM %s\nRUN echo hi > /hi\n' "$base" > "$WORK/cache-base/Dockerfile"
    cbuild cache-base-cold "$WORK/cache-base" "$cr" || return 1
    cbuild cache-base-again "$WORK/cache-base" "$cr" || return 1
    [[ $(chits cache-base-again) == 0 ]] || { echo "no hit before the move"; return 1; }
    # Another image under the same tag: busybox with one more layer.
    mkdir -p "$WORK/cache-base-new"
    printf 'FROM %s/slipway-test/busybox:latest\nRUN echo moved > /moved\n' "$R" > "$WORK/cache-base-new/Dockerfile"
    "$ENGINE" build --context "$WORK/cache-base-new" --destination "$base" \
      --insecure-registry "$R" --state-dir "$ENGINE_STATE" >"$WORK/cache-base-new.log" 2>&1 || { tail "$WORK/cache-base-new.log"; return 1; }
    cbuild cache-base-warm "$WORK/cache-base" "$cr" || return 1
    cbuild cache-base-none "$WORK/cache-base" "" || return 1
    echo "after the move: hits [$(chits cache-base-warm)] ($(coutcome cache-base-warm))"
    [[ -z $(chits cache-base-warm) ]] || return 1
    [[ $(cdigest cache-base-warm) == "$(cdigest cache-base-none)" ]] || { echo "digests differ"; return 1; }
  }
  run_test cache-must-miss-base-moved t_base_moved
  # The same base image under another name (a mirror, a copy): the target's entry names its
  # base, so it must miss; a hit would push the image without the base's layers.
  m_base_alias() {
    local alias=$R/engine-cache/busybox-alias-$CACHE_RUN:latest
    skopeo copy -q --src-tls-verify=false --dest-tls-verify=false \
      "docker://$R/slipway-test/busybox:latest" "docker://$alias" || return 1
    sed -i "s|^FROM \${BASE_REGISTRY}/slipway-test/busybox:latest\$|FROM $alias|" "$CM/ctx/Dockerfile"
    grep -q "^FROM $alias\$" "$CM/ctx/Dockerfile"
  }
  run_test cache-must-miss-base-renamed mutation cache-base-renamed "0" m_base_alias
  # Hostile: an entry under a stage's tag that is another stage's (a registry, or whoever can
  # push to the cache repository, swapped it) is a miss, said as a warning, and the image is
  # the one a build without the cache makes.
  t_swapped_entry() {
    local cr gen targets t log=$WORK/cache-cache-swapped-cold.log
    cr=$(crepo cache-swapped)
    cm_reset
    cbuild cache-swapped-cold "$CM/ctx" "$cr" || return 1
    # The fast and slow tags of the target (stage 2), both pointed at gen's (stage 0) entry.
    gen=$(grep -E '^cache: stage #0 stored under' "$log" | grep -oE 'sw1-[0-9a-f]{64}' | head -1)
    targets=$(grep -E '^cache: stage #2 stored under' "$log" | grep -oE 'sw1-[0-9a-f]{64}')
    [[ -n $gen && -n $targets ]] || { echo "no stored tags in the log"; tail "$log"; return 1; }
    for t in $targets; do
      skopeo copy -q --src-tls-verify=false --dest-tls-verify=false "docker://$cr:$gen" "docker://$cr:$t" || return 1
    done
    cbuild cache-swapped-warm "$CM/ctx" "$cr" || return 1
    grep -E "^warning: cache: stage #2: entry sw1-" "$WORK/cache-cache-swapped-warm.log" || { echo "no warning"; tail "$WORK/cache-cache-swapped-warm.log"; return 1; }
    echo "hits [$(chits cache-swapped-warm)]"
    [[ $(chits cache-swapped-warm) == 0 ]] || return 1
    [[ $(cdigest cache-swapped-warm) == "$(cdigest cache-swapped-cold)" ]] || { echo "the image changed"; return 1; }
  }
  run_test cache-hostile-swapped-entry t_swapped_entry
  # A quoted COPY source reads the file without the quotes: a change to it must miss.
  t_quoted_source() {
    local ctx=$WORK/cache-quoted cr
    cr=$(crepo cache-quoted)
    rm -rf "$ctx"; mkdir -p "$ctx"
    printf 'ARG BASE_REGISTRY=127.0.0.1:5055\nFROM ${BASE_REGISTRY}/slipway-test/busybox:latest\nCOPY "a.txt" /a.txt\n' > "$ctx/Dockerfile"
    echo one > "$ctx/a.txt"
    cbuild cache-quoted-cold "$ctx" "$cr" || return 1
    echo two > "$ctx/a.txt"
    cbuild cache-quoted-warm "$ctx" "$cr" || return 1
    cbuild cache-quoted-none "$ctx" "" || return 1
    echo "a.txt changed: hits [$(chits cache-quoted-warm)]"
    [[ -z $(chits cache-quoted-warm) ]] || return 1
    [[ $(cdigest cache-quoted-warm) == "$(cdigest cache-quoted-none)" ]] || { echo "digests differ"; return 1; }
  }
  run_test cache-must-miss-quoted-source t_quoted_source
fi

# --- the Go example: no change, then one source file ---------------------------------------
if want cache-example-go; then
  t_cache_go() {
    local cr ctx=$WORK/cache-go
    cr=$(crepo cache-go)
    rm -rf "$ctx"; cp -r "$repo/examples/go" "$ctx"
    cbuild cache-go-cold "$ctx" "$cr" || return 1
    cbuild cache-go-same "$ctx" "$cr" || return 1
    echo "no change: $(coutcome cache-go-same), $(ccontainers cache-go-same) containers"
    [[ $(ccontainers cache-go-same) == 0 ]] || return 1
    [[ $(cdigest cache-go-same) == "$(cdigest cache-go-cold)" ]] || { echo "digests differ"; return 1; }
    # A test file changes: the builder reruns, makes the same binary, the final stage hits.
    echo '// a comment' >> "$ctx/main_test.go"
    cbuild cache-go-test "$ctx" "$cr" || return 1
    echo "main_test.go changed: hits [$(chits cache-go-test)], $(ccontainers cache-go-test) containers"
    [[ $(chits cache-go-test) == "0 3" ]] || return 1
    [[ $(cdigest cache-go-test) == "$(cdigest cache-go-cold)" ]] || { echo "the image changed"; return 1; }
    # The program changes: base (go mod download) hits, builder and the final stage rerun.
    sed -i 's/Hello from/Hello again from/' "$ctx/main.go"
    cbuild cache-go-main "$ctx" "$cr" || return 1
    cbuild cache-go-main-none "$ctx" "" || return 1
    echo "main.go changed: hits [$(chits cache-go-main)], $(ccontainers cache-go-main) containers"
    [[ $(chits cache-go-main) == "0" ]] || return 1
    [[ $(cdigest cache-go-main) == "$(cdigest cache-go-main-none)" ]] || { echo "digests differ"; return 1; }
  }
  run_test cache-example-go t_cache_go
fi

# --- prefix hits: a stage that changes late starts from the checkpoint before the change ----
# One stage doing everything (no stage split to cache by): its RUN steps before the change are
# not run again, their layers come from the cache, and the image is the one a build without
# the cache makes. ENV and ARG before the checkpoint reach the RUN after it; a file a RUN
# before deleted stays deleted.
CP=$WORK/cache-prefix
cp_reset() {
  rm -rf "$CP"; mkdir -p "$CP"
  cat > "$CP/Dockerfile" <<'DF'
ARG BASE_REGISTRY=127.0.0.1:5055
FROM ${BASE_REGISTRY}/slipway-test/busybox:latest
MAINTAINER prefix tests
WORKDIR /app
ARG V=one
COPY deps.txt ./
RUN echo "deps $(cat deps.txt) $V" > deps.out && mkdir gone && echo x > gone/f
ENV PHASE=after
RUN rm -rf gone && echo "ran more" > more.out
COPY src.txt ./
RUN cat deps.out more.out src.txt > all.out && echo "$PHASE $V" >> all.out && ls >> all.out
LABEL phase=$PHASE v=$V
CMD ["cat", "/app/all.out"]
DF
  echo dep1 > "$CP/deps.txt"
  echo src1 > "$CP/src.txt"
}
# cp_starts NAME: the instruction the build's stage started after ("" when none).
cp_starts() { grep -oE '^cache: stage #0 starts after its instruction [0-9]+' "$WORK/cache-$1.log" | grep -oE '[0-9]+$'; }

if want cache-prefix; then
  # prefix_case NAME WANT_START WANT_RUNS SETUP: cold build, SETUP, warm build: starts after
  # instruction WANT_START ("" for from the start), runs WANT_RUNS RUN steps (those after
  # it), and pushes the digest a build without the cache pushes.
  prefix_case() {
    local name=$1 want=$2 want_runs=$3 setup=$4 cr
    cr=$(crepo "$name")
    cp_reset
    cbuild "$name-cold" "$CP" "$cr" || return 1
    grep -E '^cache: stage #0: 3 checkpoints stored' "$WORK/cache-$name-cold.log" ||
      { echo "no checkpoints stored"; grep '^cache:' "$WORK/cache-$name-cold.log"; return 1; }
    "$setup" || return 1
    cbuild "$name-warm" "$CP" "$cr" || return 1
    cbuild "$name-none" "$CP" "" || return 1
    local start runs a b
    start=$(cp_starts "$name-warm")
    runs=$(grep -cE '^\[[^]]*\] RUN ' "$WORK/cache-$name-warm.log")
    echo "$name: started after instruction [$start], want [$want]; $runs RUN steps run, want $want_runs ($(coutcome "$name-warm"))"
    [[ $start == "$want" && $runs == "$want_runs" ]] || { grep -E '^(cache|warning|\[)' "$WORK/cache-$name-warm.log"; return 1; }
    a=$(cdigest "$name-warm") && b=$(cdigest "$name-none") || return 1
    [[ $a == "$b" ]] || { echo "digest with the cache $a, without $b"; return 1; }
    echo "digest $a, the same without the cache"
  }
  # Instructions: MAINTAINER 1 (the author), WORKDIR 2, ARG 3, COPY deps 4, RUN 5, ENV 6,
  # RUN 7, COPY src 8, RUN 9, LABEL 10 (expanded from ENV and ARG before the checkpoints),
  # CMD 11; checkpoints after 5, 7 and 9.
  p_src() { echo src2 > "$CP/src.txt"; }
  p_deps() { echo dep2 > "$CP/deps.txt"; }
  p_cmd() { sed -i 's|"/app/all.out"|"all.out"|' "$CP/Dockerfile"; }
  p_second_run() { sed -i 's/ran more/ran again/' "$CP/Dockerfile"; }
  run_test cache-prefix-late-file prefix_case cache-prefix-src 7 1 p_src
  run_test cache-prefix-after-last-run prefix_case cache-prefix-cmd 9 0 p_cmd
  run_test cache-prefix-middle-run prefix_case cache-prefix-middle 5 2 p_second_run
  run_test cache-prefix-early-file prefix_case cache-prefix-deps "" 3 p_deps
  # Hostile: the entry under the longest checkpoint's tag swapped for the first one's (whoever
  # can push to the cache repository did): refused with a warning, the next one is used, and
  # the image is the one a build without the cache makes.
  t_prefix_swapped() {
    local name=cache-prefix-swapped cr t4 t8 log
    cr=$(crepo "$name")
    cp_reset
    cbuild "$name-cold" "$CP" "$cr" || return 1
    log=$WORK/cache-$name-cold.log
    t4=$(grep -E '^cache: stage #0 after its instruction 5 stored under' "$log" | grep -oE 'sw1-[0-9a-f]{64}')
    t8=$(grep -E '^cache: stage #0 after its instruction 9 stored under' "$log" | grep -oE 'sw1-[0-9a-f]{64}')
    [[ -n $t4 && -n $t8 ]] || { echo "no checkpoint tags in the log"; grep '^cache' "$log"; return 1; }
    skopeo copy -q --src-tls-verify=false --dest-tls-verify=false "docker://$cr:$t4" "docker://$cr:$t8" || return 1
    p_cmd
    cbuild "$name-warm" "$CP" "$cr" || return 1
    cbuild "$name-none" "$CP" "" || return 1
    grep -E '^warning: cache: stage #0: entry sw1-' "$WORK/cache-$name-warm.log" || { echo "no warning"; return 1; }
    echo "started after instruction [$(cp_starts "$name-warm")], want [7]"
    [[ $(cp_starts "$name-warm") == 7 ]] || return 1
    [[ $(cdigest "$name-warm") == "$(cdigest "$name-none")" ]] || { echo "digests differ"; return 1; }
  }
  run_test cache-prefix-hostile-swapped t_prefix_swapped
fi

# --- a stage stored without its layers ---------------------------------------------------------
# A stage read only through COPY --from and without checkpoints makes no layers, even with a
# cache (its entry holds its result and exports). A build that copies from it takes the entry;
# one built FROM it must not (the stage runs again, with its layers), and every build gives
# the digest a build without the cache gives.
if want cache-layerless; then
  t_layerless() {
    local name=cache-layerless cr d=$WORK/cache-layerless tag layers
    cr=$(crepo "$name")
    rm -rf "$d"; mkdir -p "$d/copy" "$d/from"
    local head='ARG BASE_REGISTRY
FROM ${BASE_REGISTRY}/slipway-test/busybox:latest AS a
RUN echo made by a > /a.txt'
    printf '%s\n' "$head" 'FROM ${BASE_REGISTRY}/slipway-test/busybox:latest' \
      'COPY --from=a /a.txt /a.txt' > "$d/copy/Dockerfile"
    printf '%s\n' "$head" 'FROM a AS b' 'RUN cat /a.txt > /b.txt' \
      'FROM ${BASE_REGISTRY}/slipway-test/busybox:latest' 'COPY --from=a /a.txt /a.txt' \
      'COPY --from=b /b.txt /b.txt' > "$d/from/Dockerfile"
    cbuild "$name-copy" "$d/copy" "$cr" || return 1
    tag=$(grep -E '^cache: stage #0 stored under' "$WORK/cache-$name-copy.log" | grep -oE 'sw1-[0-9a-f]{64}' | head -1)
    [[ -n $tag ]] || { echo "stage #0 was not stored"; grep '^cache' "$WORK/cache-$name-copy.log"; return 1; }
    layers=$(skopeo inspect --tls-verify=false --raw "docker://$cr:$tag" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["layers"]))')
    echo "stage #0's entry: $layers blob(s)"
    [[ $layers == 1 ]] || { echo "want its exports alone"; return 1; }
    cbuild "$name-copy-warm" "$d/copy" "$cr" || return 1
    echo "copy again: hits [$(chits "$name-copy-warm")]"
    [[ $(chits "$name-copy-warm") == "0 1" ]] || return 1
    cbuild "$name-from" "$d/from" "$cr" || return 1
    grep -E "^warning: cache: stage #0: entry sw1-[0-9a-f]+: it holds the stage's exports but not its layers" \
      "$WORK/cache-$name-from.log" || { echo "no refusal"; grep -E '^(cache|warning)' "$WORK/cache-$name-from.log"; return 1; }
    echo "FROM it: hits [$(chits "$name-from")]"
    [[ $(chits "$name-from") != 0* ]] || return 1
    cbuild "$name-copy-none" "$d/copy" "" || return 1
    cbuild "$name-from-none" "$d/from" "" || return 1
    [[ $(cdigest "$name-copy-warm") == "$(cdigest "$name-copy-none")" ]] || { echo "copy: digests differ"; return 1; }
    [[ $(cdigest "$name-from") == "$(cdigest "$name-from-none")" ]] || { echo "from: digests differ"; return 1; }
  }
  run_test cache-layerless t_layerless
fi
