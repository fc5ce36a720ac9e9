# stackshot's image: `docker build -t stackshot .` (the legacy builder and
# BuildKit alike) builds stackshot in a Rust stage, takes restic from the
# official restic image, and puts both, with the shared libraries `ldd` names
# and a CA bundle, on an empty base (`FROM scratch`): no shell, no package
# manager, about 70 MB (docs/image.md). stackshot needs nothing else there:
# the time zone database is compiled in (chrono-tz and jiff's bundled copy),
# the worker runs the same binary, and a hook runs in the labelled container,
# never in the sidecar.
#
# The base images are build arguments, so a machine without a registry can
# point them at local images (stackshot's CI does: .ci/build-image).
# Without a registry at all, tests/bench/sidecar-image.sh puts a binary built
# on the host under this file's runtime stage instead (scripts/example and
# the tests use it).
ARG RUST_IMAGE=rust:1.91-bookworm
ARG RESTIC_IMAGE=restic/restic:0.19.1

FROM ${RUST_IMAGE} AS build
WORKDIR /src
# The dependencies in a layer of their own: a change under src/ rebuilds only
# stackshot, not its ~250 dependencies.
COPY Cargo.toml Cargo.lock ./
# rustic_core with stackshot's patch (vendor/README.md).
COPY vendor ./vendor
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src target/release/stackshot* target/release/deps/stackshot-* \
      target/release/deps/libstackshot-* target/release/.fingerprint/stackshot-*
COPY src ./src
RUN cargo build --release --locked

FROM ${RESTIC_IMAGE} AS restic

# The runtime's whole file tree, gathered in the build stage (it has ldd):
# the two binaries, the libraries they load (none for the official, static
# restic), the CA bundle for https repositories and notifications, an empty
# /tmp (scripts/scratch-tree).
FROM build AS tree
COPY --from=restic /usr/bin/restic /usr/local/bin/restic
COPY scripts/scratch-tree /usr/local/bin/scratch-tree
RUN sh /usr/local/bin/scratch-tree /tree /src/target/release/stackshot /usr/local/bin/restic \
 && mkdir /tree/cache

FROM scratch AS runtime
COPY --from=tree /tree/ /
# No /etc/localtime in the image: TZ names the zone (UTC unless the compose
# file sets it), so rustic's snapshot times need no guess and log no warning.
ENV PATH=/usr/local/bin RESTIC_CACHE_DIR=/cache TZ=UTC
# Dumps are written here and snapshotted by the worker container, which sees the
# sidecar's volumes: so it must be a volume.
VOLUME ["/databases"]
HEALTHCHECK --interval=1m --timeout=15s --start-period=1m CMD ["/usr/local/bin/stackshot", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/stackshot"]
CMD ["daemon"]
