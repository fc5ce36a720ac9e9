# stackshot's image.
#
#   docker build -t stackshot .          full build: Rust build stage, restic from
#                                         the official restic image, slim runtime
#
# The first stage, `runtime-prebuilt`, is for machines without a registry (and
# for stackshot's own tests): it copies a binary built on the host onto a local
# image, and is the only stage built when targeted, with any builder:
#
#   cargo build --release
#   docker build --target runtime-prebuilt --build-arg RUNTIME_IMAGE=<local image> -t stackshot .
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUNTIME_IMAGE} AS runtime-prebuilt
COPY target/release/stackshot /usr/local/bin/stackshot
ENV RESTIC_CACHE_DIR=/cache
# Dumps are written here and snapshotted by the worker container, which sees the
# sidecar's volumes: so it must be a volume.
VOLUME ["/databases"]
HEALTHCHECK --interval=1m --timeout=15s --start-period=1m CMD ["/usr/local/bin/stackshot", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/stackshot"]
CMD ["daemon"]

FROM rust:1.89-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked

FROM restic/restic:0.17.3 AS restic

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/*
COPY --from=restic /usr/bin/restic /usr/local/bin/restic
COPY --from=build /src/target/release/stackshot /usr/local/bin/stackshot
ENV RESTIC_CACHE_DIR=/cache
# Dumps are written here and snapshotted by the worker container, which sees the
# sidecar's volumes: so it must be a volume.
VOLUME ["/databases"]
HEALTHCHECK --interval=1m --timeout=15s --start-period=1m CMD ["/usr/local/bin/stackshot", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/stackshot"]
CMD ["daemon"]
