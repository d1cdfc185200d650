#!/usr/bin/env bash
# Smoke test of the compose path, done the way the README gives it:
#  1. brings up docker-compose.yml's RabbitMQ — with APP=1 also the app profile, a master and
#     APP_WORKERS (default 3) worker containers of image sync-run:local (SYNC_RUN_IMAGE),
#     which compose starts the moment the broker's healthcheck reports healthy;
#  2. once healthy: an AMQP handshake on the AMQP port must succeed at once (no retry), the
#     management UI must answer GET /api/overview as guest, and guest/guest must log in over
#     AMQP from outside the container (on the host network: on a non-loopback address of
#     this host, when it has one), as the official image allows;
#  3. runs `BIN --slaves 10 --json` against the broker: exit 0 and 10 identical lists;
#  4. with APP=1: the master container exits 0 (verified) and so does every worker;
#  5. tears everything down (also on failure or Ctrl-C).
# Host ports: RABBITMQ_PORT (default 5673) and RABBITMQ_UI_PORT (default 15673), so that it
# runs beside a broker on 5672. HOST_NETWORK=1 runs it on the host network through
# scripts/compose-host.sh, for machines without bridge networking. Uses `docker compose`
# where present, else Debian's `docker-compose`; COMPOSE chooses.
#   RABBITMQ_IMAGE=sync-run/rabbitmq-debian:bookworm HOST_NETWORK=1 APP=1 scripts/compose-smoke.sh BIN
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/debug/sync-run}
export RABBITMQ_PORT=${RABBITMQ_PORT:-${PORT:-5673}}
export RABBITMQ_UI_PORT=${RABBITMQ_UI_PORT:-15673}
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-sync-run-smoke}
app=${APP:-0}
workers=${APP_WORKERS:-3}
export SLAVES=$workers RUN_ID=smoke-$$
port=$RABBITMQ_PORT
ui=$RABBITMQ_UI_PORT

if [ -n "${COMPOSE:-}" ]; then
  read -r -a compose <<<"$COMPOSE"
elif docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
else
  compose=(docker-compose)
fi
echo "compose smoke: ${compose[*]} $("${compose[@]}" version --short)${HOST_NETWORK:+, HOST_NETWORK=$HOST_NETWORK}"
if [ "${HOST_NETWORK:-0}" = 1 ]; then
  export COMPOSE="${compose[*]}"
  compose=(scripts/compose-host.sh)
else
  compose+=(-f docker-compose.yml)
fi
c() { "${compose[@]}" --profile app "$@"; }
down() { c down -v --remove-orphans >/dev/null 2>&1 || true; }
logs() {
  echo "--- compose logs (tail)" >&2
  c logs --no-color --tail 30 >&2 2>&1 || true
}
fail() {
  echo "compose smoke: FAILED: $*" >&2
  logs
  exit 1
}
trap down EXIT
down # leftovers of an interrupted run
start=$SECONDS

if [ "$app" = 1 ]; then
  # compose waits for the broker's healthcheck, then starts the master and the workers.
  c up -d --scale worker="$workers" || fail "compose up (app profile)"
else
  c up -d rabbitmq || fail "compose up"
fi
cid=$(c ps -a -q rabbitmq)
status=starting
for _ in $(seq 1 90); do
  status=$(docker inspect -f '{{.State.Health.Status}}' "$cid" 2>/dev/null || echo missing)
  [ "$status" = healthy ] && break
  sleep 1
done
[ "$status" = healthy ] || fail "RabbitMQ did not become healthy (status: $status)"
echo "compose smoke: RabbitMQ healthy after $((SECONDS - start)) s (AMQP port $port, UI port $ui)"

# Healthy must mean that AMQP clients get in: one handshake, no retry.
python3 - "$port" <<'EOF' || fail "healthy, but no AMQP handshake on port $port"
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"AMQP\x00\x00\x09\x01")
head = b""
while len(head) < 11:
    chunk = s.recv(11 - len(head))
    assert chunk, "connection closed before connection.start"
    head += chunk
ftype, channel, size, cls, method = struct.unpack(">BHIHH", head)
assert (ftype, channel, cls, method) == (1, 0, 10, 10), (ftype, channel, cls, method)
s.close()
print("compose smoke: AMQP handshake ok (connection.start) on port", sys.argv[1])
EOF

python3 - "$ui" <<'EOF' || fail "management UI did not answer on port $ui"
import base64, json, sys, urllib.request
auth = base64.b64encode(b"guest:guest").decode()
req = urllib.request.Request("http://127.0.0.1:%s/api/overview" % sys.argv[1],
                             headers={"Authorization": "Basic " + auth})
d = json.load(urllib.request.urlopen(req, timeout=10))
print("compose smoke: management UI answers on port %s (RabbitMQ %s, management %s)"
      % (sys.argv[1], d.get("rabbitmq_version"), d["management_version"]))
