#!/usr/bin/env python3
"""fake_upstream: an OpenAI-compatible server (chat completions, responses,
embeddings, legacy completions), and Anthropic's Messages API, for the tests.

It answers any POST whose path ends in /chat/completions with a
chat.completion (or a server-sent-events stream when the body says
"stream": true); the other APIs are described further down.  What it does
is scripted per request by a body field "fake", which tollgate passes
through like any unknown field:

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
        "tool_calls": [{"name": "get_weather",  # the message's tool_calls
                        "arguments": "{\\"city\\": \\"Paris\\"}",  # a string
                                    # (default "{}"; another JSON value is
                                    # sent as json.dumps of it)
                        "id": "call_1"}],  # default "call_fake_<seq>_<i>"
                                    # [{"id", "type": "function", "function":
                                    # {"name", "arguments"}}], "content" null
                                    # unless given, finish_reason
                                    # "tool_calls" (the Responses route's
                                    # "tool_calls" is another thing: below)
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
        "service_tier": "priority",  # the answer's service_tier (every
                                    # chunk's when streamed; the Responses
                                    # API's response.service_tier too)
        "ignore_string_bound": true  # like an upstream that reads only
                                    # integer bounds: max_completion_tokens
                                    # (else max_tokens) as a JSON integer
                                    # caps completion_tokens; any other
                                    # value is ignored (usage as given)
    }

The usage-only chunk ({"choices": [], "usage": {...}}) is sent only when the
request has stream_options.include_usage true, as OpenAI does.  A stream
is the role chunk (delta {"role": "assistant", "content": ""}; content null
with tool calls and no content), one content chunk per word, then per tool
call i a chunk whose delta is {"tool_calls": [{"index": i, "id", "type":
"function", "function": {"name", "arguments": ""}}]} followed by the
arguments in pieces of at most 8 characters, {"tool_calls": [{"index": i,
"function": {"arguments": piece}}]}; then the finish chunk (finish_reason
"stop", or "tool_calls"), the usage chunk, data: [DONE].

Responses API: a POST whose path ends in /responses (/v1/responses,
/openai/responses?api-version=...) answers a "response" object
{"id": "resp_fake_<seq>", "object": "response", "created_at", "status":
"completed", "error": null, "incomplete_details": null, "model", "output",
"usage", and "previous_response_id", "store", "instructions",
"max_output_tokens", "tools", "reasoning", "text", "metadata" echoed from
the request (null when absent), "conversation" too when given}.  The output
ends with the message item {"type": "message", "id": "msg_fake_<seq>",
"status": "completed", "role": "assistant", "content": [{"type":
"output_text", "text": <content>, "annotations": []}]}; the usage is
{"input_tokens": I, "input_tokens_details": {"cached_tokens": C},
"output_tokens": O, "output_tokens_details": {"reasoning_tokens": R},
"total_tokens": I+O}.  "content", "chunks", "status", "error_body",
"delay", "close", "headers" and "stream_interval" behave as for chat;
the others:

    "fake": {
        "usage": {"input_tokens": 10, "output_tokens": 20,  # merged over
                  "cached_tokens": 0, "reasoning_tokens": 0},  # these
                                    # defaults; the nested forms
                                    # "input_tokens_details": {...} and
                                    # "output_tokens_details": {...} merge
                                    # too; "total_tokens" given is kept as
                                    # given; null means "no usage at all"
        "tool_calls": {"web_search_call": 2, "file_search_call": 1,
                       "code_interpreter_call": 1,
                       "image_generation_call": 1, "function_call": 1},
                                    # that many output items of each type
                                    # (in this order), before the message,
                                    # each with an id, "status": "completed"
                                    # and the fields of its type; another
                                    # type gets just type, id and status
        "incomplete": true,         # status "incomplete", incomplete_details
                                    # {"reason": "max_output_tokens"} (and
                                    # a message item "incomplete"); streamed,
                                    # the terminal event is
                                    # response.incomplete, with the usage
        # streaming ("stream": true) only; counted in events sent:
        "error_after": 2,           # drop the connection abruptly (no
                                    # terminal event, no last chunk of
                                    # the chunked encoding)
        "end_after": 2,             # end the chunked body cleanly, with
                                    # no terminal event
        "error_event_after": 2,     # send an "error" event {"type": "error",
                                    # "code": "server_error", "message":
                                    # ..., "param": null, "sequence_number"}
                                    # and end cleanly
        "failed_after": 2,          # send a terminal response.failed whose
                                    # response has "status": "failed",
                                    # "error": {"code": "server_error",
                                    # "message": ...}, the output items
                                    # done so far and "usage": null ...
        "failed_usage": true        # ... or the usage with this
    }

"previous_response_id" naming a stored response adds its conversation:
I += its input_tokens + output_tokens (as it reported them, after its own
chaining; 0 if it reported no usage), after fake.usage is merged; an
unknown one is a 404 ("Previous response with id '...' not found.", param
"previous_response_id").  "conversation" is accepted (echoed, recorded)
and changes no count.  A response is stored (unless the request says
"store": false) with its input items (a string input becomes one user
message with input_text content; items get ids), and then
    GET    .../responses/<id>              answers the stored response
    GET    .../responses/<id>/input_items  {"object": "list", "data":
                 [...], "first_id", "last_id", "has_more"}; newest first
                 as OpenAI does (?order=asc for oldest first), ?limit=
                 (default 20), ?after=<item id>
    DELETE .../responses/<id>              {"id", "object": "response",
                 "deleted": true}, and forgets it
    POST   .../responses/<id>/cancel       the response, now "cancelled"
An unknown id is a 404 envelope.  POST /_reset forgets them all too.
A stream ("stream": true) is text/event-stream, chunked, each event
"event: <type>\\ndata: <json>\\n\\n", every data object with "type" and
"sequence_number" (from 0): response.created and response.in_progress (the
response "in_progress", output [], usage null), for each tool item
response.output_item.added and .done, then for the message
response.output_item.added, response.content_part.added, one
response.output_text.delta per word, response.output_text.done,
response.content_part.done, response.output_item.done, and the terminal
response.completed with the full response.  No "data: [DONE]".

Embeddings: a POST whose path ends in /embeddings takes "input" as a
string, an array of strings, an array of token integers or an array of
such arrays (anything else, or an empty array: 400) and answers
{"object": "list", "data": [{"object": "embedding", "index": i,
"embedding": V}, one per input], "model", "usage": {"prompt_tokens": P,
"total_tokens": P}}.  P is the sum over the inputs of ceil(UTF-8 bytes / 4)
(at least 1) per string, the length per token array.  V has "dimensions"
(default 8) float32 values of unit norm derived from a hash of the input
(the same input, the same vector); with "encoding_format": "base64" V is
the base64 of the little-endian float32 array.  "status", "error_body",
"delay", "close", "headers" as chat, and
    "fake": {"usage": {"prompt_tokens": 7}}  # merged (total_tokens
                                    # follows unless given); null: no usage

Legacy completions: a POST whose path ends in /completions but not in
/chat/completions takes "prompt" as a string, an array of strings, an
array of tokens or an array of token arrays (400 otherwise) and answers
{"id": "cmpl-fake-<seq>", "object": "text_completion", "created", "model",
"choices": [{"text", "index", "logprobs": null, "finish_reason": "stop"}],
"usage"}: "n" choices per prompt (default 1; index prompt*n + j),
"echo": true puts the prompt (when a string) before the text.  The fake
options of chat apply (usage merged over 10/20, content, chunks, status,
error_body, delay, close, headers, ignore_string_bound); streamed, one
chunk {"id", "object": "text_completion", "created", "model", "choices":
[{"text": piece, "index": i, "logprobs": null, "finish_reason": null}]}
per word (and the prompt first with echo), a finish chunk per choice
(text "", finish_reason "stop"), the usage-only chunk only with
stream_options.include_usage true (and not no_usage), then data: [DONE];
error_after, end_after, error_event_after and stream_interval as chat.

Anthropic Messages API: a POST whose path ends in /v1/messages (the query,
e.g. ?beta=true, ignored) first checks the headers as Anthropic does: no
x-api-key is a 401 {"type": "error", "error": {"type":
"authentication_error", "message": "x-api-key header is required"}}, no
anthropic-version a 400 invalid_request_error "anthropic-version: header
is required" (the request is recorded before, headers included:
x-api-key, anthropic-version, anthropic-beta).  Then the body: not a JSON
object, "model" missing or not a string, "max_tokens" missing ("max_tokens:
Field required"), not an integer or below 1, "messages" missing, not an
array, empty, or with an item that is not {"role": "user" | "assistant",
"content": string | array}, "system" not a string or array, "tools" not an
array, "metadata" not an object, "stream" not a boolean (null counts as
absent): a 400 invalid_request_error whose message names the field
("<field>: ...").  Every error of this route is Anthropic's envelope
{"type": "error", "error": {"type": T, "message": ...}}, T by status: 400
invalid_request_error, 401 authentication_error, 402 billing_error, 403
permission_error, 404 not_found_error, 413 request_too_large, 429
rate_limit_error, 500 api_error, 504 timeout_error, 529 overloaded_error
(another 5xx api_error, another 4xx invalid_request_error).  It answers
{"id": "msg_fake_<seq>", "type": "message", "role": "assistant", "model":
<the request's>, "content": [{"type": "text", "text": <content>}, then a
{"type": "tool_use", "id": "toolu_fake_<seq>_<i>", "name", "input"} per
scripted tool use], "stop_reason": "end_turn" ("tool_use" with tool uses),
"stop_sequence": null, "usage": {"input_tokens": I,
"cache_creation_input_tokens": W, "cache_read_input_tokens": R,
"cache_creation": {"ephemeral_5m_input_tokens": A,
"ephemeral_1h_input_tokens": B} (only when a split is scripted),
"output_tokens": O, "server_tool_use": {"web_search_requests": N} (only
when scripted)}}.  "content", "chunks", "status" (without error_body, the
envelope above), "error_body", "delay", "close", "headers" and
"stream_interval" behave as for chat; the others:

    "fake": {
        "usage": {"input_tokens": 10, "output_tokens": 20,  # merged over
                  "cache_creation_input_tokens": 0,        # these defaults;
                  "cache_read_input_tokens": 0,            # null means "no
                  "cache_creation_5m": A, "cache_creation_1h": B,  # usage
                  "web_search_requests": N},  # at all".  Either split key
                                    # gives the cache_creation object (the
                                    # other 0) and W = A + B unless
                                    # cache_creation_input_tokens is given;
                                    # "cache_creation": {...} and
                                    # "server_tool_use": {...} merge into
                                    # those objects; web_fetch_requests
                                    # joins server_tool_use too; any other
                                    # key (service_tier, ...) is copied
        "content": null,            # no text block (just the tool uses)
        "tool_use": [{"name": "get_weather", "input": {"city": "Paris"}}],
                                    # tool_use blocks after the text
        "stop_reason": "max_tokens",  # instead of end_turn / tool_use
        "stop_sequence": "###",     # instead of null
        # streaming ("stream": true) only; counted in events sent:
        "delta_usage_steps": 3,     # that many message_delta events, the
                                    # cumulative output_tokens growing to O
                                    # (O*k//K, then O), only the last with
                                    # stop_reason and stop_sequence
        "error_after": 2,           # drop the connection abruptly (no
                                    # message_stop, no last chunk of the
                                    # chunked encoding)
        "end_after": 2,             # end the chunked body cleanly, with
                                    # no message_stop
        "error_event_after": 2      # send "event: error" data {"type":
                                    # "error", "error": {"type":
                                    # "overloaded_error", "message":
                                    # "Overloaded"}} and end cleanly
    }

A stream ("stream": true) is text/event-stream, chunked, each event
"event: <type>\ndata: <json>\n\n" with "type" in the data: message_start
{"message": the message with "content": [], "stop_reason": null,
"stop_sequence": null and "usage" the input side (input_tokens,
cache_creation_input_tokens, cache_read_input_tokens, cache_creation when
scripted) with "output_tokens": 1}, a ping, then per content block
content_block_start {"index", "content_block": {"type": "text", "text":
""} or the tool_use block with "input": {}}, content_block_delta {"index",
"delta": {"type": "text_delta", "text"}} one per word (as chat) or
{"type": "input_json_delta", "partial_json"} ("" first, then the input's
JSON in pieces of 8 characters), content_block_stop {"index"}; then
message_delta {"delta": {"stop_reason", "stop_sequence"}, "usage":
{input_tokens, cache_creation_input_tokens, cache_read_input_tokens,
output_tokens (O: cumulative, as Anthropic's are), server_tool_use when
scripted}} and message_stop.  With "usage": null, no usage anywhere.
"usage_sent" records the usage of the whole message.

POST .../v1/messages/count_tokens checks the headers and the body as
above (without max_tokens) and answers {"input_tokens": N}, N =
ceil(UTF-8 bytes / 4) of json.dumps (Python's defaults) of "messages",
then "system", then "tools" (those present, concatenated), or
fake.usage.input_tokens when given; never streamed.  delay, close,
status, error_body and headers as above.

The path may start with directives, so that deployments in a config can
behave differently (each applies before the normal handling, on every
route and method):
    /_status/<code>/...   answer <code> with an error body (Anthropic's
                          envelope when the rest of the path ends in
                          /v1/messages or /v1/messages/count_tokens)
    /_delay/<seconds>/... wait before answering
    /_close/...           drop the connection without answering
    /_mistral/...         (chat completions only; ignored elsewhere)
                          behave like api.mistral.ai: 422 extra_forbidden
                          (its pydantic shape) for the fields Mistral
                          rejects (user, stream_options,
                          max_completion_tokens); streams always end with
                          usage in the last choice chunk (no usage-only
                          chunk, no stream_options needed)
Any other path is a 404.

A translated request (tollgate turning a /v1/messages call into a chat
completion, or the reverse) loses the client's unknown fields, "fake"
included, so the spec can be queued instead:
    POST /_next   body: a spec object (what "fake" would hold); appended
                  to a FIFO queue; answers {"ok": true, "queued": <length>}
                  (400 if the body is not a JSON object).  Not recorded.
The next request on an API route (chat, responses, embeddings, legacy
completions, messages, count_tokens) whose body has no "fake" field (a
"fake" of any value counts as one) takes the oldest queued spec off the
queue and behaves as if its body had it; its entry in /_requests gets
"fake_from_queue": <the spec>.  The spec is taken when the route reads
it: after the path directives (a /_status or /_close path answers without
taking one; /_delay waits, then the request takes one), after the body is
found to be a JSON object, and on the Messages routes after the header
checks; GETs, DELETEs, /responses/<id>/cancel and 404s never take one.
POST /_reset empties the queue too.

Every request (GET, POST, DELETE) is recorded (method, path, query,
headers, body, json) and can be inspected with GET /_requests (a JSON
array, oldest first) and cleared with POST /_reset.  A streamed answer
also records "usage_sent" (the usage the stream reported or would have
reported; for a response.failed, what it carried), "events_sent" (data
events written, [DONE] excluded), "stream_end" (time the stream ended)
and "stream_outcome" ("complete", "client_gone", "error_after",
"end_after", "error_event", and for the Responses API "failed",
"incomplete").  GET /_health answers {"ok": true}.

Usage: fake_upstream.py [--port N] [--port-file FILE]
The chosen port is printed on stdout as the first line ("PORT <n>") and,
with --port-file, written to that file.  SIGTERM/SIGINT stop it.
Python 3 standard library only.
"""

