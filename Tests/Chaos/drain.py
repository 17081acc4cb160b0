"""Drain a queue (basic.get until empty) and print one JSON object: {"count": n, "messages": [{"headers": {...},
"task_id": ...}, ...]}; then delete the queue.  Runs inside the client namespace with the repo venv (py-amqp).

usage: drain.py URL QUEUE
"""

import json
import sys
import time
from urllib.parse import unquote, urlparse

import amqp


def main():
    url, queue = sys.argv[1], sys.argv[2]
    u = urlparse(url.split(";")[0].split("?")[0])
    vhost = unquote(u.path[1:]) if len(u.path) > 1 else "/"
    conn = amqp.Connection(host=f"{u.hostname}:{u.port or 5672}", userid=unquote(u.username or "guest"),
                           password=unquote(u.password or "guest"), virtual_host=vhost, connect_timeout=10)
    conn.connect()
    ch = conn.channel()
    out = []
    deadline = time.time() + 60
    while time.time() < deadline:
        m = ch.basic_get(queue=queue, no_ack=False)
        if m is None:
            break
        headers = dict(m.properties.get("application_headers") or {})
        out.append({"headers": {k: (v if isinstance(v, (str, int, float, bool, type(None))) else str(v))
                                for k, v in headers.items()}, "task_id": headers.get("id")})
        ch.basic_ack(m.delivery_tag)
    ch.queue_delete(queue)
    conn.close()
    print(json.dumps({"count": len(out), "messages": out}))


if __name__ == "__main__":
    main()
