# syntax=docker/dockerfile:1
# The quota image: region-node, coordinator and quotactl, nothing else.
#   docker build -t quota:0.1.0 .
# Linted by hadolint in the suite (deploy/k8s/check.sh); no image is built there (no container
# engine is reachable from CI).

FROM rust:1.95.0-bookworm AS builder
# etcd-client's build script runs protoc.
RUN apt-get update \
    && apt-get install -y --no-install-recommends protobuf-compiler=3.21.* \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bins -p region-node -p coordinator -p quotactl \
    && mkdir -p /out \
    && cp target/release/region-node target/release/coordinator target/release/quotactl /out/

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates=20230311* \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 quota \
    && useradd --system --uid 10001 --gid quota --home-dir /nonexistent --shell /usr/sbin/nologin quota
COPY --from=builder /out/region-node /out/coordinator /out/quotactl /usr/local/bin/
USER 10001:10001
# region-node listens on 8080, the coordinator on 7070 (give --listen 0.0.0.0:PORT in a pod).
EXPOSE 8080 7070
ENTRYPOINT ["region-node"]
CMD ["--help"]
