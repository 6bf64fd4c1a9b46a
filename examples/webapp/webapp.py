#!/usr/bin/env python3
"""Counts visits in Redis. Configuration: {"host", "port", "redis": "redis://h:p", "password"}."""

import json
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

with open(sys.argv[1], encoding="utf-8") as f:
    config = json.load(f)
redis_host, redis_port = config["redis"][len("redis://"):].rsplit(":", 1)


def redis(*words):
    """One Redis command over RESP; returns the reply line."""
    with socket.create_connection((redis_host, int(redis_port)), timeout=5) as s:
        def send(args):
            out = "*%d\r\n" % len(args)
            for a in args:
                a = str(a)
                out += "$%d\r\n%s\r\n" % (len(a.encode()), a)
            s.sendall(out.encode())
            return s.makefile("rb").readline().decode().strip()
        reply = send(["AUTH", config["password"]])
        if not reply.startswith("+OK"):
            raise RuntimeError("redis refused the password: " + reply)
        return send(list(words))


class Counter(BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            visits = redis("INCR", "visits").lstrip(":")
            body, status = ("Hello, visitor number %s!\n" % visits).encode(), 200
        except Exception as e:
            body, status = ("redis is not reachable: %s\n" % e).encode(), 503
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), format % args))


server = ThreadingHTTPServer((config["host"], int(config["port"])), Counter)
print("webapp listening on %s:%s" % (config["host"], config["port"]), flush=True)
server.serve_forever()
