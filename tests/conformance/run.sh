#!/usr/bin/env bash
# The conformance tier (issue 14, part 3): kaniko's own Dockerfile corpus, read from kaniko's
# module source (tests/peers/build.sh kaniko --src; never copied into this repository), built
# by Slipway (`slipway-builder build`) and by BuildKit (the engine tier's reference), and the
# two images compared: file tree (type, mode, owner, size, content, link), runtime config and
# history (created_by, empty_layer). Beside this script: `bases` (the local image standing for
# each base the corpus names), `not-runnable` (with the reason), `args` (kaniko's build args)
# and `known` (the differences that stay, each with its reason); corpus.py reads them.
# A case is identical, differs as `known` lists (counted, not hidden), or fails the tier: a
# difference not listed, or a build that fails. Needs root. The last line:
#   conformance: N identical, M differ, K not runnable (KIND: n, ...)
# with `, F not listed` after `M differ` when the tier fails.
#   SLIPWAY_CONFORMANCE_ONLY=regex   run only the cases whose names match (grep -E)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=tests/engine/lib.sh
source "$repo/tests/engine/lib.sh"
imagetool=$repo/tests/engine/imagetool.py

broken() { echo "conformance: 0 identical, 0 differ (1 not listed), 0 not runnable ($1)"; exit 1; }
engine_setup busybox debian || broken "setup failed"
trap engine_teardown EXIT
start_buildkitd || broken "buildkitd did not start"
R=$ENGINE_REGISTRY
only=${SLIPWAY_CONFORMANCE_ONLY:-}

src=$("$repo/tests/peers/build.sh" kaniko --src) || broken "no kaniko module source"
[[ -d $src/integration/dockerfiles ]] || broken "no integration/dockerfiles in $src"
# kaniko's tests build in integration/ as git checks it out: a writable copy (the module cache
# is read-only, 0444 and 0555, and COPY keeps modes) with git's modes, 0644 and 0755.
CTX=$WORK/kaniko-integration
cp -r "$src/integration" "$CTX" && chmod -R u+w "$CTX" || broken "cannot copy the corpus"
plan=$WORK/conformance.plan
python3 "$here/corpus.py" plan "$CTX/dockerfiles" "$R" "$WORK/df" > "$plan" || broken "corpus.py failed"
log "kaniko $(basename "$src"): $(grep -c '^run' "$plan") runnable, $(grep -c '^skip' "$plan") not"

identical=0 differ=0 unlisted=0

# build_pair CASE CONTEXT ARGS...: Slipway and BuildKit build the same rewritten Dockerfile, side
# by side, each pushing to its own repository of the loopback registry.
build_pair() {
  local case=$1 ctx=$2 lc sw_args=() bk_args=() a; shift 2
  lc=$(tr 'A-Z' 'a-z' <<<"$case")
  for a in "$@"; do
    case $a in
      --target=*) sw_args+=(--target "${a#--target=}"); bk_args+=(--opt "target=${a#--target=}") ;;
      *) sw_args+=(--build-arg "$a"); bk_args+=(--opt "build-arg:$a") ;;
    esac
  done
  for who in slipway buildkit; do
    skopeo delete --tls-verify=false "docker://$R/conformance-$who/$lc:latest" >/dev/null 2>&1 || true
  done
  "$ENGINE" build --context "$ctx" --dockerfile "$WORK/df/$case/Dockerfile" \
    --destination "$R/conformance-slipway/$lc:latest" --insecure-registry "$R" \
    --state-dir "$ENGINE_STATE" "${sw_args[@]}" >"$WORK/slipway-$case.log" 2>&1 &
  local sw=$!
  "${BUILDCTL[@]}" build --progress plain --frontend dockerfile.v0 \
    --local "context=$ctx" --local "dockerfile=$WORK/df/$case" "${bk_args[@]}" \
    --output "type=image,name=$R/conformance-buildkit/$lc:latest,push=true,registry.insecure=true" \
    >"$WORK/buildkit-$case.log" 2>&1
  local bk_rc=$? sw_rc=0
  wait "$sw" || sw_rc=$?
  if ((sw_rc != 0 || bk_rc != 0)); then
    : > "$WORK/failed-$case"
    ((sw_rc)) && { echo slipway >> "$WORK/failed-$case"; echo "slipway's build failed:"; tail -8 "$WORK/slipway-$case.log"; }
    ((bk_rc)) && { echo buildkit >> "$WORK/failed-$case"; echo "buildkit's build failed:"; tail -8 "$WORK/buildkit-$case.log"; }
    return 1
  fi
  for who in slipway buildkit; do
    rm -rf "$WORK/oci-$who-$case"
    skopeo copy -q --src-tls-verify=false "docker://$R/conformance-$who/$lc:latest" "oci:$WORK/oci-$who-$case:latest" &&
      skopeo inspect --tls-verify=false --config --raw "docker://$R/conformance-$who/$lc:latest" > "$WORK/config-$who-$case.json" ||
      { echo "cannot read back $who's image"; return 1; }
  done
}

