# Sourced by run.sh (SLIPWAY_ENGINE_ONLY=hostile-stage-run-flags): what a RUN asks for and
# the engine cannot give is refused, never ignored (M4). T11: `--network=none` (a stage has
# no network namespace of its own) and `--network=host` (an entitlement). Bind mounts are
# read-only unless `rw`: a write through a read-only bind fails the RUN, an `rw` bind's
# writes stay in the RUN's private copy. Cache `sharing=locked|private` and `ro`.

HF=$WORK/hostile-stage-run-flags
mkdir -p "$HF"/{none,host,ro-stage,ro-image,binds,cache-ro}

printf 'FROM %s/slipway-test/busybox:latest\nRUN --network=none wget -qO- http://%s/v2/ && echo reached > /reached\n' "$R" "$R" > "$HF/none/Dockerfile"
run_test hostile-stage-network-none expect_failure hostile-stage-network-none "$HF/none" \
  '^stage #0: Dockerfile:2: RUN: --network=none is not supported: stages run without CAP_SYS_ADMIN'

printf 'FROM %s/slipway-test/busybox:latest\nRUN --network=host true\n' "$R" > "$HF/host/Dockerfile"
run_test hostile-stage-network-host expect_failure hostile-stage-network-host "$HF/host" \
  '^stage #0: Dockerfile:2: RUN: --network=host is not allowed: it needs the network.host entitlement'

# A write through a read-only bind of another stage's exports, and of a base image's tree
# (shared by every stage of the build that copies from it). The image's tree may be read-only
# to the container outright (local mode keeps it in the read-only workspace): then the write
# itself fails the RUN.
cat > "$HF/ro-stage/Dockerfile" <<DF
FROM $R/slipway-test/busybox:latest AS tools
RUN mkdir -p /opt/t && echo orig > /opt/t/f
FROM $R/slipway-test/busybox:latest
RUN --mount=type=bind,from=tools,source=/opt/t,target=/mnt/t sh -c 'echo evil > /mnt/t/f'
DF
run_test hostile-stage-bind-ro-stage expect_failure hostile-stage-bind-ro-stage "$HF/ro-stage" \
  'Dockerfile:4: RUN: --mount target /mnt/t is read-only \(add rw to write; the writes are then discarded after the RUN\): the RUN changed /mnt/t/f$'
cat > "$HF/ro-image/Dockerfile" <<DF
FROM $R/slipway-test/busybox:latest
RUN --mount=type=bind,from=$R/slipway-test/busybox:latest,target=/mnt/img touch /mnt/img/planted
DF
run_test hostile-stage-bind-ro-image expect_failure hostile-stage-bind-ro-image "$HF/ro-image" \
  'Dockerfile:2: (RUN: --mount target /mnt/img is read-only .*: the RUN changed /mnt/img/planted|RUN --mount=type=bind,from=.*,target=/mnt/img touch /mnt/img/planted: exit code 1)$'

# rw: the RUN writes, the source and the next RUN see the original. Cache sharing modes work.
cat > "$HF/binds/Dockerfile" <<DF
FROM $R/slipway-test/busybox:latest AS tools
RUN mkdir -p /opt/t && echo orig > /opt/t/f
FROM $R/slipway-test/busybox:latest
RUN --mount=type=bind,from=tools,source=/opt/t,target=/mnt/t,rw sh -c 'echo changed > /mnt/t/f && cat /mnt/t/f > /rw-saw.txt'
RUN --mount=type=bind,from=tools,source=/opt/t,target=/mnt/t cat /mnt/t/f > /ro-saw.txt
COPY --from=tools /opt/t/f /copied.txt
RUN --mount=type=cache,id=hostile-shr,target=/c,sharing=locked sh -c 'echo locked > /c/f'
RUN --mount=type=cache,id=hostile-shr,target=/c,sharing=private cat /c/f > /private-saw.txt
CMD ["/bin/sh", "-c", "cat /rw-saw.txt /ro-saw.txt /copied.txt /private-saw.txt; test -e /mnt && echo leaked /mnt; test -e /c && echo leaked /c; echo end"]
DF
t_hf_binds() {
  build hostile-stage-binds "$HF/binds" >"$HF/binds.log" 2>&1 || { tail -20 "$HF/binds.log"; return 1; }
  check_run hostile-stage-binds <(printf 'changed\norig\norig\nlocked\nend\n')
}
run_test hostile-stage-bind-rw-and-cache-sharing t_hf_binds

printf 'FROM %s/slipway-test/busybox:latest\nRUN --mount=type=cache,target=/c,ro true\n' "$R" > "$HF/cache-ro/Dockerfile"
run_test hostile-stage-cache-ro expect_failure hostile-stage-cache-ro "$HF/cache-ro" \
  'Dockerfile:2: RUN: --mount type=cache,ro is not supported'
