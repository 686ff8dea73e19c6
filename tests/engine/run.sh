#!/usr/bin/env bash
# The engine tier: real local builds with `slipway-builder build` (stages in runc containers),
# pushed to a real registry (Debian's docker-registry on a loopback port this script starts),
# read back with skopeo, run with runc, and compared with BuildKit (tests/peers/build.sh, the
# reference) building the same Dockerfile. Needs root. Prints `engine: N passed, N failed, N skipped`.
#   SLIPWAY_ENGINE_ONLY=regex     run only the tests whose names match (grep -E)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=tests/engine/lib.sh
source "$here/lib.sh"

engine_setup || { echo "engine: 0 passed, 1 failed, 0 skipped"; exit 1; }
trap engine_teardown EXIT
start_buildkitd || { echo "engine: 0 passed, 1 failed, 0 skipped"; exit 1; }

R=$ENGINE_REGISTRY
only=${SLIPWAY_ENGINE_ONLY:-}
want() { [[ -z $only ]] || grep -Eq -- "$only" <<<"$1"; }

# build NAME CONTEXT [extra args...]: builds and pushes to $R/engine-tests/NAME:latest.
# The registry's storage is cached across runs: the name is emptied first, so that an image an
# earlier run pushed never passes (or fails) a check of this one.
build() {
  local name=$1 ctx=$2; shift 2
  skopeo delete --tls-verify=false "docker://$R/engine-tests/$name:latest" >/dev/null 2>&1 || true
  "$ENGINE" build --context "$ctx" --destination "$R/engine-tests/$name:latest" \
    --insecure-registry "$R" --build-arg "BASE_REGISTRY=$R" \
    --state-dir "$ENGINE_STATE" "$@"
}

# check_run NAME EXPECTED_FILE: runs the pushed image and compares its output.
check_run() {
  local name=$1 expect=$2 out
  out=$("$here/run-image.sh" "$R/engine-tests/$name:latest" "$WORK/oci-$name" 2>&1)
  if [[ "$out" != "$(cat "$expect")" ]]; then
    echo "--- expected"; cat "$expect"; echo "--- got"; echo "$out"
    return 1
  fi
}

# expect_failure NAME CONTEXT PATTERN [build args...]: the build fails, its error output
# matches PATTERN (grep -E), and nothing was pushed.
expect_failure() {
  local name=$1 ctx=$2 pattern=$3 out rc; shift 3
  out=$(build "$name" "$ctx" "$@" 2>&1); rc=$?
  if ((rc == 0)); then echo "the build succeeded"; return 1; fi
  if ! grep -Eq -- "$pattern" <<<"$out"; then
    echo "no line matches: $pattern"; echo "$out" | tail -15; return 1
  fi
  if skopeo inspect --tls-verify=false "docker://$R/engine-tests/$name:latest" >/dev/null 2>&1; then
    echo "an image was pushed"; return 1
  fi
  grep -Eq 'panicked|RUST_BACKTRACE' <<<"$out" && { echo "panic:"; echo "$out"; return 1; }
  echo "$out" | grep -E -- "$pattern" | head -1
}

case_args() { # DIR: extra build args of a case
  local d=$1
  if [[ -f $d/build-args ]]; then
    while read -r a; do [[ -n $a ]] && printf -- '--build-arg\0%s\0' "$a"; done < "$d/build-args"
  fi
  if [[ -f $d/secrets ]]; then
    while IFS='=' read -r id value; do
      [[ -z $id ]] && continue
      printf '%s\n' "$value" > "$WORK/secret-$id"
      printf -- '--secret\0id=%s,src=%s\0' "$id" "$WORK/secret-$id"
    done < "$d/secrets"
  fi
}

# case_build_args NAME DIR: a case's build args (case_args), and --dockerfile when its
# Dockerfile names an image for the default registry: COPY --from takes no variables, so such
# an image is written for 127.0.0.1:5055, and both builders get the Dockerfile with it pointing
# at this run's registry ($WORK/df-NAME/Dockerfile, which buildkit() reads too).
case_build_args() {
  local name=$1 d=$2 df=$WORK/df-$1/Dockerfile
  case_args "$d"
  mkdir -p "${df%/*}"
  sed "s|127\.0\.0\.1:5055/|$R/|g" "$d/Dockerfile" > "$df"
  cmp -s "$df" "$d/Dockerfile" || printf -- '--dockerfile\0%s\0' "$df"
}