import argparse
import base64
import hashlib
import json
import math
import os
import re
import signal
import socket
import struct
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
        self.responses = {}  # Responses API: id -> {"response", "input_items"}
        self.queue = []  # fake specs queued by POST /_next, oldest first

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
            self.responses = {}
            self.queue = []

    def push_spec(self, spec):
        with self.lock:
            self.queue.append(json.loads(json.dumps(spec)))
            return len(self.queue)

    def pop_spec(self):
        """The oldest queued spec (removed), or None when none is queued."""
        with self.lock:
            return self.queue.pop(0) if self.queue else None

    def store_response(self, response, input_items=None):
        with self.lock:
            old = self.responses.get(response["id"])
            if input_items is None:
                input_items = old["input_items"] if old else []
            self.responses[response["id"]] = {
                "response": json.loads(json.dumps(response)),
                "input_items": json.loads(json.dumps(input_items))}

    def get_response(self, rid):
        with self.lock:
            r = self.responses.get(rid)
            return json.loads(json.dumps(r)) if r else None

    def delete_response(self, rid):
        with self.lock:
            return self.responses.pop(rid, None) is not None


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


def _error(message, status, typ="invalid_request_error", param=None, code=None):
    return {"error": {"message": message, "type": typ, "param": param,
                      "code": code if code is not None else str(status)}}


