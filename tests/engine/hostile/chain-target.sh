# Sourced by tests/engine/run.sh (T3, SECURITY.md H1): a stage rewrites plan.json's
# targetIndex so that its own image is pushed instead of the target's.
# shellcheck source=tests/engine/hostile/chain.bash
source "$here/hostile/chain.bash"

# T3 as the review reproduced it: the side stage (needed by the target) rewrites the plan.
mkdir -p "$HC/t3"
cat > "$HC/t3/Dockerfile" <<DF
FROM $R/slipway-test/busybox:latest AS side
RUN echo evil > /evil; if sed -i 's/"targetIndex": *[0-9]*/"targetIndex": 0/' /.slipway/workspace/plan.json; then echo "side: plan rewritten"; else echo "side: plan not writable"; fi
CMD ["echo", "side"]
FROM $R/slipway-test/busybox:latest
COPY --from=side /evil /evil
RUN echo target > /marker
CMD ["cat", "/marker"]
DF
t_hc_t3() {
  local out rc
  out=$(build hostile-chain-t3 "$HC/t3" 2>&1); rc=$?
  grep -E '^\[side [0-9/]+\] side: plan' <<<"$out" | head -1
  hc_target_or_refused hostile-chain-t3 "$out" "$rc" target
}
run_test hostile-chain-t3-side-rewrites-target t_hc_t3

# The target's own last RUN rewrites the plan after its stage read it: only the push reads it
# next, and it must not push the side stage's result.
mkdir -p "$HC/t3-late"
cat > "$HC/t3-late/Dockerfile" <<DF
FROM $R/slipway-test/busybox:latest AS side
RUN echo side > /side
CMD ["echo", "side"]
FROM $R/slipway-test/busybox:latest
COPY --from=side /side /side
RUN echo target > /marker; if sed -i 's/"targetIndex": *[0-9]*/"targetIndex": 0/' /.slipway/workspace/plan.json; then echo "target: plan rewritten"; else echo "target: plan not writable"; fi
CMD ["cat", "/marker"]
DF
t_hc_t3_late() {
  local out rc
  out=$(build hostile-chain-t3-late "$HC/t3-late" 2>&1); rc=$?
  grep -E 'target: plan' <<<"$out" | head -1
  hc_target_or_refused hostile-chain-t3-late "$out" "$rc" target
}
run_test hostile-chain-t3-push-reads-the-plan-checked t_hc_t3_late
