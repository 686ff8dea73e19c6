# The non-utf8-names case: every path under /copied with owner, mode and type (as the changes
# case prints them), each byte that is not ASCII shown as \ooo by a sed script made here
# (busybox has no `ls -b`); then the link's target, escaped the same way, and what reads
# through the link.
esc=
for o in $(seq 128 255); do
  oct=$(printf %o "$o")
  esc="$esc;s/$(printf "\\$oct")/\\\\$oct/g"
done
esc=${esc#;}
cd /copied || exit 1
find . | sort | while read -r f; do
  printf '%s %s\n' "$(printf '%s\n' "$f" | sed "$esc")" "$(stat -c '%u:%g %a %F' "$f")"
done
e=$(printf '\351')
readlink "link$e" | sed "$esc"
cat "link$e"
