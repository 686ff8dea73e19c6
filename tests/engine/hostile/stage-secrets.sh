# Sourced by run.sh (SLIPWAY_ENGINE_ONLY=hostile-stage-secrets): secrets never reach a layer.
# T6 (H3): a FROM scratch stage mounts a secret; T9 adapted (M1): an earlier RUN (A2) plants
# links where the engine used to write secret copies and heredoc scripts; L3: a symlink to the
# secret file, exported by COPY --from. Every layer of the pushed image is searched for the
# secret's bytes and for the engine's file names.

HS=$WORK/hostile-stage-secrets
mkdir -p "$HS"/{scratch,planted,export}
hs_secret="slipway-hostile-secret-$$-$RANDOM"
printf '%s' "$hs_secret" > "$HS/token"

# layers_clean NAME: the pushed image's layers and config hold neither the secret nor a file
# the engine made for a RUN (.slipway-run-*) or wrote through a planted link (leak*); prints
# what it found otherwise.
layers_clean() {
  local name=$1 oci=$HS/oci-$1
  rm -rf "$oci"
  skopeo copy -q --src-tls-verify=false "docker://$R/engine-tests/$name:latest" "oci:$oci:latest" || return 1
  python3 "$here/imagetool.py" leaks "$oci" "$hs_secret" '\.slipway-run-|/leak[^/]*$'
}

# --- T6: FROM scratch + RUN --mount=type=secret, a #! heredoc script, and the old stand-in
# place planted with a link first ---------------------------------------------------------
cat > "$HS/scratch/Dockerfile" <<DF
FROM $R/slipway-test/busybox:latest AS bb

FROM scratch
COPY --from=bb /bin/busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox mkdir -p /.slipway-run/secrets && /bin/busybox ln -s /leak /.slipway-run/secrets/token"]
RUN --mount=type=secret,id=token ["/bin/busybox", "sh", "-c", "/bin/busybox test -s /run/secrets/token && /bin/busybox echo mounted > /mounted"]
RUN --mount=type=secret,id=token,env=TOKEN ["/bin/busybox", "sh", "-c", "/bin/busybox test -n \"\$TOKEN\" && /bin/busybox echo env > /env"]
# A #! script still goes through SHELL (BuildKit: /bin/sh -c /dev/pipes/EOT): scratch has none.
SHELL ["/bin/busybox", "sh", "-c"]
RUN <<EOT
#!/bin/busybox sh
/bin/busybox echo script > /script
EOT
CMD ["/bin/busybox", "sh", "-c", "/bin/busybox cat /mounted /env /script; /bin/busybox test -e /leak && /bin/busybox echo LEAK; /bin/busybox ls -A /.slipway-run/secrets"]
DF
t_hs_scratch() {
  build hostile-stage-scratch "$HS/scratch" --secret "id=token,src=$HS/token" >"$HS/scratch.log" 2>&1 \
    || { tail -20 "$HS/scratch.log"; return 1; }
  layers_clean hostile-stage-scratch || return 1
  # The planted link is the RUN's own, in its layer; nothing was written through it.
  check_run hostile-stage-scratch <(printf 'mounted\nenv\nscript\ntoken\n')
}
run_test hostile-stage-scratch-secret t_hs_scratch

# --- T9 adapted: links planted where copies and scripts used to go, in a stage rooted at / --
cat > "$HS/planted/Dockerfile" <<DF
FROM $R/slipway-test/busybox:latest
RUN W=/.slipway/workspace/stages/0/work/run && mkdir -p \$W/secrets /planted-pipes \
 && ln -s /leak \$W/secrets/token && ln -s /leak-script \$W/EOT \
 && rm -rf /dev/pipes && ln -s /planted-pipes /dev/pipes
RUN --mount=type=secret,id=token test -s /run/secrets/token && echo mounted > /mounted
RUN <<EOT
#!/bin/sh
echo "script \$0" > /script
EOT
RUN test ! -e /dev/pipes && echo gone > /pipes-gone
CMD ["/bin/sh", "-c", "cat /mounted /script /pipes-gone; ls -A /planted-pipes; for f in /leak /leak-script; do test -e \$f && echo LEAK \$f; done; echo end"]
DF
t_hs_planted() {
  build hostile-stage-planted "$HS/planted" --secret "id=token,src=$HS/token" >"$HS/planted.log" 2>&1 \
    || { tail -20 "$HS/planted.log"; return 1; }
  layers_clean hostile-stage-planted || return 1
  check_run hostile-stage-planted <(printf 'mounted\nscript /dev/pipes/EOT\ngone\nend\n')
}
run_test hostile-stage-planted-links t_hs_planted

# --- L3: a link to the secret file, exported by COPY --from, copies nothing -----------------
cat > "$HS/export/Dockerfile" <<DF
FROM $R/slipway-test/busybox:latest AS a
RUN mkdir /dir && ln -s /.slipway/secrets/token /dir/leak
FROM $R/slipway-test/busybox:latest
COPY --from=a /dir/leak /leak
DF
t_hs_export() {
  expect_failure hostile-stage-export "$HS/export" 'Dockerfile:4: COPY: /dir/leak: not found' \
    --secret "id=token,src=$HS/token"
}
run_test hostile-stage-export-secret-link t_hs_export
