# The userledger binary on a small Debian image.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bin userledger

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/userledger /usr/local/bin/userledger
ENV USERLEDGER_LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["userledger"]
CMD ["serve"]
