#!/usr/bin/env bash
# The e2e tier: every tests/e2e/*_smoke.sh and *_test.sh against the running local cluster.
# Prints each script's TAP-like lines and one closing `N passed, N failed` line.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pass=0 fail=0
for t in "$here"/*_smoke.sh "$here"/*_test.sh; do
  [[ -e $t ]] || continue
  echo "== $(basename "$t")"
  out=$("$t" 2>&1); rc=$?
  echo "$out" | grep -vE '^[0-9]+ passed, [0-9]+ failed$'
  line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -1)
  if [[ -z $line ]]; then
    fail=$((fail + 1)); echo "not ok - $(basename "$t") ended without a summary (exit $rc)"
    continue
  fi
  read -r p _ f _ <<<"${line//,/}"
  pass=$((pass + p)); fail=$((fail + f))
done
echo "e2e: $pass passed, $fail failed"
[[ $fail == 0 ]]
