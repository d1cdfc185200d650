#!/usr/bin/env python3
"""CI canary: proves that `cargo test` leaves the broker it did not start as it found it.

    python3 tests/canary.py put     declare the queue sync-run-ci-canary holding one message
    python3 tests/canary.py check   the queue still holds exactly that message; delete it

The broker is CANARY_URL (default amqp://guest:guest@127.0.0.1:5672/%2f). The queue is not
durable, so a restart of that broker loses it and the check fails. Exit status 0: fine;
1: the canary was disturbed; 2: usage.
"""
import os
import sys

import pika

URL = os.environ.get("CANARY_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
QUEUE = "sync-run-ci-canary"
BODY = b"sync-run CI canary: cargo test must leave this broker alone"


def channel():
    conn = pika.BlockingConnection(pika.URLParameters(URL))
    return conn, conn.channel()


def put():
    conn, ch = channel()
    ch.confirm_delivery()
    ch.queue_delete(QUEUE)  # a canary left by an earlier, failed run
    ch.queue_declare(QUEUE, durable=False)
    ch.basic_publish("", QUEUE, BODY, mandatory=True)
    conn.close()
    print(f"canary: {QUEUE} holds one message")
    return 0


def check():
    conn, ch = channel()
    try:
        count = ch.queue_declare(QUEUE, passive=True).method.message_count
    except pika.exceptions.ChannelClosedByBroker as e:
        print(f"canary: {QUEUE} is gone ({e}): the broker was restarted or reset", file=sys.stderr)
        return 1
    if count != 1:
        print(f"canary: {QUEUE} holds {count} messages, not 1", file=sys.stderr)
        return 1
    _, _, body = ch.basic_get(QUEUE, auto_ack=True)
    if body != BODY:
        print(f"canary: {QUEUE} holds {body!r}, not the canary", file=sys.stderr)
        return 1
    ch.queue_delete(QUEUE)
    conn.close()
    print(f"canary: {QUEUE} kept its message; deleted")
    return 0


if __name__ == "__main__":
    verbs = {"put": put, "check": check}
    if len(sys.argv) != 2 or sys.argv[1] not in verbs:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(verbs[sys.argv[1]]())
