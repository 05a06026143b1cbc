/*
 * chat_stream: a streamed chat completion (SPEC 4.5).  Server-sent events
 * are relayed to the client as they arrive; the usage chunk tollgate asked
 * for is read for settlement and dropped unless the client asked for it;
 * settlement comes before [DONE].  The rest of the request's life is in
 * lib/chat.c.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "chat_priv.h"
#include "log.h"
#include "pricing.h"
#include "sse.h"
#include "util.h"

struct relay {
	struct chat *c;
	const struct tg_deployment *d;
	struct tg_sse sse;
	bool client_usage; /* the client asked for the usage chunk */
	bool started;      /* the event stream to the client has begun */
	bool saw_done;
	/* Choices (by index, < TG_CHAT_N_MAX) seen, and ended with a
	 * finish_reason: a stream is whole when every one it began ended. */
	uint64_t seen[2], finished[2];
	bool error_event; /* the upstream sent an error event */
	bool have_usage;
	struct tg_usage usage;
	int64_t text_bytes; /* generated text seen: bounds the tokens */
	tg_money cost;
	enum tg_rc cost_rc;
	struct tg_err cost_err;
};

static void
relay_write(struct relay *r, const char *buf, size_t len)
{
	if (!r->started) {
		if (r->d->region != NULL)
			tg_req_add_header(r->c->req, "x-litellm-model-region",
			                  r->d->region);
		tg_req_stream_begin(r->c->req, 200, "text/event-stream");
		r->started = true;
	}
	/* A client that left gets nothing more; the upstream is still read
	 * to its end so that its real usage is charged. */
	tg_req_stream_write(r->c->req, buf, len);
}

/* Forward an event unchanged; an event cut off by the end of the stream
 * gets the blank line that ends it. */
static void
relay_event(struct relay *r, const struct tg_sse_event *ev)
{
	relay_write(r, ev->raw, ev->raw_len);
	if (!ev->terminated)
		relay_write(r, "\n\n", 2);
}

/* Send obj as one "data:" event. */
static void
relay_json(struct relay *r, struct json_object *obj)
{
	size_t n;
	const char *text = json_object_to_json_string_length(
	        obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
	        &n);
	char *line = tg_xmalloc(n + 9);

	memcpy(line, "data: ", 6);
	memcpy(line + 6, text, n);
	memcpy(line + 6 + n, "\n\n", 3);
	relay_write(r, line, n + 8);
	free(line);
}

static int64_t
string_len(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return 0;
	return json_object_get_string_len(v);
}

/* Bytes of text a chunk's deltas carry (content, refusal, reasoning,
 * tool-call arguments): each token produced is at least one of them. */
static int64_t
delta_bytes(struct json_object *chunk)
{
	struct json_object *choices, *delta, *calls, *fn;
	int64_t n = 0;

	if (!json_object_object_get_ex(chunk, "choices", &choices) ||
	    !json_object_is_type(choices, json_type_array))
		return 0;
	for (size_t i = 0; i < json_object_array_length(choices); i++) {
		struct json_object *ch = json_object_array_get_idx(choices, i);

		if (!json_object_object_get_ex(ch, "delta", &delta))
			continue;
		n += string_len(delta, "content") +
		     string_len(delta, "refusal") +
		     string_len(delta, "reasoning_content");
		if (!json_object_object_get_ex(delta, "tool_calls", &calls) ||
		    !json_object_is_type(calls, json_type_array))
			continue;
		for (size_t j = 0; j < json_object_array_length(calls); j++)
			if (json_object_object_get_ex(
			            json_object_array_get_idx(calls, j),
			            "function", &fn))
				n += string_len(fn, "arguments") +
				     string_len(fn, "name");
	}
	return n;
}

/* Note the choices a chunk carries, and those it ends. */
static void
note_choices(struct relay *r, struct json_object *chunk)
{
	struct json_object *choices, *ch, *v;

	if (!json_object_object_get_ex(chunk, "choices", &choices) ||
	    !json_object_is_type(choices, json_type_array))
		return;
	for (size_t i = 0; i < json_object_array_length(choices); i++) {
		int64_t idx = 0;

		ch = json_object_array_get_idx(choices, i);
		if (json_object_object_get_ex(ch, "index", &v) &&
		    json_object_is_type(v, json_type_int))
			idx = json_object_get_int64(v);
		if (idx < 0 || idx >= TG_CHAT_N_MAX)
			continue;
		r->seen[idx / 64] |= 1ull << (idx % 64);
		if (json_object_object_get_ex(ch, "finish_reason", &v) &&
		    json_object_is_type(v, json_type_string))
			r->finished[idx / 64] |= 1ull << (idx % 64);
	}
}

