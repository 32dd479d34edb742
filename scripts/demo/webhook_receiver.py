#!/usr/bin/env python3
"""The demo's webhook receiver: prints each event smsflow posts to its [[webhooks]] endpoint.

Each event is one line: `[webhook] <type> <the event's data>`, after checking its signature the
way an operator's system should (Standard Webhooks: HMAC-SHA256 over "id.timestamp.body" with
the base64 key after `whsec_`). Usage: webhook_receiver.py PORT SECRET
"""

import base64
import hashlib
import hmac
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def say(line):
    """Prints `line` in one write: the demo's helpers share smsflow's terminal, and print()
    writes the text and its newline separately, so two processes' lines could run together."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


SECRET = sys.argv[2] if len(sys.argv) > 2 else ""


def signed(headers, body):
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    content = f"{headers.get('webhook-id')}.{headers.get('webhook-timestamp')}.".encode() + body
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    given = [part.split(",", 1)[-1] for part in headers.get("webhook-signature", "").split()]
    return any(hmac.compare_digest(expected, signature) for signature in given)


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        check = "" if signed(self.headers, body) else " (SIGNATURE DOES NOT VERIFY)"
        try:
            event = json.loads(body)
            line = f"{event.get('type')} {json.dumps(event.get('data'), sort_keys=True)}"
        except ValueError:
            line = body.decode(errors="replace")
        say(f"[webhook] {line}{check}")
        self.send_response(204)
        self.end_headers()

    def log_message(self, format, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Receiver).serve_forever()
