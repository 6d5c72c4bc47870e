# Multi-stage build of the operator image: a Rust binary on a distroless, non-root base.
# There is no container engine on the project's development machines; tests/packaging.rs
# copies exactly the build stage's COPY set below into an empty directory and builds it with
# `cargo build --locked --offline`, so this context cannot miss a file the build needs.
#   docker build -t registry.example.org/epic-operator:0.1.0 .
FROM rust:1-bookworm AS build
WORKDIR /src
# Cargo reads every target the manifest declares (benches, the e2e test), so those sources
# are part of the context too; examples/ holds the sandbox seed compiled into the binary.
COPY Cargo.toml Cargo.lock ./
# jemalloc's built-in options (see the file).
COPY .cargo ./.cargo
COPY src ./src
COPY benches ./benches
COPY tests ./tests
COPY examples ./examples
RUN cargo build --profile dist --locked --bin epic-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/dist/epic-operator /usr/local/bin/epic-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/epic-operator"]
CMD ["run"]
