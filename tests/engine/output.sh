# Sourced by tests/engine/run.sh: what local mode says at its end (issue 15 item 7), on a real
# build in runc pushed to the loopback registry:
# - --output json: stdout is one JSON object (image, digest, pushed refs) and nothing else;
#   the stages' output (a RUN's stdout too) is on stderr, `[stage]`-prefixed, each line whole
#   though stdout and stderr race;
# - --digest-file: the manifest digest, no newline, as kaniko writes it; the registry holds it;
#   also without --destination (the digest the image would have); a file it cannot write fails
#   the command, naming the flag;
# - --label: labels in the config after the Dockerfile's (a key in both takes --label's
#   value), no history entry: compared with BuildKit's `--opt label:K=V` (labels, history,
#   file trees and runtime config, imagetool.py compare);
# - --output json with --cache-repo: the cache's outcome, a miss then a hit; the cache write
#   mounts the target's layers from the pushed image, and a warm build into a new repository
#   mounts the hit's layers from the cache: nothing uploaded either time (the `push:` and
#   `cache: write:` lines);
# - on a terminal (a pseudo-terminal from `script`), a progress line for the base's pull and
#   the push, redrawn in place and erased before `pushed`; without one (every other case
#   here), no escape sequence at all.

O=$WORK/output
mkdir -p "$O/ctx"
cat > "$O/ctx/Dockerfile" <<DF
FROM $R/slipway-test/busybox:latest AS app
LABEL keep=dockerfile a=dockerfile
RUN echo on-stdout && echo on-stderr >&2 && i=0 && while [ \$i -lt 300 ]; do echo out\$i; echo err\$i >&2; i=\$((i+1)); done && echo built > /built
CMD ["cat", "/built"]
DF
LABELS=(--label a=flag --label new=x=y --label "spaced=two words")

if want local-output-json; then
  t_output_json() {
    local ref=$R/engine-tests/output-json:latest out digest got
    skopeo delete --tls-verify=false "docker://$ref" >/dev/null 2>&1 || true
    "$ENGINE" build --context "$O/ctx" --destination "$ref" --insecure-registry "$R" \
      --state-dir "$ENGINE_STATE" "${LABELS[@]}" --digest-file "$O/digest" --output json \
      >"$O/json.out" 2>"$O/json.err" || { tail -20 "$O/json.err"; return 1; }
    [[ $(wc -l <"$O/json.out") == 1 ]] || { echo "stdout is not one line:"; cat "$O/json.out"; return 1; }
    digest=$(jq -r .digest "$O/json.out") || { cat "$O/json.out"; return 1; }
    got=$(jq -c '[.image, .pushed]' "$O/json.out")
    [[ $got == "[\"$ref\",[\"$ref@$digest\"]]" ]] || { echo "image, pushed: $got"; return 1; }
    [[ $digest =~ ^sha256:[0-9a-f]{64}$ ]] || { echo "digest: $digest"; return 1; }
    # kaniko's form: the digest alone, without a newline.
    [[ $(stat -c %s "$O/digest") == 71 && $(cat "$O/digest") == "$digest" ]] ||
      { echo "--digest-file holds: $(od -c "$O/digest" | head -3)"; return 1; }
    got=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$ref" 2>&1)
    [[ $got == "$digest" ]] || { echo "the registry holds $got, JSON says $digest"; return 1; }
    # The RUN's stdout and stderr are the log, on stderr, with the stage's prefix.
    grep -qx '\[app\] on-stdout' "$O/json.err" && grep -qx '\[app\] on-stderr' "$O/json.err" ||
      { echo "no [app] lines on stderr:"; tail -20 "$O/json.err"; return 1; }
    ! grep -q 'on-std' "$O/json.out" || { echo "RUN output on stdout"; return 1; }
    # The pods' result line is for the controller; local mode reads the workspace.
    ! grep -q 'slipway-result' "$O/json.err" || { echo "internal result lines on stderr"; return 1; }
    # The RUN's stdout and stderr share our stderr: 600 lines racing, none cut into another.
    local whole torn
    whole=$(grep -cE '^\[app\] (out|err)[0-9]+$' "$O/json.err")
    torn=$(grep -E '(out|err)[0-9]' "$O/json.err" | grep -vxE '\[app\] (out|err)[0-9]+' | head -3)
    [[ $whole == 600 && -z $torn ]] || { echo "$whole whole lines of 600; torn: $torn"; return 1; }
    echo "stdout: $(cat "$O/json.out")"
  }
  run_test local-output-json t_output_json

  t_output_labels() {
    local ref=$R/engine-tests/output-json:latest labels hist
    skopeo inspect --tls-verify=false --config --raw "docker://$ref" > "$O/config.json" || return 1
    labels=$(jq -c .config.Labels "$O/config.json")
    [[ $labels == '{"a":"flag","keep":"dockerfile","new":"x=y","spaced":"two words"}' ]] ||
      { echo "labels: $labels"; return 1; }
    hist=$(jq -c '[.history[] | select(.created_by | test("LABEL|label"))] | length' "$O/config.json")
    [[ $hist == 1 ]] || { echo "history entries naming a label: $hist (want the Dockerfile's one)"; jq .history "$O/config.json"; return 1; }
    echo "labels: $labels"
  }
  run_test local-output-labels t_output_labels

  # BuildKit with the same labels as `--opt label:K=V`: the same config labels and history,
  # and the same image otherwise.
  t_output_labels_buildkit() {
    local bref=$R/buildkit-fidelity/output-labels:latest a
    [[ -d $WORK/oci-output-json ]] || { rm -rf "$WORK/oci-output-json";
      skopeo copy -q --src-tls-verify=false "docker://$R/engine-tests/output-json:latest" "oci:$WORK/oci-output-json:latest" || return 1; }
    "${BUILDCTL[@]}" build --progress plain --frontend dockerfile.v0 \
      --local "context=$O/ctx" --local "dockerfile=$O/ctx" \
      --opt label:a=flag --opt label:new=x=y --opt "label:spaced=two words" \
      --output "type=image,name=$bref,push=true,registry.insecure=true" >"$O/buildkit.log" 2>&1 ||
      { tail -20 "$O/buildkit.log"; return 1; }
    rm -rf "$WORK/buildkit-oci-output-labels"
    skopeo copy -q --src-tls-verify=false "docker://$bref" "oci:$WORK/buildkit-oci-output-labels:latest" || return 1
    skopeo inspect --tls-verify=false --config --raw "docker://$bref" > "$O/buildkit-config.json" || return 1
    a=$(jq -c .config.Labels "$O/config.json"); b=$(jq -c .config.Labels "$O/buildkit-config.json")
    [[ $a == "$b" ]] || { echo "labels: slipway $a, buildkit $b"; return 1; }
    python3 "$here/imagetool.py" compare --peer buildkit --known "$here/buildkit-known" --case output-labels \
      "$WORK/oci-output-json" "$WORK/buildkit-oci-output-labels" "$O/config.json" "$O/buildkit-config.json"
  }
  run_test buildkit-local-output-labels t_output_labels_buildkit
