# Sourced by tests/engine/run.sh (T4 and the layers, SECURITY.md H1): a stage forges another
# stage's result (a layer at a host file, the target index pointing at it), or overwrites a
# layer of a stage that a later stage is built on.
# shellcheck source=tests/engine/hostile/chain.bash
source "$here/hostile/chain.bash"

# T4: the side stage writes stages/9/result.json naming a host file as its layer (a marker
# made here stands for the push secret), and points the plan's targetIndex at it.
HC_MARK="slipway-chain-marker-$RANDOM$RANDOM"
printf '%s\n' "$HC_MARK" > "$HC/host-marker"
mkdir -p "$HC/t4"
python3 - "$HC/host-marker" "$HC/t4/forged.json" <<'PY'
import hashlib, json, sys
marker, out = sys.argv[1], sys.argv[2]
data = open(marker, "rb").read()
d = "sha256:" + hashlib.sha256(data).hexdigest()
json.dump({"index": 9, "name": None, "base": None, "config": {}, "history": [],
           "layers": [{"path": marker, "digest": d, "diffId": d, "size": len(data),
                       "mediaType": "application/vnd.oci.image.layer.v1.tar"}],
           "vars": [], "args": []}, open(out, "w"))
PY
cat > "$HC/t4/Dockerfile" <<DF
FROM $R/slipway-test/busybox:latest AS side
COPY forged.json /forged.json
RUN W=/.slipway/workspace; if mkdir -p \$W/stages/9 && cp /forged.json \$W/stages/9/result.json && sed -i 's/"targetIndex": *[0-9]*/"targetIndex": 9/' \$W/plan.json; then echo "side: result forged"; else echo "side: workspace not writable"; fi; echo x > /x
FROM $R/slipway-test/busybox:latest
COPY --from=side /x /x
RUN echo target > /marker
CMD ["cat", "/marker"]
DF
t_hc_t4() {
  local out rc d f
  out=$(build hostile-chain-t4 "$HC/t4" 2>&1); rc=$?
  grep -E 'side: (result|workspace)' <<<"$out" | head -1
  if grep -q "$HC_MARK" <<<"$out"; then echo "the host marker is in the output"; return 1; fi
  hc_target_or_refused hostile-chain-t4 "$out" "$rc" target || return 1
  ((rc == 0)) || return 0
  d=$HC/pulled-t4
  rm -rf "$d"
  skopeo copy -q --src-tls-verify=false "docker://$R/engine-tests/hostile-chain-t4:latest" "dir:$d" || return 1
  for f in "$d"/*; do
    if zcat -f "$f" 2>/dev/null | grep -qa "$HC_MARK"; then echo "the host marker was pushed in $f"; return 1; fi
  done
  echo "the host file was pushed nowhere"
}
run_test hostile-chain-t4-forged-result t_hc_t4

# A layer of stage `base` overwritten by stage `side` before stage `app` (FROM base, in a
# container of its own) applies it: app's stage must not build on the changed bytes.
mkdir -p "$HC/layer"
cat > "$HC/layer/Dockerfile" <<DF
FROM $R/slipway-test/busybox:latest AS base
RUN echo base > /base
FROM $R/slipway-test/busybox:latest AS side
COPY --from=base /base /base
RUN n=0; for f in /.slipway/workspace/stages/0/layers/*.tar.gz; do if cp /bin/busybox "\$f" 2>/dev/null; then n=\$((n+1)); fi; done; echo "side: \$n layers overwritten"; echo x > /x
FROM base
COPY --from=side /x /x
RUN echo target > /marker
CMD ["cat", "/marker"]
DF
t_hc_layer() {
  local out rc
  out=$(build hostile-chain-layer "$HC/layer" 2>&1); rc=$?
  grep -E 'side: [0-9]+ layers' <<<"$out" | head -1
  hc_target_or_refused hostile-chain-layer "$out" "$rc" target
}
run_test hostile-chain-layer-overwritten t_hc_layer
