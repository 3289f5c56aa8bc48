# The Bespin server as a container image: built in the Rust image, run by a non-root user on
# Debian slim, with the database on a volume.
#
#   docker build -t bespin .            (or: podman build -t bespin .)
#   docker run -p 8000:8000 -v bespin-data:/data -e PLATFORM_ADMIN_KEY=change-me bespin
#
# Configuration is the server's environment variables (`bespin serve --help`); the image sets
# the listen address and the database path. Behind a TLS-terminating proxy add
# `-e BESPIN_TRUST_PROXY=1` (README, "Behind a reverse proxy").

ARG RUST_VERSION=1.90

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p bespin-http --bin bespin \
    && install -D -m 0755 target/release/bespin /out/bespin

FROM docker.io/library/debian:bookworm-slim
RUN useradd --system --uid 10001 --user-group --home-dir /data --no-create-home bespin \
    && mkdir /data \
    && chown bespin:bespin /data
COPY --from=build /out/bespin /usr/local/bin/bespin
ENV BESPIN_LISTEN=0.0.0.0:8000 \
    BESPIN_DB=/data/bespin.redb \
    BESPIN_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 8000
USER 10001:10001
WORKDIR /data
# Liveness: /healthz answers 200 while the database answers a read (bash's /dev/tcp, so the
# image needs no HTTP client).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8000 && printf 'GET /healthz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/bespin"]
CMD ["serve"]
