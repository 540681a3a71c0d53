"""The LLM server's supervisor: waits for readiness, restarts a crashed child."""

from __future__ import annotations

import sys
import threading
import time

from bots.supervisor import Supervisor, url_ready
from testkit.net import free_port

# A child that serves HTTP 200 for a moment, then crashes.
CHILD = """
import http.server, sys, threading, time
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
threading.Thread(target=s.serve_forever, daemon=True).start()
time.sleep(1.0)
sys.exit(3)
"""


def test_crashed_child_is_restarted_until_stopped():
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    sup = Supervisor(
        "test", [sys.executable, "-c", CHILD, str(port)], url, ready_timeout=10, max_backoff=0.2
    )
    runner = threading.Thread(target=sup.run, kwargs={"handle_signals": False}, daemon=True)
    runner.start()
    deadline = time.monotonic() + 20
    while sup.restarts < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sup.restarts >= 2, "the child crashed twice and was restarted twice"
    while not url_ready(url) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert url_ready(url), "ready again after a restart"
    sup.stop()
    runner.join(15)
    assert not runner.is_alive(), "stop() ends the loop and the child"
    assert not url_ready(url)
