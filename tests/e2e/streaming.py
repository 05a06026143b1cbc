#!/usr/bin/env python3
"""streaming: "stream": true through lighttpd (SPEC 4.5, 4.3, 7 mock/).

1. Events are relayed as they arrive (the fake sends them 200 ms apart and
   the client sees them spread out, not in one burst); tollgate asks the
   upstream for stream_options.include_usage and drops the usage-only chunk
   from a client that did not ask for it; the charge is the cost of the
   upstream's usage, settled before [DONE] reaches the client.
2. A client that asks for include_usage gets the usage chunk, with "cost"
   equal to the charge; [DONE] is last.
3. A client that goes away mid-stream: the upstream is still read to its
   end and its real usage charged.
4. An upstream stream without usage: charged on an estimate (> 0), flagged
   usage_estimated in the ledger row's metadata.
   Usage in the finish_reason chunk (Mistral's way) is read too.
5. An upstream that dies mid-stream (connection cut, an SSE error event,
   or a stall past the timeout): the client gets an SSE error event in
   OpenAI's shape and the tokens produced are charged, on a ledger row
   naming the deployment.
6. mock/ models stream too (chat and the Responses API), and are charged.
7. 20 parallel streams for a customer whose budget admits about 8: spend
   never exceeds max_budget, equals the ledger sum; the refused get a 429
   budget_exceeded JSON answer before any stream began.
"""

import collections
import os
import re
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Decimal, cost, dec, wait_for  # noqa: E402

MOCK_RESPONSE = "one two three four five six seven eight"


def is_usage_chunk(ev):
    js = ev.get("json")
    return isinstance(js, dict) and bool(js.get("usage")) and js.get("choices") == []


def any_usage(events):
    return [e for e in events if isinstance(e.get("json"), dict) and e["json"].get("usage")]


def text_of(events):
    out = []
    for e in events:
        js = e.get("json")
        if not isinstance(js, dict):
            continue
        for ch in js.get("choices") or []:
            c = (ch.get("delta") or {}).get("content")
            if isinstance(c, str):
                out.append(c)
    return "".join(out)


def customer(t, env, user, max_budget=10):
    r = env.customer_new(user_id=user, max_budget=max_budget)
    t.is_eq(r.status, 200, "customer/new %s" % user)


def settled(t, env, user, what):
    """Customer spend == ledger sum, nothing reserved."""
    row = env.customer_row(user) or {}
    t.is_eq(row.get("spend"), env.ledger_sum(user), "%s: spend == SUM(spend_logs.spend)" % what)
    t.is_eq(row.get("reserved"), Decimal(0), "%s: nothing left reserved" % what)
    return row.get("spend")


def last_upstream(env):
    reqs = env.upstream.requests()
    return reqs[-1] if reqs else {}


