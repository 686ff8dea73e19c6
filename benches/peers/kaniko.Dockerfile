# kaniko's executor as its own image does it: FROM scratch, /kaniko/executor, a CA bundle and
# DOCKER_CONFIG=/kaniko/.docker/. Built with Slipway's local mode by benches/peer_images.sh
# from the executor tests/peers/build.sh builds from the Go module proxy.
FROM scratch
COPY executor /kaniko/executor
COPY ca-certificates.crt /kaniko/ssl/certs/ca-certificates.crt
COPY docker-config.json /kaniko/.docker/config.json
ENV HOME=/root USER=root PATH=/usr/local/bin:/kaniko SSL_CERT_DIR=/kaniko/ssl/certs DOCKER_CONFIG=/kaniko/.docker/
WORKDIR /workspace
ENTRYPOINT ["/kaniko/executor"]