def _content(spec):
    if "content" in spec:
        return spec["content"]
    if spec.get("chunks"):
        return " ".join("tok%d" % (i + 1) for i in range(int(spec["chunks"])))
    return "Hello from the fake upstream."


def _int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _chat_tool_calls(spec, seq):
    """fake.tool_calls of the chat route (a list) as OpenAI's message
    tool_calls; [] when absent or not a list (the Responses route's dict)."""
    tc = spec.get("tool_calls")
    if not isinstance(tc, list):
        return []
    calls = []
    for i, c in enumerate(tc):
        c = c if isinstance(c, dict) else {}
        args = c.get("arguments", "{}")
        if not isinstance(args, str):
            args = json.dumps(args)
        calls.append({"id": c.get("id", "call_fake_%d_%d" % (seq, i)), "type": "function",
                      "function": {"name": c.get("name", "fake_function"),
                                   "arguments": args}})
    return calls


# -- Responses API --

def _resp_usage(spec):
    """The usage of a response: defaults, then fake.usage merged (flat
    convenience keys and nested details).  Returns (usage or None,
    total_given)."""
    if "usage" in spec and spec["usage"] is None:
        return None, False
    u = spec.get("usage") if isinstance(spec.get("usage"), dict) else {}
    itd = {"cached_tokens": 0}
    otd = {"reasoning_tokens": 0}
    if "cached_tokens" in u:
        itd["cached_tokens"] = u["cached_tokens"]
    if "reasoning_tokens" in u:
        otd["reasoning_tokens"] = u["reasoning_tokens"]
    if isinstance(u.get("input_tokens_details"), dict):
        itd.update(u["input_tokens_details"])
    if isinstance(u.get("output_tokens_details"), dict):
        otd.update(u["output_tokens_details"])
    usage = {"input_tokens": u.get("input_tokens", 10),
             "input_tokens_details": itd,
             "output_tokens": u.get("output_tokens", 20),
             "output_tokens_details": otd}
    if "total_tokens" in u:
        usage["total_tokens"] = u["total_tokens"]
        return usage, True
    _resp_total(usage)
    return usage, False


def _resp_total(usage):
    try:
        usage["total_tokens"] = int(usage["input_tokens"] or 0) + int(usage["output_tokens"] or 0)
    except (TypeError, ValueError):
        usage.pop("total_tokens", None)


_TOOL_PREFIX = {"web_search_call": "ws", "file_search_call": "fs",
                "code_interpreter_call": "ci", "image_generation_call": "ig",
                "function_call": "fc", "computer_call": "cu", "mcp_call": "mcp"}

# a 1x1 transparent PNG
_PNG_B64 = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhf"
            "DwAChwGA60e6kgAAAABJRU5ErkJggg==")


def _tool_item(typ, iid):
    item = {"type": typ, "id": iid, "status": "completed"}
    if typ == "web_search_call":
        item["action"] = {"type": "search", "query": "q"}
    elif typ == "file_search_call":
        item["queries"] = ["q"]
        item["results"] = None
    elif typ == "code_interpreter_call":
        item["code"] = "print(1 + 1)"
        item["container_id"] = "cntr_fake"
        item["outputs"] = None
    elif typ == "image_generation_call":
        item["result"] = _PNG_B64
    elif typ == "function_call":
        item["call_id"] = "call_" + iid
        item["name"] = "fake_function"
        item["arguments"] = "{}"
    return item