def spread(t, env):
    user = "st-spread"
    customer(t, env, user)
    env.upstream.reset()
    seen_at_done = {}

    def on_event(resp, ev):
        # Settlement happens before [DONE] is passed on: when the client
        # has [DONE], the ledger row must already be there.
        if ev["done"]:
            seen_at_done["row"] = env.ledger_row(resp.header("x-litellm-call-id") or "")

    r = env.stream_chat(user=user, content="count to five",
                        fake={"chunks": 5, "stream_interval": 0.2,
                              "usage": {"prompt_tokens": 11, "completion_tokens": 7}},
                        on_event=on_event)
    t.is_eq(r.status, 200, "stream: 200")
    t.like(r.header("content-type", ""), r"^text/event-stream", "stream: text/event-stream")
    call_id = r.header("x-litellm-call-id")
    t.ok(bool(call_id), "stream: x-litellm-call-id header")
    ev = r.events
    t.ok(bool(ev) and ev[-1]["done"], "stream: data: [DONE] is the last event",
         "events: %r" % [e["data"][:60] for e in ev])
    t.is_eq(sum(1 for e in ev if e["done"]), 1, "stream: exactly one [DONE]")
    data = r.data_events()
    t.is_eq(len(data), 7, "stream: role + 5 content + finish events relayed (no usage chunk)",
            "events: %r" % [e["data"][:80] for e in ev])
    t.ok(all(isinstance(e["json"], dict) and e["json"].get("object") == "chat.completion.chunk"
             for e in data), "stream: every event is a chat.completion.chunk")
    t.is_eq(text_of(data), "tok1 tok2 tok3 tok4 tok5", "stream: the content arrives unchanged")
    t.is_eq(any_usage(ev), [], "stream: the client did not ask, so no usage chunk reaches it")
    if len(data) >= 7:
        t.diag("stream arrival through lighttpd, seconds after the request: %s"
               % ", ".join("%.3f" % e["t"] for e in ev))
        gap = data[-1]["t"] - data[0]["t"]
        t.cmp_ok(gap, ">=", 0.8, "stream: events spread over time (first to last %.2f s)" % gap)
        t.cmp_ok(data[1]["t"], "<", data[-1]["t"] - 0.6,
                 "stream: the first content event arrives well before the last")
        steps = sum(1 for a, b in zip(data, data[1:]) if b["t"] - a["t"] >= 0.1)
        t.cmp_ok(steps, ">=", 4, "stream: relayed event by event (%d gaps >= 0.1 s), not in a burst"
                 % steps)
    up = last_upstream(env)
    js = up.get("json") or {}
    t.ok(js.get("stream") is True, "upstream got stream: true")
    t.is_eq(js.get("stream_options"), {"include_usage": True},
            "upstream got stream_options.include_usage true although the client did not ask")
    t.is_eq(up.get("stream_outcome"), "complete", "upstream stream read to its end")
    row = env.ledger_row(call_id or "")
    want = cost(11, 7)
    if t.ok(row is not None, "stream: spend_logs row for the call id"):
        t.is_eq((row["status"], row["spend"]), ("success", want),
                "stream: ledger row success, spend = the usage's cost")
        t.is_eq((row["prompt_tokens"], row["completion_tokens"]), ("11", "7"),
                "stream: ledger token counts from the usage chunk")
        t.ok(not (isinstance(row["metadata"], dict) and row["metadata"].get("usage_estimated")),
             "stream: real usage is not flagged estimated", "metadata %r" % (row["metadata"],))
    t.ok(seen_at_done.get("row") is not None,
         "stream: the ledger row exists when the client receives [DONE]")
    spend = settled(t, env, user, "stream")
    t.is_eq(spend, want, "stream: customer spend = cost of the upstream's usage")

    # include_usage explicitly false: same as not asking.
    env.upstream.reset()
    r = env.stream_chat(user=user, fake={"chunks": 2, "usage": {"prompt_tokens": 5,
                                                                "completion_tokens": 4}},
                        extra={"stream_options": {"include_usage": False}})
    t.is_eq(r.status, 200, "include_usage false: 200")
    t.is_eq(any_usage(r.events), [], "include_usage false: no usage chunk to the client")
    t.is_eq((last_upstream(env).get("json") or {}).get("stream_options"), {"include_usage": True},
            "include_usage false: upstream asked for usage anyway")
    t.ok(bool(r.events) and r.events[-1]["done"], "include_usage false: [DONE] last")
    spend = settled(t, env, user, "include_usage false")
    t.is_eq(spend, want + cost(5, 4), "include_usage false: charged the usage")


