#!/usr/bin/env python3
"""translate: any client to any model, through the meter (lib/translate_*.c).

The fake upstream is told what to answer through its queue (POST /_next):
a translated request carries none of the client's unknown fields.

1. Chat completions on an anthropic/ deployment: system and developer
   messages become "system", images (data: and https URLs) image blocks,
   tools and tool_choice Anthropic's, stop stop_sequences, "user"
   metadata.user_id, the output bound max_tokens (the hold's: the
   request's, else the model's maximum, else default_max_tokens); the answer is a chat.completion with finish_reason
   mapped and the cache tokens in its usage, charged at Anthropic's rates
   (Claude Sonnet 4.5's shipped prices).
2. A tool-call round trip: tool_use -> tool_calls, and back: the
   assistant's tool_calls -> tool_use blocks, "tool" messages ->
   tool_result blocks of one user message.
3. Streams: Anthropic's events -> chat.completion.chunks (role, content,
   tool call deltas, finish_reason, the usage chunk with its cost when
   asked, [DONE] after the settlement).
4. Errors: an Anthropic error -> OpenAI's envelope with its message; n > 1
   and a bad image refused before anything is sent.
5. /v1/messages on an OpenAI-format deployment: the reverse (system ->
   a system message, tool_use/tool_result -> tool_calls and "tool"
   messages, stop_sequences -> stop, metadata.user_id -> user, a stream
   asks for its usage), the answer a message with the cached part of the
   prompt as cache_read_input_tokens; streamed, Anthropic's events with a
   tool_use block built from tool call deltas; server tools refused.
"""

import json
import os
import sys

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Decimal  # noqa: E402

IN = Decimal("3e-06")
OUT = Decimal("1.5e-05")
READ = Decimal("3e-07")
WRITE_5M = Decimal("3.75e-06")
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def call_id(r):
    return r.header("x-litellm-call-id") or ""


def last_post(env):
    posts = [q for q in env.upstream.requests() if q["method"] == "POST"]
    return posts[-1] if posts else {"path": "", "json": {}, "headers": {}}


def chat_to_claude(t, env):
    env.upstream.reset()
    env.upstream.next({"usage": {"input_tokens": 30, "cache_read_input_tokens": 100,
                                 "cache_creation_input_tokens": 40, "output_tokens": 12},
                       "content": "a picture of a dot"})
    body = {"model": "claude", "user": "tr-chat", "max_tokens": 50, "temperature": 0.5,
            "top_p": 0.9, "stop": "END",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Be kind."}]},
                {"role": "user", "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}],
            "tools": [{"type": "function", "function": {
                "name": "look", "description": "look closer",
                "parameters": {"type": "object", "properties": {"x": {"type": "number"}}}}}],
            "tool_choice": "required", "logprobs": False}
    r = env.request("POST", "/v1/chat/completions", body=body)
    t.is_eq(r.status, 200, "chat on an anthropic/ deployment: 200", r.text[:300])
    q = last_post(env)
    t.is_eq(q["path"], "/v1/messages", "the upstream is called on /v1/messages")
    t.is_eq(q["headers"].get("x-api-key"), H.UPSTREAM_KEY, "with x-api-key")
    want = {"model": "claude-up", "max_tokens": 50, "system": "Be brief.\n\nBe kind.",
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                             "data": PNG}},
                {"type": "image", "source": {"type": "url",
                                             "url": "https://example.com/a.png"}}]}],
            "tools": [{"name": "look", "description": "look closer",
                       "input_schema": {"type": "object",
                                        "properties": {"x": {"type": "number"}}}}],
            "tool_choice": {"type": "any"}, "stop_sequences": ["END"],
            "temperature": 0.5, "top_p": 0.9, "metadata": {"user_id": "tr-chat"}}
    t.is_eq(q["json"], want, "the request in Anthropic's shape (logprobs left out)")
    js = r.json or {}
    ch = (js.get("choices") or [{}])[0]
    t.is_eq((js.get("object"), ch.get("message", {}).get("content"), ch.get("finish_reason")),
            ("chat.completion", "a picture of a dot", "stop"),
            "the answer is a chat.completion, end_turn -> stop")
    u = js.get("usage") or {}
    t.is_eq((u.get("prompt_tokens"), u.get("completion_tokens"), u.get("total_tokens"),
             (u.get("prompt_tokens_details") or {}).get("cached_tokens"),
             u.get("cache_creation_input_tokens"), u.get("cache_read_input_tokens")),
            (170, 12, 182, 100, 40, 100),
            "usage: every input token in prompt_tokens, the cache reads as cached_tokens")
    want_cost = 30 * IN + 100 * READ + 40 * WRITE_5M + 12 * OUT
    t.is_eq((env.customer_row("tr-chat") or {}).get("spend"), want_cost,
            "charged at Anthropic's rates: %s" % want_cost)
    t.is_eq(env.sql("SELECT call_type FROM spend_logs WHERE request_id = %s"
                    % H.sql_quote(call_id(r))), [["acompletion"]],
            "the row's call_type is the route's (acompletion)")

    # No bound: the hold's (SPEC 4.3), the model's max_output_tokens
    # (64,000 for Claude Sonnet 4.5), else default_max_tokens (main: 64).
    for model, want in (("claude", 64000), ("claude-nomax", 64)):
        env.upstream.next({})
        r = env.request("POST", "/v1/chat/completions",
                        body={"model": model, "messages": [{"role": "user", "content": "hi"}]})
        t.is_eq((r.status, last_post(env)["json"].get("max_tokens")), (200, want),
                "%s without a bound: max_tokens %d" % (model, want), r.text[:200])