/* Whether every choice that began also ended. */
static bool
all_finished(const struct relay *r)
{
	return (r->seen[0] | r->seen[1]) != 0 &&
	       (r->seen[0] & ~r->finished[0]) == 0 &&
	       (r->seen[1] & ~r->finished[1]) == 0;
}

static enum tg_rc
on_event(void *arg, const struct tg_sse_event *ev, struct tg_err *err)
{
	struct relay *r = arg;
	struct json_tokener *tok;
	struct json_object *chunk, *usage, *choices, *v;
	bool usage_only;

	(void)err;
	if (ev->done) {
		/* Held back: settlement comes first (SPEC 4.5). */
		r->saw_done = true;
		return TG_OK;
	}
	tok = json_tokener_new();
	chunk = json_tokener_parse_ex(tok, ev->data, (int)ev->data_len);
	json_tokener_free(tok);
	if (chunk == NULL || !json_object_is_type(chunk, json_type_object)) {
		json_object_put(chunk);
		relay_event(r, ev);
		return TG_OK;
	}
	if (json_object_object_get_ex(chunk, "error", &v) && v != NULL)
		r->error_event = true;
	r->text_bytes += delta_bytes(chunk);
	note_choices(r, chunk);

	if (!json_object_object_get_ex(chunk, "usage", &usage) ||
	    !json_object_is_type(usage, json_type_object)) {
		relay_event(r, ev);
		json_object_put(chunk);
		return TG_OK;
	}
	r->have_usage = tg_usage_parse(ev->data, ev->data_len, &r->usage);
	if (r->have_usage) {
		tg_err_clear(&r->cost_err);
		r->cost_rc = tg_pricing_cost(
		        &r->d->price, r->usage.prompt_tokens,
		        r->usage.completion_tokens, r->usage.cached_tokens,
		        &r->cost, &r->cost_err);
	}
	usage_only = !json_object_object_get_ex(chunk, "choices", &choices) ||
	             !json_object_is_type(choices, json_type_array) ||
	             json_object_array_length(choices) == 0;
	if (!r->client_usage) {
		/* Asked for by us, not by the client: not the client's. */
		if (!usage_only)
			relay_event(r, ev);
	} else {
		if (r->have_usage && r->cost_rc == TG_OK)
			json_object_object_add(usage, "cost",
			                       tg_json_money(r->cost));
		relay_json(r, chunk);
	}
	json_object_put(chunk);
	return TG_OK;
}

static enum tg_rc
on_stream_data(void *arg, const char *buf, size_t len)
{
	struct relay *r = arg;

	return tg_sse_feed(&r->sse, buf, len, on_event, r, &r->cost_err);
}

/* An SSE error event in OpenAI's shape, for failures after the stream
 * began (the status line is long gone). */
static void
stream_error_event(struct relay *r, const struct tg_err *err)
{
	struct json_object *env = tg_error_envelope(err);

	relay_json(r, env);
	json_object_put(env);
}

/* Whether the client asked for stream_options.include_usage; either way
 * it is asked of the upstream, which is how the charge is known. */
static bool
force_include_usage(struct json_object *body)
{
	struct json_object *opts, *v;
	bool asked = false;

	if (!json_object_object_get_ex(body, "stream_options", &opts) ||
	    !json_object_is_type(opts, json_type_object)) {
		opts = json_object_new_object();
		json_object_object_add(body, "stream_options", opts);
	}
	if (json_object_object_get_ex(opts, "include_usage", &v) &&
	    json_object_is_type(v, json_type_boolean))
		asked = json_object_get_boolean(v);
	json_object_object_add(opts, "include_usage",
	                       json_object_new_boolean(1));
	return asked;
}

