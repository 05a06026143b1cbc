#!/usr/bin/env python3
"""bad_input: hostile or malformed chat bodies get a 4xx in the envelope,
reach no upstream and store nothing (SPEC 1, 4.3; issue 6 points 5 and 6).

For each case: the expected status, type, param and message; the fake
upstream received nothing; no table a request writes to (customers,
spend_logs, reservations, rate windows, in-flight slots) gained a row, so
in particular no customer was created for the body's "user".

1. messages that are not chat messages: [1], [null], [[]], [{}],
   [{"role": 1}], content 5, {"x": 1}, [1], a part without a type: 422
   with OpenAI's param form (messages[0].content) and message.
2. invalid UTF-8 in content, in "user", in a key name, and on a
   management endpoint: 400 naming the byte offset; a lone surrogate
   escape (valid JSON text, no character): 400 naming its offset.
3. output bounds beyond what the estimate arithmetic holds: max_tokens
   1.6e15, "1600000000000000", 1e300, 2^31, max_completion_tokens 1.6e15:
   422 naming the field, never 500.  And for a model priced so high that
   even an accepted bound (or the prompt of a few image parts) overflows
   the estimate: 422 naming the field (413 for the prompt), never 500.
4. the valid edge cases still work: content null with tool_calls on an
   assistant message, content an array of text parts, a surrogate pair
   escape, a numeric-string bound (forwarded as an integer).
"""

import json
import os
import re
import sys

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Decimal  # noqa: E402

HI = {"role": "user", "content": "hi"}


def body(user, messages=None, **extra):
    obj = {"model": "fake-gpt", "user": user, "messages": messages or [HI]}
    obj.update(extra)
    return json.dumps(obj).encode("utf-8")


def refused(t, env, what, data, status, param, message, user=None):
    """Send data; check the envelope, that nothing reached the upstream and
    that nothing was stored."""
    env.upstream.reset()
    before = env.stored_counts()
    r = env.request("POST", "/chat/completions", body=data)
    env.check_error(r, status, "invalid_request_error", message=message, param=param,
                    what=what)
    t.is_eq(env.upstream.requests(), [], "%s: nothing reached the upstream" % what)
    t.is_eq(env.stored_counts(), before, "%s: nothing stored" % what)
    if user is not None:
        t.is_eq(env.customer_row(user), None, "%s: no customer row for its user" % what)
    call_id = r.header("x-litellm-call-id") or ""
    t.is_eq(env.sql("SELECT COUNT(*) FROM spend_logs WHERE request_id = %s"
                    % H.sql_quote(call_id))[0][0], "0",
            "%s: no ledger row for its call id" % what)


def bad_messages(t, env):
    cases = [
        ("messages [1]", [1], "messages[0]",
         "Invalid type for 'messages[0]': expected an object, but got an integer instead."),
        ("messages [null]", [None], "messages[0]",
         "Invalid type for 'messages[0]': expected an object, but got null instead."),
        ("messages [[]]", [[]], "messages[0]",
         "Invalid type for 'messages[0]': expected an object, but got an array instead."),
        ("messages [{}]", [{}], "messages[0].role",
         "Missing required parameter: 'messages[0].role'."),
        ('messages [{"role": 1}]', [{"role": 1}], "messages[0].role",
         "Invalid type for 'messages[0].role': expected a string, but got an integer "
         "instead."),
        ("a second message without role", [HI, {"content": "x"}], "messages[1].role",
         "Missing required parameter: 'messages[1].role'."),
        ("content 5", [{"role": "user", "content": 5}], "messages[0].content",
         "Invalid type for 'messages[0].content': expected one of a string or array of "
         "objects, but got an integer instead."),
        ('content {"x": 1}', [{"role": "user", "content": {"x": 1}}], "messages[0].content",
         "Invalid type for 'messages[0].content': expected one of a string or array of "
         "objects, but got an object instead."),
        ("content [1]", [{"role": "user", "content": [1]}], "messages[0].content[0]",
         "Invalid type for 'messages[0].content[0]': expected an object, but got an "
         "integer instead."),
        ("a content part without type",
         [{"role": "user", "content": [{"type": "text", "text": "a"}, {"text": "b"}]}],
         "messages[0].content[1].type",
         "Missing required parameter: 'messages[0].content[1].type'."),
    ]
    for i, (what, messages, param, message) in enumerate(cases):
        user = "bad-msg-%d" % i
        refused(t, env, what, body(user, messages), 422, param, message, user=user)


