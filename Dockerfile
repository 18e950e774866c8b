# xmpp-rest-gateway container images. Stages:
#   build             compiles the release binary (dependencies in their own layer, rebuilt
#                     only when Cargo.toml or Cargo.lock change);
#   e2e               the build stage plus Debian's prosody and ejabberd: `docker run` it to run
#                     the whole test suite, which starts its own Prosody and ejabberd on loopback
#                     inside the container, as it does natively (docker-compose.yml: `e2e`);
#   runtime-base      debian:bookworm-slim with CA roots and a non-root user, no binary;
#   runtime-prebuilt  runtime-base plus target/release/xmpp-rest-gateway from the build
#                     context, built beforehand on the host (CI: scripts/compose-e2e, which
#                     reuses the one release build of the CI run instead of compiling again);
#   runtime           (the default target) runtime-base plus the binary of the build stage.
#
# The runtime image bakes in no listen address: the gateway's default is 127.0.0.1:8080, which
# is unreachable from outside a container. Set XRG_LISTEN (and XRG_INSECURE_HTTP or
# XRG_TLS_CERT/XRG_TLS_KEY) where you run it; docker-compose.yml shows how.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# Dependencies first: a stub crate with the real manifest and lock file. `cargo fetch` gets
# every crate the lock file names (dev-dependencies too, for the e2e stage). Every target the
# manifest declares needs a file, or cargo refuses the manifest: hence the bench stub.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src benches \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && echo 'fn main() {}' > benches/gateway.rs \
 && cargo fetch --locked \
 && cargo build --release --locked --bin xmpp-rest-gateway \
 && rm -rf src benches
COPY src ./src
# The manifest declares the bench: cargo reads it, and refuses the manifest without its file.
COPY benches ./benches
# The binary serves the OpenAPI document it compiles in (`GET /openapi.json`).
COPY docs/openapi.json ./docs/openapi.json
# COPY keeps the files' own mtimes, which may be older than the stub build: touch the crate
# roots so cargo rebuilds the crate itself.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin xmpp-rest-gateway

FROM build AS e2e
# policy-rc.d keeps the packages' maintainer scripts from starting the servers here.
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d \
 && chmod 0755 /usr/sbin/policy-rc.d \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        prosody ejabberd openssl \
 && rm -f /usr/sbin/policy-rc.d \
 && rm -rf /var/lib/apt/lists/*
# Everything else (tests/, examples/, ...): the suite's own files.
COPY . .
RUN cargo test --locked --no-run
# Runs as root on purpose: the harness drops each server to its own system user (`prosody`,
# `ejabberd`), as the packages expect.
CMD ["cargo", "test", "--locked"]

FROM debian:bookworm-slim AS runtime-base
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 xrg \
 && useradd --system --uid 10001 --gid xrg --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin xrg
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["xmpp-rest-gateway"]

FROM runtime-base AS runtime-prebuilt
# .dockerignore lets this one file of target/ into the context.
COPY target/release/xmpp-rest-gateway /usr/local/bin/xmpp-rest-gateway

FROM runtime-base AS runtime
COPY --from=build /src/target/release/xmpp-rest-gateway /usr/local/bin/xmpp-rest-gateway
