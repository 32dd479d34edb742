#!/usr/bin/env python3
"""The demo's fake order API: what the order-status plugin calls (GET {base_url}/orders/{id}).

Answers 200 with {"id", "status", "eta", "carrier"} for the orders below and 404 for any other,
which the plugin reads as "not found" (plugins/order-status/src/lib.rs, parse_order).
Usage: order_api.py PORT  (listens on 127.0.0.1 only; the standard library is enough).
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def say(line):
    """Prints `line` in one write: the demo's helpers share smsflow's terminal, and print()
    writes the text and its newline separately, so two processes' lines could run together."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


ORDERS = {
    "A100": {"id": "A100", "status": "shipped", "eta": "Thursday, March 5", "carrier": "UPS"},
    "A200": {"id": "A200", "status": "processing"},
    "A300": {"id": "A300", "status": "delivered", "carrier": "USPS"},
}
PREFIX = "/api/orders/"


class Orders(BaseHTTPRequestHandler):
    def do_GET(self):
        order = ORDERS.get(self.path[len(PREFIX):]) if self.path.startswith(PREFIX) else None
        body = json.dumps(order if order else {"error": "no such order"}).encode()
        self.send_response(200 if order else 404)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        say(f"[order api] {self.command} {self.path} -> {args[1]}")


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Orders).serve_forever()
