# Invigil image. Both stages install their Debian packages with
# scripts/install.sh, the same script `make run` and `make test` use, so the
# image and a developer's machine cannot disagree about dependencies.

# Build on Debian 12 (the official Go image is bookworm-based) with the Go
# release that go.mod names.
FROM golang:1.26-bookworm AS build
WORKDIR /src
# Packages and modules first: these layers survive edits to the source.
COPY scripts/install.sh scripts/install.sh
COPY go.mod go.sum ./
RUN scripts/install.sh build && rm -rf /var/lib/apt/lists/*
RUN go mod download
COPY . .
ARG VERSION=dev
RUN make build VERSION=$VERSION
# Models are provisioned at build time: the container starts without the
# network and the server refuses to start without them.
RUN bin/invigil models fetch --models /models && bin/invigil models verify --models /models

# Run on slim Debian 12 with only the shared libraries the binary loads.
FROM debian:bookworm-slim
COPY scripts/install.sh /tmp/install.sh
RUN /tmp/install.sh runtime && rm -rf /var/lib/apt/lists/* /tmp/install.sh
RUN useradd --system --user-group --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin invigil \
 && mkdir -p /data && chown invigil:invigil /data
COPY --from=build /src/bin/invigil /usr/local/bin/invigil
COPY --from=build /models /models
ENV INVIGIL_MODELS=/models
USER invigil
WORKDIR /data
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["invigil", "healthcheck", "--url", "http://127.0.0.1:8080/healthz"]
CMD ["invigil", "serve", "--addr", "0.0.0.0:8080", "--data", "/data"]
