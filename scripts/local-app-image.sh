#!/usr/bin/env bash
# Builds the sync-run image without a container registry (the Dockerfile needs one for its
# `FROM rust:…`): a Debian bookworm base made with debootstrap and `docker import` (built
# once, kept as sync-run/debian-minbase:bookworm), plus a sync-run binary built on this
# host, which runs there as it does here (it needs only glibc).
#   cargo build --release && scripts/local-app-image.sh [BIN] [IMAGE]
# BIN: default target/release/sync-run, else target/debug/sync-run. IMAGE: default
# $SYNC_RUN_IMAGE or sync-run:local, the image docker-compose.yml's app profile runs.
# The image is rebuilt on every call (it takes seconds), so it always holds BIN as it is now.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-}
if [ -z "$bin" ]; then
  for b in target/release/sync-run target/debug/sync-run; do
    if [ -x "$b" ]; then bin=$b; break; fi
  done
fi
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
  echo "no sync-run binary${bin:+ at $bin}: run \`cargo build --release\` or pass its path" >&2
  exit 1
fi
image=${2:-${SYNC_RUN_IMAGE:-sync-run:local}}
base=${BASE_IMAGE:-sync-run/debian-minbase:bookworm}

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
if docker image inspect "$base" >/dev/null 2>&1; then
  echo "base image $base already exists"
else
  if ! command -v debootstrap >/dev/null 2>&1; then
    echo "debootstrap is needed: apt-get install debootstrap" >&2
    exit 1
  fi
  mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
  echo "building $base with debootstrap (about a minute)"
  debootstrap --variant=minbase bookworm "$ctx/root" "$mirror" >/dev/null
  rm -rf "$ctx"/root/var/cache/apt/archives/*.deb "$ctx"/root/var/lib/apt/lists/*
  tar -C "$ctx/root" -c . | docker import -c 'CMD ["bash"]' - "$base" >/dev/null
  rm -rf "$ctx/root"
fi

cp "$bin" "$ctx/sync-run"
# A debug build carries ~100 MB of debug info the image does not need.
if command -v strip >/dev/null 2>&1; then strip --strip-debug "$ctx/sync-run"; fi
cat >"$ctx/Dockerfile" <<EOF
FROM $base
COPY sync-run /usr/local/bin/sync-run
USER 65534:65534
ENTRYPOINT ["sync-run"]
CMD ["--help"]
EOF
# No network needed (and none may exist: --network none also works without bridge networking).
if ! out=$(docker build --network none -q -t "$image" "$ctx" 2>&1); then
  echo "$out" >&2
  exit 1
fi
echo "built $image from $bin ($(docker run --rm --network none "$image" --version))"
