#!/usr/bin/env python3
"""Checks, on the broker in use, every RabbitMQ behaviour Celeriac's coordination features rely on.

Usage: .run/venv/bin/python scripts/verify-coordination.py [PORT]   (default: $CELERIAC_BROKER_PORT or 5682)
Prints one line per check and exits 1 if any failed. Uses py-amqp (installed with Celery in .run/venv).
"""
import os, sys, time
import amqp

port = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ.get("CELERIAC_BROKER_PORT", "5682"))
def connect(confirm=False):
    c = amqp.Connection(f"127.0.0.1:{port}", userid="guest", password="guest", confirm_publish=confirm)
    c.connect()
    return c

failed = 0
def check(ok, what):
    global failed
    print(("ok    " if ok else "FAIL  ") + what)
    failed += 0 if ok else 1

c = connect(confirm=True)
ch = c.channel()
print("broker", c.server_properties.get("version"))

# Unique locks: x-max-length 1 + reject-publish nacks a second publish; the per-message TTL frees the slot.
q = "verify.unique"
ch.queue_delete(q)
ch.queue_declare(q, durable=True, auto_delete=False, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
ch.basic_publish(amqp.Message("a", expiration="1000"), routing_key=q)
try:
    ch.basic_publish(amqp.Message("b"), routing_key=q)
    check(False, "reject-publish nacks a publish to a full queue (confirms on)")
except amqp.exceptions.MessageNacked:
    check(True, "reject-publish nacks a publish to a full queue (confirms on)")
ch = c.channel()
time.sleep(1.3)
try:
    ch.basic_publish(amqp.Message("c", expiration="60000"), routing_key=q)
    check(True, "an expired lock message (per-message TTL) frees the queue for the next publish")
except amqp.exceptions.MessageNacked:
    check(False, "an expired lock message (per-message TTL) frees the queue for the next publish")
    ch = c.channel()
ch.queue_delete(q)

# Permits: x-max-length counts ready messages only, so unacked permits are outside any length check.
q = "verify.sem"
ch.queue_delete(q)
ch.queue_declare(q, durable=True, auto_delete=False, arguments={"x-max-length": 2, "x-overflow": "reject-publish"})
for body in ("t1", "t2"):
    ch.basic_publish(amqp.Message(body), routing_key=q)
held = ch.basic_get(q)
try:
    ch.basic_publish(amqp.Message("t3"), routing_key=q)
    check(True, "x-max-length counts ready messages only (an unacked one does not count)")
except amqp.exceptions.MessageNacked:
    check(False, "x-max-length counts ready messages only (an unacked one does not count)")
    ch = c.channel()
ch.queue_delete(q)

# Rate tokens: the default overflow (drop-head) keeps at most x-max-length tokens.
q = "verify.tokens"
ch.queue_delete(q)
ch.queue_declare(q, durable=True, auto_delete=False, arguments={"x-max-length": 3})
for i in range(10):
    ch.basic_publish(amqp.Message(str(i)), routing_key=q)
_, depth, _ = ch.queue_declare(q, passive=True)
check(depth == 3, f"drop-head keeps x-max-length tokens (10 published, {depth} kept)")
ch.queue_delete(q)

# Refiller election: an exclusive queue is refused (405) to a second connection and freed when the owner closes.
owner = connect(); owner.channel().queue_declare("verify.lock", exclusive=True)
other = connect()
try:
    other.channel().queue_declare("verify.lock", exclusive=True)
    check(False, "a second connection gets 405 RESOURCE_LOCKED on an exclusive queue")
except amqp.exceptions.ResourceLocked:
    check(True, "a second connection gets 405 RESOURCE_LOCKED on an exclusive queue")
owner.close()
other.channel().queue_declare("verify.lock", exclusive=True)
check(True, "the exclusive queue is taken over once its owner's connection closed")
other.close()

# Crash safety: an unacked permit returns by itself when its connection dies.
q = "verify.return"
ch.queue_declare(q)
ch.basic_publish(amqp.Message("permit"), routing_key=q)
dying = connect()
dying.channel().basic_get(q)
dying.sock.close() if getattr(dying, "sock", None) else dying.transport.close()
for _ in range(50):
    _, ready, _ = ch.queue_declare(q, passive=True)
    if ready == 1:
        break
    time.sleep(0.05)
check(ready == 1, "an unacked message returns to the queue when its connection dies")
ch.queue_delete(q)
c.close()
sys.exit(1 if failed else 0)
