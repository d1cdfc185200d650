#!/usr/bin/env python3
"""The original list protocol, re-implemented as the baseline for `sync-run bench`.

A master and one OS process per worker talk over RabbitMQ (pika, blocking API):

* every worker that has not written yet publishes its ID (an integer >= 1) to the
  master's queue (the default, direct exchange);
* each round the master waits for the ID of every worker that has not written yet, picks
  one of them uniformly at random and broadcasts the grant on a fanout exchange as a
  negative integer, -ID;
* the granted worker publishes a random number (1..100) on the same fanout exchange;
* every worker appends every number it receives; after it, the workers that have not
  written yet send their IDs again, which starts the next round.

After N rounds every worker holds N numbers. Nothing but the broker's delivery order keeps
the lists equal: the script checks that they are, and prints one line on stdout:

    original-protocol N=10 wall_s=0.512 identical=True

wall_s runs from before the first declaration to after the cleanup (processes started,
connections opened, N rounds, lists collected, broker names deleted). If the run cannot
finish (broker unreachable, a process failed, --timeout reached) it prints

    original-protocol N=10 error=<what happened>

and exits 1. It exits 0 when the lists are identical, 1 otherwise.

Broker names carry a fresh run id (`original-protocol-<hex>.*`). The worker queues are
exclusive to their worker's connection, so the broker deletes them as soon as that
connection goes, however it goes, and the fanout exchange (auto-delete) goes with the last
of them. On success, failure, timeout, Ctrl-C or SIGTERM the script deletes whatever is
left before it exits. Killed with SIGKILL, its processes die with it (Linux) and the
master's queue expires 30 s later (x-expires).

Usage: original_protocol.py N [AMQP_URL] [--timeout SECONDS]
       (default URL amqp://guest:guest@127.0.0.1:5672/%2f, default timeout 300 s)
"""
import argparse
import multiprocessing
import os
import queue
import random
import signal
import sys
import time
import uuid

try:
    import pika
    import pika.exceptions
except ImportError:  # the caller (sync-run bench) checks first; a person gets the hint
    print("original-protocol error=no pika (pip install pika)")
    sys.exit(1)

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2f"
POLL_S = 0.5  # how often the coordinator looks at its deadline and its processes