def client_usage(t, env):
    user = "st-usage"
    customer(t, env, user)
    env.upstream.reset()
    r = env.stream_chat(user=user, fake={"chunks": 3, "usage": {"prompt_tokens": 13,
                                                                "completion_tokens": 9}},
                        extra={"stream_options": {"include_usage": True}},
                        path="/v1/chat/completions")
    t.is_eq(r.status, 200, "client include_usage: 200")
    ev = r.events
    t.ok(bool(ev) and ev[-1]["done"], "client include_usage: [DONE] is last")
    usage_ev = [e for e in ev if is_usage_chunk(e)]
    want = cost(13, 9)
    if t.is_eq(len(usage_ev), 1, "client include_usage: the usage chunk reaches the client",
               "events: %r" % [e["data"][:100] for e in ev]):
        t.ok(len(ev) >= 2 and ev[-2] is usage_ev[0],
             "client include_usage: the usage chunk comes right before [DONE]")
        u = usage_ev[0]["json"]["usage"]
        t.is_eq((u.get("prompt_tokens"), u.get("completion_tokens"), u.get("total_tokens")),
                (13, 9, 22), "client include_usage: usage relayed")
        c = u.get("cost")
        t.ok(isinstance(c, (int, Decimal)) and not isinstance(c, bool),
             "client include_usage: usage.cost is a JSON number", "got %r" % (c,))
        t.is_eq(dec(c) if not isinstance(c, bool) and c is not None else None, want,
                "client include_usage: usage.cost = the charge")
        m = re.search(r'"cost"\s*:\s*([-+0-9.eE]+)', usage_ev[0]["data"])
        t.like(m.group(1) if m else None, r"^[0-9]+(\.[0-9]+)?$",
               "client include_usage: cost printed as a plain decimal")
    t.is_eq((last_upstream(env).get("json") or {}).get("stream_options"), {"include_usage": True},
            "client include_usage: the client's stream_options forwarded")
    row = env.ledger_row(r.header("x-litellm-call-id") or "")
    t.is_eq(row and row["spend"], want, "client include_usage: ledger spend = usage.cost")
    t.is_eq(settled(t, env, user, "client include_usage"), want,
            "client include_usage: customer charged once")


def disconnect(t, env):
    user = "st-gone"
    customer(t, env, user)
    env.upstream.reset()
    r = env.stream_chat(user=user, close_after=1,
                        fake={"chunks": 10, "stream_interval": 0.2,
                              "usage": {"prompt_tokens": 21, "completion_tokens": 33}})
    t.is_eq(r.status, 200, "disconnect: stream started")
    t.ok(r.closed_early, "disconnect: the client went away after the first event")
    call_id = r.header("x-litellm-call-id") or ""
    up = wait_for(lambda: [q for q in env.upstream.requests()
                           if q.get("stream_outcome") not in (None, "started")], timeout=10)
    up = up[-1] if up else {}
    t.is_eq(up.get("stream_outcome"), "complete",
            "disconnect: tollgate still read the upstream stream to its end")
    t.is_eq(up.get("events_sent"), 13, "disconnect: all 13 upstream events were read")
    row = wait_for(lambda: env.ledger_row(call_id), timeout=10)
    want = cost(21, 33)
    if t.ok(row is not None, "disconnect: a ledger row for the call id"):
        t.is_eq((row["status"], row["spend"]), ("success", want),
                "disconnect: ledger row success, spend = the real usage's cost")
    wait_for(lambda: (env.customer_row(user) or {}).get("reserved") == 0, timeout=5)
    t.is_eq(settled(t, env, user, "disconnect"), want, "disconnect: the real usage is charged")


def no_usage(t, env):
    user = "st-nousage"
    customer(t, env, user)
    content = "alpha beta gamma delta epsilon"
    r = env.stream_chat(user=user, fake={"content": content, "no_usage": True})
    t.is_eq(r.status, 200, "no usage: 200")
    t.ok(bool(r.events) and r.events[-1]["done"], "no usage: [DONE] last")
    t.is_eq(text_of(r.events), content, "no usage: content relayed")
    row = env.ledger_row(r.header("x-litellm-call-id") or "")
    if t.ok(row is not None, "no usage: a ledger row"):
        t.cmp_ok(row["spend"], ">", 0, "no usage: charged more than zero")
        meta = row["metadata"] if isinstance(row["metadata"], dict) else {}
        t.ok(meta.get("usage_estimated") is True, "no usage: metadata usage_estimated true",
             "metadata %r" % (row["metadata"],))
        ct = int(row["completion_tokens"] or 0)
        t.cmp_ok(ct, ">=", len(content.encode()),
                 "no usage: completion estimated with bytes as the upper bound")
        t.cmp_ok(int(row["prompt_tokens"] or 0), ">", 0, "no usage: prompt tokens estimated > 0")
        t.is_eq(row["spend"], cost(int(row["prompt_tokens"] or 0), ct),
                "no usage: spend = the estimated tokens' cost")
    settled(t, env, user, "no usage")