EOF

# guest/guest must get in from outside the container, as with the official image (issue 24:
# the local image refused it, "user 'guest' can only connect via localhost", and sync-run
# exited 3). Through a published port every peer is outside; on the host network, 127.0.0.1
# is loopback to the broker, so also log in on a non-loopback address of this host, if any.
outside=$(hostname -I 2>/dev/null | tr ' ' '\n' | grep -m1 -E '^[0-9]+(\.[0-9]+){3}$' || true)
python3 - "$port" 127.0.0.1 $outside <<'EOF' || fail "guest/guest refused on the AMQP port (the broker must allow guest from outside the container)"
import socket, struct, sys

def login(host, port):
    """AMQP 0-9-1 handshake up to the login: None if guest/guest is let in, else why not."""
    s = socket.create_connection((host, port), timeout=5)
    def read(n):
        b = b""
        while len(b) < n:
            chunk = s.recv(n - len(b))
            if not chunk:
                raise EOFError("connection closed by the broker")
            b += chunk
        return b
    def method():
        ftype, _, size = struct.unpack(">BHI", read(7))
        payload = read(size)
        assert ftype == 1 and read(1) == b"\xce", "not a method frame"
        return struct.unpack(">HH", payload[:4]), payload[4:]
    s.sendall(b"AMQP\x00\x00\x09\x01")
    assert method()[0] == (10, 10), "no connection.start"
    def table(fields):  # an AMQP field table of shortstr keys
        b = b"".join(bytes([len(k)]) + k + v for k, v in fields)
        return struct.pack(">I", len(b)) + b
    # With this capability the broker says why it refuses a login instead of just closing.
    props = table([(b"capabilities", b"F" + table([(b"authentication_failure_close", b"t\x01")]))])
    plain = b"\x00guest\x00guest"
    args = props + b"\x05PLAIN" + struct.pack(">I", len(plain)) + plain + b"\x05en_US"
    body = struct.pack(">HH", 10, 11) + args  # connection.start-ok
    s.sendall(struct.pack(">BHI", 1, 0, len(body)) + body + b"\xce")
    try:
        (cls, meth), args = method()
    except (EOFError, OSError) as e:
        return str(e)
    finally:
        s.close()
    if (cls, meth) == (10, 30):  # connection.tune: logged in
        return None
    if (cls, meth) == (10, 50):  # connection.close
        return "%d %s" % (struct.unpack(">H", args[:2])[0], args[3:3 + args[2]].decode())
    return "unexpected method %d.%d" % (cls, meth)

port, hosts = int(sys.argv[1]), sys.argv[2:]
bad = [(h, why) for h in hosts if (why := login(h, port))]
for h, why in bad:
    print("compose smoke: guest/guest refused on %s:%d: %s" % (h, port, why), file=sys.stderr)
if bad:
    sys.exit(1)
print("compose smoke: guest/guest logs in over AMQP at %s%s" % (
    " and ".join("%s:%d" % (h, port) for h in hosts),
    "" if len(hosts) > 1 else " (this host has no other address to try)"))
EOF

out=$("$bin" --slaves 10 --json --amqp-url "amqp://guest:guest@127.0.0.1:$port/%2f") \
  || fail "sync-run --slaves 10 exited $?"
echo "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin)
lists = list(d["lists"].values())
assert d["verdict"]["verified"] and d["exit_code"] == 0, d["verdict"]
assert len(lists) == 10 and all(l == lists[0] for l in lists) and len(lists[0]) == 10, lists
print("compose smoke: sync-run --slaves 10 verified, 10 identical lists:", lists[0])' \
  || fail "sync-run output"

if [ "$app" = 1 ]; then
  master=$(c ps -a -q master)
  mapfile -t wids < <(c ps -a -q worker)
  [ -n "$master" ] || fail "no master container"
  [ "${#wids[@]}" = "$workers" ] || fail "${#wids[@]} worker containers, expected $workers"
  code=$(timeout 180 docker wait "$master") || fail "the master container did not exit within 180 s"
  [ "$code" = 0 ] || fail "the master container exited $code"
  docker logs "$master" 2>/dev/null | grep -q "VERIFIED: $workers lists identical" \
    || fail "the master's output has no 'VERIFIED: $workers lists identical'"
  for w in "${wids[@]}"; do
    wcode=$(timeout 60 docker wait "$w") || fail "worker container $w did not exit"
    [ "$wcode" = 0 ] || fail "worker container $w exited $wcode"
  done
  echo "compose smoke: app profile (run $RUN_ID): master and $workers worker containers exited 0:"
  docker logs "$master" 2>/dev/null | grep "VERIFIED"
fi
echo "compose smoke: passed in $((SECONDS - start)) s"
