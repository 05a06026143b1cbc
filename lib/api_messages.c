/*
 * api_messages: POST /v1/messages, Anthropic's Messages API (Claude Code's
 * and the Anthropic SDKs' only API), as the meter sees it, and POST
 * /v1/messages/count_tokens, which is not metered.
 *
 * What makes it different from chat:
 *  - max_tokens is required and bounds the whole output, thinking
 *    included;
 *  - the usage names the prompt's parts apart: input_tokens (neither read
 *    from the cache nor written to it), cache_creation_input_tokens
 *    (written, split into the 5-minute and the 1-hour cache by
 *    usage.cache_creation when the answer has it) and
 *    cache_read_input_tokens; tollgate's prompt_tokens is their sum;
 *  - a web search run by the server is billed per search
 *    (usage.server_tool_use.web_search_requests): the hold covers the
 *    tool's max_uses (or default_max_tool_calls) searches;
 *  - in a stream, message_start carries the input side and each
 *    message_delta the counts so far, which replace what came before,
 *    never add to it; message_stop ends the stream and is held until the
 *    call is settled; an error event is a failure.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "jsonx.h"
#include "key.h"
#include "relay.h"
#include "upstream.h"

enum { F_MODEL, F_STREAM, F_MAX_TOKENS, F_MESSAGES, F_TOOLS, NFIELDS };
_Static_assert(NFIELDS == TG_API_MESSAGES_NFIELDS, "api.h says the count");

const struct tg_field tg_api_messages_fields[NFIELDS] = {
        [F_MODEL] = {"model", TG_FIELD_STRING, 0},
        [F_STREAM] = {"stream", TG_FIELD_BOOL, 0},
        [F_MAX_TOKENS] = {"max_tokens", TG_FIELD_TOKENS, 0},
        [F_MESSAGES] = {"messages", TG_FIELD_MESSAGES, 0},
        [F_TOOLS] = {"tools", TG_FIELD_ARRAY, 0},
};

/*
 * Tokens the API adds to a request with tools, beyond the bytes of their
 * definitions: Anthropic's tool use system prompt (at most 346 tokens for
 * its models in its docs), with room to spare.
 */
#define TOOLS_OVERHEAD 1024

