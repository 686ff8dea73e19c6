#!/usr/bin/env bash
# Builds a peer image builder from the Go module proxy and prints the directory holding its
# binaries. Cached outside the work tree, keyed by name, version and Go toolchain, like the
# Kubernetes binary of tests/cluster:
#   ${SLIPWAY_CACHE:-/var/cache/slipway}/peers/<name>-<version>-<go>/
#   build.sh buildkit    buildkitd and buildctl (BuildKit, the engine tier's fidelity reference)
#   build.sh kaniko      executor (kaniko); the dir also links src -> the module source, which
#                        holds kaniko's own test corpus (integration/dockerfiles*)
#   build.sh NAME --src  prints the module's source dir instead (read-only, in GOMODCACHE)
# Progress and the cold build's duration go to stderr.
set -euo pipefail
name=${1:?buildkit or kaniko} what=${2:-}
# Go keeps its module cache under HOME; CI's environment may lack it.
export HOME=${HOME:-$(getent passwd "$(id -un)" | cut -d: -f6)}
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
case $name in
  buildkit) mod=github.com/moby/buildkit version=v0.34.2
            bins=("buildctl ./cmd/buildctl" "buildkitd ./cmd/buildkitd") ;;
  kaniko)   mod=github.com/GoogleContainerTools/kaniko version=v1.24.0
            bins=("executor ./cmd/executor") ;;
  *) echo "unknown peer: $name" >&2; exit 2 ;;
esac
# `go install mod@version` is refused for both (their go.mod has exclude/replace directives),
# so the module is downloaded as source and built in place from a writable copy.
src() { go mod download -json "$mod@$version" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])'; }
if [[ $what == --src ]]; then src; exit; fi

out=${SLIPWAY_CACHE:-/var/cache/slipway}/peers/$name-$version-$(go env GOVERSION)
if [[ -f $out/ok ]]; then echo "$out"; exit 0; fi

start=$(date +%s)
echo "building $name $version into $out (cold: a few minutes)" >&2
dir=$(src)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$dir/." "$work/" && chmod -R u+w "$work"
mkdir -p "$out"
cd "$work"
for b in "${bins[@]}"; do
  read -r bin pkg <<<"$b"
  # buildkitd resolves users and hosts in Go (netgo, osusergo): static, no libc needed.
  go build -trimpath -tags "netgo osusergo" -ldflags "-s -w -X $mod/version.Version=$version" \
    -o "$out/$bin" "$pkg" >&2
done
ln -sfn "$dir" "$out/src"
echo "$version" > "$out/ok"
echo "built $name $version in $(( $(date +%s) - start ))s" >&2
echo "$out"