# buildkit NAME DIR: BuildKit builds the same Dockerfile (same context, build args and
# secrets) and pushes it; its image must match Slipway's: file trees, runtime configs and
# history (created_by, empty_layer), except what buildkit-known lists for NAME, with why.
buildkit() {
  local name=$1 d=$2 args=() a df=$WORK/bk-dockerfile-$name ref=$R/buildkit-fidelity/$name:latest
  while IFS= read -r -d '' a; do
    case $a in
      --build-arg) ;;
      --secret) args+=(--secret) ;;
      id=*) args+=("$a") ;;
      *) args+=(--opt "build-arg:$a") ;;
    esac
  done < <(case_args "$d")
  # A `# syntax=` line would make BuildKit pull that frontend from outside: its built-in
  # dockerfile.v0 is the same syntax.
  local src=$WORK/df-$name/Dockerfile
  [[ -f $src ]] || src=$d/Dockerfile
  mkdir -p "$df"
  grep -Ev '^#[[:space:]]*syntax=' "$src" > "$df/Dockerfile"
  "${BUILDCTL[@]}" build --progress plain --frontend dockerfile.v0 \
    --local "context=$d" --local "dockerfile=$df" --opt "build-arg:BASE_REGISTRY=$R" "${args[@]}" \
    --output "type=image,name=$ref,push=true,registry.insecure=true" >"$WORK/buildkit-$name.log" 2>&1 ||
    { tail -20 "$WORK/buildkit-$name.log"; return 1; }
  rm -rf "$WORK/buildkit-oci-$name"
  skopeo copy -q --src-tls-verify=false "docker://$ref" "oci:$WORK/buildkit-oci-$name:latest" || return 1
  skopeo inspect --tls-verify=false --config --raw "docker://$ref" > "$WORK/buildkit-config-$name.json" || return 1
  skopeo inspect --tls-verify=false --config --raw "docker://$R/engine-tests/$name:latest" > "$WORK/config-$name.json" || return 1
  python3 "$here/imagetool.py" compare --peer buildkit --known "$here/buildkit-known" --case "$name" \
    "$WORK/oci-$name" "$WORK/buildkit-oci-$name" "$WORK/config-$name.json" "$WORK/buildkit-config-$name.json"
}

# --- the article's examples --------------------------------------------------------------
if want example-go; then
  t_example_go() {
    build example-go "$repo/examples/go" || return 1
    check_run example-go <(printf 'Hello from the multi-stage Go build!\nbuilt with go1.19.8\n')
  }
  run_test example-go t_example_go
fi
if want example-go-tester; then
  t_example_go_tester() {
    local out
    out=$(build example-go-tester "$repo/examples/go" --target tester 2>&1) || { echo "$out" | tail -20; return 1; }
    grep -Eq '^\[tester\] ok[[:space:]]+example.com/myapp' <<<"$out" || { echo "$out" | tail -20; echo "no go test output"; return 1; }
  }
  run_test example-go-tester t_example_go_tester
fi
if want example-node; then
  t_example_node() {
    build example-node "$repo/examples/node" || return 1
    local out
    out=$("$here/run-image.sh" "$R/engine-tests/example-node:latest" "$WORK/oci-example-node" 2>&1)
    [[ $out == "Hello from the multi-stage Node.js build!"$'\n'"node v"* ]] || { echo "got: $out"; return 1; }
  }
  run_test example-node t_example_node
fi

