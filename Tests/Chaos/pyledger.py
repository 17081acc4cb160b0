"""Fallback ledger driver in Python (kombu), speaking the same output contract as `celeriac-demo ledger`.

Used only when the celeriac-demo binary has no `ledger` subcommand (the harness says so loudly). It sends N
`demo.add(i, i)` tasks (Celery protocol 2, ids P-add-i, publisher confirms, results to a durable reply queue),
then waits for every result.  Chains and the chord are not implemented here (reported as null).

stdout: `progress t=<unix> sent=<n> completed=<n>` every 200 ms, then `ledger <JSON>`.  Exit 0 iff lost == wrong == 0.
"""

import argparse
import json
import socket
import sys
import time
import uuid

from kombu import Connection, Exchange, Producer, Queue


def parse():
    a = argparse.ArgumentParser()
    a.add_argument("-b", "--broker", required=True)
    a.add_argument("--count", type=int, default=1000)
    a.add_argument("--chains", type=int, default=0)
    a.add_argument("--chain-length", type=int, default=0)
    a.add_argument("--chord", type=int, default=0)
    a.add_argument("--queue", default="celery")
    a.add_argument("--queue-type", default="classic")
    a.add_argument("--id-prefix", default="L")
    a.add_argument("--deadline", type=float, default=300)
    a.add_argument("--events", action="store_true")
    return a.parse_args()


def urls(spec):
    return [u.split("?")[0] for u in spec.split(";") if u]


def main():
    o = parse()
    t_start = time.time()
    deadline = t_start + o.deadline
    reply_name = f"chaos.reply.{o.id_prefix}.{uuid.uuid4().hex[:8]}"
    qargs = {"x-queue-type": "quorum"} if o.queue_type == "quorum" else {}
    reply_q = Queue(reply_name, Exchange(""), routing_key=reply_name, durable=True, queue_arguments=qargs)
    ev_q = Queue(f"chaos.ev.{o.id_prefix}.{uuid.uuid4().hex[:8]}", Exchange("celeryev", type="topic"),
                 routing_key="task.#", durable=False, auto_delete=False)
    work_q = Queue(o.queue, Exchange(""), routing_key=o.queue, durable=True, queue_arguments=qargs)

    ids = [f"{o.id_prefix}-add-{i}" for i in range(o.count)]
    expected = {tid: 2 * i for i, tid in enumerate(ids)}
    sent_at, results, dups, wrong = {}, {}, 0, 0
    receipts = {}
    seen = {"events": 0, "received": 0}
    max_lat = 0.0
    last_progress = 0.0

    conn = Connection(urls(o.broker), heartbeat=0, transport_options={"confirm_publish": True})

    def progress(force=False):
        nonlocal last_progress
        now = time.time()
        if force or now - last_progress >= 0.2:
            last_progress = now
            print(f"progress t={now:.3f} sent={len(sent_at)} completed={len(results)}", flush=True)

    def on_result(body, message):
        nonlocal dups, wrong, max_lat
        data = json.loads(body) if isinstance(body, (str, bytes)) else body
        tid = data.get("task_id") or message.properties.get("correlation_id")
        if tid in results:
            dups += 1
        elif tid in expected:
            results[tid] = data
            if data.get("status") != "SUCCESS" or data.get("result") != expected[tid]:
                wrong += 1
            max_lat = max(max_lat, time.time() - sent_at.get(tid, t_start))
        message.ack()

    def on_event(body, message):
        data = json.loads(body) if isinstance(body, (str, bytes)) else body
        evs = data if isinstance(data, list) else [data]
        seen["events"] += len(evs)
        for e in evs:
            seen["received"] += e.get("type") == "task-received"
            if e.get("type") == "task-received" and e.get("uuid") in expected:
                receipts.setdefault(e["uuid"], []).append([e.get("hostname"), e.get("timestamp") or time.time()])
        message.ack()

    def setup(c):
        ch = c.channel()
        reply_q(ch).declare()
        work_q(ch).declare()
        consumers = [c.Consumer([reply_q], callbacks=[on_result], accept=["json", "application/json"], no_ack=False)]
        if o.events:
            ev_q(ch).declare()
            consumers.append(c.Consumer([ev_q], callbacks=[on_event], accept=None, no_ack=False))
        for k in consumers:
            k.consume()
        return Producer(c.channel()), consumers

    def connect():
        while time.time() < deadline:
            try:
                conn.ensure_connection(max_retries=1)
                return setup(conn)
            except Exception as e:  # broker down or restarting: retry until the deadline
                print(f"pyledger: connect failed: {e}", file=sys.stderr, flush=True)
                try:
                    conn.close()
                except Exception:
                    pass
                time.sleep(0.5)
        return None, []

    producer, consumers = connect()
    i = 0
    while time.time() < deadline and (len(results) < len(ids) or i < len(ids)):
        try:
            if producer is None:
                producer, consumers = connect()
                continue
            batch_end = min(len(ids), i + 50)
            while i < batch_end:
                tid, n = ids[i], i
                producer.publish(
                    json.dumps([[n, n], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]),
                    exchange="", routing_key=o.queue, content_type="application/json", content_encoding="utf-8",
                    delivery_mode=2, correlation_id=tid, reply_to=reply_name,
                    headers={"lang": "py", "task": "demo.add", "id": tid, "root_id": tid, "parent_id": None,
                             "group": None, "retries": 0, "eta": None, "expires": None, "shadow": None,
                             "timelimit": [None, None], "argsrepr": f"({n}, {n})", "kwargsrepr": "{}",
                             "origin": f"pyledger@{socket.gethostname()}"})
                sent_at.setdefault(tid, time.time())
                i += 1
            try:
                conn.drain_events(timeout=0.05 if i < len(ids) else 0.2)
            except socket.timeout:
                pass
            progress()
        except Exception as e:
            print(f"pyledger: connection error: {type(e).__name__}: {e}; reconnecting", file=sys.stderr, flush=True)
            try:
                conn.close()
            except Exception:
                pass
            conn = Connection(urls(o.broker), heartbeat=0, transport_options={"confirm_publish": True})
            producer, consumers = None, []
    progress(force=True)
    # drain a little longer to count late duplicates
    t_end = time.time() + 1.0
    while producer is not None and time.time() < t_end:
        try:
            conn.drain_events(timeout=0.2)
        except socket.timeout:
            pass
        except Exception:
            break
    try:
        ch = conn.channel()
        reply_q(ch).delete()
        if o.events:
            ev_q(ch).delete()
    except Exception:
        pass
    lost_ids = [t for t in ids if t not in results]
    out = {"sent": len(sent_at), "completed": len(results), "wrong": wrong, "lost": len(lost_ids), "duplicates": dups,
           "max_result_latency_s": round(max_lat, 3), "elapsed_s": round(time.time() - t_start, 3),
           "chains_ok": None, "chord_ok": None, "lost_ids": lost_ids[:20], "driver": "pyledger", "events_seen": seen}
    if o.events:
        out["receipts"] = {k: v for k, v in receipts.items() if len({h for h, _ in v}) > 1 or len(v) > 1}
    print("ledger " + json.dumps(out), flush=True)
    return 0 if not lost_ids and wrong == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
