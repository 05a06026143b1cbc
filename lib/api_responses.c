/*
 * api_responses: POST /v1/responses, OpenAI's Responses API (the Codex
 * CLI's only API), as the meter sees it (SPEC 11), and the routes of the
 * responses an upstream keeps (GET, DELETE, cancel, input_items), which
 * are not metered.
 *
 * What makes its worst case different from chat's:
 *  - previous_response_id, conversation, a stored prompt and item
 *    references make the upstream add input the body does not show, so
 *    for them the input bound is the model's context window
 *    (max_input_tokens), not the body's bytes;
 *  - hosted tools (web search, file search, code interpreter, image
 *    generation) bill per call: the hold covers max_tool_calls (or
 *    default_max_tool_calls) calls at the dearest of the call's hosted
 *    tools, and a hosted tool without a price anywhere refuses the call
 *    (tollgate never serves a call it cannot charge);
 *  - usage comes only in the terminal event of a stream
 *    (response.completed, response.incomplete), which is held until the
 *    call is settled; response.failed, an error event or a stream without
 *    a terminal event is a failure charged what was relayed.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "db.h"
#include "jsonx.h"
#include "key.h"
#include "relay.h"
#include "spendlog.h"
#include "upstream.h"

enum {
	F_MODEL,
	F_STREAM,
	F_MAX_OUTPUT_TOKENS,
	F_INPUT,
	F_INSTRUCTIONS,
	F_PREVIOUS_RESPONSE_ID,
	F_TOOLS,
	F_MAX_TOOL_CALLS,
	F_STORE,
	F_BACKGROUND,
	NFIELDS
};
_Static_assert(NFIELDS == TG_API_RESPONSES_NFIELDS, "api.h says the count");

const struct tg_field tg_api_responses_fields[NFIELDS] = {
        [F_MODEL] = {"model", TG_FIELD_STRING, 0},
        [F_STREAM] = {"stream", TG_FIELD_BOOL, 0},
        [F_MAX_OUTPUT_TOKENS] = {"max_output_tokens", TG_FIELD_TOKENS, 0},
        [F_INPUT] = {"input", TG_FIELD_INPUT, 0},
        [F_INSTRUCTIONS] = {"instructions", TG_FIELD_STRING, 0},
        [F_PREVIOUS_RESPONSE_ID] = {"previous_response_id", TG_FIELD_STRING, 0},
        [F_TOOLS] = {"tools", TG_FIELD_ARRAY, 0},
        [F_MAX_TOOL_CALLS] = {"max_tool_calls", TG_FIELD_TOKENS, 0},
        [F_STORE] = {"store", TG_FIELD_BOOL, 0},
        [F_BACKGROUND] = {"background", TG_FIELD_BOOL, 0},
};

/* ---- hosted tools ---- */

/* The hosted tools (lib/pricing.h), by their type in a request's tools. */
static bool
hosted_tool(const char *type, enum tg_tool *t)
{
	if (strncmp(type, "web_search_preview", 18) == 0)
		*t = TG_TOOL_WEB_SEARCH_PREVIEW;
	else if (strncmp(type, "web_search", 10) == 0)
		*t = TG_TOOL_WEB_SEARCH;
	else if (strcmp(type, "file_search") == 0)
		*t = TG_TOOL_FILE_SEARCH;
	else if (strcmp(type, "code_interpreter") == 0)
		*t = TG_TOOL_CODE_INTERPRETER;
	else if (strcmp(type, "image_generation") == 0)
		*t = TG_TOOL_IMAGE_GENERATION;
	else
		return false;
	return true;
}

