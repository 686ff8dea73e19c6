# buildkitd and buildctl (v0.34.2, from tests/peers/build.sh) with runc (Debian's, the host's
# binary: it needs libseccomp2, which Debian's minbase has) on the locally built Debian base.
# Run rootful and privileged, OCI worker with overlayfs, as BuildKit's own Kubernetes example
# does; its config (buildkitd.toml) lets it speak plain HTTP to the cluster's registry.
ARG BASE_REGISTRY=127.0.0.1:5055
FROM ${BASE_REGISTRY}/slipway-test/debian:latest
COPY buildkitd buildctl runc /usr/bin/
COPY buildkitd.toml /etc/buildkit/buildkitd.toml
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENTRYPOINT ["buildkitd"]
