# Shared by the e2e scripts that need Slipway deployed (sourced after `here` is set):
# TAP-like bookkeeping, a scratch directory, and deploy.sh run once with its exports.
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
bad() { fail=$((fail + 1)); echo "not ok - $1"; shift; for l in "$@"; do echo "#   $l"; done; }
summary() { echo "$pass passed, $fail failed"; }

# e2e_work NAME: a scratch directory in $work, removed with everything the script lists in
# $cleanup_cmds (a string of commands run at exit, before the directory goes).
e2e_work() {
  work=$(mktemp -d "/var/tmp/slipway-$1.XXXXXX")
  trap 'eval "${cleanup_cmds:-}"; rm -rf "$work"' EXIT
}

# e2e_deploy WHAT: runs deploy.sh and evals its exports; on failure reports WHAT and exits.
e2e_deploy() {
  local exports
  if ! exports=$("$here/deploy.sh" 2>"$work/deploy.log"); then
    bad "$1" "$(tail -20 "$work/deploy.log")"
    summary; exit 1
  fi
  eval "$exports"
}

# e2e_cli: builds the CLI (debug, in the tests' cargo target dir) and puts `slipway` and
# `kubectl-slipway` on PATH; on failure reports it and exits. kubectl finds the plugin as
# kubectl-slipway on PATH: the two binaries alone in a directory (cargo's own has
# kubectl-slipway.d beside it, which `kubectl plugin list` reports as a plugin that is not
# executable, and fails on).
e2e_cli() {
  if [[ -z "${CARGO_TARGET_DIR:-}" ]]; then
    local key
    key=$(rustc --version | tr -c 'A-Za-z0-9.\n' '-' | tr -d '\n')
    export CARGO_TARGET_DIR="${SLIPWAY_CACHE:-/var/cache/slipway}/cargo-target/$key"
  fi
  if ! (cd "$repo" && cargo build --quiet -p slipway-cli) >"$work/cargo.log" 2>&1; then
    bad "cargo build -p slipway-cli" "$(tail -20 "$work/cargo.log")"
    summary; exit 1
  fi
  mkdir -p "$work/bin"
  cp "$CARGO_TARGET_DIR/debug/kubectl-slipway" "$CARGO_TARGET_DIR/debug/slipway" "$work/bin/"
  export PATH="$work/bin:$PATH"
}
