# qiflow container image.
#
#   docker build -t qiflow --build-arg VERSION=$(git describe --tags --always --dirty) \
#     --build-arg COMMIT=$(git rev-parse --short HEAD) .
#
# Stage 1 builds a static binary exactly as `make build` does (CGO_ENABLED=0,
# -trimpath, the same -ldflags). Stage 2 is distroless/static: no shell, no
# package manager, no libc, running as the unprivileged user nonroot (65532).
# Because distroless has no shell, curl or wget, the image carries a static
# busybox for the HEALTHCHECK alone, which runs in exec form (no shell).

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
ARG DATE=unknown
RUN make build VERSION="${VERSION}" COMMIT="${COMMIT}" DATE="${DATE}" \
 && ./bin/qiflow --version

# A statically linked busybox: its wget is the health probe.
FROM busybox:1.36-musl AS probe

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/bin/qiflow /usr/local/bin/qiflow
COPY --from=probe /bin/busybox /usr/local/bin/busybox
# The shipped pipelines, schema and topics; docker-compose.yml mounts the
# working copy over them read-only, so edits take effect without a rebuild.
COPY --from=build /src/pipelines /pipelines
USER nonroot:nonroot
# The production profile: TLS and SCRAM-SHA-512 to its brokers, verified TLS
# to the database (docs/profiles.md). Give it REDPANDA_BROKERS,
# REDPANDA_USERNAME, REDPANDA_PASSWORD (or QIFLOW_REDPANDA_SASL_PASSWORD_FILE=/run/secrets/…) and
# DATABASE_URL; docker-compose.yml runs the development profile instead.
ENV QIFLOW_ENV=production
# 4195: the HTTP server (/ping, /ready, /metrics, POST /reload, /reloads), on
# every interface, so that probes, Prometheus and published ports reach it.
ENV QIFLOW_HTTP_ADDRESS=0.0.0.0:4195
EXPOSE 4195
# /ready answers 200 once every input and output of the stream is connected.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:4195/ready"]
ENTRYPOINT ["/usr/local/bin/qiflow"]
CMD ["streams", "--watch", "/pipelines/prices.yaml", "/pipelines/ohlcv.yaml", "/pipelines/analytics.yaml"]