def usage_in_last_chunk(t, env):
    """Some servers (Mistral, ...) put usage in the finish_reason chunk."""
    user = "st-lastusage"
    customer(t, env, user)
    r = env.stream_chat(user=user, fake={"chunks": 2, "usage_in_last_chunk": True,
                                         "usage": {"prompt_tokens": 8, "completion_tokens": 12}})
    t.is_eq(r.status, 200, "usage in the last choice chunk: 200")
    t.is_eq(text_of(r.events), "tok1 tok2", "usage in the last choice chunk: content relayed")
    t.ok(bool(r.events) and r.events[-1]["done"], "usage in the last choice chunk: [DONE] last")
    row = env.ledger_row(r.header("x-litellm-call-id") or "")
    if t.ok(row is not None, "usage in the last choice chunk: a ledger row"):
        t.is_eq((row["status"], row["spend"]), ("success", cost(8, 12)),
                "usage in the last choice chunk: charged that usage exactly")
    settled(t, env, user, "usage in the last choice chunk")


def upstream_error(t, env):
    user = "st-cut"
    customer(t, env, user)
    env.upstream.reset()
    r = env.stream_chat(user=user, fake={"chunks": 6, "error_after": 2})
    t.is_eq(r.status, 200, "cut stream: 200 (the stream had begun)")
    errs = [e for e in r.events if isinstance(e.get("json"), dict) and "error" in e["json"]]
    if t.ok(bool(errs), "cut stream: an SSE error event reaches the client",
            "events: %r" % [e["data"][:100] for e in r.events]):
        e = errs[-1]["json"]["error"]
        t.ok(isinstance(e, dict) and isinstance(e.get("message"), str) and
             isinstance(e.get("type"), str),
             "cut stream: error event in OpenAI's shape data: {\"error\": {message, type...}}",
             "got %r" % (e,))
    t.is_eq(text_of(r.events), "tok1", "cut stream: the events before the cut were relayed")
    row = env.ledger_row(r.header("x-litellm-call-id") or "")
    if t.ok(row is not None, "cut stream: a ledger row"):
        t.cmp_ok(row["spend"], ">", 0, "cut stream: what was produced is charged")
        t.is_eq((row["model_id"], row["api_base"]), ("openai/fake-gpt", env.upstream.base + "/v1"),
                "cut stream: the ledger row names the deployment (model_id, api_base)")
    settled(t, env, user, "cut stream")

    # The upstream stalls mid-stream past the model's 1 s timeout.
    user = "st-stall"
    customer(t, env, user)
    r = env.stream_chat(user=user, model="fake-slow",
                        fake={"chunks": 4, "stream_interval": 0.7})
    t.is_eq(r.status, 200, "stalled stream: 200 (the stream had begun)")
    t.cmp_ok(r.elapsed, "<", 2.5, "stalled stream: ended by the 1 s timeout, not the upstream")
    errs = [e for e in r.events if isinstance(e.get("json"), dict) and "error" in e["json"]]
    t.ok(bool(errs) and errs[-1]["json"]["error"].get("type") == "timeout_error",
         "stalled stream: an SSE error event of type timeout_error",
         "events: %r" % [e["data"][:100] for e in r.events])
    row = env.ledger_row(r.header("x-litellm-call-id") or "")
    if t.ok(row is not None, "stalled stream: a ledger row"):
        t.cmp_ok(row["spend"], ">", 0, "stalled stream: what was produced is charged")
        t.is_eq((row["model_id"], row["api_base"]), ("openai/fake-gpt", env.upstream.base + "/v1"),
                "stalled stream: the ledger row names the deployment (model_id, api_base)")
    settled(t, env, user, "stalled stream")

    user = "st-errev"
    customer(t, env, user)
    r = env.stream_chat(user=user, fake={"chunks": 6, "error_event_after": 3})
    t.is_eq(r.status, 200, "upstream error event: 200")
    errs = [e for e in r.events if isinstance(e.get("json"), dict) and "error" in e["json"]]
    t.ok(bool(errs), "upstream error event: relayed to the client",
         "events: %r" % [e["data"][:100] for e in r.events])
    row = env.ledger_row(r.header("x-litellm-call-id") or "")
    if t.ok(row is not None, "upstream error event: a ledger row"):
        t.cmp_ok(row["spend"], ">", 0, "upstream error event: what was produced is charged")
    settled(t, env, user, "upstream error event")


