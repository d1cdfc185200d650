#!/usr/bin/env bash
# A three-node RabbitMQ cluster on this machine, from the installed RabbitMQ server (Debian's
# rabbitmq-server package), for trying sync-run against a cluster and for the tests that need
# one. The machine's own broker (the service: its node, port 5672, cookie, /etc/rabbitmq) is
# never touched; only the system's epmd (port 4369, a name registry) is shared.
#
#   scripts/local-cluster.sh up [--watch PID]   start the cluster; prints the URLs on stdout
#   scripts/local-cluster.sh down               stop every node, remove SYNC_RUN_CLUSTER_DIR
#   scripts/local-cluster.sh kill NODE          SIGKILL the node's Erlang VM
#   scripts/local-cluster.sh stop NODE          stop the RabbitMQ application (VM stays up)
#   scripts/local-cluster.sh start NODE         bring a killed or stopped node back
#   scripts/local-cluster.sh status             one line per node; exit 0 iff all three run
#   scripts/local-cluster.sh urls               the three AMQP URLs, comma-separated
#   scripts/local-cluster.sh ctl NODE ARGS...   rabbitmqctl -n NODE ARGS... (cluster's env)
#
# NODE is 1, 2, 3 or a node name (rabbit-2@localhost, or rabbit-2).
#
# Settings (environment):
#   SYNC_RUN_CLUSTER_DIR     default /tmp/sync-run-cluster (no spaces). Everything the cluster
#                            writes lives here: the Erlang cookie the nodes share
#                            (DIR/.erlang.cookie: HOME is DIR for every node and every
#                            rabbitmqctl call) and, per node, DIR/<n>/ (rabbitmq.conf, data in
#                            mnesia/, logs in log/, the pid file pid). `down` removes it
#                            completely. A non-empty directory this script did not make is
#                            refused, never removed.
#   SYNC_RUN_CLUSTER_PREFIX  default rabbit: the nodes are PREFIX-1@localhost, PREFIX-2@localhost
#                            and PREFIX-3@localhost.
#   SYNC_RUN_CLUSTER_PORT    default 5681: AMQP on 127.0.0.1 ports PORT, PORT+1, PORT+2; Erlang
#                            distribution on PORT+10, PORT+11, PORT+12. `up` refuses (exit 2)
#                            5672 and any of these ports something else listens on.
#   SYNC_RUN_CLUSTER_RABBITMQ_BIN  the directory of rabbitmq-server and rabbitmqctl; default
#                            /usr/lib/rabbitmq/bin (Debian's own: the /usr/sbin wrappers switch
#                            to the rabbitmq user and lose the environment), else from PATH.
# Give all three other values to run a second cluster beside a developer's, e.g. in tests:
#   export SYNC_RUN_CLUSTER_DIR=/tmp/sync-run-test-cluster SYNC_RUN_CLUSTER_PREFIX=sr-test \
#     SYNC_RUN_CLUSTER_PORT=5781
#   urls=$(scripts/local-cluster.sh up --watch $$)
#
# up: starts the three nodes in parallel (rabbitmq-server -detached), waits for each
#   (rabbitmqctl await_startup), joins nodes 2 and 3 to node 1 (stop_app, join_cluster,
#   start_app), waits (180 s in all at most) until cluster_status on node 1 shows all three
#   running, then prints the status and the time taken on stderr and the URLs (as `urls` does)
#   on stdout. A cluster already up and formed is left as it is (exit 0); the leftovers of a
#   broken one are removed first. On failure: the tail of the node's logs, `down`, exit 1.
#   --watch PID also leaves a watchdog, detached in a session of its own (it survives the
#   caller and a Ctrl-C), that runs `down` once process PID has exited: a test run that dies
#   leaves no cluster behind. It does nothing if the cluster was replaced in the meantime.
# down: `rabbitmqctl stop` of each node (30 s at most), else kill -9 of the pid in its pid
#   file, then kill -9 of any beam.smp whose command line contains DIR/; removes DIR and the
#   cluster's watchdogs. Exit 0 even when nothing was running.
# kill: kill -9 of the node's beam.smp (pid file); returns once its AMQP port is closed.
# stop: rabbitmqctl stop_app (the VM stays up); returns once its AMQP port is closed.
# start: start_app if the node's VM runs, else rabbitmq-server -detached again with the same
#   environment (the node rejoins the cluster by itself: its data remembers the membership);
#   returns once await_startup succeeds and its AMQP port answers.
# status: NAME<TAB>STATE<TAB>URL per node, STATE one of `running`, `app stopped` (VM up, AMQP
#   port closed: stopped, or still starting), `down`.
# ctl: rabbitmqctl's own output and exit status; add -q to drop its "Listing ..." banners.
# The guest user works since every URL is on 127.0.0.1 (loopback). No management plugin.
# Messages go to stderr; stdout carries only machine output (urls, status, ctl).
set -euo pipefail