def _tool_items(spec, seq):
    tc = spec.get("tool_calls")
    items = []
    if not isinstance(tc, dict):
        return items
    for typ, count in tc.items():
        for _ in range(int(count or 0)):
            prefix = _TOOL_PREFIX.get(typ, "item")
            items.append(_tool_item(typ, "%s_fake_%d_%d" % (prefix, seq, len(items))))
    return items


def _input_items(inp, seq):
    """The input of a Responses request as a list of items with ids."""
    if inp is None:
        raw = []
    elif isinstance(inp, str):
        raw = [{"type": "message", "role": "user", "content": inp}]
    elif isinstance(inp, list):
        raw = inp
    else:
        raw = [inp]
    items = []
    for k, it in enumerate(raw):
        if isinstance(it, str):
            it = {"type": "message", "role": "user", "content": it}
        if not isinstance(it, dict):
            it = {"type": "message", "role": "user", "content": json.dumps(it)}
        it = dict(it)
        if "type" not in it and "role" in it:
            it["type"] = "message"
        if it.get("type") == "message":
            ctype = "output_text" if it.get("role") == "assistant" else "input_text"
            if isinstance(it.get("content"), str):
                it["content"] = [{"type": ctype, "text": it["content"]}]
            it.setdefault("status", "completed")
        it = dict({"id": "%s_in_fake_%d_%d" % (
            "msg" if it.get("type") == "message" else "item", seq, k)}, **it)
        items.append(it)
    return items


# -- Embeddings --

def _embedding(key, dims):
    vals = []
    for i in range(dims):
        h = hashlib.sha256(("%s\0%d" % (key, i)).encode("utf-8", "surrogatepass")).digest()
        vals.append(int.from_bytes(h[:8], "little") / 2.0 ** 63 - 1.0)
    norm = math.sqrt(sum(x * x for x in vals)) or 1.0
    # float32 values, so that the base64 form decodes to the same numbers
    return [struct.unpack("<f", struct.pack("<f", x / norm))[0] for x in vals]


def _token_list(v):
    return isinstance(v, list) and len(v) > 0 and all(_int(t) for t in v)


def _batch(v):
    """A string / [str] / [int] / [[int]] input as a list of ("text", s)
    or ("tokens", [..]); None when it is none of these."""
    if isinstance(v, str):
        return [("text", v)]
    if not isinstance(v, list) or not v:
        return None
    if all(isinstance(x, str) for x in v):
        return [("text", x) for x in v]
    if _token_list(v):
        return [("tokens", v)]
    if all(_token_list(x) for x in v):
        return [("tokens", x) for x in v]
    return None


# -- Anthropic Messages API --

_ANTH_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                     402: "billing_error", 403: "permission_error",
                     404: "not_found_error", 413: "request_too_large",
                     429: "rate_limit_error", 500: "api_error",
                     504: "timeout_error", 529: "overloaded_error"}


def _anth_error(message, status):
    """Anthropic's error envelope, its type by the HTTP status."""
    typ = _ANTH_ERROR_TYPES.get(status) or (
        "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": typ, "message": message}}


def _anth_status_error(status):
    return _anth_error("fake upstream error %d" % status, status)


def _anth_path(path):
    return path.endswith("/v1/messages") or path.endswith("/v1/messages/count_tokens")


def _anth_invalid(req, count_tokens=False):
    """What is wrong with a Messages (or count_tokens) body, as Anthropic
    words it; None when nothing is.  A null optional field counts as
    absent."""
    if "model" not in req:
        return "model: Field required"
    if not isinstance(req["model"], str):
        return "model: Input should be a valid string"
    if not count_tokens:
        if "max_tokens" not in req:
            return "max_tokens: Field required"
        if not _int(req["max_tokens"]):
            return "max_tokens: Input should be a valid integer"
        if req["max_tokens"] < 1:
            return "max_tokens: Input should be greater than or equal to 1"
    if "messages" not in req:
        return "messages: Field required"
    msgs = req["messages"]
    if not isinstance(msgs, list):
        return "messages: Input should be a valid list"
    if not msgs:
        return "messages: at least one message is required"
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            return "messages.%d: Input should be a valid dictionary" % i
        if m.get("role") not in ("user", "assistant"):
            return "messages.%d.role: Input should be 'user' or 'assistant'" % i
        if "content" not in m:
            return "messages.%d.content: Field required" % i
        if not isinstance(m["content"], (str, list)):
            return "messages.%d.content: Input should be a valid string or list" % i
    for field, types, what in (("system", (str, list), "a valid string or list"),
                               ("tools", (list,), "a valid list"),
                               ("metadata", (dict,), "a valid dictionary"),
                               ("stream", (bool,), "a valid boolean")):
        if req.get(field) is not None and not isinstance(req[field], types):
            return "%s: Input should be %s" % (field, what)
    return None


def _anth_usage(spec):
    """The usage of a message: the defaults, then fake.usage (see the module
    docstring); None for "no usage at all"."""
    if "usage" in spec and spec["usage"] is None:
        return None
    u = spec.get("usage") if isinstance(spec.get("usage"), dict) else {}
    split = None
    if "cache_creation_5m" in u or "cache_creation_1h" in u or isinstance(
            u.get("cache_creation"), dict):
        split = {"ephemeral_5m_input_tokens": u.get("cache_creation_5m", 0),
                 "ephemeral_1h_input_tokens": u.get("cache_creation_1h", 0)}
        if isinstance(u.get("cache_creation"), dict):
            split.update(u["cache_creation"])
    if "cache_creation_input_tokens" in u:
        written = u["cache_creation_input_tokens"]
    elif split is not None:
        written = sum(v for v in split.values() if _int(v))
    else:
        written = 0
    usage = {"input_tokens": u.get("input_tokens", 10),
             "cache_creation_input_tokens": written,
             "cache_read_input_tokens": u.get("cache_read_input_tokens", 0)}
    if split is not None:
        usage["cache_creation"] = split
    usage["output_tokens"] = u.get("output_tokens", 20)
    stu = {}
    for k in ("web_search_requests", "web_fetch_requests"):
        if k in u:
            stu[k] = u[k]
    if isinstance(u.get("server_tool_use"), dict):
        stu.update(u["server_tool_use"])
    if stu:
        usage["server_tool_use"] = stu
    for k, v in u.items():  # anything else (service_tier, ...) as given
        if k not in usage and k not in ("cache_creation_5m", "cache_creation_1h",
                                        "web_search_requests", "web_fetch_requests"):
            usage[k] = v
    return usage


