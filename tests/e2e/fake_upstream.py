#!/usr/bin/env python3
"""fake_upstream: an OpenAI-compatible chat-completions server for the tests.

It answers any POST whose path ends in /chat/completions with a
chat.completion (or a server-sent-events stream when the body says
"stream": true).  What it does is scripted per request by a body field
"fake", which tollgate passes through like any unknown field:

    "fake": {
        "usage": {"prompt_tokens": 10, "completion_tokens": 20},  # merged
                                                 # over the defaults; null
                                                 # means "no usage at all"
        "content": "text of the answer",
        "status": 500,              # HTTP status (default 200)
        "error_body": {...} | "raw text",  # body sent with a non-2xx status
        "delay": 2.5,               # seconds to wait before answering
        "close": true,              # drop the connection without answering
        "headers": {"name": "value"}  # extra response headers
    }

Every request is recorded (method, path, query, headers, body, json) and
can be inspected with GET /_requests (a JSON array, oldest first) and
cleared with POST /_reset.  GET /_health answers {"ok": true}.

Usage: fake_upstream.py [--port N] [--port-file FILE]
The chosen port is printed on stdout as the first line ("PORT <n>") and,
with --port-file, written to that file.  SIGTERM/SIGINT stop it.
Python 3 standard library only.
"""

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_USAGE = {"prompt_tokens": 10, "completion_tokens": 20}


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []
        self.counter = 0

    def record(self, entry):
        with self.lock:
            self.counter += 1
            entry["seq"] = self.counter
            self.requests.append(entry)
            return self.counter

    def snapshot(self):
        with self.lock:
            return list(self.requests)

    def reset(self):
        with self.lock:
            self.requests = []


STATE = State()


def _usage(spec):
    if "usage" in spec and spec["usage"] is None:
        return None
    usage = dict(DEFAULT_USAGE)
    if isinstance(spec.get("usage"), dict):
        usage.update(spec["usage"])
    if "total_tokens" not in usage:
        usage["total_tokens"] = int(usage.get("prompt_tokens") or 0) + int(
            usage.get("completion_tokens") or 0
        )
    return usage


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-upstream/1"

    def log_message(self, fmt, *args):  # quiet unless asked
        if os.environ.get("FAKE_UPSTREAM_VERBOSE"):
            sys.stderr.write("fake_upstream: " + (fmt % args) + "\n")

    # -- body reading (Content-Length or chunked) --
    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks = []
            while True:
                line = self.rfile.readline()
                if not line:
                    break
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # trailers until blank line
                    while True:
                        t = self.rfile.readline()
                        if not t or t in (b"\r\n", b"\n"):
                            break
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _send(self, status, body, ctype="application/json", extra=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (extra or {}).items():
                self.send_header(k, str(v))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _record(self, body):
        parsed = urllib.parse.urlsplit(self.path)
        try:
            js = json.loads(body) if body else None
        except ValueError:
            js = None
        return STATE.record(
            {
                "method": self.command,
                "path": parsed.path,
                "query": parsed.query,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("utf-8", "replace"),
                "json": js,
                "time": time.time(),
            }
        )

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        if path == "/_requests":
            self._send(200, STATE.snapshot())
        elif path == "/_health":
            self._send(200, {"ok": True})
        else:
            body = self._read_body()
            self._record(body)
            self._send(404, {"error": {"message": "fake: no such path",
                                       "type": "invalid_request_error",
                                       "param": None, "code": "404"}})

    def do_POST(self):
        path = urllib.parse.urlsplit(self.path).path
        body = self._read_body()
        if path == "/_reset":
            STATE.reset()
            self._send(200, {"ok": True})
            return
        seq = self._record(body)
        if not path.endswith("/chat/completions"):
            self._send(404, {"error": {"message": "fake: no such path",
                                       "type": "invalid_request_error",
                                       "param": None, "code": "404"}})
            return
        try:
            req = json.loads(body or b"null")
        except ValueError:
            req = None
        if not isinstance(req, dict):
            self._send(400, {"error": {"message": "fake: body is not a JSON object",
                                       "type": "invalid_request_error",
                                       "param": None, "code": "400"}})
            return
        spec = req.get("fake") if isinstance(req.get("fake"), dict) else {}
        if spec.get("delay"):
            time.sleep(float(spec["delay"]))
        if spec.get("close"):
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        status = int(spec.get("status", 200))
        extra = spec.get("headers") or {}
        if status >= 300:
            eb = spec.get("error_body")
            if eb is None:
                eb = {"error": {"message": "fake upstream error %d" % status,
                                "type": "server_error", "param": None,
                                "code": str(status)}}
            if isinstance(eb, str):
                self._send(status, eb, ctype="text/plain", extra=extra)
            else:
                self._send(status, eb, extra=extra)
            return
        content = spec.get("content", "Hello from the fake upstream.")
        usage = _usage(spec)
        model = req.get("model", "fake")
        cid = "chatcmpl-fake-%d" % seq
        created = int(time.time())
        if req.get("stream"):
            self._stream(cid, created, model, content, usage, req, extra)
            return
        resp = {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
        }
        if usage is not None:
            resp["usage"] = usage
        self._send(status, resp, extra=extra)

    def _stream(self, cid, created, model, content, usage, req, extra):
        """Server-sent events, chunked, one event per word."""
        so = req.get("stream_options") or {}
        include_usage = isinstance(so, dict) and so.get("include_usage")
        events = []
        base = {"id": cid, "object": "chat.completion.chunk",
                "created": created, "model": model}
        events.append(dict(base, choices=[{"index": 0, "delta": {"role": "assistant", "content": ""},
                                           "finish_reason": None}]))
        words = content.split(" ")
        for i, w in enumerate(words):
            piece = w if i == 0 else " " + w
            events.append(dict(base, choices=[{"index": 0, "delta": {"content": piece},
                                               "finish_reason": None}]))
        events.append(dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}]))
        if include_usage and usage is not None:
            events.append(dict(base, choices=[], usage=usage))
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            for k, v in extra.items():
                self.send_header(k, str(v))
            self.end_headers()
            for ev in events + ["[DONE]"]:
                data = ev if isinstance(ev, str) else json.dumps(ev)
                chunk = ("data: %s\n\n" % data).encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    args = ap.parse_args()
    srv = Server(("127.0.0.1", args.port), Handler)
    port = srv.server_address[1]

    def stop(signum, frame):
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, args.port_file)
    sys.stdout.write("PORT %d\n" % port)
    sys.stdout.flush()
    srv.serve_forever(poll_interval=0.2)
    srv.server_close()


if __name__ == "__main__":
    main()
