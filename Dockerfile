# The fleet image: `fleet serve` in a FROM-scratch image, running as the non-root
# `fleet` user (65532) with its state directory at /var/lib/fleet. How to run it:
# docs/container.md. `cargo xtask release` builds the same image without a daemon
# (xtask/src/release/image.rs): keep the two identical.
#
# Build from source (as GitHub's buildx does, each platform's build stage under QEMU):
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg FLEET_VERSION=1.2.3 --build-arg FLEET_REVISION=$(git rev-parse HEAD) \
#     --build-arg FLEET_CREATED=2024-01-01T00:00:00Z -t fleet:1.2.3 .
#
# Or from a static binary built beforehand (no Rust image is pulled; BuildKit skips the
# build stage), dist/<os>-<arch>/fleet by default:
#
#   DOCKER_BUILDKIT=1 docker build --build-arg FLEET_BUILD=prebuilt \
#     --build-arg FLEET_BINARY=dist/linux-amd64/fleet -t fleet:dev .
#
# No `# syntax=` line: it would pull a frontend image. The builtin frontend of Docker
# 20.10's BuildKit knows everything used here (COPY --chmod, RUN --mount).

# `source` (build in the Rust image) or `prebuilt` (copy FLEET_BINARY).
ARG FLEET_BUILD=source
# The Rust image of the build stage (any with cargo, a C compiler and glibc's libc.a).
ARG RUST_IMAGE=docker.io/library/rust:1-bookworm

# The static binary, built for the platform this stage runs on (TARGETPLATFORM; under
# QEMU when it is not the builder's): glibc linked statically (+crt-static), so the
# image needs no libraries. The target is named so that build scripts and proc macros,
# built for the host, stay dynamic.
FROM ${RUST_IMAGE} AS binary-source
ARG TARGETPLATFORM
WORKDIR /src
COPY . .
RUN --mount=type=cache,id=fleet-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=fleet-target-${TARGETPLATFORM},target=/src/target \
    set -eu; \
    triple="$(rustc -vV | sed -n 's/^host: //p')"; \
    CARGO_ENCODED_RUSTFLAGS='-Ctarget-feature=+crt-static' \
    CARGO_PROFILE_RELEASE_STRIP=true \
    cargo build --release --locked --package fleet-cli --bin fleet --target "$triple"; \
    mkdir -p /out; \
    cp "target/$triple/release/fleet" /out/fleet

# A static binary from the build context, for each platform at its own path.
FROM scratch AS binary-prebuilt
ARG TARGETOS
ARG TARGETARCH
ARG FLEET_BINARY=dist/${TARGETOS}-${TARGETARCH}/fleet
COPY ${FLEET_BINARY} /out/fleet

FROM binary-${FLEET_BUILD} AS binary

FROM scratch
ARG FLEET_VERSION=0.0.0-dev
ARG FLEET_REVISION=unknown
ARG FLEET_CREATED=1970-01-01T00:00:00Z
ARG FLEET_SOURCE=https://github.com/fleet-rs/fleet
# root and fleet (65532:65532, home /var/lib/fleet, no shell).
COPY --chmod=0644 docker/rootfs/etc/ /etc/
# /var/lib as root, then the state directory inside it: 0700, owned by fleet.
COPY --chmod=0755 docker/rootfs/var/ /var/
COPY --chown=65532:65532 --chmod=0700 docker/rootfs/var/lib/ /var/lib/
COPY --from=binary --chmod=0755 /out/fleet /usr/local/bin/fleet
USER 65532:65532
ENV FLEET_STATE_DIR=/var/lib/fleet FLEET_SERVE_API=127.0.0.1:8090
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/fleet", "serve", "--check"]
LABEL org.opencontainers.image.title="fleet" \
      org.opencontainers.image.description="Runs many isolated instances of one container image on a host, updated by version channel" \
      org.opencontainers.image.source="${FLEET_SOURCE}" \
      org.opencontainers.image.url="${FLEET_SOURCE}" \
      org.opencontainers.image.revision="${FLEET_REVISION}" \
      org.opencontainers.image.version="${FLEET_VERSION}" \
      org.opencontainers.image.created="${FLEET_CREATED}" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0"
ENTRYPOINT ["/usr/local/bin/fleet"]
CMD ["serve"]
