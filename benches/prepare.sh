#!/usr/bin/env bash
# Lays out the benchmark contexts in OUT (default: a new temporary directory) and prints OUT.
# Builds run offline (no build pod or container reaches a network), so the two "real work"
# contexts get their dependencies here, on the host, once:
#   gomod  `go mod vendor` of the committed go.mod/go.sum (from the Go module proxy, cached in
#          GOMODCACHE): ~1.7 MB of real module source, built with -mod=vendor;
#   npm    `npm ci --cache OUT/npm/npm-cache` of the committed lockfile (from the npm registry):
#          the offline cache that the Dockerfile's `npm ci --offline` installs from.
# Neither is committed. The other contexts are copied as they are:
#   go, node (examples/), fanout, bigfile, files20k, gomod, npm, chain, six (benches/).
# Every context stays under 1 MiB as a tar.gz, so the cluster benchmark can hand it over in a
# ConfigMap.   Usage: benches/prepare.sh [OUT]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$(mktemp -d /var/tmp/slipway-bench-ctx.XXXXXX)}
mkdir -p "$out"
declare -A src=([go]=examples/go [node]=examples/node [fanout]=benches/fanout
                [bigfile]=benches/bigfile [files20k]=benches/files20k [gomod]=benches/gomod [npm]=benches/npm
                [chain]=benches/chain [six]=benches/six)
for name in "${!src[@]}"; do
  rm -rf "${out:?}/$name"
  cp -a "$repo/${src[$name]}" "$out/$name"
done
(cd "$out/gomod" && GOTOOLCHAIN=local GOFLAGS=-mod=mod go mod download >&2 && GOTOOLCHAIN=local go mod vendor >&2)
(cd "$out/npm" && npm ci --cache "$out/npm/npm-cache" --ignore-scripts --no-audit --no-fund >&2 &&
  rm -rf node_modules npm-cache/_logs npm-cache/_cacache/tmp)
for name in "${!src[@]}"; do
  size=$(tar -C "$out/$name" -czf - . | wc -c)
  if ((size > 1000000)); then echo "context $name is $size bytes as tar.gz: too big for a ConfigMap" >&2; exit 1; fi
done
echo "$out"
