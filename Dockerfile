# syntax=docker/dockerfile:1
#
# The webhook receiver as a static binary in a distroless image.
#
#   docker build --build-arg VERSION=1.2.3 --build-arg REVISION=$(git rev-parse HEAD) \
#     -t ghcr.io/banking-marketplace/webhook:1.2.3 .
#   docker run --rm -p 8080:8080 ghcr.io/banking-marketplace/webhook:1.2.3   # serve, demo mode
#   docker run --rm -p 9090:9090 ghcr.io/banking-marketplace/webhook:1.2.3 sandbox --addr 0.0.0.0:9090
#
# Tag every build with its release (1.2.3), never only a moving tag (dev,
# latest): the manifests pull with IfNotPresent, so a tag pushed twice would
# run different code on different nodes. Deploy by digest where you can.
# See deploy/README.md for Kubernetes and docker compose.
#
# Base images are pinned by exact tag: the Go patch release is go.mod's
# (deploy_test.go checks). For a reproducible production image, pin each by
# digest too, IMAGE:TAG@sha256:... (deploy/README.md, "Pinning the images",
# says how); this file has no digests because they must be read from the
# registry, not written from memory.

FROM golang:1.26.8-bookworm AS build
WORKDIR /src

# Modules first, in their own layer: it is rebuilt only when go.mod or
# go.sum change, not on every source edit.
COPY go.mod go.sum ./
RUN go mod download && go mod verify

COPY . .
ARG VERSION=dev
# Static (no cgo) so it runs on distroless/static; -trimpath keeps build
# paths out of the binary; -s -w drops symbol tables; main.version is what
# `webhook version` and the start-up log line print.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /webhook ./cmd/webhook

# static-debian12: CA certificates (for https outside APIs and rediss Redis),
# tzdata, /etc/passwd with the nonroot user (uid/gid 65532); no shell, no
# libc. Distroless publishes no version tags: :nonroot moves with every
# rebuild, and only a digest pins it.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /webhook /webhook
USER nonroot:nonroot
# .dockerignore keeps .git out of the build context, so the binary has no
# VCS revision of its own: these labels say what was built
# (docker inspect, or the registry's view of the image).
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="webhook" \
      org.opencontainers.image.description="Q2/AppDirect marketplace subscription webhook receiver" \
      org.opencontainers.image.source="https://github.com/banking-marketplace/webhook" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
# The public port (WEBHOOK_ADDR). With OPS_ADDR set (the manifests set
# :9091), /healthz, /readyz, /metrics, the read API and the console move to
# that second port; unset, everything stays on this one.
EXPOSE 8080
# No HEALTHCHECK: the image has no shell or curl to run one. Orchestrators
# probe the service over HTTP instead, on the ops port: GET /healthz (the
# process runs: liveness) and GET /readyz (Redis answers, and not shutting
# down: readiness).
ENTRYPOINT ["/webhook"]
CMD ["serve"]
