#!/usr/bin/env bash
# An ext4 file system mounted without online discard, for benches/local_build.sh's
# SLIPWAY_WORK_PARENT: most Linux installs trim weekly (fstrim.timer) rather than mount with
# `discard`, and on this project's machine `/` has `discard`, which makes creating files right
# after many deletions 10 times slower and moves seconds from one build to the next.
#   sudo benches/nodiscard.sh up [DIR [SIZE]]   prints DIR once mounted (default
#                                               /var/tmp/slipway-nodiscard, 40G sparse image)
#   sudo benches/nodiscard.sh down [DIR]        unmounts it and removes the image
set -euo pipefail
dir=${2:-/var/tmp/slipway-nodiscard}
img=$dir.img
case ${1:-} in
  up)
    mountpoint -q "$dir" && { echo "$dir"; exit 0; }
    truncate -s "${3:-40G}" "$img"
    mkfs.ext4 -q -F -E nodiscard "$img"
    mkdir -p "$dir"
    mount -o loop,nodiscard "$img" "$dir"
    echo "$dir"
    ;;
  down)
    mountpoint -q "$dir" && umount "$dir"
    rm -f "$img"
    rmdir "$dir" 2>/dev/null || true
    ;;
  *) echo "usage: $0 up|down [DIR [SIZE]]" >&2; exit 2 ;;
esac