fi

if want local-output-digest-file; then
  t_digest_no_push() {
    local out
    out=$("$ENGINE" build --context "$O/ctx" --insecure-registry "$R" --state-dir "$ENGINE_STATE" \
      --digest-file "$O/digest-nopush" 2>"$O/nopush.err") || { tail -20 "$O/nopush.err"; return 1; }
    [[ $out =~ ^sha256:[0-9a-f]{64}$ && $(cat "$O/digest-nopush") == "$out" ]] ||
      { echo "stdout $out, --digest-file $(cat "$O/digest-nopush" 2>&1)"; return 1; }
    echo "no --destination: $out in both"
  }
  run_test local-output-digest-file-no-push t_digest_no_push

  t_digest_unwritable() {
    local out rc
    out=$("$ENGINE" build --context "$O/ctx" --insecure-registry "$R" --state-dir "$ENGINE_STATE" \
      --digest-file "$O/no/such/dir/digest" 2>&1); rc=$?
    ((rc != 0)) || { echo "exit 0"; return 1; }
    tail -1 <<<"$out" | grep -qx -- "--digest-file $O/no/such/dir/digest: No such file or directory (os error 2)" ||
      { echo "$out" | tail -5; return 1; }
    grep -Eq 'panicked|RUST_BACKTRACE' <<<"$out" && { echo "$out"; return 1; }
    tail -1 <<<"$out"
  }
  run_test local-output-digest-file-unwritable t_digest_unwritable
fi

