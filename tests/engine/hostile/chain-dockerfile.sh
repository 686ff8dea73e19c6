# Sourced by tests/engine/run.sh (T2, SECURITY.md H1): a stage without secrets rewrites the
# Dockerfile that a later stage, which mounts a secret, reads: the injected RUN would copy the
# secret into the image. The secret must reach no layer, config or log.
# shellcheck source=tests/engine/hostile/chain.bash
source "$here/hostile/chain.bash"

mkdir -p "$HC/t2"
HC_SECRET="slipway-chain-secret-$RANDOM$RANDOM"
printf '%s\n' "$HC_SECRET" > "$HC/t2-token"
cat > "$HC/t2/Dockerfile" <<DF
FROM $R/slipway-test/busybox:latest AS untrusted
RUN if sed -i 's#RUN --mount=type=secret,id=token true#RUN cp /.slipway/secrets/token /stolen#' /.slipway/workspace/Dockerfile; then echo "untrusted: Dockerfile rewritten"; else echo "untrusted: Dockerfile not writable"; fi; echo done > /done
FROM $R/slipway-test/busybox:latest AS deploy
COPY --from=untrusted /done /done
RUN --mount=type=secret,id=token true
RUN echo target > /marker
CMD ["cat", "/marker"]
DF
t_hc_t2() {
  local out rc d f
  out=$(build hostile-chain-t2 "$HC/t2" --secret "id=token,src=$HC/t2-token" 2>&1); rc=$?
  grep -E 'untrusted: Dockerfile' <<<"$out" | head -1
  if grep -q "$HC_SECRET" <<<"$out"; then echo "the secret is in the build's output"; return 1; fi
  hc_target_or_refused hostile-chain-t2 "$out" "$rc" target || return 1
  ((rc == 0)) || return 0
  d=$HC/pulled-t2
  rm -rf "$d"
  skopeo copy -q --src-tls-verify=false "docker://$R/engine-tests/hostile-chain-t2:latest" "dir:$d" || return 1
  for f in "$d"/*; do
    if zcat -f "$f" 2>/dev/null | grep -qa -e "$HC_SECRET" -e 'stolen'; then
      echo "the secret (or /stolen) was pushed in $f"; return 1
    fi
  done
  echo "no layer or config holds the secret or /stolen"
}
run_test hostile-chain-t2-dockerfile-injection t_hc_t2