static const char *
string_member(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (json_object_object_get_ex(o, key, &v) &&
	    json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return NULL;
}

/* Whether a tool of the request is the server's web search
 * ("web_search_20250305" and its later versions). */
static bool
web_search_tool(struct json_object *tool)
{
	const char *type = string_member(tool, "type");

	return type != NULL && strncmp(type, "web_search", 10) == 0;
}

/* ---- the request ---- */

static enum tg_rc
check(const struct tg_req *req, struct tg_err *err)
{
	struct json_object *body = tg_req_json(req), *system, *tools;

	if (!tg_req_field(req, F_MODEL)->given)
		return tg_err_set(err, TG_ERR_BAD_REQUEST, "model",
		                  "model: Field required");
	if (!tg_req_field(req, F_MAX_TOKENS)->given)
		return tg_err_set(err, TG_ERR_BAD_REQUEST, "max_tokens",
		                  "max_tokens: Field required");
	if (!tg_req_field(req, F_MESSAGES)->given)
		return tg_err_set(err, TG_ERR_BAD_REQUEST, "messages",
		                  "messages: Field required");
	if (json_object_object_get_ex(body, "system", &system) &&
	    system != NULL && !json_object_is_type(system, json_type_string) &&
	    !json_object_is_type(system, json_type_array))
		return tg_err_set(err, TG_ERR_BAD_REQUEST, "system",
		                  "system: Input should be a valid string or "
		                  "a list of text blocks");
	tools = tg_req_field(req, F_TOOLS)->json;
	for (size_t i = 0; tools != NULL && i < json_object_array_length(tools);
	     i++) {
		struct json_object *tool = json_object_array_get_idx(tools, i);
		char where[32];

		if (json_object_is_type(tool, json_type_object))
			continue;
		snprintf(where, sizeof(where), "tools.%zu", i);
		return tg_err_set(err, TG_ERR_BAD_REQUEST, where,
		                  "%s: Input should be an object", where);
	}
	return TG_OK;
}

/* The image and document blocks of the messages: each is billed by what
 * it shows, not by its bytes. */
static int64_t
media_blocks(struct json_object *messages)
{
	int64_t n = 0;

	for (size_t i = 0;
	     messages != NULL && i < json_object_array_length(messages); i++) {
		struct json_object *m = json_object_array_get_idx(messages, i);
		struct json_object *content;

		if (!json_object_object_get_ex(m, "content", &content) ||
		    !json_object_is_type(content, json_type_array))
			continue;
		for (size_t j = 0; j < json_object_array_length(content); j++) {
			const char *type = string_member(
			        json_object_array_get_idx(content, j), "type");

			if (type != NULL && (strcmp(type, "image") == 0 ||
			                     strcmp(type, "document") == 0))
				n++;
		}
	}
	return n;
}

static enum tg_rc
bounds(const struct tg_config *cfg, const struct tg_deployment *d,
       const struct tg_req *req, struct tg_bounds *b, struct tg_err *err)
{
	struct json_object *tools = tg_req_field(req, F_TOOLS)->json;
	size_t body_len;
	bool search = false;

	memset(b, 0, sizeof(*b));
	b->service_tiers = tg_api_service_tiers(tg_req_json(req));
	b->prompt_field = "messages";
	/* A token covers at least one byte of the text the body carries. */
	tg_req_body(req, &body_len);
	b->prompt = (int64_t)body_len +
	            media_blocks(tg_req_field(req, F_MESSAGES)->json) *
	                    TG_IMAGE_TOKENS_MAX;
	if (tools != NULL && json_object_array_length(tools) > 0)
		b->prompt += TOOLS_OVERHEAD;
	/* Required by the API, and thinking is inside it. */
	b->output = tg_api_field_int(req, F_MAX_TOKENS);
	b->output_field = "max_tokens";
	tg_config_tool_price(cfg, d, TG_TOOL_WEB_SEARCH, TG_SEARCH_MEDIUM,
	                     &b->tool_price[TG_TOOL_WEB_SEARCH]);
	for (size_t i = 0; tools != NULL && i < json_object_array_length(tools);
	     i++) {
		struct json_object *tool = json_object_array_get_idx(tools, i);
		int64_t uses = 0;
		bool given = false;

		if (!web_search_tool(tool))
			continue;
		if (!tg_config_tool_price(cfg, d, TG_TOOL_WEB_SEARCH,
		                          TG_SEARCH_MEDIUM,
		                          &b->tool_price[TG_TOOL_WEB_SEARCH]))
			return tg_err_set(
			        err, TG_ERR_UNPROCESSABLE, "tools",
			        "The server tool '%s' has no price for "
			        "model=%s: tollgate cannot charge its "
			        "searches. Set tollgate_settings.tool_prices"
			        ".web_search in the config.",
			        string_member(tool, "type"), d->model_name);
		if (!tg_api_get_count(tool, "max_uses", &uses, &given) ||
		    !given || uses == 0)
			uses = cfg->default_max_tool_calls;
		/* Each web search tool may run its own max_uses. */
		b->tool_calls += uses;
		search = true;
	}
	if (search)
		b->tool_call_price = b->tool_price[TG_TOOL_WEB_SEARCH];
	return TG_OK;
}

/* ---- the answer ---- */

/*
 * The counts of a usage object as Anthropic names them; -1: not given.
 * The 1-hour part of the cache writes is kept apart, the rest of them is
 * the 5-minute cache's.
 */
struct counts {
	int64_t input, written, written_1h, read, output, searches;
};

/* A count of o, or keep when o has none (or null); false when it is not
 * one. */
static bool
count_of(struct json_object *o, const char *key, int64_t *v)
{
	struct json_object *x;
	int64_t n;
	bool given;

	if (json_object_object_get_ex(o, key, &x) && x == NULL)
		return true;
	if (!tg_api_get_count(o, key, &n, &given))
		return false;
	if (given)
		*v = n;
	return true;
}

/* The counts usage gives, over those of c (a message_delta's replace a
 * message_start's).  False when a count is not a count. */
static bool
read_counts(struct json_object *usage, struct counts *c)
{
	struct json_object *split, *tools;
	int64_t m5 = -1, h1 = -1;

	if (!count_of(usage, "input_tokens", &c->input) ||
	    !count_of(usage, "cache_creation_input_tokens", &c->written) ||
	    !count_of(usage, "cache_read_input_tokens", &c->read) ||
	    !count_of(usage, "output_tokens", &c->output))
		return false;
	if (json_object_object_get_ex(usage, "cache_creation", &split) &&
	    json_object_is_type(split, json_type_object)) {
		if (!count_of(split, "ephemeral_5m_input_tokens", &m5) ||
		    !count_of(split, "ephemeral_1h_input_tokens", &h1))
			return false;
		int64_t split_sum;

		if (h1 >= 0)
			c->written_1h = h1;
		/* Writes the split names beyond the total: the larger. */
		if (__builtin_add_overflow(m5 > 0 ? m5 : 0, h1 > 0 ? h1 : 0,
		                           &split_sum))
			return false;
		if (split_sum > c->written)
			c->written = split_sum;
	}
	if (json_object_object_get_ex(usage, "server_tool_use", &tools) &&
	    json_object_is_type(tools, json_type_object) &&
	    !count_of(tools, "web_search_requests", &c->searches))
		return false;
	return true;
}

/* c as tollgate's usage, into *u; false (u untouched) when c has
 * neither side. */
static bool
usage_of(const struct counts *c, struct tg_usage *u)
{
	int64_t written = c->written > 0 ? c->written : 0;
	int64_t h1 = c->written_1h > 0 ? c->written_1h : 0;
	int64_t in = c->input > 0 ? c->input : 0;
	int64_t read = c->read > 0 ? c->read : 0;
	int64_t out = c->output > 0 ? c->output : 0;

	int64_t prompt, total;

	if (c->input < 0 && c->output < 0)
		return false;
	if (h1 > written)
		h1 = written;
	/* Counts no answer can have: not a usage. */
	if (__builtin_add_overflow(in, written, &prompt) ||
	    __builtin_add_overflow(prompt, read, &prompt) ||
	    __builtin_add_overflow(prompt, out, &total))
		return false;
	u->present = true;
	u->prompt_tokens = prompt;
	u->cached_tokens = read;
	u->cache_write_1h_tokens = h1;
	u->cache_write_tokens = written - h1;
	u->completion_tokens = out;
	u->total_tokens = total;
	if (c->searches > 0)
		u->tool_calls[TG_TOOL_WEB_SEARCH] = c->searches;
	return true;
}

/* The counts u stands for (what a stream has said so far). */
static struct counts
counts_of(const struct tg_usage *u)
{
	struct counts c = {-1, -1, -1, -1, -1, -1};

	if (!u->present)
		return c;
	c.read = u->cached_tokens;
	c.written = u->cache_write_tokens + u->cache_write_1h_tokens;
	c.written_1h = u->cache_write_1h_tokens;
	c.input = u->prompt_tokens - c.read - c.written;
	c.output = u->completion_tokens;
	c.searches = u->tool_calls[TG_TOOL_WEB_SEARCH];
	return c;
}

bool
tg_api_anthropic_usage(struct json_object *usage, struct tg_usage *u)
{
	struct counts c = counts_of(u);

	struct json_object *v;

	if (!json_object_is_type(usage, json_type_object) ||
	    !read_counts(usage, &c))
		return false;
	/* Anthropic reports its service tier ("standard", "priority",
	 * "batch") in the usage. */
	if (json_object_object_get_ex(usage, "service_tier", &v))
		u->service_tier = tg_api_service_tier_of(v);
	return usage_of(&c, u);
}

/* Bytes of the text a content block (or a delta) carries: text,
 * thinking, a tool's input: each token produced is at least one. */
static int64_t
block_bytes(struct json_object *block)
{
	struct json_object *input;
	int64_t n = tg_api_string_len(block, "text") +
	            tg_api_string_len(block, "thinking") +
	            tg_api_string_len(block, "partial_json") +
	            tg_api_string_len(block, "name");

	if (json_object_object_get_ex(block, "input", &input) &&
	    input != NULL) {
		size_t len;

		json_object_to_json_string_length(input, JSON_C_TO_STRING_PLAIN,
		                                  &len);
		n += (int64_t)len;
	}
	return n;
}

/* What a message object says: its id, usage and text. */
static void
read_message(struct json_object *msg, struct tg_answer *a)
{
	struct json_object *usage, *content;
	const char *id = string_member(msg, "id");

	if (id != NULL)
		tg_api_set_response_id(a, id);
	if (json_object_object_get_ex(msg, "content", &content) &&
	    json_object_is_type(content, json_type_array))
		for (size_t i = 0; i < json_object_array_length(content); i++)
			a->text_bytes += block_bytes(
			        json_object_array_get_idx(content, i));
	if (json_object_object_get_ex(msg, "usage", &usage))
		tg_api_anthropic_usage(usage, &a->u);
}

static void
read_answer(const char *body, size_t len, struct tg_answer *a)
{
	struct json_object *msg = tg_json_parse(body, len);

	memset(a, 0, sizeof(*a));
	if (json_object_is_type(msg, json_type_object))
		read_message(msg, a);
	/* A tool's input counts as json-c prints it, which may be longer
	 * than the text that came: the body bounds it. */
	if (!json_object_is_type(msg, json_type_object) ||
	    a->text_bytes > (int64_t)len)
		a->text_bytes = (int64_t)len;
	json_object_put(msg);
}

/* ---- the stream ---- */

/*
 * Text relayed before the final counts: until a message_delta says how
 * many tokens the output took, each byte of it may be one (within
 * max_tokens), so that a stream cut before its end is charged what it
 * relayed.
 */
static void
relayed(struct tg_relay *r, int64_t bytes)
{
	int64_t bound = r->output_bound;
	struct tg_usage *u = &r->answer.u;

	r->answer.text_bytes += bytes;
	if (r->output_counted || !u->present)
		return;
	if (r->answer.text_bytes > u->completion_tokens)
		u->completion_tokens = r->answer.text_bytes < bound
		                               ? r->answer.text_bytes
		                               : bound;
	if (__builtin_add_overflow(u->prompt_tokens, u->completion_tokens,
	                           &u->total_tokens))
		u->total_tokens = INT64_MAX;
}

static enum tg_relay_action
stream_event(struct tg_relay *r, const struct tg_sse_event *ev,
             struct json_object *obj)
{
	struct json_object *v;
	const char *type;

	(void)ev;
	if (obj == NULL || (type = string_member(obj, "type")) == NULL)
		return TG_RELAY_FORWARD;
	if (strcmp(type, "content_block_delta") == 0) {
		if (json_object_object_get_ex(obj, "delta", &v))
			relayed(r, block_bytes(v));
		return TG_RELAY_FORWARD;
	}
	if (strcmp(type, "content_block_start") == 0) {
		if (json_object_object_get_ex(obj, "content_block", &v))
			relayed(r, block_bytes(v));
		return TG_RELAY_FORWARD;
	}
	if (strcmp(type, "message_start") == 0) {
		if (json_object_object_get_ex(obj, "message", &v) &&
		    json_object_is_type(v, json_type_object)) {
			int64_t text = r->answer.text_bytes;

			read_message(v, &r->answer);
			r->answer.text_bytes = text;
		}
		return TG_RELAY_FORWARD;
	}
	if (strcmp(type, "message_delta") == 0) {
		if (json_object_object_get_ex(obj, "usage", &v) &&
		    tg_api_anthropic_usage(v, &r->answer.u))
			r->output_counted = true;
		return TG_RELAY_FORWARD;
	}
	if (strcmp(type, "message_stop") == 0) {
		/* The end: held until the call is settled. */
		r->ended = true;
		return TG_RELAY_HOLD;
	}
	if (strcmp(type, "error") == 0)
		r->failed = true;
	return TG_RELAY_FORWARD;
}

static bool
stream_whole(const struct tg_relay *r)
{
	return r->ended;
}

/* Anthropic's error event: event "error", {"type": "error", "error":
 * {"type", "message"}}. */
static void
stream_error_event(struct tg_relay *r, const struct tg_err *err)
{
	struct json_object *e = tg_error_envelope_anthropic(err, NULL);

	tg_relay_write_json(r, "error", e);
	json_object_put(e);
}

static const struct tg_stream_dialect dialect = {
        .event = stream_event,
        .whole = stream_whole,
        .closing = NULL,
        .error_event = stream_error_event,
};

const struct tg_api_adapter tg_api_messages = {
        .api = TG_API_MESSAGES,
        .call_type = "anthropic_messages",
        .fields = tg_api_messages_fields,
        .nfields = NFIELDS,
        .f_model = F_MODEL,
        .f_stream = F_STREAM,
        .check = check,
        .bounds = bounds,
        .prepare = NULL,
        .read_answer = read_answer,
        .stream = &dialect,
};

/* ---- count_tokens ---- */

const struct tg_field tg_api_count_tokens_fields[TG_API_COUNT_TOKENS_NFIELDS] =
        {
                {"model", TG_FIELD_STRING, 0},
                {"messages", TG_FIELD_MESSAGES, 0},
};

static const char *
client_header(const void *req, const char *name)
{
	return tg_req_header(req, name);
}

enum tg_rc
tg_api_messages_count_tokens(struct tg_req *req, struct tg_err *err)
{
	const struct tg_config *cfg = tg_req_config(req);
	const struct tg_key *key = tg_req_key(req);
	const struct tg_value *model = tg_req_field(req, 0);
	const struct tg_deployment *d = NULL;
	struct tg_upstream_request rq;
	struct tg_upstream_response resp;
	size_t idx[64], n, body_len;
	const char *body_text;
	char *body = NULL, *headers[8];
	enum tg_rc rc;

	if (!model->given)
		return tg_err_set(err, TG_ERR_BAD_REQUEST, "model",
		                  "model: Field required");
	if (!tg_req_field(req, 1)->given)
		return tg_err_set(err, TG_ERR_BAD_REQUEST, "messages",
		                  "messages: Field required");
	if (!tg_config_has_model(cfg, model->str))
		return tg_err_set(err, TG_ERR_NOT_FOUND, "model",
		                  "model: %s is not a model of this proxy",
		                  model->str);
	if (key != NULL && !tg_key_allows_model(key, model->str))
		return tg_err_set(err, TG_ERR_AUTH, "model",
		                  "key not allowed to access model=%s",
		                  model->str);
	n = tg_config_deployments(cfg, model->str, idx, 64);
	for (size_t i = 0; i < n && d == NULL; i++)
		if (tg_provider(cfg->deployments[idx[i]].provider)
		            ->count_tokens)
			d = &cfg->deployments[idx[i]];
	if (d == NULL)
		return tg_err_set(err, TG_ERR_BAD_REQUEST, "model",
		                  "model=%s cannot count tokens: only an "
		                  "anthropic/ deployment answers "
		                  "/v1/messages/count_tokens",
		                  model->str);
	body_text = tg_req_body(req, &body_len);
	body = tg_upstream_body(d, tg_req_json(req), body_text, body_len,
	                        &body_len);
	memset(&rq, 0, sizeof(rq));
	memset(&resp, 0, sizeof(resp));
	rq.api = TG_API_MESSAGES;
	rq.subpath = "/count_tokens";
	rq.body = body;
	rq.body_len = body_len;
	rq.timeout_s = d->timeout_s;
	tg_upstream_client_headers(d, client_header, req, headers, 8);
	rq.headers = (const char *const *)headers;
	rc = tg_upstream_call(d, &rq, &resp, err);
	tg_upstream_headers_free(headers);
	free(body);
	if (rc != TG_OK)
		goto out;
	if ((resp.status >= 200 && resp.status < 300) ||
	    (resp.body != NULL &&
	     tg_error_envelope_is(TG_ENVELOPE_ANTHROPIC, resp.body,
	                          resp.body_len))) {
		/* Its count, or its own error, as it said it. */
		tg_req_respond_raw(req, (int)resp.status, resp.body,
		                   resp.body_len);
	} else {
		rc = tg_err_set(err, TG_ERR_UPSTREAM, NULL,
		                "Upstream error %ld: %.300s", resp.status,
		                resp.body ? resp.body : "");
		err->status = (int)resp.status;
	}
out:
	tg_upstream_response_free(&resp);
	return rc;
}
