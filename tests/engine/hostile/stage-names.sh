# Sourced by run.sh (SLIPWAY_ENGINE_ONLY=hostile-stage-names): names an author (A1) or a base
# image chooses that must not make the engine delete a directory. L2: a heredoc named `..`
# and a download named `..` (the last segment of `https://h/x/..`) would have removed the
# destination's parent (`/app/..`: the whole tree, and the workspace mounted in it); `.` as a
# destination is a directory (BuildKit), not a file replacing the working directory. L1
# (T15): a base image whose layer has a `.wh..` entry would have deleted the unpack root's
# contents (on the host, in local mode).

HN=$WORK/hostile-stage-names
mkdir -p "$HN"/{heredoc,url,dot,wh/rootfs/dir,wh/ctx}

printf 'FROM %s/slipway-test/busybox:latest\nRUN mkdir /app && echo keep > /app/keep\nCOPY <<.. /app/\nhi\n..\n' "$R" > "$HN/heredoc/Dockerfile"
run_test hostile-stage-heredoc-dotdot expect_failure hostile-stage-heredoc-dotdot "$HN/heredoc" \
  '^stage #0: Dockerfile:3: COPY: <<\.\.: /app/\.\. does not name a file$'

# Refused from the URL alone, before any connection (nothing listens on port 9).
printf 'FROM %s/slipway-test/busybox:latest\nADD https://127.0.0.1:9/x/.. /app/\n' "$R" > "$HN/url/Dockerfile"
run_test hostile-stage-add-url-dotdot expect_failure hostile-stage-add-url-dotdot "$HN/url" \
  '^stage #0: Dockerfile:2: ADD: https://127\.0\.0\.1:9/x/\.\.: /app/\.\. does not name a file$'

cat > "$HN/dot/Dockerfile" <<DF
FROM $R/slipway-test/busybox:latest
WORKDIR /
COPY <<EOF .
dot
EOF
CMD ["/bin/sh", "-c", "cat /EOF; test -x /bin/busybox && echo tree-intact"]
DF
t_hn_dot() {
  build hostile-stage-dot-dest "$HN/dot" >"$HN/dot.log" 2>&1 || { tail -20 "$HN/dot.log"; return 1; }
  check_run hostile-stage-dot-dest <(printf 'dot\ntree-intact\n')
}
run_test hostile-stage-heredoc-dot-dest t_hn_dot

# A base image with `dir/.wh..` (a plain file name on disk, a whiteout in a layer).
echo keep > "$HN/wh/rootfs/dir/keep"
: > "$HN/wh/rootfs/dir/.wh.."
t_hn_whiteout() {
  rm -rf "$HN/wh/layout"
  python3 "$repo/tests/images/mkimage.py" "$HN/wh/layout" "$HN/wh/rootfs" >/dev/null || return 1
  skopeo copy -q --dest-tls-verify=false "oci:$HN/wh/layout:latest" \
    "docker://$R/engine-tests/hostile-wh-base:latest" || return 1
  printf 'FROM %s/engine-tests/hostile-wh-base:latest\nCOPY <<EOF /x\nx\nEOF\n' "$R" > "$HN/wh/ctx/Dockerfile"
  expect_failure hostile-stage-whiteout "$HN/wh/ctx" \
    'layer entry "dir/\.wh\.\." is not a valid whiteout: it names no file in its directory' || return 1
  [[ -d $ENGINE_STATE ]] || { echo "the state directory is gone"; return 1; }
}
run_test hostile-stage-whiteout-dotdot t_hn_whiteout