def _anth_count(req):
    """count_tokens' estimate: ceil(UTF-8 bytes / 4) of json.dumps (Python's
    defaults) of messages, then system, then tools, those present."""
    text = "".join(json.dumps(req[k]) for k in ("messages", "system", "tools")
                   if req.get(k) is not None)
    return max(1, -(-len(text.encode("utf-8", "surrogatepass")) // 4))


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
            self._route(path, body)

    def do_DELETE(self):
        path = urllib.parse.urlsplit(self.path).path
        body = self._read_body()
        self._record(body)
        self._route(path, body)

    def do_POST(self):
        path = urllib.parse.urlsplit(self.path).path
        body = self._read_body()
        if path == "/_reset":
            STATE.reset()
            self._send(200, {"ok": True})
            return
        if path == "/_next":
            try:
                spec = json.loads(body or b"null")
            except ValueError:
                spec = None
            if not isinstance(spec, dict):
                self._send(400, {"error": {"message": "fake: /_next takes a JSON object "
                                                      "(a fake spec)",
                                           "type": "invalid_request_error",
                                           "param": None, "code": "400"}})
                return
            self._send(200, {"ok": True, "queued": STATE.push_spec(spec)})
            return
        self._record(body)
        self._route(path, body)

    def _not_found(self):
        self._send(404, {"error": {"message": "fake: no such path",
                                   "type": "invalid_request_error",
                                   "param": None, "code": "404"}})

    def _route(self, path, body):
        seq = self.entry["seq"]
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
            if _anth_path(path):
                self._send(st, _anth_status_error(st))
                return
            self._send(st, {"error": {"message": "fake upstream error %d" % st,
                                      "type": "server_error", "param": None,
                                      "code": str(st)}})
            return
        method = self.command
        m = re.match(r"^.*/responses/([^/]+)(/input_items|/cancel)?$", path)
        if method == "POST" and path.endswith("/v1/messages"):
            self._messages(seq, body)
        elif method == "POST" and path.endswith("/v1/messages/count_tokens"):
            self._count_tokens(body)
        elif method == "POST" and path.endswith("/chat/completions"):
            self._chat(seq, body, directive)
        elif method == "POST" and path.endswith("/responses"):
            self._responses_create(seq, body)
        elif m and (method, m.group(2)) in (("GET", None), ("DELETE", None),
                                            ("GET", "/input_items"),
                                            ("POST", "/cancel")):
            self._responses_by_id(m.group(1), m.group(2))
        elif method == "POST" and path.endswith("/embeddings"):
            self._embeddings(body)
        elif method == "POST" and path.endswith("/completions"):
            self._completions(seq, body)
        else:
            self._not_found()

    def _chat(self, seq, body, directive):
        req = self._json_obj(body)
        if req is None:
            return
        spec = self._spec(req)
        if "mistral" in directive:
            bad = [k for k in ("user", "stream_options", "max_completion_tokens") if k in req]
            if bad:
                self._send(422, {"object": "error", "message": {"detail": [
                    {"type": "extra_forbidden", "loc": ["body", k],
                     "msg": "Extra inputs are not permitted", "input": req[k]} for k in bad]},
                    "type": "invalid_request_error", "param": None, "code": None})
                return
            spec = dict(spec, mistral=True)
        if self._scripted(spec):
            return
        status = int(spec.get("status", 200))
        extra = spec.get("headers") or {}
        calls = _chat_tool_calls(spec, seq)
        if "content" in spec:
            content = spec["content"]
        elif calls:
            content = None
        elif spec.get("chunks"):
            content = " ".join("tok%d" % (i + 1) for i in range(int(spec["chunks"])))
        else:
            content = "Hello from the fake upstream."
        finish = "tool_calls" if calls else "stop"
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
            self._stream(cid, created, model, content, usage, req, extra, spec, calls)
            return
        message = {"role": "assistant", "content": content}
        if calls:
            message["tool_calls"] = calls
        resp = {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
        }
        if usage is not None:
            resp["usage"] = usage
        if "service_tier" in spec:
            resp["service_tier"] = spec["service_tier"]
        self._send(status, resp, extra=extra)

    def _stream(self, cid, created, model, content, usage, req, extra, spec, calls=()):
        """Server-sent events, chunked, one event per word, then the tool
        call deltas (see the module docstring for the options)."""
        so = req.get("stream_options") or {}
        include_usage = isinstance(so, dict) and so.get("include_usage") is True
        events = []
        base = {"id": cid, "object": "chat.completion.chunk",
                "created": created, "model": model, "system_fingerprint": "fp_fake"}
        if "service_tier" in spec:
            base["service_tier"] = spec["service_tier"]
        # "n" choices, one after the other (index 0 first, as a stream
        # may send them): each its role, words and finish chunk.
        n = req.get("n") if isinstance(req.get("n"), int) and req.get("n") > 1 else 1
        words = content.split(" ") if content else []
        finish = "tool_calls" if calls else "stop"
        first = None if calls and content is None else ""
        for idx in range(n):
            events.append(dict(base, choices=[{"index": idx,
                                               "delta": {"role": "assistant", "content": first},
                                               "logprobs": None, "finish_reason": None}]))
            for i, w in enumerate(words):
                piece = w if i == 0 else " " + w
                events.append(dict(base, choices=[{"index": idx, "delta": {"content": piece},
                                                   "logprobs": None, "finish_reason": None}]))
            for ti, call in enumerate(calls):
                fn = call["function"]
                events.append(dict(base, choices=[{"index": idx, "delta": {"tool_calls": [
                    {"index": ti, "id": call["id"], "type": "function",
                     "function": {"name": fn["name"], "arguments": ""}}]},
                    "logprobs": None, "finish_reason": None}]))
                args = fn["arguments"]
                for k in range(0, len(args), 8):
                    events.append(dict(base, choices=[{"index": idx, "delta": {"tool_calls": [
                        {"index": ti, "function": {"arguments": args[k:k + 8]}}]},
                        "logprobs": None, "finish_reason": None}]))
            if idx < n - 1:
                events.append(dict(base, choices=[{"index": idx, "delta": {}, "logprobs": None,
                                                   "finish_reason": finish}]))
        last = dict(base, choices=[{"index": n - 1, "delta": {}, "logprobs": None,
                                    "finish_reason": finish}])
        if spec.get("mistral") or spec.get("usage_in_last_chunk"):
            # usage always, in the last choice chunk (Mistral's way)
            if usage is not None and not spec.get("no_usage"):
                last["usage"] = usage
            events.append(last)
        else:
            events.append(last)
            if include_usage and usage is not None and not spec.get("no_usage"):
                events.append(dict(base, choices=[], usage=usage))
        self._sse_send(events, usage, include_usage, extra, spec)

    def _sse_send(self, events, usage, include_usage, extra, spec):
        """Send data events then data: [DONE], chunked, with the failure
        options error_after, end_after, error_event_after and the pace
        stream_interval (chat and legacy completions)."""
        interval = float(spec.get("stream_interval") or 0)
        error_after = spec.get("error_after")
        error_event_after = spec.get("error_event_after")
        end_after = spec.get("end_after")
        STATE.update(self.entry, usage_sent=usage, events_sent=0, stream_outcome="started",
                     include_usage_seen=bool(include_usage))
        sent = 0
        outcome = "complete"

        def write(data):
            chunk = ("data: %s\n\n" % data).encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()

        try:
            self._start_sse(extra)
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

    # -- shared by the routes --
    def _json_obj(self, body):
        """The body as a JSON object, or None after answering 400."""
        try:
            req = json.loads(body or b"null")
        except ValueError:
            req = None
        if not isinstance(req, dict):
            self._send(400, {"error": {"message": "fake: body is not a JSON object",
                                       "type": "invalid_request_error",
                                       "param": None, "code": "400"}})
            return None
        return req

    def _spec(self, req):
        """The fake spec of a request: its "fake" field (any value: {}
        unless an object), else the oldest spec queued by POST /_next,
        recorded in the request's entry as "fake_from_queue", else {}."""
        if "fake" in req:
            return req["fake"] if isinstance(req["fake"], dict) else {}
        spec = STATE.pop_spec()
        if spec is None:
            return {}
        STATE.update(self.entry, fake_from_queue=json.loads(json.dumps(spec)))
        return spec

    def _begin(self, body):
        """(request, fake spec, extra headers) of a request still to be
        answered; None once answered (a bad body, a scripted answer)."""
        req = self._json_obj(body)
        if req is None:
            return None
        spec = self._spec(req)
        if self._scripted(spec):
            return None
        return req, spec, spec.get("headers") or {}

    def _scripted(self, spec, default_error=None):
        """fake.delay, fake.close, fake.status/error_body/headers; True when
        the request has been answered.  default_error(status): the body of
        a scripted status without error_body (OpenAI's shape if None)."""
        if spec.get("delay"):
            time.sleep(float(spec["delay"]))
        if spec.get("close"):
            self._drop()
            return True
        status = int(spec.get("status", 200))
        if status >= 300:
            extra = spec.get("headers") or {}
            eb = spec.get("error_body")
            if eb is None and default_error is not None:
                eb = default_error(status)
            if eb is None:
                eb = {"error": {"message": "fake upstream error %d" % status,
                                "type": "server_error", "param": None,
                                "code": str(status)}}
            if isinstance(eb, str):
                self._send(status, eb, ctype="text/plain", extra=extra)
            else:
                self._send(status, eb, extra=extra)
            return True
        return False

    def _end_chunked(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _start_sse(self, extra):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for k, v in extra.items():
            self.send_header(k, str(v))
        self.end_headers()
        self.wfile.flush()

    # -- Responses API --
    def _responses_create(self, seq, body):
        got = self._begin(body)
        if got is None:
            return
        req, spec, extra = got
        usage, total_given = _resp_usage(spec)
        prev_id = req.get("previous_response_id")
        if prev_id is not None:
            prev = STATE.get_response(prev_id) if isinstance(prev_id, str) else None
            if prev is None:
                self._send(404, _error("Previous response with id '%s' not found." % (prev_id,),
                                       404, param="previous_response_id",
                                       code="previous_response_not_found"))
                return
            pu = prev["response"].get("usage")
            if usage is not None and isinstance(pu, dict):
                try:
                    add = int(pu.get("input_tokens") or 0) + int(pu.get("output_tokens") or 0)
                    usage["input_tokens"] = int(usage["input_tokens"] or 0) + add
                except (TypeError, ValueError):
                    pass
                if not total_given:
                    _resp_total(usage)
        content = _content(spec)
        incomplete = bool(spec.get("incomplete"))
        tools = _tool_items(spec, seq)
        msg = {"type": "message", "id": "msg_fake_%d" % seq,
               "status": "incomplete" if incomplete else "completed",
               "role": "assistant",
               "content": [{"type": "output_text", "text": content, "annotations": []}]}
        resp = {
            "id": "resp_fake_%d" % seq,
            "object": "response",
            "created_at": int(time.time()),
            "status": "incomplete" if incomplete else "completed",
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
            "instructions": req.get("instructions"),
            "max_output_tokens": req.get("max_output_tokens"),
            "model": req.get("model", "fake"),
            "output": tools + [msg],
            "previous_response_id": prev_id,
            "reasoning": req.get("reasoning"),
            "store": req.get("store"),
            "text": req.get("text"),
            "tools": req.get("tools"),
            "usage": usage,
            "metadata": req.get("metadata"),
        }
        if "service_tier" in spec:
            resp["service_tier"] = spec["service_tier"]
        if "conversation" in req:
            c = req["conversation"]
            resp["conversation"] = {"id": c} if isinstance(c, str) else c
        store = req.get("store") is not False
        if store:
            STATE.store_response(resp, _input_items(req.get("input"), seq))
        if req.get("stream"):
            self._responses_stream(resp, tools, msg, content, usage, spec, extra, store)
            return
        self._send(200, resp, extra=extra)

    def _responses_stream(self, resp, tools, msg, content, usage, spec, extra, store):
        """The Responses API's typed server-sent events (see the module
        docstring)."""
        interval = float(spec.get("stream_interval") or 0)
        error_after = spec.get("error_after")
        error_event_after = spec.get("error_event_after")
        end_after = spec.get("end_after")
        failed_after = spec.get("failed_after")
        events = []  # (data object, output item it completes or None)

        def ev(typ, done=None, **fields):
            d = {"type": typ, "sequence_number": len(events)}
            d.update(fields)
            events.append((d, done))

        pending = dict(resp, status="in_progress", incomplete_details=None,
                       output=[], usage=None)
        ev("response.created", response=pending)
        ev("response.in_progress", response=pending)
        for oi, item in enumerate(tools):
            ev("response.output_item.added", output_index=oi,
               item=dict(item, status="in_progress"))
            ev("response.output_item.done", done=item, output_index=oi, item=item)
        oi = len(tools)
        mid = msg["id"]
        ev("response.output_item.added", output_index=oi,
           item=dict(msg, status="in_progress", content=[]))
        ev("response.content_part.added", item_id=mid, output_index=oi, content_index=0,
           part={"type": "output_text", "text": "", "annotations": []})
        words = content.split(" ") if isinstance(content, str) and content else []
        for i, w in enumerate(words):
            ev("response.output_text.delta", item_id=mid, output_index=oi, content_index=0,
               delta=w if i == 0 else " " + w, logprobs=[])
        ev("response.output_text.done", item_id=mid, output_index=oi, content_index=0,
           text=content, logprobs=[])
        ev("response.content_part.done", item_id=mid, output_index=oi, content_index=0,
           part=msg["content"][0])
        ev("response.output_item.done", done=msg, output_index=oi, item=msg)
        terminal = "response.incomplete" if resp["status"] == "incomplete" else "response.completed"
        ev(terminal, response=resp)

        STATE.update(self.entry, usage_sent=usage, events_sent=0, stream_outcome="started")
        sent = 0
        outcome = "incomplete" if resp["status"] == "incomplete" else "complete"
        done_items = []

        def write(data):
            chunk = ("event: %s\ndata: %s\n\n" % (data["type"], json.dumps(data))).encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()

        try:
            self._start_sse(extra)
            for d, done in events:
                if error_after is not None and sent >= int(error_after):
                    outcome = "error_after"
                    self._drop()
                    break
                if end_after is not None and sent >= int(end_after):
                    outcome = "end_after"
                    self._end_chunked()
                    break
                if error_event_after is not None and sent >= int(error_event_after):
                    outcome = "error_event"
                    write({"type": "error", "code": "server_error",
                           "message": "fake upstream failed mid-stream",
                           "param": None, "sequence_number": sent})
                    self._end_chunked()
                    break
                if failed_after is not None and sent >= int(failed_after):
                    outcome = "failed"
                    fusage = usage if spec.get("failed_usage") else None
                    failed = dict(resp, status="failed", incomplete_details=None,
                                  error={"code": "server_error",
                                         "message": "fake upstream failed mid-stream"},
                                  output=done_items, usage=fusage)
                    if store:
                        STATE.store_response(failed)
                    STATE.update(self.entry, usage_sent=fusage)
                    write({"type": "response.failed", "sequence_number": sent,
                           "response": failed})
                    self._end_chunked()
                    break
                if interval and sent > 0:
                    time.sleep(interval)
                write(d)
                sent += 1
                STATE.update(self.entry, events_sent=sent)
                if done is not None:
                    done_items.append(done)
            else:
                self._end_chunked()
        except (BrokenPipeError, ConnectionResetError):
            outcome = "client_gone"
            self.close_connection = True
        STATE.update(self.entry, events_sent=sent, stream_outcome=outcome,
                     stream_end=time.time())

    def _responses_by_id(self, rid, sub):
        rid = urllib.parse.unquote(rid)
        stored = STATE.get_response(rid)
        if stored is None:
            self._send(404, _error("No response found with id '%s'." % rid, 404,
                                   param="response_id", code="not_found"))
            return
        if self.command == "DELETE":
            STATE.delete_response(rid)
            self._send(200, {"id": rid, "object": "response", "deleted": True})
        elif sub == "/cancel":
            resp = dict(stored["response"], status="cancelled")
            STATE.store_response(resp)
            self._send(200, resp)
        elif sub == "/input_items":
            q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            items = list(stored["input_items"])
            if q.get("order", ["desc"])[0] != "asc":
                items.reverse()
            after = q.get("after", [None])[0]
            if after is not None:
                ids = [it.get("id") for it in items]
                items = items[ids.index(after) + 1:] if after in ids else []
            try:
                limit = min(100, max(1, int(q.get("limit", ["20"])[0])))
            except ValueError:
                limit = 20
            data = items[:limit]
            self._send(200, {"object": "list", "data": data,
                             "first_id": data[0].get("id") if data else None,
                             "last_id": data[-1].get("id") if data else None,
                             "has_more": len(items) > limit})
        else:
            self._send(200, stored["response"])

    # -- Anthropic Messages API --
    def _anth_begin(self, body):
        """Like _begin, in Anthropic's way: the x-api-key and
        anthropic-version headers first, then the body, then the scripted
        answers (errors in Anthropic's envelope)."""
        if not self.headers.get("x-api-key"):
            self._send(401, _anth_error("x-api-key header is required", 401))
            return None
        if not self.headers.get("anthropic-version"):
            self._send(400, _anth_error("anthropic-version: header is required", 400))
            return None
        try:
            req = json.loads(body or b"null")
        except ValueError:
            req = None
        if not isinstance(req, dict):
            self._send(400, _anth_error("fake: body is not a JSON object", 400))
            return None
        spec = self._spec(req)
        if self._scripted(spec, _anth_status_error):
            return None
        return req, spec, spec.get("headers") or {}

    def _messages(self, seq, body):
        got = self._anth_begin(body)
        if got is None:
            return
        req, spec, extra = got
        bad = _anth_invalid(req)
        if bad:
            self._send(400, _anth_error(bad, 400))
            return
        usage = _anth_usage(spec)
        content = _content(spec)
        blocks = []
        if content is not None:
            blocks.append({"type": "text", "text": content})
        tools = spec.get("tool_use") if isinstance(spec.get("tool_use"), list) else []
        for i, t in enumerate(tools):
            t = t if isinstance(t, dict) else {}
            blocks.append({"type": "tool_use", "id": "toolu_fake_%d_%d" % (seq, i),
                           "name": t.get("name", "fake_tool"), "input": t.get("input", {})})
        msg = {"id": "msg_fake_%d" % seq, "type": "message", "role": "assistant",
               "model": req["model"], "content": blocks,
               "stop_reason": spec.get("stop_reason", "tool_use" if tools else "end_turn"),
               "stop_sequence": spec.get("stop_sequence")}
        if usage is not None:
            msg["usage"] = usage
        if req.get("stream") is True:
            self._messages_stream(msg, usage, spec, extra)
            return
        self._send(int(spec.get("status", 200)), msg, extra=extra)

    def _messages_stream(self, msg, usage, spec, extra):
        """The Messages API's server-sent events (see the module
        docstring)."""
        interval = float(spec.get("stream_interval") or 0)
        error_after = spec.get("error_after")
        error_event_after = spec.get("error_event_after")
        end_after = spec.get("end_after")
        events = []

        def ev(typ, **fields):
            d = {"type": typ}
            d.update(fields)
            events.append(d)

        start = dict(msg, content=[], stop_reason=None, stop_sequence=None)
        start.pop("usage", None)
        if usage is not None:
            start["usage"] = {k: usage[k] for k in (
                "input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
                "cache_creation") if k in usage}
            start["usage"]["output_tokens"] = 1
        ev("message_start", message=start)
        ev("ping")
        for index, block in enumerate(msg["content"]):
            if block["type"] == "text":
                ev("content_block_start", index=index,
                   content_block={"type": "text", "text": ""})
                text = block["text"]
                words = text.split(" ") if isinstance(text, str) and text else []
                for i, w in enumerate(words):
                    ev("content_block_delta", index=index,
                       delta={"type": "text_delta", "text": w if i == 0 else " " + w})
            else:
                ev("content_block_start", index=index,
                   content_block=dict(block, input={}))
                js = json.dumps(block["input"])
                for piece in [""] + [js[i:i + 8] for i in range(0, len(js), 8)]:
                    ev("content_block_delta", index=index,
                       delta={"type": "input_json_delta", "partial_json": piece})
            ev("content_block_stop", index=index)
        steps = spec.get("delta_usage_steps")
        steps = steps if _int(steps) and steps > 1 and usage is not None else 1
        for k in range(1, steps + 1):
            last = k == steps
            delta = {"stop_reason": msg["stop_reason"] if last else None,
                     "stop_sequence": msg["stop_sequence"] if last else None}
            if usage is None:
                ev("message_delta", delta=delta)
                continue
            out = usage["output_tokens"]
            if not last and _int(out):
                out = out * k // steps
            du = {key: usage[key] for key in (
                "input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")}
            du["output_tokens"] = out
            if "server_tool_use" in usage:
                du["server_tool_use"] = usage["server_tool_use"]
            ev("message_delta", delta=delta, usage=du)
        ev("message_stop")

        STATE.update(self.entry, usage_sent=usage, events_sent=0, stream_outcome="started")
        sent = 0
        outcome = "complete"

        def write(data):
            chunk = ("event: %s\ndata: %s\n\n" % (data["type"], json.dumps(data))).encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()

        try:
            self._start_sse(extra)
            for d in events:
                if error_after is not None and sent >= int(error_after):
                    outcome = "error_after"
                    self._drop()
                    break
                if end_after is not None and sent >= int(end_after):
                    outcome = "end_after"
                    self._end_chunked()
                    break
                if error_event_after is not None and sent >= int(error_event_after):
                    outcome = "error_event"
                    write({"type": "error", "error": {"type": "overloaded_error",
                                                      "message": "Overloaded"}})
                    self._end_chunked()
                    break
                if interval and sent > 0:
                    time.sleep(interval)
                write(d)
                sent += 1
                STATE.update(self.entry, events_sent=sent)
            else:
                self._end_chunked()
        except (BrokenPipeError, ConnectionResetError):
            outcome = "client_gone"
            self.close_connection = True
        STATE.update(self.entry, events_sent=sent, stream_outcome=outcome,
                     stream_end=time.time())

    def _count_tokens(self, body):
        got = self._anth_begin(body)
        if got is None:
            return
        req, spec, extra = got
        bad = _anth_invalid(req, count_tokens=True)
        if bad:
            self._send(400, _anth_error(bad, 400))
            return
        u = spec.get("usage")
        n = u["input_tokens"] if isinstance(u, dict) and "input_tokens" in u else _anth_count(req)
        self._send(int(spec.get("status", 200)), {"input_tokens": n}, extra=extra)

    # -- Embeddings --
    def _embeddings(self, body):
        got = self._begin(body)
        if got is None:
            return
        req, spec, extra = got
        batch = _batch(req.get("input"))
        if batch is None:
            self._send(400, _error("'$.input' is invalid: a string, an array of strings, "
                                   "an array of tokens or an array of token arrays",
                                   400, param="input"))
            return
        dims = req.get("dimensions", 8)
        if not _int(dims) or dims < 1:
            self._send(400, _error("'dimensions' must be a positive integer", 400,
                                   param="dimensions"))
            return
        fmt = req.get("encoding_format")
        if fmt not in (None, "float", "base64"):
            self._send(400, _error("'encoding_format' must be 'float' or 'base64'", 400,
                                   param="encoding_format"))
            return
        data = []
        prompt_tokens = 0
        for i, (kind, v) in enumerate(batch):
            if kind == "text":
                key = v
                prompt_tokens += max(1, -(-len(v.encode("utf-8", "surrogatepass")) // 4))
            else:
                key = "tokens:" + ",".join(str(t) for t in v)
                prompt_tokens += len(v)
            vec = _embedding(key, dims)
            if fmt == "base64":
                vec = base64.b64encode(struct.pack("<%df" % dims, *vec)).decode()
            data.append({"object": "embedding", "index": i, "embedding": vec})
        resp = {"object": "list", "data": data, "model": req.get("model", "fake")}
        if not ("usage" in spec and spec["usage"] is None):
            usage = {"prompt_tokens": prompt_tokens}
            if isinstance(spec.get("usage"), dict):
                usage.update(spec["usage"])
            usage.setdefault("total_tokens", usage["prompt_tokens"])
            resp["usage"] = usage
        self._send(200, resp, extra=extra)

    # -- legacy completions --
    def _completions(self, seq, body):
        got = self._begin(body)
        if got is None:
            return
        req, spec, extra = got
        batch = _batch(req.get("prompt", ""))
        if batch is None:
            self._send(400, _error("'$.prompt' is invalid: a string, an array of strings, "
                                   "an array of tokens or an array of token arrays",
                                   400, param="prompt"))
            return
        content = _content(spec)
        usage = _usage(spec)
        if spec.get("ignore_string_bound") and usage is not None:
            bound = req.get("max_tokens")
            if _int(bound):
                usage["completion_tokens"] = min(bound, int(usage["completion_tokens"]))
                usage["total_tokens"] = (int(usage.get("prompt_tokens") or 0)
                                         + usage["completion_tokens"])
        n = req.get("n") if _int(req.get("n")) and req.get("n") > 1 else 1
        echo = req.get("echo") is True
        model = req.get("model", "fake")
        cid = "cmpl-fake-%d" % seq
        created = int(time.time())
        prefixes = []  # per choice, the echoed prompt
        for kind, v in batch:
            for _ in range(n):
                prefixes.append(v if echo and kind == "text" else "")
        if req.get("stream"):
            so = req.get("stream_options") or {}
            include_usage = isinstance(so, dict) and so.get("include_usage") is True
            base = {"id": cid, "object": "text_completion", "created": created, "model": model}
            words = content.split(" ") if content else []
            events = []
            for idx, prefix in enumerate(prefixes):
                pieces = ([prefix] if prefix else []) + [
                    w if i == 0 else " " + w for i, w in enumerate(words)]
                for piece in pieces:
                    events.append(dict(base, choices=[{"text": piece, "index": idx,
                                                       "logprobs": None,
                                                       "finish_reason": None}]))
                events.append(dict(base, choices=[{"text": "", "index": idx,
                                                   "logprobs": None, "finish_reason": "stop"}]))
            if include_usage and usage is not None and not spec.get("no_usage"):
                events.append(dict(base, choices=[], usage=usage))
            self._sse_send(events, usage, include_usage, extra, spec)
            return
        resp = {
            "id": cid,
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": [{"text": prefix + content, "index": idx, "logprobs": None,
                         "finish_reason": "stop"} for idx, prefix in enumerate(prefixes)],
        }
        if usage is not None:
            resp["usage"] = usage
        self._send(200, resp, extra=extra)


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
