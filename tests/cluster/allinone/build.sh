#!/usr/bin/env bash
# Builds the multi-call Kubernetes binary (main.go here) from the Go module proxy into
# $1 (a cache path keyed by versions). Kubernetes' staging modules are pinned by one replace
# each, derived from the tagged k8s.io/kubernetes go.mod (the proxy serves it).
set -euo pipefail
out=$1 KV=$2
SV=0.${KV#1.}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
cd "$work"
cp "$here/main.go" .
go mod init example.invalid/slipway-k8s >/dev/null 2>&1
gomod=$(go mod download -json "k8s.io/kubernetes@v$KV" | python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')
sed -n 's|^[[:space:]]*\(k8s\.io/[^ ]*\) => \./staging/src/.*|\1|p' "$gomod" |
  while read -r m; do go mod edit -replace="$m=$m@v$SV"; done
go get "k8s.io/kubernetes@v$KV" >/dev/null
go mod tidy
minor=$(echo "$KV" | cut -d. -f2)
ld="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ld+=" -X $pkg.gitVersion=v$KV -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
mkdir -p "$(dirname "$out")"
go build -trimpath -tags providerless -ldflags "$ld" -o "$out.tmp" .
cp "$(go env GOMODCACHE)/k8s.io/kubernetes@v$KV/build/pause/linux/pause.c" "$(dirname "$out")/pause.c"
mv "$out.tmp" "$out"
