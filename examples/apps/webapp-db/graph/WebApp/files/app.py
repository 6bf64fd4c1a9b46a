"""Counts visits in redis: each GET / increments `visits` and answers the count."""

import http.server
import socket
import sys


def redis(command):
    """One command to the database in db.env (ip, port, password), RESP over a socket."""
    with open("db.env") as f:
        ip, port, password = [line.strip() for line in f.readlines()[:3]]
    with socket.create_connection((ip, int(port)), timeout=2) as s:
        f = s.makefile("rb")

        def call(*words):
            s.sendall(("*%d\r\n" % len(words) + "".join(
                "$%d\r\n%s\r\n" % (len(w.encode()), w) for w in words)).encode())
            line = f.readline().decode().strip()
            if line.startswith("-"):
                raise RuntimeError(line[1:])
            return line[1:]

        call("AUTH", password)
        return call(*command)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            body = "visits %s\n" % redis(["INCR", "visits"])
            self.send_response(200)
        except Exception as e:  # the database is away: say so
            body = "database unavailable: %s\n" % e
            self.send_response(503)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(body.encode())


server = http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), Handler)
print("listening on %s:%s" % (sys.argv[1], sys.argv[2]), flush=True)
server.serve_forever()
