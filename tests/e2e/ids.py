#!/usr/bin/env python3
"""ids: every customer id the API accepts can be read back through it.

Ids are 1..255 bytes of valid UTF-8 without NUL (README "Customer ids");
control characters are ordinary characters of an id.  Through lighttpd with
the project's template:

1. An id with a tab ("a b\\tc", the case found), and ids with LF, CR, 0x01,
   0x1f and DEL: charged by /chat/completions, then read back by
   GET /customer/info?end_user_id=<percent-encoded> with the charge as its
   spend and the id byte for byte; created by /customer/new and read back
   the same way.
2. An id with NUL is refused with 422 in the envelope by chat (body "user"),
   /customer/new and /customer/info (%00), nothing reaches the upstream and
   nothing is stored.
"""

import os
import sys
import urllib.parse

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Decimal, cost, dec  # noqa: E402

IDS = ["a b\tc", "lf\nid", "cr\rid", "crlf\r\nid", "soh\x01id", "us\x1f", "del\x7fid",
       "\u00e9\t\u00fc"]
USAGE = {"usage": {"prompt_tokens": 10, "completion_tokens": 20}}


def main(t, env):
    env.start_lighttpd(env.write_config("main", env.config()))

    for uid in IDS:
        what = "id %r" % uid
        r = env.chat(user=uid, fake=USAGE)
        t.is_eq(r.status, 200, "%s: charged by chat" % what, r.text[:300])
        r = env.customer_info(uid)
        t.is_eq(r.status, 200, "%s: /customer/info?end_user_id=%s answers 200"
                % (what, urllib.parse.quote(uid)), r.text[:300])
        t.is_eq((r.json or {}).get("user_id"), uid, "%s: read back byte for byte" % what)
        t.is_eq(dec((r.json or {}).get("spend")), cost(10, 20),
                "%s: its spend is the charge" % what)
        t.is_eq(env.ledger_sum(uid), cost(10, 20), "%s: one charge in spend_logs" % what)

        new = uid + "-new"
        r = env.customer_new(user_id=new, max_budget=1)
        t.is_eq(r.status, 200, "%s-new: created by /customer/new" % what, r.text[:300])
        r = env.customer_info(new)
        t.is_eq((r.status, (r.json or {}).get("user_id"), dec((r.json or {}).get("spend"))),
                (200, new, Decimal(0)), "%s-new: read back" % what, r.text[:300])

    env.upstream.reset()
    nul = "nul\x00id"
    r = env.chat(user=nul, fake=USAGE)
    env.check_error(r, 422, "invalid_request_error", param="user", what="NUL id: chat")
    r = env.customer_new(user_id=nul)
    env.check_error(r, 422, "invalid_request_error", param="user_id",
                    what="NUL id: customer/new")
    r = env.customer_info(nul)
    env.check_error(r, 422, "invalid_request_error", param="end_user_id",
                    what="NUL id: customer/info (%00)")
    t.is_eq(env.upstream.requests(), [], "NUL id: nothing reached the upstream")
    t.is_eq(env.sql("SELECT COUNT(*) FROM customers WHERE LOCATE(CHAR(0), user_id) > 0"),
            [["0"]], "NUL id: no customer stored")
    t.is_eq(env.sql("SELECT COUNT(*) FROM spend_logs WHERE LOCATE(CHAR(0), end_user) > 0"),
            [["0"]], "NUL id: nothing charged")


H.run(main)