# --- one Dockerfile per instruction and flag ---------------------------------------------
for d in "$here"/cases/*/; do
  name=$(basename "$d")
  want "$name" || continue
  t_case() {
    local args=()
    if [[ -x $d/prepare ]]; then (cd "$d" && ./prepare) || return 1; fi
    while IFS= read -r -d '' a; do args+=("$a"); done < <(case_build_args "$name" "$d")
    build "$name" "$d" "${args[@]}" >"$WORK/build-$name.log" 2>&1 || { tail -20 "$WORK/build-$name.log"; return 1; }
    check_run "$name" "$d/expect"
  }
  run_test "case-$name" t_case
  if [[ -d $WORK/oci-$name ]]; then
    run_test "buildkit-$name" buildkit "$name" "$d"
  else
    skip_test "buildkit-$name" "Slipway's build of the case failed: nothing to compare"
  fi
done
# ONBUILD triggers recorded in a pushed image run when another build uses it as its base.
if want onbuild-from-image && [[ -d $WORK/oci-metadata ]]; then
  t_onbuild_image() {
    mkdir -p "$WORK/onbuild-image"
    printf 'FROM %s/engine-tests/metadata:latest\nENTRYPOINT []\nCMD ["cat", "/onbuild.txt"]\n' "$R" > "$WORK/onbuild-image/Dockerfile"
    build onbuild-image "$WORK/onbuild-image" >"$WORK/build-onbuild-image.log" 2>&1 || { tail -20 "$WORK/build-onbuild-image.log"; return 1; }
    check_run onbuild-image <(echo triggered)
  }
  run_test onbuild-from-image t_onbuild_image
fi
for ex in go node; do
  want "buildkit-example-$ex" || continue
  if [[ -d $WORK/oci-example-$ex ]]; then
    run_test "buildkit-example-$ex" buildkit "example-$ex" "$repo/examples/$ex"
  else
    skip_test "buildkit-example-$ex" "Slipway's build of example-$ex did not run or failed"
  fi
done

# --- independent stages run at the same time ----------------------------------------------
if want parallel-stages; then
  t_parallel() {
    build parallel "$here/fanout" >"$WORK/build-parallel.log" 2>&1 || { tail -20 "$WORK/build-parallel.log"; return 1; }
    local out
    out=$("$here/run-image.sh" "$R/engine-tests/parallel:latest" 2>&1) || { echo "$out"; return 1; }
    echo "$out"
    # Every stage started before any stage ended: all four ran side by side.
    awk '{ if (NR == 1 || $2 > maxs) maxs = $2; if (NR == 1 || $3 < mine) mine = $3; n++ }
         END { exit !(n == 4 && maxs < mine) }' <<<"$out"
  }
  run_test parallel-stages t_parallel
  t_max_parallel() {
    build parallel-1 "$here/fanout" --max-parallel 1 >"$WORK/build-parallel-1.log" 2>&1 || return 1
    local out
    out=$("$here/run-image.sh" "$R/engine-tests/parallel-1:latest" 2>&1) || { echo "$out"; return 1; }
    echo "$out"
    # With --max-parallel 1 no two stages overlap.
    sort -k2 -n <<<"$out" | awk 'NR > 1 && $2 < prev_end { exit 1 } { prev_end = $3 }'
  }
  run_test max-parallel-1 t_max_parallel
fi

# --- stages whose layers nothing reads make none (issue 16) --------------------------------
# Without a layer cache, a stage read only through COPY --from leaves its exports and no
# layers (no walk, no tar, no gzip); the target and a stage others are built FROM keep
# theirs, and the image is the one a build that writes every layer (--cache-repo) pushes.
if want unread-layers; then
  UL=$WORK/unread; mkdir -p "$UL"
  cat > "$UL/Dockerfile" <<DF
FROM $R/slipway-test/busybox:latest AS base
RUN echo base > /base
FROM $R/slipway-test/busybox:latest AS side
RUN mkdir /out && echo side > /out/side && echo more > /out/more
FROM base
COPY --from=side /out /out
RUN cat /base /out/side > /marker
CMD ["cat", "/marker"]
DF
  t_unread() {
    local log=$WORK/build-unread.log ws n=() d1 d2
    build unread "$UL" --source-date-epoch 0 --keep-workspace >"$log" 2>&1 || { tail -20 "$log"; return 1; }
    check_run unread <(printf 'base\nside\n') || return 1
    ws=$(sed -n 's/^workspace kept at //p' "$log")
    [[ -d $ws/stages ]] || { echo "no kept workspace in the log"; return 1; }
    for i in 0 1 2; do n[i]=$(find "$ws/stages/$i/layers" -name '*.tar.gz' 2>/dev/null | wc -l); done
    rm -rf "$ws"
    echo "layer files: base ${n[0]}, side ${n[1]}, target ${n[2]}"
    ((n[0] == 1 && n[1] == 0 && n[2] == 2)) || return 1
    build unread-all "$UL" --source-date-epoch 0 --cache-repo "$R/engine-tests/unread-cache" \
      >"$WORK/build-unread-all.log" 2>&1 || { tail -20 "$WORK/build-unread-all.log"; return 1; }
    d1=$(grep -o 'sha256:[0-9a-f]\{64\}' "$log" | tail -1)
    d2=$(grep -o 'sha256:[0-9a-f]\{64\}' "$WORK/build-unread-all.log" | tail -1)
    echo "digest without side layers $d1, with a layer cache $d2"
    [[ -n $d1 && $d1 == "$d2" ]]
  }
  run_test unread-layers t_unread
fi

# --- Local mode's stage roots are volatile overlays; incompressible layers are stored --------
# A RUN sees its root mounted `volatile` (`fsync=volatile` since Linux 6.x; no sync of the host's file system when it goes), and
# 8 MiB of random bytes make a layer of about 8 MiB, not the 5% more that deflate's fixed
# Huffman table codes them in; every step says how long it took.
if want volatile-and-stored; then
  VS=$WORK/volatile; mkdir -p "$VS"
  cat > "$VS/Dockerfile" <<DF
FROM $R/slipway-test/busybox:latest
RUN grep -E '^overlay / overlay [^ ]*(,volatile|fsync=volatile)' /proc/mounts > /root-mount
RUN head -c 8388608 /dev/urandom > /random
DF
  t_volatile() {
    local log=$WORK/build-volatile.log size
    build volatile "$VS" >"$log" 2>&1 || { tail -20 "$log"; return 1; }
    grep -qE '^\[0 3/3\] DONE [0-9]+\.[0-9]{2}s$' "$log" || { echo "no DONE line"; tail -5 "$log"; return 1; }
    size=$(skopeo inspect --tls-verify=false --raw "docker://$R/engine-tests/volatile:latest" |
      python3 -c 'import json, sys; print(json.load(sys.stdin)["layers"][-1]["size"])')
    echo "layer of 8388608 random bytes: $size bytes"
    ((size > 8388608 && size < 8388608 + 65536))
  }
  run_test volatile-and-stored t_volatile
fi

# --- ADD of an https URL, from a server on loopback with a CA made here ---------------------
if want add-url; then
  U=$WORK/url; mkdir -p "$U/www" "$U/ctx" "$U/bad"
  echo "downloaded over https" > "$U/www/file.txt"
  (
    cd "$U"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=slipway-test-ca 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=127.0.0.1 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' > ext
    openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 -extfile ext 2>/dev/null
  )
  python3 - "$U" <<'PY' >"$U/server.log" 2>&1 &
import functools, http.server, ssl, sys
d = sys.argv[1]
h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=d + "/www")
srv = http.server.HTTPServer(("127.0.0.1", 5057), h)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(d + "/srv.pem", d + "/srv.key")
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
PY
  url_pid=$!
  for _ in $(seq 50); do curl -sf --cacert "$U/ca.pem" https://127.0.0.1:5057/file.txt >/dev/null && break; sleep 0.2; done
  sum=$(sha256sum "$U/www/file.txt" | cut -d' ' -f1)
  cat > "$U/ctx/Dockerfile" <<DF
FROM $R/slipway-test/busybox:latest
ADD --checksum=sha256:$sum https://127.0.0.1:5057/file.txt /dl/
ADD https://127.0.0.1:5057/file.txt /dl/renamed.txt
CMD ["/bin/sh", "-c", "stat -c '%n %a %u:%g' /dl/file.txt /dl/renamed.txt; cat /dl/file.txt"]
DF
  t_add_url() {
    SSL_CERT_FILE=$U/ca.pem build add-url "$U/ctx" >"$WORK/build-add-url.log" 2>&1 || { tail -20 "$WORK/build-add-url.log"; return 1; }
    check_run add-url <(printf '/dl/file.txt 600 0:0\n/dl/renamed.txt 600 0:0\ndownloaded over https\n')
  }
  run_test add-https-url t_add_url
  printf 'FROM %s/slipway-test/busybox:latest\nADD --checksum=sha256:%s https://127.0.0.1:5057/file.txt /dl/\n' "$R" "$(printf '0%.0s' $(seq 64))" > "$U/bad/Dockerfile"
  t_bad_sum() { SSL_CERT_FILE=$U/ca.pem expect_failure fail-add-checksum "$U/bad" 'Dockerfile:2: ADD: https://127.0.0.1:5057/file.txt: checksum mismatch'; }
  run_test fail-add-url-checksum t_bad_sum
  kill "$url_pid" 2>/dev/null; wait "$url_pid" 2>/dev/null
fi

# --- failures ------------------------------------------------------------------------------
if want failures; then
  source "$here/failures.sh"
fi

# --- reproducible images: SOURCE_DATE_EPOCH (issue 13) --------------------------------------
if want reproducible; then
  # shellcheck source=tests/engine/reproducible.sh
  source "$here/reproducible.sh"
fi

# --- the layer cache across builds: --cache-repo (issue 13) ---------------------------------
# shellcheck source=tests/engine/cache.sh
source "$here/cache.sh"   # each group checks `want` itself

# --- local mode's output: --output json, --digest-file, --label (issue 15) -----------------
# shellcheck source=tests/engine/output.sh
source "$here/output.sh"   # each group checks `want` itself

# --- hostile: attacks from a Dockerfile, a context, a RUN step, a base image or a registry;
# each asserts the clear error or that nothing happened (SECURITY.md lists them) ------------
for h in "$here"/hostile/*.sh; do
  [[ -e $h ]] || continue
  if want "hostile-$(basename "$h" .sh)"; then
    # shellcheck source=/dev/null
    source "$h"
  fi
done

engine_summary