/* Streamed: relay events as they come, settle before [DONE]. */
enum tg_rc
tg_chat_stream(struct chat *c, struct tg_err *err)
{
	struct relay r;
	struct tg_upstream_response resp;
	struct tg_ledger_entry e;
	struct tg_err up_err;
	const struct tg_deployment *d;
	char *up_body, *meta = NULL;
	size_t up_len;
	enum tg_rc rc, up_rc;
	int attempts = 0;
	bool estimated = false, broken;

	memset(&r, 0, sizeof(r));
	memset(&resp, 0, sizeof(resp));
	r.c = c;
	r.client_usage = force_include_usage(c->body);
	for (;;) {
		d = &c->cfg->deployments[c->cand[(size_t)attempts % c->ncand]];
		attempts++;
		/* What a failed attempt saw is not this one's. */
		r.d = d;
		r.saw_done = r.error_event = false;
		memset(r.seen, 0, sizeof(r.seen));
		memset(r.finished, 0, sizeof(r.finished));
		r.have_usage = false;
		r.text_bytes = 0;
		tg_sse_init(&r.sse, 0);
		tg_err_clear(&up_err);
		up_body = tg_upstream_body(d, c->body, c->body_text,
		                           c->body_len, &up_len);
		up_rc = tg_upstream_stream(d, up_body, up_len, d->timeout_s,
		                           on_stream_data, &r, &resp, &up_err);
		free(up_body);
		if (up_rc == TG_OK)
			up_rc = tg_sse_finish(&r.sse, on_event, &r, &up_err);
		tg_sse_free(&r.sse);
		/* Once bytes reached the client, another try cannot undo them.
		 */
		if (r.started || !tg_chat_retryable(up_rc, &resp) ||
		    attempts > c->cfg->num_retries)
			break;
		tg_log_warn("deployment %s failed (%s, status %ld); retrying",
		            d->litellm_model, tg_rc_str(up_rc), resp.status);
		tg_upstream_response_free(&resp);
		memset(&resp, 0, sizeof(resp));
	}

	if (!r.started) {
		/* Nothing was relayed: answer like a non-streamed call. */
		meta = tg_chat_metadata(d, attempts, false);
		tg_chat_entry_init(c, d, resp.api_base, meta, &e);
		if (up_rc == TG_OK && resp.status >= 200 && resp.status < 300)
			tg_err_set(
			        &up_err, TG_ERR_UPSTREAM_CONNECT, NULL,
			        "Connection error: upstream ended the stream "
			        "without an event");
		if ((rc = tg_chat_settle(c, &e, NULL, err)) != TG_OK)
			goto out;
		if (up_rc != TG_OK ||
		    (resp.status >= 200 && resp.status < 300)) {
			*err = up_err;
			rc = err->rc != TG_OK ? err->rc
			                      : TG_ERR_UPSTREAM_CONNECT;
		} else {
			rc = tg_chat_upstream_error(c->req, &resp, err);
		}
		goto out;
	}

	/*
	 * The stream ran: charge what was produced, measured or bounded.  A
	 * stream that ended without [DONE] and without a finish_reason for
	 * every choice it began was cut off (the upstream died, or a proxy in
	 * between), however cleanly the connection closed: the client must
	 * not take it for complete.
	 */
	if (up_rc == TG_OK && !r.error_event && !r.saw_done &&
	    !all_finished(&r)) {
		up_rc = tg_err_set(&up_err, TG_ERR_UPSTREAM_CONNECT, NULL,
		                   "Connection error: the upstream's stream "
		                   "ended before the completion did");
	}
	broken = up_rc != TG_OK || r.error_event;
	if (!r.have_usage || r.cost_rc != TG_OK) {
		tg_chat_bounded_usage(c, d, r.text_bytes, &r.usage);
		tg_err_clear(&r.cost_err);
		if (tg_pricing_cost(&d->price, r.usage.prompt_tokens,
		                    r.usage.completion_tokens, 0, &r.cost,
		                    &r.cost_err) != TG_OK)
			r.cost = c->estimate;
		estimated = true;
	}
	meta = tg_chat_metadata(d, attempts, estimated);
	tg_chat_entry_init(c, d, resp.api_base, meta, &e);
	e.success = !broken;
	e.spend = r.cost;
	e.prompt_tokens = r.usage.prompt_tokens;
	e.completion_tokens = r.usage.completion_tokens;
	e.total_tokens = r.usage.total_tokens;
	rc = tg_chat_settle(c, &e, NULL, err);
	if (rc != TG_OK) {
		stream_error_event(&r, err);
	} else if (up_rc != TG_OK) {
		tg_log_warn("stream broke after it began: %s", up_err.message);
		stream_error_event(&r, &up_err);
	} else if (!r.error_event) {
		relay_write(&r, "data: [DONE]\n\n", 14);
	}
	/* The answer went out as a stream: nothing is left to respond. */
	rc = TG_OK;
out:
	free(meta);
	tg_upstream_response_free(&resp);
	return rc;
}