def bad_utf8(t, env):
    def at(data, needle):
        return "Invalid UTF-8 in the request body at byte %d" % data.index(needle)

    d = body("bad-utf8-content").replace(b'"hi"', b'"h\xffi"')
    refused(t, env, "invalid UTF-8 in content", d, 400, None, at(d, b"\xff"),
            user="bad-utf8-content")
    d = body("bad-utf8-user\u00e9").replace(b"\\u00e9", b"\xc3")
    refused(t, env, "invalid UTF-8 in user", d, 400, None, at(d, b"\xc3"))
    d = body("bad-utf8-key").replace(b'"messages"', b'"te\xed\xa0\x80mperature": 1, "messages"')
    refused(t, env, "invalid UTF-8 in a key name", d, 400, None, at(d, b"\xed"),
            user="bad-utf8-key")
    d = body("bad-utf8-overlong").replace(b'"hi"', b'"h\xc0\xafi"')
    refused(t, env, "an overlong UTF-8 sequence", d, 400, None, at(d, b"\xc0"),
            user="bad-utf8-overlong")

    # A lone surrogate escape is ASCII, valid JSON text, but no character.
    d = body("bad-surrogate").replace(b'"hi"', b'"h\\ud800i"')
    refused(t, env, "a lone surrogate escape", d, 400, None,
            "Invalid JSON body: \\u escape of a lone UTF-16 surrogate at byte %d"
            % d.index(b"\\ud800"), user="bad-surrogate")
    d = body("bad-surrogate-user").replace(b'"bad-surrogate-user"', b'"x\\udc00"')
    refused(t, env, "a lone low surrogate escape in user", d, 400, None,
            re.compile(r"lone UTF-16 surrogate at byte %d$" % d.index(b"\\udc00")))

    # Management bodies go through the same front line.
    before = env.stored_counts()
    d = b'{"budget_id": "tier-\xfe", "max_budget": 1}'
    r = env.request("POST", "/budget/new", body=d)
    env.check_error(r, 400, "invalid_request_error", param=None,
                    message=at(d, b"\xfe"), what="invalid UTF-8 in a /budget/new body")
    t.is_eq(env.sql("SELECT COUNT(*) FROM budgets")[0][0], "0",
            "invalid UTF-8 in a /budget/new body: no budget stored")
    t.is_eq(env.stored_counts(), before, "invalid UTF-8 in a /budget/new body: nothing stored")


def bad_bounds(t, env):
    def msg(field, shown):
        return "%s must be an integer from 1 to 2147483647. Received: %s" % (field, shown)

    cases = [
        ("max_tokens", "1.6e15", b"1.6e15"),
        ("max_tokens", "1600000000000000", b'"1600000000000000"'),
        ("max_tokens", "1e300", b"1e300"),
        ("max_tokens", "2147483648", b"2147483648"),
        ("max_tokens", "9223372036854775808", b"9223372036854775808"),
        ("max_tokens", "0", b"0"),
        ("max_tokens", "-1", b'"-1"'),
        ("max_tokens", "1.5", b"1.5"),
        ("max_tokens", " 1", b'" 1"'),
        ("max_completion_tokens", "1.6e15", b"1.6e15"),
        ("max_completion_tokens", "1600000000000000", b'"1600000000000000"'),
    ]
    for i, (field, shown, raw) in enumerate(cases):
        user = "bad-bound-%d" % i
        d = body(user, **{field: 7}).replace(b'"%s": 7' % field.encode(),
                                             b'"%s": %s' % (field.encode(), raw))
        refused(t, env, "%s %s" % (field, raw.decode()), d, 422, field,
                msg(field, shown) if not shown.startswith("9223") else None, user=user)


