#!/usr/bin/env bash
# Smoke test of the compose path: bring up docker-compose.yml's RabbitMQ, wait until it is
# healthy, run `sync-run --slaves 10` against it, check exit 0 and identical lists, tear
# it down. Uses `docker compose` where present, else Debian's `docker-compose`.
#
# With HOST_NETWORK=1 (machines without bridge networking, with a broker already on 5672)
# the service runs on the host network on port $PORT: the compose file is rendered with
# `config` and its port mappings dropped, since host networking cannot publish ports.
#   RABBITMQ_IMAGE=sync-run/rabbitmq-debian:bookworm HOST_NETWORK=1 scripts/compose-smoke.sh BIN
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/debug/sync-run}
port=${PORT:-5673}
if docker compose version >/dev/null 2>&1; then compose=(docker compose); else compose=(docker-compose); fi
file=docker-compose.yml
project=sync-run-smoke
if [ "${HOST_NETWORK:-0}" = 1 ]; then
  file=$(mktemp --suffix=.yml)
  "${compose[@]}" -f docker-compose.yml config | python3 -c '
import sys, yaml
doc = yaml.safe_load(sys.stdin)
svc = doc["services"]["rabbitmq"]
svc.pop("ports", None)
svc.pop("networks", None)
doc.pop("networks", None)
svc["network_mode"] = "host"
svc["environment"] = {"RABBITMQ_NODE_PORT": sys.argv[1], "RABBITMQ_DIST_PORT": str(int(sys.argv[1]) + 20000),
                      "RABBITMQ_NODENAME": "sync-run-compose@localhost"}
yaml.safe_dump(doc, sys.stdout)' "$port" > "$file"
else
  port=5672
fi
down() { "${compose[@]}" -p "$project" -f "$file" down -v >/dev/null 2>&1 || true; }
trap down EXIT
"${compose[@]}" -p "$project" -f "$file" up -d
cid=$("${compose[@]}" -p "$project" -f "$file" ps -q rabbitmq)
status=starting
for _ in $(seq 1 90); do
  status=$(docker inspect -f '{{.State.Health.Status}}' "$cid" 2>/dev/null || echo missing)
  [ "$status" = healthy ] && break
  sleep 2
done
if [ "$status" != healthy ]; then
  echo "compose smoke: RabbitMQ did not become healthy (status: $status)" >&2
  docker logs --tail 30 "$cid" >&2 || true
  exit 1
fi
echo "compose smoke: RabbitMQ healthy on port $port"
out=$("$bin" --slaves 10 --json --amqp-url "amqp://guest:guest@127.0.0.1:$port/%2f")
echo "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin)
lists = list(d["lists"].values())
assert d["verdict"]["verified"] and d["exit_code"] == 0, d["verdict"]
assert len(lists) == 10 and all(l == lists[0] for l in lists) and len(lists[0]) == 10, lists
print("compose smoke: sync-run --slaves 10 verified, 10 identical lists:", lists[0])'
