# Helpers of the chain-*.sh hostile cases (sourced by each; not a test file itself): a RUN step
# (A2, root in its stage container) rewrites what another stage or the push reads from the
# workspace (SECURITY.md H1, T2, T3, T4). The host hands each container, and the push, the
# digests of exactly what it reads; the workspace is read-only to a stage but for its own
# folders. Each case passes when the attack changed nothing (the target's own image is pushed)
# or the build failed with the one clear error naming the file, and nothing was pushed.

HC=$WORK/hostile-chain
mkdir -p "$HC"
HC_CLEAR='does not match (the|its) digest( the controller holds)?: the workspace was modified'

# hc_not_pushed NAME: nothing is under the name.
hc_not_pushed() {
  if skopeo inspect --tls-verify=false "docker://$R/engine-tests/$1:latest" >/dev/null 2>&1; then
    echo "an image was pushed"; return 1
  fi
}

# hc_target_or_refused NAME OUTPUT RC EXPECTED-RUN-OUTPUT: a build that succeeded pushed the
# target's image (its Cmd and its run output); one that failed said so clearly and pushed
# nothing. Never the side stage's image.
hc_target_or_refused() {
  local name=$1 out=$2 rc=$3 want=$4 cmd
  grep -Eq 'panicked|RUST_BACKTRACE' <<<"$out" && { echo "panic:"; echo "$out" | tail -20; return 1; }
  if ((rc != 0)); then
    grep -Eq -- "$HC_CLEAR" <<<"$out" || { echo "no clear error:"; echo "$out" | tail -15; return 1; }
    hc_not_pushed "$name" || return 1
    echo "refused: $(grep -E -- "$HC_CLEAR" <<<"$out" | head -1)"
    return 0
  fi
  cmd=$(skopeo inspect --tls-verify=false --config --raw "docker://$R/engine-tests/$name:latest" \
    | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["config"].get("Cmd")))')
  [[ $cmd == '["cat", "/marker"]' ]] || { echo "the pushed image is not the target's: Cmd $cmd"; return 1; }
  check_run "$name" <(printf '%s\n' "$want") || return 1
  echo "the target's own image was pushed (Cmd $cmd)"
}
