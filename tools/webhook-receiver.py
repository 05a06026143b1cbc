#!/usr/bin/env python3
"""webhook-receiver: a local receiver for tollgate's webhook events.

Prints every event POSTed to it, one JSON line each, with its event id,
and checks X-Tollgate-Signature when the secret is given (the same value
as general_settings.webhook_secret).  Answers 200, so tollgate marks the
event delivered.  For trying the webhook out and for writing your own.

  tools/webhook-receiver.py [--port 8099] [--secret SECRET]

Then: export WEBHOOK_URL=http://127.0.0.1:8099/hook
"""

import argparse
import hashlib
import hmac
import http.server
import json
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=8099)
    ap.add_argument("--secret", default=None)
    args = ap.parse_args()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            verdict = "unsigned"
            if args.secret is not None:
                want = "sha256=" + hmac.new(args.secret.encode(), body,
                                            hashlib.sha256).hexdigest()
                got = self.headers.get("X-Tollgate-Signature", "")
                verdict = "signature ok" if hmac.compare_digest(want, got) else "BAD SIGNATURE"
            print("%s %s (%s): %s" % (self.headers.get("X-Tollgate-Event", "?"),
                                      self.headers.get("X-Tollgate-Event-Id", "?"),
                                      verdict, body.decode("utf-8", "replace")), flush=True)
            status = 401 if verdict == "BAD SIGNATURE" else 200
            reply = json.dumps({"ok": status == 200}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print("listening on http://127.0.0.1:%d/hook" % args.port, file=sys.stderr, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
