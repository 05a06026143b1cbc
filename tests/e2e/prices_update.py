#!/usr/bin/env python3
"""prices_update: `tollgate-prices update` replaces the price map under
running programs (README "Prices").

1. The map is LiteLLM's whole map (etc/model_prices.json) plus one model,
   tg-upd-model, that the config prices from it; `tollgate-prices index`
   indexes it; lighttpd runs the programs as FastCGI.
2. While chat calls run in parallel threads, `tollgate-prices update
   http://127.0.0.1:PORT/good.json` (a local HTTP server) installs a map
   where tg-upd-model costs more: it exits 0, the file is the new map and
   its index is valid (`tollgate-prices check`); no call failed; each
   call's ledger row is charged exactly the old or the new price of its
   tokens (never a mix); calls ran at both; the processes logged "config
   reloaded"; calls made once the processes have looked again all cost the
   new price.
3. Refused maps: invalid JSON, a negative price, 5 USD per token, a map
   without the model the config uses, an HTTP 404, a body above
   --max-bytes (with and without a Content-Length): each exits non-zero
   with its message, and the file and its index are byte for byte what
   they were; calls still cost the new price.
4. The config file: replaced by one that does not load, the processes keep
   the config they have (calls still succeed) and log the error once each;
   replaced by a valid one (model_info prices now), it is used within a
   second, without a restart.
"""

import http.server
import json
import os
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Decimal, cost, dec  # noqa: E402

PRICES = os.path.join(H.BUILDDIR, "tools", "tollgate-prices")
MODEL = "tg-upd-model"
OLD = (Decimal("0.000001"), Decimal("0.000002"))
NEW = (Decimal("0.000003"), Decimal("0.000005"))
WORKERS = 4
MAX_PROCS = 3


def with_model(base, entry):
    d = dict(base)
    if entry is None:
        d.pop(MODEL, None)
    else:
        d[MODEL] = entry
    return json.dumps(d, indent=1).encode()


def entry(inp, out):
    return {"input_cost_per_token": inp, "output_cost_per_token": out,
            "max_input_tokens": 128000, "max_output_tokens": 16384,
            "litellm_provider": "openai", "mode": "chat"}


class MapServer:
    """Serves bodies by path from a thread (404 for others); a path in
    stream is sent without a Content-Length, closed at its end."""

    def __init__(self, bodies, stream=()):
        outer = self
        self.bodies = bodies
        self.stream = set(stream)

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                body = outer.bodies.get(self.path)
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "9")
                    self.end_headers()
                    self.wfile.write(b"not found")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if self.path in outer.stream:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                else:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (too large)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def run_tool(cfg, *args):
    env = dict(os.environ, TOLLGATE_CONFIG=cfg, **H.SANITIZER_ENV)
    r = subprocess.run([PRICES] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=env, timeout=180)
    return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")


def read(path):
    with open(path, "rb") as f:
        return f.read()


def chat(env, srv, user, pt, ct):
    return env.chat(user=user, model="upd", server=srv,
                    fake={"usage": {"prompt_tokens": pt, "completion_tokens": ct}})


