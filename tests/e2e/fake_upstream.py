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
        "headers": {"name": "value"},  # extra response headers
        # streaming ("stream": true) only:
        "chunks": 5,                # content events (content = "tok1 tok2 ..."
                                    # unless "content" is given: one per word)
        "stream_interval": 0.2,     # seconds between two events
        "no_usage": true,           # never send the usage chunk
        "usage_in_last_chunk": true,  # usage in the finish_reason chunk,
                                    # always (as Mistral does)
        "error_after": 2,           # after this many events, drop the
                                    # connection abruptly (no [DONE], no
                                    # last chunk of the chunked encoding)
        "error_event_after": 2,     # after this many events, send an SSE
                                    # error event data: {"error": {...}}
                                    # and end the stream (no [DONE])
        "end_after": 2,             # after this many events, end the
                                    # response cleanly (last chunk of the
                                    # chunked encoding) with no finish
                                    # chunk and no [DONE]: a stream cut
                                    # off by something in between
        "ignore_string_bound": true  # like an upstream that reads only
                                    # integer bounds: max_completion_tokens
                                    # (else max_tokens) as a JSON integer
                                    # caps completion_tokens; any other
                                    # value is ignored (usage as given)
    }

The usage-only chunk ({"choices": [], "usage": {...}}) is sent only when the
request has stream_options.include_usage true, as OpenAI does.

The path may start with directives, so that deployments in a config can
behave differently (each applies before the normal handling):
    /_status/<code>/...   answer <code> with an error body
    /_delay/<seconds>/... wait before answering
    /_close/...           drop the connection without answering
    /_mistral/...         behave like api.mistral.ai: 422 extra_forbidden
                          (its pydantic shape) for the fields Mistral
                          rejects (user, stream_options,
                          max_completion_tokens); streams always end with
                          usage in the last choice chunk (no usage-only
                          chunk, no stream_options needed)

Every request is recorded (method, path, query, headers, body, json) and
can be inspected with GET /_requests (a JSON array, oldest first) and
cleared with POST /_reset.  A streamed answer also records "usage_sent"
(the usage the stream reported or would have reported), "events_sent"
(data events written, [DONE] excluded), "stream_end" (time the stream
ended) and "stream_outcome" ("complete", "client_gone", "error_after",
"error_event").  GET /_health answers {"ok": true}.