compare() { # CASE [--known FILE]
  local case=$1; shift
  python3 "$imagetool" compare --peer buildkit "$@" --case "$case" \
    "$WORK/oci-slipway-$case" "$WORK/oci-buildkit-$case" \
    "$WORK/config-slipway-$case.json" "$WORK/config-buildkit-$case.json"
}

while IFS=$'\t' read -r verdict case ctx rest; do
  [[ $verdict == run ]] || continue
  [[ -z $only ]] || grep -Eq -- "$only" <<<"$case" || continue
  IFS=$'\t' read -ra args <<<"${rest:-}"
  start=$SECONDS
  rm -f "$WORK/failed-$case"
  if ! out=$(build_pair "$case" "$CTX/$ctx" "${args[@]}" 2>&1); then
    differ=$((differ + 1))
    # `CASE fails BUILDER` in known: that builder refuses the case, with the reason there.
    failed=$(sort "$WORK/failed-$case" 2>/dev/null | tr '\n' ' ')
    listed=$(awk -v c="$case" '$1 == c && $2 == "fails" { print $3 }' "$here/known" | sort | tr '\n' ' ')
    if [[ -n $failed && $failed == "$listed" ]]; then
      echo "ok   $case: differs as tests/conformance/known lists: only ${failed% } fails ($((SECONDS - start))s)"
      sed 's/^/     /' <<<"$out" | grep -E 'error|failed|not found' | head -3
    else
      unlisted=$((unlisted + 1))
      echo "FAIL $case ($((SECONDS - start))s)"; sed 's/^/     /' <<<"$out"
    fi
    continue
  fi
  if raw=$(compare "$case"); then
    identical=$((identical + 1))
    echo "ok   $case: identical ($((SECONDS - start))s)"
  elif listed=$(compare "$case" --known "$here/known"); then
    differ=$((differ + 1))
    echo "ok   $case: differs as tests/conformance/known lists ($((SECONDS - start))s)"
    grep -v '^compared ' <<<"$raw" | head -5 | sed 's/^/     /'
  else
    differ=$((differ + 1)) unlisted=$((unlisted + 1))
    echo "FAIL $case: differs, not listed in tests/conformance/known ($((SECONDS - start))s)"
    sed 's/^/     /' <<<"$listed" | head -40
  fi
done < "$plan"

# Not runnable, by kind (the text before the first colon).
not=0 kinds=
while IFS=$'\t' read -r verdict case reason; do
  [[ $verdict == skip ]] || continue
  [[ -z $only ]] || grep -Eq -- "$only" <<<"$case" || continue
  not=$((not + 1))
  echo "skip $case: $reason"
done < "$plan"
kinds=$(awk -F'\t' -v only="$only" '$1 == "skip" && (only == "" || $2 ~ only) { split($3, k, ":"); n[k[1]]++ }
  END { s = ""; for (x in n) s = s (s ? ", " : "") x ": " n[x]; print s }' "$plan")
echo "conformance: $identical identical, $differ differ$( ((unlisted)) && echo " ($unlisted not listed)"), $not not runnable ($kinds)"
((unlisted == 0))
