# Multi-stage build of the operator image: a static-ish Rust binary on a distroless, non-root
# base. There is no container engine on the project's development machines, so this file is
# not built in CI; build it where Docker or Buildah is available:
#   docker build -t registry.example.org/epic-operator:0.1.0 .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY examples ./examples
COPY crds ./crds
RUN cargo build --release --locked --bin epic-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/epic-operator /usr/local/bin/epic-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/epic-operator"]
CMD ["run"]