def overflowing_estimate(t, env):
    """Accepted bounds, but a price so high that the estimate leaves
    tg_money: the client's too-large request, not a server error.  No
    "user": the customer upsert precedes the estimate (SPEC 4.2)."""
    big = ("pricey", 2147483647)
    d = json.dumps({"model": "pricey", "messages": [HI], "max_tokens": big[1]}).encode()
    refused(t, env, "max_tokens 2^31-1 at 1 USD per output token", d, 422, "max_tokens",
            "max_tokens=2147483647 is too large for model=pricey: the worst-case cost of "
            "the request is beyond what the ledger can hold")
    d = json.dumps({"model": "pricey", "messages": [HI], "max_tokens": 5,
                    "max_completion_tokens": big[1]}).encode()
    refused(t, env, "max_completion_tokens 2^31-1 at 1 USD per output token", d, 422,
            "max_completion_tokens",
            re.compile(r"^max_completion_tokens=2147483647 is too large for model=pricey"))
    image = {"type": "image_url", "image_url": {"url": "data:,"}}
    d = json.dumps({"model": "pricey", "max_tokens": 1, "messages": [
        {"role": "user", "content": [image] * 3}]}).encode()
    refused(t, env, "3 image parts at 9000 USD per input token", d, 413, "messages",
            re.compile(r"^Request too large for model=pricey: the worst-case cost of its "
                       r"\d+ prompt tokens is beyond what the ledger can hold$"))
    # The same model with bounds that fit is served.
    env.upstream.reset()
    r = env.request("POST", "/chat/completions", body={
        "model": "pricey", "messages": [HI], "max_tokens": 1, "fake": {"usage": {
            "prompt_tokens": 1, "completion_tokens": 1}}})
    t.is_eq((r.status, r.header("x-litellm-response-cost")), (200, "9001"),
            "pricey with max_tokens 1: served and charged 9001 USD", r.text[:300])


def valid_edges(t, env):
    def served(what, user, messages, **extra):
        env.upstream.reset()
        r = env.request("POST", "/chat/completions", body=body(user, messages, **extra))
        t.is_eq(r.status, 200, "%s: 200" % what, r.text[:300])
        got = [q.get("json") or {} for q in env.upstream.requests()]
        t.is_eq(len(got), 1, "%s: forwarded once" % what)
        return got[0] if got else {}

    tools = [HI, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "add", "arguments": "{\"a\":2,\"b\":2}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "4"}]
    got = served("content null with tool_calls", "edge-tools", tools)
    t.is_eq(got.get("messages"), tools, "content null with tool_calls: messages forwarded as sent")
    got = served("assistant with tool_calls and no content", "edge-tools-2",
                 [HI, {k: v for k, v in tools[1].items() if k != "content"}, tools[2]])
    parts = [{"role": "user", "content": [{"type": "text", "text": "a"},
                                          {"type": "text", "text": "b"}]}]
    got = served("content an array of text parts", "edge-parts", parts)
    t.is_eq(got.get("messages"), parts, "content parts: forwarded as sent")
    d = body("edge-pair").replace(b'"hi"', b'"\\ud83d\\ude00"')
    env.upstream.reset()
    r = env.request("POST", "/chat/completions", body=d)
    t.is_eq(r.status, 200, "a surrogate pair escape: 200", r.text[:300])
    reqs = env.upstream.requests()
    t.is_eq(reqs[0]["json"]["messages"][0]["content"] if reqs else None, "\U0001F600",
            "a surrogate pair escape: forwarded as U+1F600")
    got = served("max_tokens \"5\"", "edge-string-bound", None, max_tokens="5")
    t.is_eq((type(got.get("max_tokens")).__name__, got.get("max_tokens")), ("int", 5),
            "max_tokens \"5\": forwarded as the integer 5")
    got = served("max_completion_tokens 2147483647", "edge-max-bound", None,
                 max_completion_tokens=2147483647)
    t.is_eq(got.get("max_completion_tokens"), 2147483647,
            "max_completion_tokens 2^31-1: accepted and forwarded")


def main(t, env):
    pricey = env.model("pricey", in_price=Decimal("9000"), out_price=Decimal("1"))
    cfg = env.write_config("main", env.config(
        models=[env.model("fake-gpt"), pricey]))
    env.start_lighttpd(cfg)
    bad_messages(t, env)
    bad_utf8(t, env)
    bad_bounds(t, env)
    overflowing_estimate(t, env)
    valid_edges(t, env)


if __name__ == "__main__":
    H.run(main)
