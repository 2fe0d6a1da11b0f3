# One image per service: docker build --build-arg SERVICE=ingest -t stockcast-ingest .
# SERVICE is ingest, feature, forecast, replenishment, console, or stockcast
# (the command, used by the chart's topics Job and training CronJob). `make images` builds them all;
# `make build` (run by `make test`) compiles with the same flags.
ARG GO_VERSION=1.27.3

FROM golang:${GO_VERSION}-bookworm AS build
ARG SERVICE
WORKDIR /src
COPY go.mod go.sum go.work go.work.sum ./
COPY proto/go.mod proto/go.sum ./proto/
RUN --mount=type=cache,target=/root/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/root/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    test -n "${SERVICE}" || { echo "build with --build-arg SERVICE=<service>"; exit 1; }; \
    pkg="./services/${SERVICE}/cmd/${SERVICE}"; \
    if [ "${SERVICE}" = stockcast ]; then pkg=./cmd/stockcast; fi; \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/app "${pkg}"

# distroless/static: no shell, no libc; nonroot is uid/gid 65532 (the chart's runAsUser).
FROM gcr.io/distroless/static-debian12:nonroot
ARG SERVICE
LABEL org.opencontainers.image.source="https://github.com/stockcast/stockcast" \
      org.opencontainers.image.title="stockcast-${SERVICE}"
COPY --from=build /out/app /app
USER 65532:65532
EXPOSE 9090 9464
ENTRYPOINT ["/app"]
