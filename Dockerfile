# syntax=docker/dockerfile:1
# Build with the whole workspace, run as a non-root user on a slim base.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin cardinal

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/cardinal --create-home cardinal
COPY --from=build /src/target/release/cardinal /usr/local/bin/cardinal
COPY config/production.toml /etc/cardinal/production.toml
USER cardinal
WORKDIR /var/lib/cardinal
ENV CARDINAL_CONFIG=/etc/cardinal/production.toml
EXPOSE 8080 9100
HEALTHCHECK --interval=10s --timeout=3s CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
# actix handles SIGTERM: stop accepting, finish in-flight requests within the grace period.
STOPSIGNAL SIGTERM
ENTRYPOINT ["cardinal"]
CMD ["serve"]