usage() {
  sed -n '2,/^# up: starts/p' "$self" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
  echo "(more in the comment at the top of $self)" >&2
  exit 2
}
say() { printf 'local-cluster: %s\n' "$*" >&2; }
die() {
  say "$1"
  exit "${2:-1}"
}

self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"

# Nothing inherited may steer the nodes or rabbitmqctl (RABBITMQ_NODENAME, ERL_FLAGS, ...).
while IFS= read -r var; do
  unset "$var"
done < <(compgen -e | grep -E '^(RABBITMQ_|ERL_)' || true)

DIR=${SYNC_RUN_CLUSTER_DIR:-/tmp/sync-run-cluster}
PREFIX=${SYNC_RUN_CLUSTER_PREFIX:-rabbit}
PORT=${SYNC_RUN_CLUSTER_PORT:-5681}
case "$DIR" in
  /*) ;;
  *) DIR="$PWD/$DIR" ;;
esac
while [ "${DIR%/}" != "$DIR" ]; do DIR=${DIR%/}; done
[ -n "$DIR" ] || die "SYNC_RUN_CLUSTER_DIR must not be /" 2
[[ $DIR =~ ^[^[:space:]]+$ ]] || die "SYNC_RUN_CLUSTER_DIR=$DIR: no spaces, please" 2
[[ $PREFIX =~ ^[A-Za-z0-9_-]+$ ]] ||
  die "SYNC_RUN_CLUSTER_PREFIX=$PREFIX: use letters, digits, - and _" 2
if ! [[ $PORT =~ ^[0-9]+$ ]] || [ "$PORT" -lt 1024 ] || [ "$PORT" -gt 65500 ]; then
  die "SYNC_RUN_CLUSTER_PORT=$PORT: use a number from 1024 to 65500" 2
fi
MARKER="$DIR/.sync-run-local-cluster"

if [ -n "${SYNC_RUN_CLUSTER_RABBITMQ_BIN:-}" ]; then
  BIN=$SYNC_RUN_CLUSTER_RABBITMQ_BIN
elif [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] && [ -x /usr/lib/rabbitmq/bin/rabbitmqctl ]; then
  BIN=/usr/lib/rabbitmq/bin
else
  BIN=$(dirname "$(command -v rabbitmq-server 2>/dev/null || echo /nonexistent/x)")
fi
SERVER="$BIN/rabbitmq-server"
CTL="$BIN/rabbitmqctl"

NODES=(1 2 3)
node_name() { printf '%s-%s@localhost' "$PREFIX" "$1"; }
amqp_port() { echo $((PORT + $1 - 1)); }
dist_port() { echo $((PORT + 9 + $1)); }
url() { printf 'amqp://guest:guest@127.0.0.1:%s/%%2f' "$(amqp_port "$1")"; }
urls() {
  local i out=""
  for i in "${NODES[@]}"; do out="${out:+$out,}$(url "$i")"; done
  echo "$out"
}

# NODE argument -> 1, 2 or 3
node_index() {
  case "${1:-}" in
    1 | 2 | 3) echo "$1" ;;
    "$PREFIX-1@localhost" | "$PREFIX-1") echo 1 ;;
    "$PREFIX-2@localhost" | "$PREFIX-2") echo 2 ;;
    "$PREFIX-3@localhost" | "$PREFIX-3") echo 3 ;;
    *) return 1 ;;
  esac
}

# Exports node $1's environment (call it in a subshell).
node_env() {
  local d="$DIR/$1"
  export HOME="$DIR"
  export RABBITMQ_NODENAME RABBITMQ_NODE_PORT RABBITMQ_DIST_PORT
  RABBITMQ_NODENAME=$(node_name "$1")
  RABBITMQ_NODE_PORT=$(amqp_port "$1")
  RABBITMQ_DIST_PORT=$(dist_port "$1")
  export RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf"
  export RABBITMQ_ADVANCED_CONFIG_FILE="$d/advanced.config"
  export RABBITMQ_CONF_ENV_FILE="$DIR/rabbitmq-env.conf"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$DIR/enabled_plugins"
  export RABBITMQ_MNESIA_BASE="$d/mnesia"
  export RABBITMQ_LOG_BASE="$d/log"
  export RABBITMQ_PID_FILE="$d/pid"
  export ERL_EPMD_ADDRESS=127.0.0.1
  # The last flag does nothing: it lets `down` know the VM by its command line.
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1} -sync_run_local_cluster $d/"
}

# rabbitmqctl -n NODE ARGS... against node $2, killed after $1 seconds (0: no limit).
ctl_within() {
  local secs=$1 i=$2
  shift 2
  (
    node_env "$i"
    cd "$DIR" 2>/dev/null || cd /
    if [ "$secs" = 0 ]; then
      exec "$CTL" -n "$(node_name "$i")" "$@"
    fi
    exec timeout -k 5 "$secs" "$CTL" -n "$(node_name "$i")" "$@"
  )
}

# Whether something accepts TCP connections on 127.0.0.1:$1.
answers() {
  # shellcheck disable=SC2016 # $1 is the inner shell's
  timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# Whether something listens on TCP port $1 (any address).
listening() {
  if command -v ss >/dev/null; then
    [ -n "$(ss -Htln "( sport = :$1 )" 2>/dev/null)" ]
  else
    answers "$1"
  fi
}

# Whether process $1 exists and is not a zombie.
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

cmdline() { tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline"; }

# Prints the pid of node $1's Erlang VM if it runs (from its pid file, checked in /proc).
vm_pid() {
  local f="$DIR/$1/pid" pid cmd
  [ -s "$f" ] || return 1
  pid=$(tr -dc 0-9 <"$f")
  if [ -z "$pid" ] || ! alive "$pid"; then return 1; fi
  cmd=$(cmdline "$pid") || return 1
  [[ $cmd == *beam.smp*"$DIR/$1/"* ]] || return 1
  echo "$pid"
}

re_escape() { printf '%s' "$1" | sed 's/[][\.*^$+?(){}|]/\\&/g'; }

# Pids of every beam.smp whose command line contains $1 (default: DIR/).
dir_beams() {
  local p cmd
  if command -v pgrep >/dev/null; then
    pgrep -f -- "beam\.smp .*$(re_escape "${1:-$DIR/}")" || true
    return 0
  fi
  for p in /proc/[0-9]*; do
    cmd=$(cmdline "${p#/proc/}") || continue
    if [[ $cmd == *beam.smp* && $cmd == *"${1:-$DIR/}"* ]]; then echo "${p#/proc/}"; fi
  done
}

state() {
  if ! vm_pid "$1" >/dev/null; then
    echo down
  elif answers "$(amqp_port "$1")"; then
    echo running
  else
    echo "app stopped"
  fi
}

print_status() {
  local i rc=0 s
  for i in "${NODES[@]}"; do
    s=$(state "$i")
    [ "$s" = running ] || rc=1
    printf '%s\t%s\t%s\n' "$(node_name "$i")" "$s" "$(url "$i")"
  done
  return "$rc"
}

now() { echo "${EPOCHREALTIME/[,.]/}"; } # microseconds
since() {
  local t=$(($(now) - $1))
  printf '%d.%d' $((t / 1000000)) $((t % 1000000 / 100000))
}

tail_logs() {
  local f
  for f in "$DIR/$1/server-start.log" "$DIR/$1/ctl.log" "$DIR/$1/log/$(node_name "$1").log"; do
    if [ -s "$f" ]; then
      say "--- the last lines of $f:"
      tail -n 30 "$f" >&2
    fi
  done
  f="$DIR/$1/erl_crash.dump"
  if [ -s "$f" ]; then
    say "--- its Erlang VM crashed ($f): $(grep -m1 '^Slogan' "$f" | cut -c1-2000)"
  fi
}

# Starts node $1's Erlang VM; returns once it has detached.
start_vm() {
  (
    node_env "$1"
    cd "$DIR/$1"
    exec "$SERVER" -detached
  ) </dev/null >>"$DIR/$1/server-start.log" 2>&1
}

# Waits until node $1, just started (by start_vm or start_app), runs: await_startup, then its
# AMQP port. $2: deadline (in $SECONDS). rabbitmqctl output goes to DIR/<n>/ctl.log.
await_node() {
  local i=$1 deadline=$2 left grace=$((SECONDS + 5))
  while :; do
    # await_startup fails at once while the VM has no distribution port yet.
    if listening "$(dist_port "$i")"; then
      left=$((deadline - SECONDS))
      [ "$left" -ge 5 ] || left=5
      [ "$left" -le 120 ] || left=120
      if ctl_within $((left + 10)) "$i" await_startup --timeout "$left" >>"$DIR/$i/ctl.log" 2>&1; then
        break
      fi
    fi
    # Its VM (known by pid file or command line) may take a moment to appear.
    if [ "$SECONDS" -ge "$grace" ] && ! vm_pid "$i" >/dev/null &&
      [ -z "$(dir_beams "-sync_run_local_cluster $DIR/$i/")" ]; then
      say "$(node_name "$i"): its Erlang VM has exited"
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "$(node_name "$i"): not started in time"
      return 1
    fi
    sleep 0.2
  done
  until answers "$(amqp_port "$i")"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "$(node_name "$i"): port $(amqp_port "$i") does not answer"
      return 1
    fi
    sleep 0.1
  done
}

# Whether cluster_status on node 1 shows all three nodes running.
formed() {
  local out i
  out=$(ctl_within 30 1 cluster_status --formatter json 2>&1) || return 1
  for i in "${NODES[@]}"; do
    [[ $out =~ \"running_nodes\":\[[^]]*\"$(node_name "$i")\" ]] || return 1
  done
}

# Refuses a DIR that exists and is not empty but was not made by this script.
check_dir_ours() {
  if [ -e "$DIR" ] && [ ! -d "$DIR" ]; then
    die "$DIR exists and is not a directory (SYNC_RUN_CLUSTER_DIR)" 2
  fi
  if [ -d "$DIR" ] && [ ! -e "$MARKER" ] && [ -n "$(ls -A "$DIR" 2>/dev/null)" ]; then
    die "$DIR was not made by this script: not touching it (set SYNC_RUN_CLUSTER_DIR)" 2
  fi
}

cmd_down() {
  local i pid pids=() t0 inst
  t0=$(now)
  check_dir_ours
  # This cluster's watchdogs, but not ourselves (when a watchdog runs this).
  if [ -s "$DIR/watchdogs" ] && inst=$(cat "$DIR/instance" 2>/dev/null); then
    while IFS= read -r pid; do
      if [ -n "$pid" ] && [ "$pid" != "$$" ] && alive "$pid" &&
        [[ $(cmdline "$pid") == *__watchdog*"$inst"* ]]; then
        kill -9 "$pid" 2>/dev/null || true
      fi
    done <"$DIR/watchdogs"
  fi
  if [ -d "$DIR" ]; then
    for i in "${NODES[@]}"; do
      (
        pid=$(vm_pid "$i") || exit 0
        ctl_within 30 "$i" stop "$DIR/$i/pid" >/dev/null 2>&1 || kill -9 "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
          alive "$pid" || exit 0
          sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
      ) &
      pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || true; done
  fi
  # Last resort: any beam.smp started from DIR (e.g. a node whose pid file is gone).
  for pid in $(dir_beams); do
    say "killing the leftover beam.smp $pid"
    kill -9 "$pid" 2>/dev/null || true
  done
  for _ in $(seq 50); do
    [ -n "$(dir_beams)" ] || break
    sleep 0.1
  done
  if [ -d "$DIR" ]; then
    rm -rf "$DIR"
    say "cluster $PREFIX-{1,2,3}@localhost down, $DIR removed ($(since "$t0") s)"
  else
    say "cluster $PREFIX-{1,2,3}@localhost is down ($DIR does not exist)"
  fi
}

start_watchdog() {
  local pid=$1
  SYNC_RUN_CLUSTER_DIR=$DIR SYNC_RUN_CLUSTER_PREFIX=$PREFIX SYNC_RUN_CLUSTER_PORT=$PORT \
    SYNC_RUN_CLUSTER_RABBITMQ_BIN=$BIN \
    setsid nohup bash "$self" __watchdog "$pid" "$(cat "$DIR/instance")" \
    </dev/null >>"$DIR/watchdog.log" 2>&1 &
  echo "$!" >>"$DIR/watchdogs"
  say "watchdog $! will run \`down\` once process $pid has exited"
}

cmd_watchdog() {
  local pid=$1 inst=$2
  trap '' INT HUP
  while alive "$pid"; do sleep 1; done
  if [ -e "$DIR/instance" ] && [ "$(cat "$DIR/instance")" = "$inst" ]; then
    say "process $pid has exited: tearing the cluster down"
    cmd_down
  fi
}

# Node $1 (2 or 3) joins node 1; rabbitmqctl output goes to DIR/<n>/ctl.log.
join_node() {
  local i=$1 log="$DIR/$1/ctl.log" try
  ctl_within 60 "$i" stop_app >>"$log" 2>&1 || {
    say "$(node_name "$i"): stop_app failed"
    return 1
  }
  for try in 1 2 3; do
    if ctl_within 60 "$i" join_cluster "$(node_name 1)" >>"$log" 2>&1; then
      break
    elif [ "$try" = 3 ]; then
      say "$(node_name "$i"): join_cluster $(node_name 1) failed"
      return 1
    fi
    sleep 1
  done
  ctl_within 120 "$i" start_app >>"$log" 2>&1 || {
    say "$(node_name "$i"): start_app failed"
    return 1
  }
}

UP_JOBS=()
on_interrupt() {
  trap '' INT TERM
  say "interrupted: tearing the cluster down"
  [ ${#UP_JOBS[@]} -eq 0 ] || kill "${UP_JOBS[@]}" 2>/dev/null || true
  wait || true
  cmd_down
  exit 130
}

cmd_up() {
  local watch="" t0 i p pid deadline failed="" ports=()
  t0=$(now)
  while [ $# -gt 0 ]; do
    case "$1" in
      --watch)
        [[ ${2:-} =~ ^[0-9]+$ ]] || die "--watch needs a process id" 2
        alive "$2" || die "--watch $2: no such process" 2
        watch=$2
        shift 2
        ;;
      *) usage ;;
    esac
  done
  if [ ! -x "$SERVER" ] || [ ! -x "$CTL" ]; then
    die "no rabbitmq-server and rabbitmqctl in $BIN: apt-get install rabbitmq-server (the service it starts is not touched), or set SYNC_RUN_CLUSTER_RABBITMQ_BIN" 2
  fi
  check_dir_ours

  if [ -e "$DIR/instance" ]; then
    local all=1
    for i in "${NODES[@]}"; do
      [ "$(state "$i")" = running ] || all=0
    done
    if [ "$all" = 1 ] && formed; then
      say "cluster already up and formed"
      [ -z "$watch" ] || start_watchdog "$watch"
      print_status >&2 || true
      urls
      return 0
    fi
    say "removing the leftovers of an earlier cluster in $DIR"
  fi
  if [ -d "$DIR" ] || [ -n "$(dir_beams)" ]; then
    cmd_down 2>/dev/null
  fi

  for i in "${NODES[@]}"; do ports+=("$(amqp_port "$i")" "$(dist_port "$i")"); done
  for p in "${ports[@]}"; do
    [ "$p" != 5672 ] || die "port 5672 is the system broker's: choose another SYNC_RUN_CLUSTER_PORT" 2
    if listening "$p"; then
      die "port $p is in use: choose another SYNC_RUN_CLUSTER_PORT (the cluster uses ${ports[*]})" 2
    fi
  done

  mkdir -p "$DIR"
  : >"$MARKER"
  trap on_interrupt INT TERM
  od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$DIR/instance"
  (
    umask 077
    od -An -N24 -tx1 /dev/urandom | tr -d ' \n' | tr '0-9a-f' 'A-P' >"$DIR/.erlang.cookie"
  )
  : >"$DIR/rabbitmq-env.conf"
  echo '[].' >"$DIR/enabled_plugins"
  for i in "${NODES[@]}"; do
    mkdir -p "$DIR/$i/log" "$DIR/$i/mnesia"
    echo "listeners.tcp.1 = 127.0.0.1:$(amqp_port "$i")" >"$DIR/$i/rabbitmq.conf"
  done
  # The watchdog first, so that it cleans up even if this is cut short.
  [ -z "$watch" ] || start_watchdog "$watch"

  deadline=$((SECONDS + 180))
  # Per node, in parallel: start, await; nodes 2 and 3 then join node 1 once it runs.
  for i in "${NODES[@]}"; do
    (
      fail() {
        touch "$DIR/$i/failed"
        exit 1
      }
      start_vm "$i" || {
        say "$(node_name "$i"): rabbitmq-server -detached failed"
        fail
      }
      await_node "$i" "$deadline" || fail
      touch "$DIR/$i/ready"
      say "$(node_name "$i") started ($(since "$t0") s)"
      [ "$i" != 1 ] || exit 0
      until [ -e "$DIR/1/ready" ]; do
        [ ! -e "$DIR/1/failed" ] || exit 1
        [ "$SECONDS" -lt "$deadline" ] || fail
        sleep 0.1
      done
      join_node "$i" || fail
      say "$(node_name "$i") joined $(node_name 1) ($(since "$t0") s)"
    ) &
    UP_JOBS+=($!)
  done
  for pid in "${UP_JOBS[@]}"; do wait "$pid" || true; done
  for i in "${NODES[@]}"; do
    if [ -e "$DIR/$i/failed" ]; then
      failed=$i
      break
    fi
  done
  if [ -z "$failed" ]; then
    until formed; do
      if [ "$SECONDS" -ge "$deadline" ]; then
        failed=1
        say "cluster_status on $(node_name 1) does not show the three nodes running:"
        ctl_within 30 1 cluster_status >&2 2>&1 || true
        break
      fi
      sleep 0.5
    done
  fi
  if [ -n "$failed" ]; then
    tail_logs "$failed"
    say "up failed after $(since "$t0") s; tearing the cluster down"
    cmd_down
    exit 1
  fi
  trap - INT TERM
  print_status >&2 || true
  say "cluster up in $(since "$t0") s"
  urls
}

cmd_kill() {
  local i=$1 pid port
  port=$(amqp_port "$i")
  if pid=$(vm_pid "$i"); then
    kill -9 "$pid"
    for _ in $(seq 100); do
      alive "$pid" || break
      sleep 0.1
    done
    say "$(node_name "$i"): killed its beam.smp ($pid)"
  else
    say "$(node_name "$i"): its VM is not running"
  fi
  for _ in $(seq 300); do
    answers "$port" || return 0
    sleep 0.1
  done
  die "$(node_name "$i"): port $port still answers"
}

cmd_stop() {
  local i=$1 port
  port=$(amqp_port "$i")
  vm_pid "$i" >/dev/null || die "$(node_name "$i"): its VM is not running"
  ctl_within 60 "$i" stop_app >&2 || die "$(node_name "$i"): stop_app failed"
  for _ in $(seq 300); do
    if ! answers "$port"; then
      say "$(node_name "$i"): application stopped"
      return 0
    fi
    sleep 0.1
  done
  die "$(node_name "$i"): port $port still answers"
}

cmd_start() {
  local i=$1 t0
  t0=$(now)
  if [ ! -e "$MARKER" ] || [ ! -d "$DIR/$i" ]; then
    die "no cluster in $DIR: run \`up\` first"
  fi
  if vm_pid "$i" >/dev/null; then
    ctl_within 150 "$i" start_app >>"$DIR/$i/ctl.log" 2>&1 || {
      tail_logs "$i"
      die "$(node_name "$i"): start_app failed"
    }
  else
    rm -f "$DIR/$i/pid"
    start_vm "$i" || {
      tail_logs "$i"
      die "$(node_name "$i"): rabbitmq-server -detached failed"
    }
  fi
  await_node "$i" $((SECONDS + 180)) || {
    tail_logs "$i"
    die "$(node_name "$i") did not start"
  }
  say "$(node_name "$i") running ($(since "$t0") s)"
}

cmd=${1:-}
[ $# -eq 0 ] || shift
case "$cmd" in
  up) cmd_up "$@" ;;
  down)
    [ $# -eq 0 ] || usage
    cmd_down
    ;;
  kill | stop | start)
    [ $# -eq 1 ] || usage
    n=$(node_index "$1") || usage
    "cmd_$cmd" "$n"
    ;;
  status)
    [ $# -eq 0 ] || usage
    print_status
    ;;
  urls)
    [ $# -eq 0 ] || usage
    urls
    ;;
  ctl)
    [ $# -ge 2 ] || usage
    n=$(node_index "$1") || usage
    shift
    [ -e "$MARKER" ] || die "no cluster in $DIR: run \`up\` first"
    ctl_within 0 "$n" "$@"
    ;;
  __watchdog)
    [ $# -eq 2 ] || usage
    cmd_watchdog "$@"
    ;;
  *) usage ;;
esac
