#!/usr/bin/env python3
"""Greets with the name of its configuration file: {"host": ..., "port": ..., "name": ...}."""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

with open(sys.argv[1], encoding="utf-8") as f:
    config = json.load(f)
greeting = ("Hello " + config["name"] + "!\n").encode()


class Greeter(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(greeting)))
        self.end_headers()
        self.wfile.write(greeting)

    def log_message(self, format, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), format % args))


server = ThreadingHTTPServer((config["host"], int(config["port"])), Greeter)
print("hello listening on %s:%s" % (config["host"], config["port"]), flush=True)
server.serve_forever()