Usage: fake_upstream.py [--port N] [--port-file FILE]
The chosen port is printed on stdout as the first line ("PORT <n>") and,
with --port-file, written to that file.  SIGTERM/SIGINT stop it.
Python 3 standard library only.
"""

import argparse
import json
import os
import re
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

    def update(self, entry, **fields):
        with self.lock:
            entry.update(fields)

    def snapshot(self):
        with self.lock:
            return json.loads(json.dumps(self.requests))

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

    def setup(self):
        super().setup()
        # Headers and body leave in separate writes: without this, Nagle
        # holds the body for tollgate's delayed ACK, 40 ms per call that
        # a real upstream does not cost.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

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
        self.entry = {
            "method": self.command,
            "path": parsed.path,
            "query": parsed.query,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode("utf-8", "replace"),
            "json": js,
            "time": time.time(),
        }
        return STATE.record(self.entry)

    def _drop(self):
        """Drop the connection at once (no answer, or a cut stream)."""
        self.close_connection = True
        try:
            self.wfile.flush()
        except OSError:
            pass
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

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
        directive = {}
        while True:
            m = re.match(r"^/_(status|delay)/([0-9.]+)(/.*)$", path) or \
                re.match(r"^/_(close|mistral)()(/.*)$", path)
            if not m:
                break
            directive[m.group(1)] = m.group(2)
            path = m.group(3)
        if "delay" in directive:
            time.sleep(float(directive["delay"]))
        if "close" in directive:
            self._drop()
            return
        if "status" in directive:
            st = int(directive["status"])
            self._send(st, {"error": {"message": "fake upstream error %d" % st,
                                      "type": "server_error", "param": None,
                                      "code": str(st)}})
            return
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
        if "mistral" in directive:
            bad = [k for k in ("user", "stream_options", "max_completion_tokens") if k in req]
            if bad:
                self._send(422, {"object": "error", "message": {"detail": [
                    {"type": "extra_forbidden", "loc": ["body", k],
                     "msg": "Extra inputs are not permitted", "input": req[k]} for k in bad]},
                    "type": "invalid_request_error", "param": None, "code": None})
                return
            spec = dict(spec, mistral=True)
        if spec.get("delay"):
            time.sleep(float(spec["delay"]))
        if spec.get("close"):
            self._drop()
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
        if "content" in spec:
            content = spec["content"]
        elif spec.get("chunks"):
            content = " ".join("tok%d" % (i + 1) for i in range(int(spec["chunks"])))
        else:
            content = "Hello from the fake upstream."
        usage = _usage(spec)
        if spec.get("ignore_string_bound") and usage is not None:
            bound = req.get("max_completion_tokens", req.get("max_tokens"))
            if isinstance(bound, int) and not isinstance(bound, bool):
                usage["completion_tokens"] = min(bound, int(usage["completion_tokens"]))
                usage["total_tokens"] = (int(usage.get("prompt_tokens") or 0)
                                         + usage["completion_tokens"])
        model = req.get("model", "fake")
        cid = "chatcmpl-fake-%d" % seq
        created = int(time.time())
        if req.get("stream"):
            self._stream(cid, created, model, content, usage, req, extra, spec)
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

    def _stream(self, cid, created, model, content, usage, req, extra, spec):
        """Server-sent events, chunked, one event per word (see the module
        docstring for the options)."""
        so = req.get("stream_options") or {}
        include_usage = isinstance(so, dict) and so.get("include_usage") is True
        interval = float(spec.get("stream_interval") or 0)
        error_after = spec.get("error_after")
        error_event_after = spec.get("error_event_after")
        end_after = spec.get("end_after")
        events = []
        base = {"id": cid, "object": "chat.completion.chunk",
                "created": created, "model": model, "system_fingerprint": "fp_fake"}
        # "n" choices, one after the other (index 0 first, as a stream
        # may send them): each its role, words and finish chunk.
        n = req.get("n") if isinstance(req.get("n"), int) and req.get("n") > 1 else 1
        words = content.split(" ") if content else []
        for idx in range(n):
            events.append(dict(base, choices=[{"index": idx,
                                               "delta": {"role": "assistant", "content": ""},
                                               "logprobs": None, "finish_reason": None}]))
            for i, w in enumerate(words):
                piece = w if i == 0 else " " + w
                events.append(dict(base, choices=[{"index": idx, "delta": {"content": piece},
                                                   "logprobs": None, "finish_reason": None}]))
            if idx < n - 1:
                events.append(dict(base, choices=[{"index": idx, "delta": {}, "logprobs": None,
                                                   "finish_reason": "stop"}]))
        last = dict(base, choices=[{"index": n - 1, "delta": {}, "logprobs": None,
                                    "finish_reason": "stop"}])
        if spec.get("mistral") or spec.get("usage_in_last_chunk"):
            # usage always, in the last choice chunk (Mistral's way)
            if usage is not None and not spec.get("no_usage"):
                last["usage"] = usage
            events.append(last)
        else:
            events.append(last)
            if include_usage and usage is not None and not spec.get("no_usage"):
                events.append(dict(base, choices=[], usage=usage))
        STATE.update(self.entry, usage_sent=usage, events_sent=0, stream_outcome="started",
                     include_usage_seen=bool(include_usage))
        sent = 0
        outcome = "complete"

        def write(data):
            chunk = ("data: %s\n\n" % data).encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()

        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            for k, v in extra.items():
                self.send_header(k, str(v))
            self.end_headers()
            self.wfile.flush()
            for ev in events + ["[DONE]"]:
                if error_after is not None and sent >= int(error_after):
                    outcome = "error_after"
                    self._drop()
                    break
                if end_after is not None and sent >= int(end_after):
                    outcome = "end_after"
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                    break
                if error_event_after is not None and sent >= int(error_event_after):
                    outcome = "error_event"
                    write(json.dumps({"error": {"message": "fake upstream failed mid-stream",
                                                "type": "server_error", "param": None,
                                                "code": "500"}}))
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                    break
                if interval and (sent > 0 or ev == "[DONE]"):
                    time.sleep(interval)
                write(ev if isinstance(ev, str) else json.dumps(ev))
                if ev != "[DONE]":
                    sent += 1
                    STATE.update(self.entry, events_sent=sent)
            else:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            outcome = "client_gone"
            self.close_connection = True
        STATE.update(self.entry, events_sent=sent, stream_outcome=outcome,
                     stream_end=time.time())


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
