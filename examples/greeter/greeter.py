#!/usr/bin/env python3
"""Serves one page per shared instance. Configuration: {"host", "port", "pages": {path: name}}."""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

with open(sys.argv[1], encoding="utf-8") as f:
    config = json.load(f)
pages = config["pages"]


class Greeter(BaseHTTPRequestHandler):
    def do_GET(self):
        page = self.path.strip("/")
        if page in pages:
            status, body = 200, "Hello " + pages[page] + "!\n"
        elif page == "":
            status, body = 200, "I host %d pages\n" % len(pages)
        else:
            status, body = 404, "no page " + page + "\n"
        body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), format % args))


server = ThreadingHTTPServer((config["host"], int(config["port"])), Greeter)
print("greeter listening on %s:%s" % (config["host"], config["port"]), flush=True)
server.serve_forever()
