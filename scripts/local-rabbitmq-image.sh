#!/usr/bin/env bash
# Builds a RabbitMQ image from Debian's packages, for machines that reach Debian's archive
# but no container registry: bookworm's rabbitmq-server with the management plugin enabled.
# Idempotent: does nothing when an image of this recipe exists (an image of the same name
# from an older recipe is rebuilt).
#   scripts/local-rabbitmq-image.sh [IMAGE]      (default: sync-run/rabbitmq-debian:bookworm)
# Use it with:  RABBITMQ_IMAGE=<IMAGE> docker compose up -d
#          or:  SYNC_RUN_TEST_RABBITMQ_IMAGE=<IMAGE> SYNC_RUN_TEST_HOST_NETWORK=1 cargo test
#
# Like the official image, it lets the default user guest (password guest) in from outside
# the container (/etc/rabbitmq/conf.d/10-defaults.conf: loopback_users.guest = false), so
# that ports published from a bridge network work; RabbitMQ's own default admits guest from
# loopback only. Fine for a local test broker; in production, create a user of your own.
#
# The management UI listens on 15672 in the container, or on the port set with
#   RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS='-rabbitmq_management tcp_config [{port,15673}]'
# A container whose AMQP port is moved with RABBITMQ_NODE_PORT (host networking) and that is
# given no UI port starts without the UI, so that it never takes the host's 15672.
set -euo pipefail
image=${1:-sync-run/rabbitmq-debian:bookworm}
recipe=4 # bump when what goes into the image changes
have=$(docker image inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$image" 2>/dev/null \
  | sed -n 's/^SYNC_RUN_IMAGE_RECIPE=//p' || true)
if [ "$have" = "$recipe" ]; then
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
# The management UI (the official image's -management variant has it too).
chroot "$root" rabbitmq-plugins enable --offline rabbitmq_management >/dev/null
grep -q rabbitmq_management "$root/etc/rabbitmq/enabled_plugins"
echo '[].' >"$root/etc/rabbitmq/enabled_plugins.none"
# guest from outside the container, as the official image allows it (its conf.d/10-defaults.conf).
# Without this, RabbitMQ's default (loopback_users.guest = true) refuses guest from any peer
# but loopback, i.e. from the host through a published port ("user 'guest' can only connect
# via localhost"). Debian's rabbitmq-server (3.9+) reads /etc/rabbitmq/conf.d/*.conf.
mkdir -p "$root/etc/rabbitmq/conf.d"
cat >"$root/etc/rabbitmq/conf.d/10-defaults.conf" <<'CONF'
## A local test broker's defaults, as in the official RabbitMQ image: NOT for production.
## Lets guest/guest in from anywhere (the host through a published port, other containers),
## not only from loopback. In production, create a user of your own and delete guest.
loopback_users.guest = false
CONF
cat >"$root/usr/local/sbin/sync-run-rabbitmq" <<'EOF'
#!/bin/sh
# rabbitmq-server, without the management UI when the AMQP port was moved (RABBITMQ_NODE_PORT,
# as on the host network) and no UI port was given in RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS.
if [ -n "${RABBITMQ_NODE_PORT:-}" ] && [ "$RABBITMQ_NODE_PORT" != 5672 ]; then
  case "${RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS:-}" in
    *rabbitmq_management*) ;;
    *) export RABBITMQ_ENABLED_PLUGINS_FILE=/etc/rabbitmq/enabled_plugins.none ;;
  esac
fi
# As the rabbitmq user straight away (not through Debian's su wrapper), so that the server
# script, with its signal handlers, is PID 1 and `docker stop` stops RabbitMQ cleanly.
cd /var/lib/rabbitmq
exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups /usr/lib/rabbitmq/bin/rabbitmq-server "$@"
EOF
chmod 755 "$root/usr/local/sbin/sync-run-rabbitmq"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
# The official image logs to stdout; do the same so readiness can be read from the logs.
tar -C "$root" -c . | docker import \
  -c 'ENV RABBITMQ_LOGS=- HOME=/var/lib/rabbitmq SYNC_RUN_IMAGE_RECIPE='"$recipe" \
  -c 'EXPOSE 5672 15672' \
  -c 'CMD ["/usr/local/sbin/sync-run-rabbitmq"]' - "$image" >/dev/null
echo "built $image"