def tool_round_trip(t, env):
    env.upstream.reset()
    env.upstream.next({"content": None, "tool_use": [{"name": "get_weather",
                                                      "input": {"city": "Paris"}}]})
    tools = [{"type": "function", "function": {"name": "get_weather",
                                               "parameters": {"type": "object"}}}]
    msgs = [{"role": "user", "content": "weather in Paris?"}]
    r = env.request("POST", "/v1/chat/completions",
                    body={"model": "claude", "messages": msgs, "tools": tools})
    ch = ((r.json or {}).get("choices") or [{}])[0]
    calls = (ch.get("message") or {}).get("tool_calls") or [{}]
    t.is_eq((ch.get("finish_reason"), calls[0].get("type"),
             (calls[0].get("function") or {}).get("name"),
             json.loads((calls[0].get("function") or {}).get("arguments") or "null")),
            ("tool_calls", "function", "get_weather", {"city": "Paris"}),
            "tool_use -> a tool call, arguments as a JSON text", r.text[:300])
    msgs += [ch.get("message"),
             {"role": "tool", "tool_call_id": calls[0].get("id"), "content": "sunny"},
             {"role": "user", "content": "thanks"}]
    env.upstream.next({"content": "It is sunny."})
    r = env.request("POST", "/v1/chat/completions",
                    body={"model": "claude", "messages": msgs, "tools": tools})
    t.is_eq(r.status, 200, "the round trip's second call: 200", r.text[:300])
    sent = last_post(env)["json"]["messages"]
    t.is_eq(sent, [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": calls[0].get("id"),
                                           "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": calls[0].get("id"),
                                      "content": "sunny"}]},
        {"role": "user", "content": "thanks"}],
        "tool_calls -> tool_use, the tool message -> a tool_result block")