def die_with_parent():
    """Linux: the kernel kills this process when the coordinator dies, even by SIGKILL.
    Returns the poll interval a consumer needs: None (no polling) when that worked, else
    POLL_S, and the consumer then checks its deadline and its parent itself."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
            return None
    except Exception:  # noqa: BLE001 - not Linux, or no libc: poll instead
        pass
    return POLL_S


class Names:
    def __init__(self, run):
        self.run = run
        self.fanout = f"{run}.fanout"  # grants and numbers, to every worker
        self.ids = f"{run}.ids"  # worker IDs, to the master

    def worker_queue(self, i):
        return f"{self.run}.worker.{i}"


def connect(url, deadline):
    params = pika.URLParameters(url)
    left = max(1.0, deadline - time.monotonic())
    params.connection_attempts = 1
    params.socket_timeout = min(10.0, left)
    params.stack_timeout = min(15.0, left)
    params.blocked_connection_timeout = left
    return pika.BlockingConnection(params)


def check_alive(deadline, parent):
    if time.monotonic() > deadline:
        raise TimeoutError("timeout")
    if os.getppid() != parent:
        raise RuntimeError("the coordinating process is gone")


def worker(url, names, me, n, deadline, parent, results):
    """Worker `me` (1..n): returns its list through `results`."""
    rng = random.Random()  # not the parent's state: fork copies it
    conn = None
    poll = die_with_parent()
    try:
        check_alive(deadline, parent)  # the parent may have gone before prctl
        conn = connect(url, deadline)
        ch = conn.channel()
        q = names.worker_queue(me)
        ch.queue_declare(q, exclusive=True)
        ch.queue_bind(q, names.fanout)
        ch.basic_publish("", names.ids, str(me))
        numbers, written = [], False
        for method, _props, body in ch.consume(q, auto_ack=True, inactivity_timeout=poll):
            if method is None:
                check_alive(deadline, parent)
                continue
            value = int(body)
            if poll is not None:
                check_alive(deadline, parent)
            if value < 0:  # a grant
                if -value == me and not written:
                    written = True
                    ch.basic_publish(names.fanout, "", str(rng.randint(1, 100)))
            else:  # a number: append it; if still waiting for a turn, ask again
                numbers.append(value)
                if len(numbers) == n:
                    break
                if not written:
                    ch.basic_publish("", names.ids, str(me))
        ch.cancel()
        results.put(("worker", me, numbers, None))
    except BaseException as e:  # noqa: BLE001 - reported to the coordinator, then exit
        results.put(("worker", me, None, f"worker {me}: {describe(e)}"))
    finally:
        close(conn)


def master(url, names, n, deadline, parent, results):
    """Grants every worker once, in random order; returns the grant order."""
    rng = random.Random()
    conn = None
    poll = die_with_parent()
    try:
        check_alive(deadline, parent)
        conn = connect(url, deadline)
        ch = conn.channel()
        waiting = set(range(1, n + 1))  # not written yet
        asked = set()  # IDs received this round
        order = []
        for method, _props, body in ch.consume(names.ids, auto_ack=True, inactivity_timeout=poll):
            if method is None:
                check_alive(deadline, parent)
                continue
            worker = int(body)
            if worker in waiting:
                asked.add(worker)
            if len(asked) == len(waiting):
                chosen = rng.choice(sorted(waiting))
                ch.basic_publish(names.fanout, "", str(-chosen))
                waiting.discard(chosen)
                asked.clear()
                order.append(chosen)
                if not waiting:
                    break
        ch.cancel()
        results.put(("master", 0, order, None))
    except BaseException as e:  # noqa: BLE001
        results.put(("master", 0, None, f"master: {describe(e)}"))
    finally:
        close(conn)


def describe(e):
    """One line for an exception, with what pika wraps inside it."""
    while isinstance(e, pika.exceptions.AMQPConnectionError) and e.args:
        e = e.args[0]
    if isinstance(e, str):
        return e
    name, text = type(e).__name__, str(e) or repr(e)
    if isinstance(e, (RuntimeError, TimeoutError)) and str(e):
        return text
    return text if name in text else f"{name}: {text}"


def close(conn):
    if conn is not None:
        try:
            if conn.is_open:
                conn.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass


def cleanup(url, names, n):
    """Deletes every name of the run. Deleting what is already gone is fine (RabbitMQ
    answers delete-ok); an exclusive worker queue whose connection the broker has not seen
    close yet answers 405 RESOURCE_LOCKED, so that one is retried for a while."""
    conn = None
    try:
        conn = connect(url, time.monotonic() + 15)
        ch = [conn.channel()]

        def delete(what, name):
            for _ in range(40):
                try:
                    if what == "queue":
                        ch[0].queue_delete(name)
                    else:
                        ch[0].exchange_delete(name)
                    return
                except pika.exceptions.ChannelClosedByBroker as e:
                    ch[0] = conn.channel()
                    if e.reply_code != 405:
                        raise
                    time.sleep(0.25)
            raise RuntimeError(f"{what} {name} still locked")

        delete("queue", names.ids)
        for i in range(1, n + 1):
            delete("queue", names.worker_queue(i))
        delete("exchange", names.fanout)
    except Exception as e:  # noqa: BLE001
        print(f"original-protocol: cleanup of {names.run}.* failed: {describe(e)}", file=sys.stderr)
    finally:
        close(conn)


def redact(url):
    """The URL without its password, for messages."""
    try:
        from urllib.parse import urlsplit

        u = urlsplit(url)
        if u.password is not None:
            return url.replace(f":{u.password}@", ":***@", 1)
    except ValueError:
        pass
    return url


def on_sigterm(_signum, _frame):
    raise SystemExit(143)


def main():
    ap = argparse.ArgumentParser(description="The original list protocol, for sync-run bench.")
    ap.add_argument("n", type=int, help="number of workers (one process each)")
    ap.add_argument("url", nargs="?", default=os.environ.get("AMQP_URL", DEFAULT_URL))
    ap.add_argument("--timeout", type=float, default=300.0, help="hard limit, seconds")
    a = ap.parse_args()
    if a.n < 1:
        ap.error("N must be at least 1")
    n = a.n

    t0 = time.perf_counter()
    deadline = time.monotonic() + a.timeout
    names = Names(f"original-protocol-{uuid.uuid4().hex[:12]}")
    signal.signal(signal.SIGTERM, on_sigterm)
    ctx = multiprocessing.get_context("fork")  # cheap start-up, as a process per worker should be
    results = ctx.Queue()
    procs = []
    declared = False
    error = None
    lists, order = {}, None
    try:
        # The fanout and the master's queue exist before any worker starts, so no ID and
        # no number is published to nothing. The connection is closed before forking.
        try:
            conn = connect(a.url, deadline)
        except pika.exceptions.AMQPError as e:
            raise RuntimeError(f"cannot connect to {redact(a.url)}: {describe(e)}") from None
        declared = True
        ch = conn.channel()
        ch.exchange_declare(names.fanout, "fanout", auto_delete=True)
        # Gone 30 s after its last consumer (the master) if this script is SIGKILLed.
        ch.queue_declare(names.ids, arguments={"x-expires": 30_000})
        close(conn)

        parent = os.getpid()
        procs.append(ctx.Process(target=master, args=(a.url, names, n, deadline, parent, results)))
        for i in range(1, n + 1):
            args = (a.url, names, i, n, deadline, parent, results)
            procs.append(ctx.Process(target=worker, args=args))
        for p in procs:
            p.start()

        pending = n + 1
        while pending and error is None:
            if time.monotonic() > deadline:
                error = f"timeout ({a.timeout:g} s): {pending} of {n + 1} processes unfinished"
                break
            try:
                role, i, value, err = results.get(timeout=POLL_S)
            except queue.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    error = f"a process died (exit {dead[0].exitcode}) before reporting"
                continue
            pending -= 1
            if err is not None:
                error = err
            elif role == "master":
                order = value
            else:
                lists[i] = value
    except (KeyboardInterrupt, SystemExit):
        error = "interrupted"
    except Exception as e:  # noqa: BLE001
        error = describe(e)
    finally:
        # Cleaning up is not interrupted: a second Ctrl-C or SIGTERM waits for it.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for p in procs:
            if p.is_alive() and error is not None:
                p.kill()
        for p in procs:
            p.join(timeout=max(1.0, deadline + 5 - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
        if declared:
            cleanup(a.url, names, n)

    wall = time.perf_counter() - t0
    if error is not None:
        print(f"original-protocol N={n} error={error}".replace("\n", " "))
        sys.exit(1)
    first = lists[1]
    identical = len(first) == n and all(lists[i] == first for i in range(1, n + 1))
    if sorted(order) != list(range(1, n + 1)):
        identical = False
    print(f"original-protocol N={n} wall_s={wall:.3f} identical={identical}")
    sys.exit(0 if identical else 1)


if __name__ == "__main__":
    main()
