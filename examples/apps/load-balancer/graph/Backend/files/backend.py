"""Answers every GET with the instance's path: which backend the balancer chose."""

import http.server
import sys

ip, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("backend %s\n" % path).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


server = http.server.HTTPServer((ip, port), Handler)
print("listening on %s:%d" % (ip, port), flush=True)
server.serve_forever()