def chat_stream(t, env):
    env.upstream.reset()
    env.upstream.next({"usage": {"input_tokens": 20, "cache_read_input_tokens": 10,
                                 "output_tokens": 7},
                       "content": "one two three", "delta_usage_steps": 2})
    r = env.stream_chat(path="/v1/chat/completions", body={
        "model": "claude", "user": "tr-stream", "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "count"}]})
    t.is_eq(r.status, 200, "a streamed chat on an anthropic/ deployment: 200")
    evs = [e["json"] for e in r.events if not e["done"]]
    t.ok(r.events and r.events[-1]["done"], "it ends with [DONE]")
    t.is_eq((evs[0]["choices"][0]["delta"].get("role"), evs[0]["object"]),
            ("assistant", "chat.completion.chunk"), "the first chunk: the assistant's role")
    text = "".join((e["choices"][0]["delta"].get("content") or "")
                   for e in evs if e.get("choices"))
    t.is_eq(text, "one two three", "the text, delta by delta")
    fin = [e["choices"][0]["finish_reason"] for e in evs if e.get("choices")]
    t.is_eq(fin[-1], "stop", "the finish chunk: stop")
    usage = evs[-1].get("usage") or {}
    cost = 20 * IN + 10 * READ + 7 * OUT
    t.is_eq((evs[-1].get("choices"), usage.get("prompt_tokens"),
             usage.get("completion_tokens"), Decimal(str(usage.get("cost")))),
            ([], 30, 7, cost), "the usage chunk (asked for): counts and cost")
    t.is_eq((env.customer_row("tr-stream") or {}).get("spend"), cost, "charged once: %s" % cost)
    # A streamed tool call.
    env.upstream.next({"content": None, "tool_use": [{"name": "f", "input": {"a": [1, 2]}}]})
    r = env.stream_chat(path="/v1/chat/completions", body={
        "model": "claude", "stream": True, "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "function", "function": {"name": "f"}}]})
    evs = [e["json"] for e in r.events if not e["done"]]
    calls = [c for e in evs if e.get("choices")
             for c in (e["choices"][0]["delta"].get("tool_calls") or [])]
    args = "".join(c["function"].get("arguments") or "" for c in calls)
    t.is_eq((calls[0].get("function", {}).get("name") if calls else None, json.loads(args or "0"),
             [e["choices"][0]["finish_reason"] for e in evs if e.get("choices")][-1]),
            ("f", {"a": [1, 2]}, "tool_calls"), "a streamed tool call, its arguments in pieces")
    t.ok(not any(e.get("usage") for e in evs), "no usage chunk when the client did not ask")


def chat_errors(t, env):
    env.upstream.reset()
    env.upstream.next({"status": 400, "error_body": {
        "type": "error", "error": {"type": "invalid_request_error",
                                   "message": "messages: roles must alternate"}}})
    r = env.request("POST", "/v1/chat/completions",
                    body={"model": "claude", "user": "tr-err",
                          "messages": [{"role": "user", "content": "x"}]})
    t.is_eq((r.status, r.error.get("message"), (r.json or {}).get("type")),
            (400, "messages: roles must alternate", None),
            "an Anthropic error reaches a chat client in OpenAI's envelope", r.text[:300])
    t.is_eq(env.customer_row("tr-err")["spend"], Decimal(0), "an error costs nothing")
    env.upstream.reset()
    for what, extra, param in (
            ("n > 1", {"n": 2}, "n"),
            ("an image that is not a URL", {"messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}]},
             "messages[0].content[0]")):
        b = {"model": "claude", "messages": [{"role": "user", "content": "x"}]}
        b.update(extra)
        r = env.request("POST", "/v1/chat/completions", body=b)
        t.is_eq((r.status, r.error.get("param")), (400, param),
                "%s: 400 before anything is sent" % what, r.text[:300])
    t.is_eq(env.upstream.requests(), [], "refused calls reach no upstream")


def messages_to_gpt(t, env):
    env.upstream.reset()
    env.upstream.next({"usage": {"prompt_tokens": 50, "completion_tokens": 9,
                                 "prompt_tokens_details": {"cached_tokens": 20}},
                       "content": "Bonjour"})
    body = {"model": "gpt", "max_tokens": 40, "system": [{"type": "text", "text": "Be brief."}],
            "metadata": {"user_id": "tr-msg"}, "stop_sequences": ["END"], "temperature": 0.2,
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "hi"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                 "data": PNG}}]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "x"},
                    {"type": "text", "text": "calling"},
                    {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"q": 1}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "42"},
                    {"type": "text", "text": "so?"}]}],
            "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "tool", "name": "f"}}
    r = env.request("POST", "/v1/messages", body=body)
    t.is_eq(r.status, 200, "/v1/messages on an OpenAI-format deployment: 200", r.text[:300])
    q = last_post(env)
    t.is_eq(q["path"], "/v1/chat/completions", "the upstream is called on /chat/completions")
    want = {"model": "gpt-up", "max_tokens": 40, "stop": ["END"], "temperature": 0.2,
            "user": "tr-msg",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [
                    {"type": "text", "text": "hi"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG}}]},
                {"role": "assistant", "content": "calling", "tool_calls": [
                    {"id": "toolu_1", "type": "function",
                     "function": {"name": "f", "arguments": "{\"q\":1}"}}]},
                {"role": "tool", "tool_call_id": "toolu_1", "content": "42"},
                {"role": "user", "content": [{"type": "text", "text": "so?"}]}],
            "tools": [{"type": "function", "function": {"name": "f", "description": "d",
                                                        "parameters": {"type": "object"}}}],
            "tool_choice": {"type": "function", "function": {"name": "f"}}}
    t.is_eq(q["json"], want, "the request in chat's shape (thinking left out)")
    js = r.json or {}
    t.is_eq((js.get("type"), js.get("content"), js.get("stop_reason"), js.get("usage")),
            ("message", [{"type": "text", "text": "Bonjour"}], "end_turn",
             {"input_tokens": 30, "cache_creation_input_tokens": 0,
              "cache_read_input_tokens": 20, "output_tokens": 9}),
            "the answer is a message; the cached tokens are cache reads")
    t.is_eq((env.customer_row("tr-msg") or {}).get("spend"),
            50 * H.IN_PRICE + 9 * H.OUT_PRICE, "charged at the deployment's prices")
    t.is_eq(env.sql("SELECT call_type FROM spend_logs WHERE request_id = %s"
                    % H.sql_quote(call_id(r))), [["anthropic_messages"]],
            "the row's call_type is the route's (anthropic_messages)")

    # Streamed, with a tool call.
    env.upstream.next({"content": "Let me look.",
                       "tool_calls": [{"name": "f", "arguments": "{\"q\": 7}"}],
                       "usage": {"prompt_tokens": 11, "completion_tokens": 5}})
    r = env.stream_chat(path="/v1/messages", body={
        "model": "gpt", "max_tokens": 30, "stream": True, "metadata": {"user_id": "tr-msg-s"},
        "messages": [{"role": "user", "content": "look"}],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}]})
    sent = last_post(env)["json"]
    t.is_eq((sent.get("stream"), sent.get("stream_options")),
            (True, {"include_usage": True}), "a stream asks the upstream for its usage")
    evs = [e["json"] for e in r.events]
    types = [e.get("type") for e in evs]
    t.is_eq(types[0], "message_start", "Anthropic's events: message_start first", repr(types))
    t.is_eq(types[-2:], ["message_delta", "message_stop"], "message_delta, message_stop last")
    starts = [e["content_block"] for e in evs if e.get("type") == "content_block_start"]
    t.is_eq([(b["type"], b.get("name")) for b in starts], [("text", None), ("tool_use", "f")],
            "a text block, then a tool_use block")
    text = "".join(e["delta"].get("text", "") for e in evs
                   if e.get("type") == "content_block_delta")
    args = "".join(e["delta"].get("partial_json", "") for e in evs
                   if e.get("type") == "content_block_delta")
    t.is_eq((text, json.loads(args or "0")), ("Let me look.", {"q": 7}),
            "the text and the tool's input, delta by delta")
    md = evs[-2] if len(evs) > 1 else {}
    t.is_eq((md.get("delta", {}).get("stop_reason"), md.get("usage", {}).get("input_tokens"),
             md.get("usage", {}).get("output_tokens")), ("tool_use", 11, 5),
            "message_delta: tool_calls -> tool_use, the usage")
    t.is_eq((env.customer_row("tr-msg-s") or {}).get("spend"),
            11 * H.IN_PRICE + 5 * H.OUT_PRICE, "the stream charged once")

    env.upstream.reset()
    r = env.request("POST", "/v1/messages", body={
        "model": "gpt", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "web_search_20250305", "name": "web_search"}]})
    t.is_eq((r.status, (r.json or {}).get("type"), ((r.json or {}).get("error") or {})
             .get("type")), (400, "error", "invalid_request_error"),
            "a server tool on an OpenAI-format deployment: 400", r.text[:300])
    t.is_eq(env.upstream.requests(), [], "nothing sent")


def main(t, env):
    models = [{"model_name": "claude",
               "litellm_params": {"model": "anthropic/claude-up", "api_base": env.upstream.base,
                                  "api_key": H.UPSTREAM_KEY},
               "model_info": {"base_model": "claude-sonnet-4-5"}},
              {"model_name": "claude-nomax",
               "litellm_params": {"model": "anthropic/claude-up", "api_base": env.upstream.base,
                                  "api_key": H.UPSTREAM_KEY},
               "model_info": {"input_cost_per_token": H.IN_PRICE,
                              "output_cost_per_token": H.OUT_PRICE}},
              env.model("gpt", upstream_model="gpt-up")]
    cfg = env.config(models=models, litellm_settings={"default_max_tokens": 64})
    env.start_lighttpd(env.write_config("main", cfg))
    chat_to_claude(t, env)
    tool_round_trip(t, env)
    chat_stream(t, env)
    chat_errors(t, env)
    messages_to_gpt(t, env)


H.run(main)
