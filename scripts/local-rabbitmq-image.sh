#!/usr/bin/env bash
# Builds a RabbitMQ image from Debian's packages, for machines that reach Debian's archive
# but no container registry. Idempotent: does nothing when the image exists.
#   scripts/local-rabbitmq-image.sh [IMAGE]      (default: sync-run/rabbitmq-debian:bookworm)
# Use it with:  RABBITMQ_IMAGE=<IMAGE> docker compose up -d
#          or:  SYNC_RUN_TEST_RABBITMQ_IMAGE=<IMAGE> SYNC_RUN_TEST_HOST_NETWORK=1 cargo test
set -euo pipefail
image=${1:-sync-run/rabbitmq-debian:bookworm}
if docker image inspect "$image" >/dev/null 2>&1; then
  echo "image $image already exists"
  exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  echo "debootstrap is needed: apt-get install debootstrap" >&2
  exit 1
fi
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
echo "building $image from Debian bookworm's rabbitmq-server (about a minute)"
debootstrap --variant=minbase --include=rabbitmq-server bookworm "$root" "$mirror" >/dev/null
# The official image logs to stdout; do the same so readiness can be read from the logs.
tar -C "$root" -c . | docker import \
  -c 'ENV RABBITMQ_LOGS=- HOME=/var/lib/rabbitmq' \
  -c 'CMD ["rabbitmq-server"]' - "$image" >/dev/null
echo "built $image"