if want local-output-cache; then
  t_output_cache() {
    local cr=$R/engine-cache/output-$(date +%s)-$$ ref=$R/engine-tests/output-cache:latest first second
    for n in 1 2; do
      "$ENGINE" build --context "$O/ctx" --destination "$ref" --insecure-registry "$R" \
        --state-dir "$ENGINE_STATE" --source-date-epoch 1700000000 --cache-repo "$cr" --output json \
        >"$O/cache-$n.out" 2>"$O/cache-$n.err" || { tail -20 "$O/cache-$n.err"; return 1; }
    done
    first=$(jq -cS .cache "$O/cache-1.out"); second=$(jq -cS .cache "$O/cache-2.out")
    [[ $first == '{"bytesReused":0,"hits":[],"misses":[0],"uncacheable":[]}' &&
       $second == '{"bytesReused":'*',"hits":[0],"misses":[],"uncacheable":[]}' ]] ||
      { echo "cold: $first"; echo "warm: $second"; return 1; }
    [[ $(jq -r .digest "$O/cache-1.out") == "$(jq -r .digest "$O/cache-2.out")" ]] || { echo "digests differ"; return 1; }
    echo "cold $first, warm $second"
    # The cold build's cache write mounts the target's layers from the image just pushed.
    grep -E '^cache: write: .*, [1-9][0-9]* mounted, 0 uploaded \(0 bytes\)$' "$O/cache-1.err" ||
      { echo "the cache write uploaded:"; grep -E '^(cache: write|push):' "$O/cache-1.err"; return 1; }
    # A warm build into a repository that has never seen the image: the hit's layer is
    # mounted from the cache repository, the base's from its own; nothing is uploaded.
    local fresh=$R/engine-tests/output-cache-$(date +%s)-$$:latest
    "$ENGINE" build --context "$O/ctx" --destination "$fresh" --insecure-registry "$R" \
      --state-dir "$ENGINE_STATE" --source-date-epoch 1700000000 --cache-repo "$cr" --output json \
      >"$O/cache-3.out" 2>"$O/cache-3.err" || { tail -20 "$O/cache-3.err"; return 1; }
    grep -E '^push: .*, [1-9][0-9]* mounted, 0 uploaded \(0 bytes\)$' "$O/cache-3.err" ||
      { echo "the push uploaded:"; grep -E '^(cache: write|push):' "$O/cache-3.err"; return 1; }
    [[ $(jq -r .digest "$O/cache-3.out") == "$(jq -r .digest "$O/cache-1.out")" ]] || { echo "digests differ"; return 1; }
    # Every blob is there: the whole image copies out of the new repository.
    rm -rf "$O/cache-3.oci"
    skopeo copy -q --src-tls-verify=false "docker://$fresh" "oci:$O/cache-3.oci:latest" || return 1
    rm -rf "$O/cache-3.oci"
  }
  run_test local-output-cache t_output_cache
fi

if want local-output-tty; then
  t_output_tty() {
    local ref=$R/engine-tests/output-tty:latest esc=$'\e' cr=$'\r' cmd
    skopeo delete --tls-verify=false "docker://$ref" >/dev/null 2>&1 || true
    # A state directory of its own: the base's blobs are pulled, not found in the cache.
    rm -rf "$O/tty-state"
    cmd=$(printf '%q ' "$ENGINE" build --context "$O/ctx" --destination "$ref" \
      --insecure-registry "$R" --state-dir "$O/tty-state")
    script -qfec "$cmd" /dev/null >"$O/tty.out" 2>&1 || { tail -20 "$O/tty.out"; return 1; }
    grep -q "${cr}${esc}\[Kpull slipway-test/busybox: sha256:[0-9a-f]\{12\} [0-9.]* of [0-9.]* MB" "$O/tty.out" ||
      { echo "no pull progress line:"; od -c "$O/tty.out" | head -30; return 1; }
    grep -q "${cr}${esc}\[Kpush $ref: sha256:[0-9a-f]\{12\} [0-9.]* of [0-9.]* MB" "$O/tty.out" ||
      { echo "no push progress line:"; od -c "$O/tty.out" | head -30; return 1; }
    # The line is erased before what the push says, which starts clean.
    grep -q "${cr}${esc}\[Kpush: [0-9]* blobs there already" "$O/tty.out" ||
      { echo "push line:"; grep -a 'push:' "$O/tty.out" | od -c | head; return 1; }
    # Without a terminal (the JSON case above): plain lines.
    if [[ -f $O/json.err ]] && grep -q "$esc" "$O/json.err"; then
      echo "an escape sequence without a terminal:"; grep -a "$esc" "$O/json.err" | od -c | head; return 1
    fi
    rm -rf "$O/tty-state"
    echo "$(grep -o "${esc}\[K" "$O/tty.out" | wc -l) erase sequences"
  }
  run_test local-output-tty t_output_tty
fi