def mock_stream(t, env):
    user = "st-mock"
    customer(t, env, user)
    r = env.stream_chat(user=user, model="mock-gpt",
                        extra={"stream_options": {"include_usage": True}})
    t.is_eq(r.status, 200, "mock stream: 200")
    t.like(r.header("content-type", ""), r"^text/event-stream", "mock stream: text/event-stream")
    t.ok(bool(r.events) and r.events[-1]["done"], "mock stream: [DONE] last")
    t.is_eq(text_of(r.events), MOCK_RESPONSE, "mock stream: mock_response streamed")
    usage_ev = [e for e in r.events if is_usage_chunk(e)]
    row = env.ledger_row(r.header("x-litellm-call-id") or "")
    if t.is_eq(len(usage_ev), 1, "mock stream: usage chunk (client asked)"):
        u = usage_ev[0]["json"]["usage"]
        pt, ct = u.get("prompt_tokens"), u.get("completion_tokens")
        if t.ok(isinstance(pt, int) and isinstance(ct, int) and ct > 0,
                "mock stream: usage counted", "usage %r" % (u,)):
            want = cost(pt, ct)
            t.is_eq(dec(u.get("cost")) if u.get("cost") is not None else None, want,
                    "mock stream: usage.cost = priced usage")
            t.is_eq(row and row["spend"], want, "mock stream: ledger spend = priced usage")
    if row:
        t.is_eq(row["status"], "success", "mock stream: ledger row success")
    r = env.stream_chat(user=user, model="mock-gpt")
    t.is_eq(r.status, 200, "mock stream without include_usage: 200")
    t.is_eq(any_usage(r.events), [], "mock stream without include_usage: no usage chunk")
    row = env.ledger_row(r.header("x-litellm-call-id") or "")
    t.cmp_ok(row and row["spend"], ">", 0, "mock stream without include_usage: charged")
    settled(t, env, user, "mock stream")
    # The Responses API's stream from the mock: created, the message item,
    # its text's delta and done, the item done, completed with usage.
    body = {"model": "mock-gpt", "user": user, "input": "hi", "stream": True}
    r = env.stream_chat(body=body, path="/v1/responses")
    t.is_eq(r.status, 200, "mock responses stream: 200")
    evs = [e["json"] for e in r.events if isinstance(e.get("json"), dict)]
    types = [e.get("type") for e in evs]
    t.is_eq(types, ["response.created", "response.output_item.added",
                    "response.output_text.delta", "response.output_text.done",
                    "response.output_item.done", "response.completed"],
            "mock responses stream: the events in order")
    t.is_eq([e.get("sequence_number") for e in evs], list(range(len(evs))),
            "mock responses stream: sequence numbers 0, 1, ...")
    texts = [e.get("delta") for e in evs if e.get("type") == "response.output_text.delta"]
    texts += [e.get("text") for e in evs if e.get("type") == "response.output_text.done"]
    t.is_eq(texts, [MOCK_RESPONSE, MOCK_RESPONSE],
            "mock responses stream: the delta and the done text are mock_response")
    t.ok(all(e.get("item_id", "").startswith("msg_mock_") and e.get("output_index") == 0
             and e.get("content_index") == 0 for e in evs if "text" in e or "delta" in e),
         "mock responses stream: the text events name the message item")
    usage = evs[-1].get("response", {}).get("usage") if evs else None
    row = env.ledger_row(r.header("x-litellm-call-id") or "")
    if t.ok(isinstance(usage, dict) and usage.get("output_tokens", 0) > 0,
            "mock responses stream: completed carries usage", repr(usage)):
        t.is_eq(row and row["spend"], cost(usage["input_tokens"], usage["output_tokens"]),
                "mock responses stream: charged its usage")
    settled(t, env, user, "mock responses stream")


