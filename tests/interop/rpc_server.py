#!/usr/bin/env python3
"""A sync-run request/reply server in Python, written from docs/PROTOCOL.md §17 alone
(pika, blocking API): answers each request on NAME with the request upper-cased by
`tr a-z A-Z`, and stops after COUNT requests.

Usage: rpc_server.py AMQP_URL NAME COUNT
Prints "ready" once it consumes, then "answered COUNT" and exits 0.
"""
import hashlib, subprocess, sys
import pika

url, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
conn = pika.BlockingConnection(pika.URLParameters(url))
ch = conn.channel()
ch.confirm_delivery()
q = f"sync-run.rpc.{name}"
ch.queue_declare(q, durable=False, exclusive=False, auto_delete=True,
                 arguments={"x-expires": 120000})
ch.basic_qos(prefetch_count=1)
answered = 0

def on_request(ch, m, p, body):
    global answered
    if not (p.reply_to and p.correlation_id and str((p.headers or {}).get("x-sync-run-v")) == "1"):
        ch.basic_reject(m.delivery_tag, requeue=False)
        return
    out = subprocess.run(["tr", "a-z", "A-Z"], input=body, capture_output=True)
    ok = out.returncode == 0
    headers = {"x-sync-run-v": 1,
               "x-sync-run-request-sha256": hashlib.sha256(body).hexdigest(),
               "x-sync-run-server": "py-1",
               "x-sync-run-status": "ok" if ok else "error"}
    if not ok:
        headers["x-sync-run-exit"] = f"exit {out.returncode}"
    ch.basic_publish("", p.reply_to, out.stdout if ok else out.stderr,
                     pika.BasicProperties(correlation_id=p.correlation_id, headers=headers))
    ch.basic_ack(m.delivery_tag)
    answered += 1
    if answered == count:
        ch.stop_consuming()

ch.basic_consume(q, on_request)
print("ready", flush=True)
ch.start_consuming()
conn.close()
print(f"answered {answered}", flush=True)
