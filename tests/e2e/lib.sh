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
