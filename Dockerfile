# sync-run in a container: `docker build -t sync-run:local .`, or through docker-compose.yml
# (`docker compose --profile app build`; Debian's v1: `docker-compose --profile app build`).
# Needs a container registry for its two FROM images. Without one, scripts/local-app-image.sh
# builds the same image (sync-run:local) from a local Debian base and a host-built binary.
ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
WORKDIR /src
# Dependencies first, so a source change does not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked && rm -rf src
COPY src ./src
RUN touch src/main.rs src/lib.rs && cargo build --release --locked

FROM ${RUNTIME_IMAGE}
COPY --from=build /src/target/release/sync-run /usr/local/bin/sync-run
USER 65534:65534
ENTRYPOINT ["sync-run"]
CMD ["--help"]
