#!/usr/bin/env bash
# Builds the small base images the tests use, from Debian packages and this machine only
# (never pulled from a hub), and pushes them with skopeo to REGISTRY (plain HTTP).
#   build.sh REGISTRY busybox   busybox-static as /bin/busybox + applet links
#   build.sh REGISTRY tools     busybox + crane (a registry client, built from the Go proxy)
#   build.sh REGISTRY pause     the Kubernetes pause binary (needs PAUSE_C=path/to/pause.c)
#   build.sh REGISTRY debian    debootstrap --variant=minbase bookworm (from Debian's mirror)
#   build.sh REGISTRY golang    debian + golang-go
#   build.sh REGISTRY node      debian + nodejs npm
#   build.sh REGISTRY node-slim debian + nodejs (the runtime of the Node.js example)
# The Debian root filesystems are cached as tars under $SLIPWAY_CACHE/images.
# Images land at REGISTRY/slipway-test/<name>:latest (pause: REGISTRY/slipway-test/pause:3.10).
set -euo pipefail
registry=$1 name=$2
here=$(cd "$(dirname "$0")" && pwd)
cache=${SLIPWAY_CACHE:-/var/cache/slipway}
CRANE_VERSION=v0.22.1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root"

busybox_root() {
  [[ -x /bin/busybox ]] || { echo "busybox-static is not installed" >&2; exit 1; }
  mkdir -p "$root"/{bin,etc,tmp,root,usr/bin,usr/local/bin}
  chmod 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list); do
    [[ -e "$root/bin/$applet" ]] || ln -s busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
}

debian_root() { # extra packages...
  local base=$cache/images/debian-bookworm-minbase.tar
  if [[ ! -f $base ]]; then
    command -v debootstrap >/dev/null || { echo "debootstrap is not installed" >&2; exit 1; }
    mkdir -p "$cache/images"
    # No mirror argument: debootstrap's default is the one Debian serves.
    debootstrap --variant=minbase bookworm "$work/deb" >&2
    tar -C "$work/deb" -cf "$base.tmp" . && mv "$base.tmp" "$base"
    rm -rf "$work/deb"
  fi
  tar -C "$root" -xpf "$base"
  if (($#)); then
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    chroot "$root" /bin/sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $*" >&2
    chroot "$root" apt-get clean
  fi
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/log/apt "$root"/var/log/dpkg.log
  : > "$root/etc/resolv.conf"
}

tag=latest
args=()
case "$name" in
  busybox)
    busybox_root
    args=(--cmd '["/bin/sh"]')
    ;;
  tools)
    busybox_root
    crane=$cache/tools/crane-$CRANE_VERSION
    if [[ ! -x $crane ]]; then
      mkdir -p "$cache/tools"
      GOTOOLCHAIN=local CGO_ENABLED=0 GOBIN="$work/gobin" \
        go install "github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION"
      mv "$work/gobin/crane" "$crane"
    fi
    cp "$crane" "$root/usr/local/bin/crane"
    args=(--cmd '["/bin/sh"]')
    ;;
  pause)
    : "${PAUSE_C:?PAUSE_C must name pause.c}"
    gcc -Os -Wall -Werror -static -DVERSION=v3.10-slipway -o "$root/pause" "$PAUSE_C"
    strip "$root/pause"
    args=(--entrypoint '["/pause"]')
    tag=3.10
    ;;
  debian) debian_root; args=(--cmd '["bash"]') ;;
  golang) debian_root golang-go ca-certificates; args=(--cmd '["bash"]') ;;
  node) debian_root nodejs npm; args=(--cmd '["node"]') ;;
  node-slim) debian_root nodejs; args=(--cmd '["node"]') ;;
  *) echo "unknown image $name" >&2; exit 2 ;;
esac

python3 "$here/mkimage.py" "$work/layout" "$root" --tag "$tag" "${args[@]}" >/dev/null
skopeo copy --quiet --dest-tls-verify=false "oci:$work/layout:$tag" "docker://$registry/slipway-test/$name:$tag"
echo "$registry/slipway-test/$name:$tag"