static const char *
string_member(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (json_object_object_get_ex(o, key, &v) &&
	    json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return NULL;
}

/*
 * The price per call of each hosted tool on d (b->tool_price; web searches
 * of both kinds count under TG_TOOL_WEB_SEARCH: their calls look alike in
 * the output), and the dearest of those the request gives, which the hold
 * covers.  A tool the request does not give is priced too: a stored prompt
 * may bring it.  A hosted tool the request gives without a price refuses
 * the call.
 */
static enum tg_rc
tool_prices(const struct tg_config *cfg, const struct tg_deployment *d,
            struct json_object *tools, struct tg_bounds *b, bool *any,
            struct tg_err *err)
{
	bool given[TG_TOOL_COUNT] = {false};

	*any = false;
	for (size_t t = 0; t < TG_TOOL_COUNT; t++)
		if (t != TG_TOOL_WEB_SEARCH_PREVIEW)
			tg_config_tool_price(cfg, d, (enum tg_tool)t,
			                     TG_SEARCH_MEDIUM,
			                     &b->tool_price[t]);
	for (size_t i = 0; tools != NULL && i < json_object_array_length(tools);
	     i++) {
		struct json_object *tool = json_object_array_get_idx(tools, i);
		const char *type = string_member(tool, "type");
		enum tg_tool t, counted;
		tg_price price;

		if (type == NULL || !hosted_tool(type, &t))
			continue;
		if (!tg_config_tool_price(cfg, d, t,
		                          tg_api_search_context(tool), &price))
			return tg_err_set(
			        err, TG_ERR_UNPROCESSABLE, "tools",
			        "The hosted tool '%s' has no price for "
			        "model=%s: tollgate cannot charge its "
			        "calls. Set tollgate_settings.tool_prices"
			        ".%s in the config.",
			        type, d->model_name, tg_tool_name(t));
		counted = t == TG_TOOL_WEB_SEARCH_PREVIEW ? TG_TOOL_WEB_SEARCH
		                                          : t;
		/* The request's own tool (its search_context_size) sets the
		 * price; of two of a kind, the dearer. */
		if (!given[counted] || price > b->tool_price[counted])
			b->tool_price[counted] = price;
		given[counted] = true;
		if (price > b->tool_call_price)
			b->tool_call_price = price;
		*any = true;
	}
	return TG_OK;
}

/* ---- the request ---- */

static enum tg_rc
check(const struct tg_req *req, struct tg_err *err)
{
	struct json_object *body = tg_req_json(req), *tools, *v;

	if (!tg_req_field(req, F_INPUT)->given &&
	    !tg_req_field(req, F_PREVIOUS_RESPONSE_ID)->given &&
	    !json_object_object_get_ex(body, "conversation", &v) &&
	    !json_object_object_get_ex(body, "prompt", &v))
		return tg_err_set(err, TG_ERR_BAD_REQUEST, "input",
		                  "Missing required parameter: 'input'.");
	/* A background response is answered before it runs: its usage is
	 * known only later, to whoever polls it, and tollgate would serve a
	 * call it cannot charge. */
	if (tg_req_field(req, F_BACKGROUND)->given &&
	    tg_req_field(req, F_BACKGROUND)->num)
		return tg_err_set(err, TG_ERR_BAD_REQUEST, "background",
		                  "background responses are not supported: "
		                  "their cost is known only after the call "
		                  "returns, so it could not be held or "
		                  "charged");
	tools = tg_req_field(req, F_TOOLS)->json;
	for (size_t i = 0; tools != NULL && i < json_object_array_length(tools);
	     i++) {
		struct json_object *tool = json_object_array_get_idx(tools, i);
		char where[32];

		if (json_object_is_type(tool, json_type_object) &&
		    string_member(tool, "type") != NULL)
			continue;
		snprintf(where, sizeof(where), "tools[%zu]", i);
		return tg_err_set(err, TG_ERR_UNPROCESSABLE, where,
		                  "Invalid value for '%s': a tool is an object "
		                  "with a string 'type'.",
		                  where);
	}
	return TG_OK;
}

/*
 * Whether the upstream adds stored input the body does not show: a
 * previous response, a conversation, a stored prompt, an item reference.
 */
static bool
stored_input(const struct tg_req *req)
{
	struct json_object *body = tg_req_json(req), *input, *v;

	if (tg_req_field(req, F_PREVIOUS_RESPONSE_ID)->given ||
	    (json_object_object_get_ex(body, "conversation", &v) &&
	     v != NULL) ||
	    (json_object_object_get_ex(body, "prompt", &v) && v != NULL))
		return true;
	input = tg_req_field(req, F_INPUT)->json;
	if (!json_object_is_type(input, json_type_array))
		return false;
	for (size_t i = 0; i < json_object_array_length(input); i++) {
		const char *type = string_member(
		        json_object_array_get_idx(input, i), "type");

		if (type != NULL && strcmp(type, "item_reference") == 0)
			return true;
	}
	return false;
}

/* The input_image parts of the input: each is billed by its size. */
static int64_t
image_parts(struct json_object *input)
{
	int64_t n = 0;

	if (!json_object_is_type(input, json_type_array))
		return 0;
	for (size_t i = 0; i < json_object_array_length(input); i++) {
		struct json_object *item = json_object_array_get_idx(input, i);
		struct json_object *content;

		if (!json_object_object_get_ex(item, "content", &content) ||
		    !json_object_is_type(content, json_type_array))
			continue;
		for (size_t j = 0; j < json_object_array_length(content); j++) {
			const char *type = string_member(
			        json_object_array_get_idx(content, j), "type");

			if (type != NULL && strcmp(type, "input_image") == 0)
				n++;
		}
	}
	return n;
}

static enum tg_rc
bounds(const struct tg_config *cfg, const struct tg_deployment *d,
       const struct tg_req *req, struct tg_bounds *b, struct tg_err *err)
{
	size_t body_len;
	bool hosted;
	enum tg_rc rc;

	memset(b, 0, sizeof(*b));
	b->service_tiers = tg_api_service_tiers(tg_req_json(req));
	b->prompt_field = "input";
	tg_req_body(req, &body_len);
	b->prompt = (int64_t)body_len +
	            image_parts(tg_req_field(req, F_INPUT)->json) *
	                    TG_IMAGE_TOKENS_MAX;
	if (stored_input(req)) {
		/* The stored input is the upstream's; all it can read at
		 * once is the model's context window. */
		if (d->price.max_input_tokens <= 0)
			return tg_err_set(
			        err, TG_ERR_UNPROCESSABLE,
			        tg_req_field(req, F_PREVIOUS_RESPONSE_ID)->given
			                ? "previous_response_id"
			                : "input",
			        "model=%s has no max_input_tokens in the price "
			        "data, so the input a stored response or "
			        "conversation adds cannot be bounded for the "
			        "budget; set model_info.max_input_tokens",
			        d->model_name);
		if (d->price.max_input_tokens > b->prompt)
			b->prompt = d->price.max_input_tokens;
	}
	b->output = tg_api_output_bound(
	        cfg, d, tg_api_field_int(req, F_MAX_OUTPUT_TOKENS));
	b->output_field = "max_output_tokens";
	rc = tool_prices(cfg, d, tg_req_field(req, F_TOOLS)->json, b, &hosted,
	                 err);
	if (rc != TG_OK)
		return rc;
	if (hosted) {
		b->tool_calls = tg_api_field_int(req, F_MAX_TOOL_CALLS);
		if (b->tool_calls == 0)
			b->tool_calls = cfg->default_max_tool_calls;
	}
	return TG_OK;
}

/* ---- the answer ---- */

/* The hosted tool a call item of the output is of ("web_search_call"). */
static bool
call_item(const char *type, enum tg_tool *t)
{
	if (strcmp(type, "web_search_call") == 0)
		*t = TG_TOOL_WEB_SEARCH;
	else if (strcmp(type, "file_search_call") == 0)
		*t = TG_TOOL_FILE_SEARCH;
	else if (strcmp(type, "code_interpreter_call") == 0)
		*t = TG_TOOL_CODE_INTERPRETER;
	else if (strcmp(type, "image_generation_call") == 0)
		*t = TG_TOOL_IMAGE_GENERATION;
	else
		return false;
	return true;
}

/*
 * The hosted tool calls of output (an array of items) into calls[]: one
 * per call item, but a code interpreter is billed per container, so its
 * calls count once per container_id (each call without one counts).
 */
static void
count_calls(struct json_object *output, int64_t calls[TG_TOOL_COUNT])
{
	const char *containers[64];
	size_t ncontainers = 0;

	memset(calls, 0, TG_TOOL_COUNT * sizeof(calls[0]));
	for (size_t i = 0;
	     output != NULL && i < json_object_array_length(output); i++) {
		struct json_object *item = json_object_array_get_idx(output, i);
		const char *type = string_member(item, "type");
		const char *container;
		enum tg_tool t;
		bool seen = false;

		if (type == NULL || !call_item(type, &t))
			continue;
		container = t == TG_TOOL_CODE_INTERPRETER
		                    ? string_member(item, "container_id")
		                    : NULL;
		for (size_t j = 0; container != NULL && j < ncontainers; j++)
			seen = seen || strcmp(containers[j], container) == 0;
		if (seen)
			continue;
		if (container != NULL && ncontainers < 64)
			containers[ncontainers++] = container;
		calls[t]++;
	}
}

/* Bytes of the text an item carries (output text, refusals, a function
 * call's arguments, reasoning summaries): bounds its tokens. */
static int64_t
item_text_bytes(struct json_object *item)
{
	struct json_object *content;
	int64_t n = tg_api_string_len(item, "arguments") +
	            tg_api_string_len(item, "input") +
	            tg_api_string_len(item, "code");

	for (int k = 0; k < 2; k++)
		if (json_object_object_get_ex(item, k ? "summary" : "content",
		                              &content) &&
		    json_object_is_type(content, json_type_array))
			for (size_t i = 0;
			     i < json_object_array_length(content); i++) {
				struct json_object *part =
				        json_object_array_get_idx(content, i);

				n += tg_api_string_len(part, "text") +
				     tg_api_string_len(part, "refusal");
			}
	return n;
}

/* What a response object says: usage, id, calls, text. */
static void
read_response(struct json_object *resp, struct tg_answer *a)
{
	struct json_object *usage, *output;
	const char *id = string_member(resp, "id");

	if (id != NULL)
		tg_api_set_response_id(a, id);
	if (!json_object_object_get_ex(resp, "output", &output) ||
	    !json_object_is_type(output, json_type_array))
		output = NULL;
	if (output != NULL) {
		count_calls(output, a->u.tool_calls);
		a->text_bytes = 0;
		for (size_t i = 0; i < json_object_array_length(output); i++)
			a->text_bytes += item_text_bytes(
			        json_object_array_get_idx(output, i));
	}
	if (json_object_object_get_ex(resp, "service_tier", &usage))
		a->u.service_tier = tg_api_service_tier_of(usage);
	if (json_object_object_get_ex(resp, "usage", &usage))
		tg_api_usage(usage, &tg_usage_responses, &a->u);
}

static void
read_answer(const char *body, size_t len, struct tg_answer *a)
{
	struct json_object *resp = tg_json_parse(body, len);

	memset(a, 0, sizeof(*a));
	if (json_object_is_type(resp, json_type_object))
		read_response(resp, a);
	else
		a->text_bytes = (int64_t)len;
	json_object_put(resp);
}

/* ---- the stream ---- */

/* The events whose "delta" is text the model produced. */
static bool
delta_event(const char *type)
{
	static const char *const deltas[] = {
	        "response.output_text.delta",
	        "response.refusal.delta",
	        "response.function_call_arguments.delta",
	        "response.custom_tool_call_input.delta",
	        "response.reasoning_text.delta",
	        "response.reasoning_summary_text.delta",
	        "response.code_interpreter_call_code.delta",
	        "response.mcp_call_arguments.delta",
	};

	for (size_t i = 0; i < sizeof(deltas) / sizeof(deltas[0]); i++)
		if (strcmp(type, deltas[i]) == 0)
			return true;
	return false;
}

static enum tg_relay_action
stream_event(struct tg_relay *r, const struct tg_sse_event *ev,
             struct json_object *obj)
{
	struct json_object *v, *resp = NULL;
	const char *type;
	enum tg_tool t;

	(void)ev;
	if (obj == NULL)
		return TG_RELAY_FORWARD;
	if (json_object_object_get_ex(obj, "sequence_number", &v) &&
	    json_object_is_type(v, json_type_int) &&
	    json_object_get_int64(v) > r->sequence)
		r->sequence = json_object_get_int64(v);
	type = string_member(obj, "type");
	if (type == NULL)
		return TG_RELAY_FORWARD;
	if (delta_event(type)) {
		r->answer.text_bytes += tg_api_string_len(obj, "delta");
		return TG_RELAY_FORWARD;
	}
	json_object_object_get_ex(obj, "response", &resp);
	if (strcmp(type, "response.created") == 0 ||
	    strcmp(type, "response.in_progress") == 0) {
		if (json_object_is_type(resp, json_type_object) &&
		    string_member(resp, "id") != NULL)
			tg_api_set_response_id(&r->answer,
			                       string_member(resp, "id"));
		return TG_RELAY_FORWARD;
	}
	if (strcmp(type, "response.output_item.done") == 0) {
		/* Counted as they come, for a stream cut before its end;
		 * the terminal event's output recounts them all. */
		if (json_object_object_get_ex(obj, "item", &v) &&
		    string_member(v, "type") != NULL &&
		    call_item(string_member(v, "type"), &t))
			r->answer.u.tool_calls[t]++;
		return TG_RELAY_FORWARD;
	}
	if (strcmp(type, "response.completed") == 0 ||
	    strcmp(type, "response.incomplete") == 0 ||
	    strcmp(type, "response.failed") == 0) {
		int64_t text = r->answer.text_bytes;

		/* The end: held until the call is settled. */
		r->ended = true;
		r->failed = strcmp(type, "response.failed") == 0;
		if (json_object_is_type(resp, json_type_object))
			read_response(resp, &r->answer);
		/* What was relayed bounds the output, if usage is missing. */
		if (r->answer.text_bytes < text)
			r->answer.text_bytes = text;
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

/* The Responses API's error event: {"type": "error", "code", "message",
 * "param", "sequence_number"}. */
static void
stream_error_event(struct tg_relay *r, const struct tg_err *err)
{
	struct json_object *e = json_object_new_object();

	json_object_object_add(e, "type", json_object_new_string("error"));
	json_object_object_add(e, "code",
	                       json_object_new_string(tg_err_type(err)));
	json_object_object_add(e, "message",
	                       json_object_new_string(err->message));
	json_object_object_add(e, "param",
	                       err->param[0] != '\0'
	                               ? json_object_new_string(err->param)
	                               : NULL);
	json_object_object_add(e, "sequence_number",
	                       json_object_new_int64(r->sequence + 1));
	tg_relay_write_json(r, "error", e);
	json_object_put(e);
}

static const struct tg_stream_dialect dialect = {
        .event = stream_event,
        .whole = stream_whole,
        .closing = NULL,
        .error_event = stream_error_event,
};

const struct tg_api_adapter tg_api_responses = {
        .api = TG_API_RESPONSES,
        .call_type = "aresponses",
        .fields = tg_api_responses_fields,
        .nfields = NFIELDS,
        .f_model = F_MODEL,
        .f_stream = F_STREAM,
        .check = check,
        .bounds = bounds,
        .prepare = NULL,
        .read_answer = read_answer,
        .stream = &dialect,
};

/* ---- the responses an upstream keeps ---- */

/* Whether q is a query string made only of URL characters that need no
 * care: passed on as it came. */
static bool
plain_query(const char *q)
{
	for (; *q != '\0'; q++)
		if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
		      (*q >= '0' && *q <= '9') || strchr("-._~%&=+[]", *q)))
			return false;
	return true;
}

/* Whether text is a JSON object. */
static bool
json_object_text(const char *text, size_t len)
{
	struct json_object *o = tg_json_parse(text, len);
	bool yes = json_object_is_type(o, json_type_object);

	json_object_put(o);
	return yes;
}

/* The configured deployment that made the response o records, or NULL
 * (the config changed since). */
static const struct tg_deployment *
origin_deployment(const struct tg_config *cfg,
                  const struct tg_spendlog_origin *o)
{
	for (size_t i = 0; i < cfg->ndeployments; i++) {
		const struct tg_deployment *d = &cfg->deployments[i];

		if (o->model != NULL && o->model_id != NULL &&
		    o->api_base != NULL &&
		    strcmp(d->model_name, o->model) == 0 &&
		    strcmp(d->litellm_model, o->model_id) == 0 &&
		    strcmp(tg_upstream_base(d), o->api_base) == 0)
			return d;
	}
	return NULL;
}

enum tg_rc
tg_api_responses_stored(struct tg_req *req, struct tg_err *err)
{
	const char *id = tg_req_path_arg(req, 0);
	const char *path = tg_req_path(req), *query = tg_req_query(req);
	const char *method = tg_req_method(req);
	const struct tg_deployment *d = NULL;
	struct tg_upstream_request rq;
	struct tg_upstream_response resp;
	struct tg_spendlog_origin o;
	struct tg_db *db;
	char subpath[TG_RESPONSE_ID_MAX + 32];
	const char *suffix = "";
	size_t plen = strlen(path);
	enum tg_rc rc;

	memset(&o, 0, sizeof(o));
	memset(&resp, 0, sizeof(resp));
	if (plen > 12 && strcmp(path + plen - 12, "/input_items") == 0)
		suffix = "/input_items";
	else if (plen > 7 && strcmp(path + plen - 7, "/cancel") == 0)
		suffix = "/cancel";
	if (id == NULL || strlen(id) > TG_RESPONSE_ID_MAX)
		return tg_err_set(err, TG_ERR_NOT_FOUND, NULL,
		                  "Response with id '%.*s' not found.", 200,
		                  id ? id : "");
	if (query != NULL && query[0] != '\0' && !plain_query(query))
		return tg_err_set(err, TG_ERR_BAD_REQUEST, NULL,
		                  "The query string holds characters that are "
		                  "not passed on; percent-encode them");
	if ((rc = tg_req_db(req, &db, err)) != TG_OK)
		return rc;
	if ((rc = tg_spendlog_origin(db, id, &o, err)) != TG_OK)
		goto out;
	/* Only the key that made it sees it (the master key sees all): to
	 * anyone else it does not exist. */
	if ((tg_req_key(req) != NULL &&
	     (o.api_key == NULL ||
	      strcmp(o.api_key, tg_req_key_hash(req)) != 0)) ||
	    (d = origin_deployment(tg_req_config(req), &o)) == NULL) {
		rc = tg_err_set(err, TG_ERR_NOT_FOUND, NULL,
		                "Response with id '%s' not found.", id);
		goto out;
	}
	snprintf(subpath, sizeof(subpath), "/%s%s", id, suffix);
	memset(&rq, 0, sizeof(rq));
	rq.api = TG_API_RESPONSES;
	rq.method = method;
	rq.subpath = subpath;
	rq.query = query != NULL && query[0] != '\0' ? query : NULL;
	rq.timeout_s = d->timeout_s;
	if (strcmp(method, "POST") == 0) {
		rq.body = "{}";
		rq.body_len = 2;
	}
	if ((rc = tg_upstream_call(d, &rq, &resp, err)) != TG_OK)
		goto out;
	if (resp.status >= 200 && resp.status < 300) {
		tg_req_respond_raw(req, (int)resp.status, resp.body,
		                   resp.body_len);
	} else if (resp.body != NULL &&
	           json_object_text(resp.body, resp.body_len)) {
		/* The upstream's own error, as it said it. */
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
	tg_spendlog_origin_free(&o);
	return rc;
}
