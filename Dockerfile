# syntax=docker/dockerfile:1
#
# The webhook receiver as a static binary in a distroless image.
#
#   docker build --build-arg VERSION=1.2.3 -t webhook:1.2.3 .
#   docker run --rm -p 8080:8080 webhook:1.2.3            # serve, sandbox mode
#   docker run --rm -p 9090:9090 webhook:1.2.3 sandbox --addr 0.0.0.0:9090
#
# See deploy/README.md for Kubernetes and docker compose.
#
# Base images are pinned by exact tag: the Go patch release is go.mod's
# (deploy_test.go checks). For a reproducible production image, pin each by
# digest too, IMAGE:TAG@sha256:... (deploy/README.md, "Pinning the base
# images", says how); this file has no digests because they must be read
# from the registry, not written from memory.

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

# static-debian12: CA certificates (for https Q2 and rediss Redis), tzdata,
# /etc/passwd with the nonroot user (uid/gid 65532); no shell, no libc.
# Distroless publishes no version tags: :nonroot moves with every rebuild,
# and only a digest pins it.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /webhook /webhook
USER nonroot:nonroot
EXPOSE 8080
# No HEALTHCHECK: the image has no shell or curl to run one. Orchestrators
# probe the service over HTTP instead: GET /healthz (the process runs: liveness)
# and GET /readyz (Redis answers, and not shutting down: readiness).
ENTRYPOINT ["/webhook"]
CMD ["serve"]
