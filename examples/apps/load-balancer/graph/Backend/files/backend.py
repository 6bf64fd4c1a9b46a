"""Answers every GET with the instance's path (which backend the balancer chose), and
GET /load with its load as JSON: the requests per second over the last ten seconds."""

import collections
import http.server
import json
import sys
import threading
import time

ip, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
WINDOW = 10.0
served = collections.deque()
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        now = time.monotonic()
        with lock:
            while served and now - served[0] > WINDOW:
                served.popleft()
            if self.path == "/load":
                body = json.dumps({"requests_per_second": len(served) / WINDOW})
            else:
                served.append(now)
                body = "backend %s\n" % path
        body = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer((ip, port), Handler)
print("listening on %s:%d" % (ip, port), flush=True)
server.serve_forever()
