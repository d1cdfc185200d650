#!/usr/bin/env python3
"""A sync-run worker in Python, written from docs/PROTOCOL.md alone (pika, blocking API).

Usage: worker.py AMQP_URL RUN_ID WORKER_ID
Prints "worker K: v1 v2 ..." and exits 0 with a final list, 1 otherwise.
"""
import json, random, sys, time
import pika

url, run, me = sys.argv[1], sys.argv[2], int(sys.argv[3])
instance = random.getrandbits(63)
fanout, direct = f"sync-run.{run}.fanout", f"sync-run.{run}.direct"
myq = f"sync-run.{run}.worker.{me}"
args = {"x-expires": 120000}

conn = pika.BlockingConnection(pika.URLParameters(url))
ch = conn.channel()
ch.confirm_delivery()
ch.basic_qos(prefetch_count=256)

def declare():
    for x, kind in ((fanout, "fanout"), (direct, "direct")):
        ch.exchange_declare(x, kind, durable=False, auto_delete=True)
    for q, binds in ((f"sync-run.{run}.master", [(direct, "master"), (fanout, "")]),
                     (f"sync-run.{run}.results", [(direct, "results")])):
        ch.queue_declare(q, durable=False, arguments=args)
        for x, key in binds:
            ch.queue_bind(q, x, key)

def send(exchange, key, body):
    msg = {"v": 1, "run": run, "from": {"role": "worker", "id": me, "instance": instance}}
    msg.update(body)
    ch.basic_publish(exchange, key, json.dumps(msg).encode(),
                     pika.BasicProperties(content_type="application/json", app_id="sync-run", type=body["type"]))

declare()
ch.queue_declare(myq, durable=False, arguments=args)
ch.queue_bind(myq, fanout, "")
send(direct, "master", {"type": "join", "worker": me})
last_join = time.monotonic()

rules = None            # (master instance, epoch, min, max, relay)
grants, voided, evicted = {}, set(), {}
appends, written, end = {}, {}, None
rejected, outcome = 0, None

def finish_if_ready():
    global outcome
    if end is None:
        return
    entries = []
    for c in end:
        a = appends.get(c["seq"])
        if a is None or a[0] != c["worker"]:
            return
        entries.append({"seq": c["seq"], "worker": a[0], "value": a[1]})
    send(direct, "results", {"type": "result", "worker": me, "entries": entries, "rejected": rejected})
    outcome = entries

def handle(m):
    global rules, end, outcome, rejected
    if m.get("v") != 1 or m.get("run") != run:
        return False
    frm, t = m["from"], m["type"]
    if t == "batch":
        # Parts are handled in order as if each came alone; a bad part is counted, not fatal.
        if frm["role"] != "master":
            return False
        for part in m["messages"]:
            if part.get("type") == "batch" or not handle(part):
                rejected += 1
            if outcome is not None:
                break
        return True
    if frm["role"] == "worker":
        if t != "append" or frm["id"] != m["worker"]:
            return False
        seq, w, v = m["seq"], m["worker"], m["value"]
        if rules and not (rules[2] <= v <= rules[3]):
            return False
        if seq in voided or (w in evicted and seq >= evicted[w]):
            return False
        if seq in grants and grants[seq] != w:
            return False
        if seq in appends:
            return appends[seq] == (w, v)
        appends[seq] = (w, v)
        finish_if_ready()
        return True
    inst = frm["instance"]
    if rules is None:
        if t == "abort":
            outcome = "aborted"; return True
        if t != "start":
            return False
    elif t == "start" and m["epoch"] > rules[1]:
        rules = (inst, m["epoch"], rules[2], rules[3], rules[4]); return True
    elif inst != rules[0]:
        return False
    if t == "start":
        if rules is None:
            if me not in m["workers"]:
                outcome = "not admitted"; return True
            rules = (inst, m["epoch"], m["min"], m["max"], m["relay"])
        return True
    if t == "grant":
        seq, w = m["seq"], m["worker"]
        if seq in grants:
            return grants[seq] == w
        grants[seq] = w
        if seq in appends and appends[seq][0] != w:
            del appends[seq]
        if w == me and seq not in written:
            written[seq] = random.randint(rules[2], rules[3])
            # With relay the master re-broadcasts it; otherwise we broadcast it ourselves.
            exchange, key = (direct, "master") if rules[4] else (fanout, "")
            send(exchange, key, {"type": "append", "seq": seq, "worker": me, "value": written[seq]})
        return True
    if t == "evict":
        voided.add(m["seq"]); evicted[m["worker"]] = m["seq"]
        if m["seq"] in appends and appends[m["seq"]][0] == m["worker"]:
            del appends[m["seq"]]
        if m["worker"] == me:
            outcome = "evicted"
        finish_if_ready()
        return True
    if t == "end":
        end = end or m["commits"]; finish_if_ready(); return True
    if t == "abort":
        outcome = "aborted"; return True
    return False

deadline = time.monotonic() + 120
for method, props, body in ch.consume(myq, inactivity_timeout=0.5):
    if time.monotonic() > deadline:
        outcome = outcome or "timed out"
    if method is not None:
        try:
            ok = handle(json.loads(body))
        except (ValueError, KeyError, TypeError):
            ok = False
        if ok:
            ch.basic_ack(method.delivery_tag)
        else:
            rejected += 1
            ch.basic_reject(method.delivery_tag, requeue=False)
    if rules is None and outcome is None and time.monotonic() - last_join > 0.5:
        declare(); send(direct, "master", {"type": "join", "worker": me}); last_join = time.monotonic()
    if outcome is not None:
        break
ch.cancel()
ch.queue_delete(myq)
conn.close()
if isinstance(outcome, list):
    print(f"worker {me}: " + " ".join(str(e["value"]) for e in outcome))
    sys.exit(0)
print(f"worker {me}: {outcome}")
sys.exit(1)
