#!/usr/bin/env bash
# Runs docker-compose.yml on the host network, for machines without bridge networking
# (e.g. `dockerd --bridge=none`): every service gets `network_mode: host`, no port is
# published and no network is created. Takes the compose options and command as they come:
#   RABBITMQ_PORT=5673 RABBITMQ_UI_PORT=15673 scripts/compose-host.sh up -d
#   RABBITMQ_PORT=5673 RABBITMQ_UI_PORT=15673 SLAVES=3 \
#     scripts/compose-host.sh --profile app up --scale worker=3 master worker
#   scripts/compose-host.sh --profile app down -v
# On the host network the broker itself listens on RABBITMQ_PORT (AMQP, default 5672),
# RABBITMQ_UI_PORT (management UI, default 15672) and RABBITMQ_DIST_PORT (Erlang
# distribution, default RABBITMQ_PORT + 20000), as node sync-run-compose-<port>@localhost;
# the app containers use amqp://guest:guest@127.0.0.1:<RABBITMQ_PORT>/%2f unless APP_AMQP_URL
# is set. Uses `docker compose` where it exists, else Debian's `docker-compose` (v1); COMPOSE
# chooses ("docker compose" or docker-compose). Project name: COMPOSE_PROJECT_NAME, default
# sync-run-host. The rendered file is temporary (PyYAML renders it) and removed on exit.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${COMPOSE:-}" ]; then
  read -r -a compose <<<"$COMPOSE"
elif docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
else
  compose=(docker-compose)
fi
project=${COMPOSE_PROJECT_NAME:-sync-run-host}
file=$(mktemp --suffix=.yml)
trap 'rm -f "$file"' EXIT
# `config` interpolates the variables; --profile app keeps the app services in the output.
"${compose[@]}" --project-directory "$here" -f "$here/docker-compose.yml" --profile app config \
  | python3 -c '
import os, sys, yaml
doc = yaml.safe_load(sys.stdin)
port = int(os.environ.get("RABBITMQ_PORT") or 5672)
ui = int(os.environ.get("RABBITMQ_UI_PORT") or 15672)
dist = int(os.environ.get("RABBITMQ_DIST_PORT") or port + 20000)
doc.pop("networks", None)
doc.pop("name", None)
for name, svc in doc["services"].items():
    for key in ("ports", "networks", "expose", "links"):
        svc.pop(key, None)
    svc["network_mode"] = "host"
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    if name == "rabbitmq":
        env.update({
            "RABBITMQ_NODE_PORT": str(port),
            "RABBITMQ_DIST_PORT": str(dist),
            "RABBITMQ_NODENAME": "sync-run-compose-%d@localhost" % port,
            # The management UI port (a UI on 15672 would take the host'"'"'s 15672).
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-rabbitmq_management tcp_config [{port,%d}]" % ui,
        })
    elif "AMQP_URL" in env and not os.environ.get("APP_AMQP_URL"):
        env["AMQP_URL"] = "amqp://guest:guest@127.0.0.1:%d/%%2f" % port
    if env:
        svc["environment"] = env
yaml.safe_dump(doc, sys.stdout, default_flow_style=False)' >"$file"
"${compose[@]}" -p "$project" --project-directory "$here" -f "$file" "$@"