def parallel_budget(t, env, srv):
    user = "st-race"
    max_tokens = 30
    allowed = 8
    body, n = H.exact_chat_body("fake-gpt", user, max_tokens, extra={"stream": True},
                                fake={"chunks": 3, "stream_interval": 0.1})
    est = cost(n, max_tokens)
    max_budget = est * allowed + est / 2
    r = env.customer_new(user_id=user, max_budget=str(max_budget), server=srv)
    if not t.is_eq(r.status, 200, "customer/new %s with max_budget %s" % (user, max_budget)):
        return
    env.upstream.reset()
    go = threading.Event()

    def job():
        go.wait()
        try:
            return H.http_stream(srv.port, "/chat/completions", body, timeout=60)
        except Exception as e:  # a transport error is a result too
            return e

    with ThreadPoolExecutor(max_workers=20) as ex:
        futs = [ex.submit(job) for _ in range(20)]
        go.set()
        results = [f.result() for f in futs]
    transport = [x for x in results if isinstance(x, Exception)]
    t.is_eq(transport, [], "parallel streams: no transport errors")
    resps = [x for x in results if not isinstance(x, Exception)]
    statuses = collections.Counter(x.status for x in resps)
    admitted = statuses.get(200, 0)
    t.is_eq(set(statuses) - {200, 429}, set(), "parallel streams: only 200 and 429",
            "statuses %r" % dict(statuses))
    t.ok(allowed - 2 <= admitted <= allowed,
         "parallel streams: about %d admitted (%d)" % (allowed, admitted),
         "statuses %r" % dict(statuses))
    ok_streams = [x for x in resps if x.status == 200]
    t.ok(all(x.events and x.events[-1]["done"] for x in ok_streams),
         "parallel streams: every admitted stream ends with [DONE]")
    refused = [x for x in resps if x.status == 429]
    t.ok(all(x.error.get("type") == "budget_exceeded" and not x.events and
             not x.header("content-type", "").startswith("text/event-stream") for x in refused),
         "parallel streams: the refused got a 429 budget_exceeded JSON answer, no stream",
         "first refused: %r %r" % (refused[:1], refused[0].headers if refused else None))
    t.ok(all(x.header("x-should-retry") == "false" for x in refused),
         "parallel streams: the refused carry x-should-retry: false")
    row = env.customer_row(user) or {}
    t.cmp_ok(row.get("spend"), "<=", max_budget, "parallel streams: spend never exceeds max_budget")
    t.is_eq(row.get("spend"), est * admitted, "parallel streams: spend = admitted x cost")
    t.is_eq(row.get("spend"), env.ledger_sum(user), "parallel streams: spend == ledger sum")
    t.is_eq(row.get("reserved"), Decimal(0), "parallel streams: nothing left reserved")
    t.is_eq(len(env.upstream.requests()), admitted,
            "parallel streams: only the admitted reached the upstream")


def main(t, env):
    models = [env.model("fake-gpt"),
              env.model("fake-slow", upstream_model="fake-gpt", timeout=1),
              {"model_name": "mock-gpt",
               "litellm_params": {"model": "mock/mock-gpt", "mock_response": MOCK_RESPONSE},
               "model_info": {"input_cost_per_token": H.IN_PRICE,
                              "output_cost_per_token": H.OUT_PRICE}}]
    cfg = env.write_config("main", env.config(models=models))
    srv = env.start_lighttpd(cfg, max_procs=8)
    spread(t, env)
    client_usage(t, env)
    disconnect(t, env)
    no_usage(t, env)
    usage_in_last_chunk(t, env)
    upstream_error(t, env)
    mock_stream(t, env)
    parallel_budget(t, env, srv)


if __name__ == "__main__":
    H.run(main)