def main(t, env):
    if not os.access(PRICES, os.X_OK):
        raise H.SetupError("not built: %s" % PRICES)
    with open(H.PRICE_FILE) as f:
        base = json.load(f)
    mapdir = os.path.join(env.tmp, "prices")
    os.makedirs(mapdir)
    mapfile = os.path.join(mapdir, "map.json")
    with open(mapfile, "wb") as f:
        f.write(with_model(base, entry(1e-06, 2e-06)))
    rc, out, err = run_tool("/nonexistent.yaml", "index", mapfile)
    t.is_eq(rc, 0, "tollgate-prices index: exit 0", out, err)
    t.ok(os.path.isfile(mapfile + ".idx"), "the index is beside the map")

    cfg = env.write_config("main", env.config(
        models=[{"model_name": "upd", "litellm_params": {
            "model": "openai/" + MODEL, "api_base": env.upstream.base + "/v1",
            "api_key": H.UPSTREAM_KEY}}, env.model("fake-gpt")],
        litellm_settings={"model_cost_map_path": mapfile}))
    srv = env.start_lighttpd(cfg, max_procs=MAX_PROCS)
    r = chat(env, srv, "pu-warm", 1000, 500)
    t.is_eq((r.status, dec(r.header("x-litellm-response-cost"))),
            (200, cost(1000, 500, *OLD)), "before the update: the old price")

    good = with_model(base, entry(3e-06, 5e-06))
    missing = with_model(base, None)
    bodies = {
        "/good.json": good,
        "/bad-json.json": b'{"' + MODEL.encode() + b'": {"input_cost_per_token": 1e-06,',
        "/negative.json": with_model(base, entry(3e-06, -2e-06)),
        "/five.json": with_model(base, entry(5, 5e-06)),
        "/missing.json": missing,
        "/big.json": good,
        "/big-stream.json": good,
    }
    maps = MapServer(bodies, stream=["/big-stream.json"])
    try:
        # -- the good map, under load --
        stop = threading.Event()
        results = []
        lock = threading.Lock()

        def worker(i):
            n = 0
            while not stop.is_set():
                n += 1
                pt, ct = 100 + 37 * i + n, 10 + (n * 7) % 50
                r = chat(env, srv, "pu-load", pt, ct)
                with lock:
                    results.append((time.monotonic(), r.status, r.header("x-litellm-call-id"),
                                    r.header("x-litellm-response-cost"), r.text[:300]))

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
        for th in threads:
            th.start()
        time.sleep(1.5)
        t0 = time.monotonic()
        rc, out, err = run_tool(cfg, "update", maps.url("/good.json"))
        updated_at = time.monotonic()
        time.sleep(2.5)
        stop.set()
        for th in threads:
            th.join(60)
        t.is_eq(rc, 0, "update with a good map: exit 0", out, err)
        t.diag("update took %.2f s; %d calls ran meanwhile" % (updated_at - t0, len(results)))
        t.ok(read(mapfile) == good, "the file is the new map, byte for byte")
        rc, out, err = run_tool(cfg, "check")
        t.ok(rc == 0 and "map.json.idx: valid" in out,
             "tollgate-prices check: the new map and its index are valid", out, err)

        failed = [x for x in results if x[1] != 200]
        t.is_eq(failed, [], "no call failed during the update")
        old_n = new_n = 0
        wrong = []
        rows = {row["request_id"]: row for row in env.ledger_rows("pu-load")}
        late_old = []
        for at, _st, call_id, header, _txt in results:
            row = rows.get(call_id)
            if row is None:
                wrong.append((call_id, "no ledger row"))
                continue
            c_old = cost(row["prompt_tokens"], row["completion_tokens"], *OLD)
            c_new = cost(row["prompt_tokens"], row["completion_tokens"], *NEW)
            if row["spend"] == c_old:
                old_n += 1
                if at > updated_at + 1.8:
                    late_old.append(call_id)
            elif row["spend"] == c_new:
                new_n += 1
            else:
                wrong.append((call_id, row["spend"], c_old, c_new))
            if dec(header) != row["spend"]:
                wrong.append((call_id, "header", header, row["spend"]))
        t.is_eq(wrong, [], "each call charged exactly the old or the new price of its tokens")
        t.diag("%d calls at the old price, %d at the new" % (old_n, new_n))
        t.ok(old_n > 0 and new_n > 0, "calls ran at both prices (before and after the swap)",
             "old %d new %d" % (old_n, new_n))
        # Once the first call at the new price ran, none at the old one:
        # each process swaps once, and requests after it see only the new.
        t.is_eq(late_old, [], "no call at the old price well after the update (each process "
                "looks once a second)")
        t.like(srv.logs(), r"config reloaded: \d+ models from .*prices from .*map\.json",
               "a process logged that it reloaded the config")

        time.sleep(1.1)
        later = [chat(env, srv, "pu-later", 2000 + i, 300 + i) for i in range(3 * MAX_PROCS)]
        t.ok(all(r.status == 200 and dec(r.header("x-litellm-response-cost")) ==
                 cost(2000 + i, 300 + i, *NEW) for i, r in enumerate(later)),
             "later calls all cost the new price",
             [(r.status, r.header("x-litellm-response-cost")) for r in later])

        r = env.cgi("chat_completions", "POST", "/chat/completions", config=cfg,
                    body={"model": "upd", "user": "pu-cgi", "messages": [
                        {"role": "user", "content": "hi"}],
                        "fake": {"usage": {"prompt_tokens": 321, "completion_tokens": 12}}})
        t.is_eq((r.status, dec(r.header("x-litellm-response-cost"))),
                (200, cost(321, 12, *NEW)),
                "plain CGI, priced through the new map's index", r.text[:300], r.stderr[-500:])

        # -- refused maps --
        before, before_idx = read(mapfile), read(mapfile + ".idx")
        cases = [
            ("invalid JSON", ["/bad-json.json"], r"invalid JSON at line 1"),
            ("a negative price", ["/negative.json"],
             r"model 'tg-upd-model', key 'output_cost_per_token': -2e-06 is negative"),
            ("5 USD per token", ["/five.json"],
             r"model 'tg-upd-model', key 'input_cost_per_token': 5 USD is absurd "
             r"\(more than 1 USD per token\)"),
            ("a map without the config's model", ["/missing.json"],
             r"the config does not load with it: .*no price for model 'upd' "
             r"\(looked up: openai/tg-upd-model, tg-upd-model\)"),
            ("HTTP 404", ["/nothing-here.json"], r"HTTP status 404, not 200"),
            ("a body above --max-bytes (Content-Length)", ["--max-bytes", "1000000", "/big.json"],
             r"the body is larger than 1000000 bytes"),
            ("a body above --max-bytes (no Content-Length)",
             ["--max-bytes", "1000000", "/big-stream.json"],
             r"the body is larger than 1000000 bytes"),
        ]
        for what, args, message in cases:
            args = args[:-1] + [maps.url(args[-1])]
            rc, out, err = run_tool(cfg, "update", *args)
            t.ok(rc == 1, "%s: refused (exit 1)" % what, "rc %r" % rc, out, err)
            t.like(err, r"refused.*left as it was: " + message, "%s: its message" % what)
            t.ok(read(mapfile) == before and read(mapfile + ".idx") == before_idx,
                 "%s: the map and its index are unchanged" % what)
            t.is_eq(sorted(os.listdir(mapdir)), ["map.json", "map.json.idx"],
                    "%s: nothing left beside them" % what)
        r = chat(env, srv, "pu-after", 1234, 56)
        t.is_eq((r.status, dec(r.header("x-litellm-response-cost"))),
                (200, cost(1234, 56, *NEW)), "after the refusals: still the new price")
        rc, out, err = run_tool(cfg, "update", maps.url("/good.json"))
        t.ok(rc == 0 and "already this map" in out, "the same map again: nothing to do",
             out, err)
    finally:
        maps.stop()

    # -- the config file changes too --
    def replace_config(text):
        with open(cfg + ".new", "w") as f:
            f.write(text)
        os.replace(cfg + ".new", cfg)

    replace_config("model_list: [\n")
    time.sleep(1.2)
    calls = [chat(env, srv, "pu-cfg", 100 + i, 10) for i in range(3 * MAX_PROCS)]
    t.ok(all(r.status == 200 and dec(r.header("x-litellm-response-cost")) ==
             cost(100 + i, 10, *NEW) for i, r in enumerate(calls)),
         "a config that does not load: the one loaded before stays in use",
         [(r.status, r.header("x-litellm-response-cost")) for r in calls])
    n = srv.logs().count("a changed file does not load")
    t.ok(1 <= n <= MAX_PROCS, "the error is logged once per process, not per call (%d)" % n)
    priced = env.config(
        models=[{"model_name": "upd", "litellm_params": {
            "model": "openai/" + MODEL, "api_base": env.upstream.base + "/v1",
            "api_key": H.UPSTREAM_KEY},
            "model_info": {"input_cost_per_token": Decimal("0.000009"),
                           "output_cost_per_token": Decimal("0.000009")}}, env.model("fake-gpt")],
        litellm_settings={"model_cost_map_path": mapfile})
    replace_config(H.yaml_dump(priced) + "\n")
    time.sleep(1.2)
    calls = [chat(env, srv, "pu-cfg2", 100 + i, 10) for i in range(3 * MAX_PROCS)]
    t.ok(all(r.status == 200 and dec(r.header("x-litellm-response-cost")) ==
             cost(100 + i, 10, Decimal("0.000009"), Decimal("0.000009"))
             for i, r in enumerate(calls)),
         "a changed config is taken without a restart (model_info prices now)",
         [(r.status, r.header("x-litellm-response-cost")) for r in calls])


if __name__ == "__main__":
    H.run(main)
