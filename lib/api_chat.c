/*
 * api_chat: POST /chat/completions (SPEC 4) as the meter sees it: its
 * fields, the worst case of SPEC 4.3 (the body's bytes, a fixed worst case
 * per image part, the output bound times "n"), its usage, and its stream of
 * chunks (SPEC 4.5), whose usage chunk tollgate asks for and drops unless
 * the client asked for it too.
 */
#define _POSIX_C_SOURCE 200809L

#include <string.h>

#include "api.h"
#include "relay.h"

enum {
	F_MODEL,
	F_STREAM,
	F_MAX_TOKENS,
	F_MAX_COMPLETION_TOKENS,
	F_MESSAGES,
	F_N,
	NFIELDS
};
_Static_assert(NFIELDS == TG_API_CHAT_NFIELDS, "api.h says the count");

const struct tg_field tg_api_chat_fields[NFIELDS] = {
        [F_MODEL] = {"model", TG_FIELD_STRING, 0},
        [F_STREAM] = {"stream", TG_FIELD_BOOL, 0},
        [F_MAX_TOKENS] = {"max_tokens", TG_FIELD_TOKENS, 0},
        [F_MAX_COMPLETION_TOKENS] = {"max_completion_tokens", TG_FIELD_TOKENS,
                                     0},
        [F_MESSAGES] = {"messages", TG_FIELD_MESSAGES, 0},
        [F_N] = {"n", TG_FIELD_TOKENS, 0},
};

static enum tg_rc
check(const struct tg_req *req, struct tg_err *err)
{
	/* The shape of messages was checked at the front line. */
	if (!tg_req_field(req, F_MESSAGES)->given)
		return tg_err_set(err, TG_ERR_BAD_REQUEST, "messages",
		                  "Missing required field: messages");
	if (tg_api_field_int(req, F_N) > TG_API_N_MAX)
		return tg_err_set(
		        err, TG_ERR_UNPROCESSABLE, "n",
		        "Invalid 'n': integer above the maximum value, "
		        "expected a value <= %d",
		        TG_API_N_MAX);
	return TG_OK;
}

static int64_t
count_image_parts(struct json_object *messages)
{
	int64_t images = 0;
	size_t n = json_object_array_length(messages);

	for (size_t i = 0; i < n; i++) {
		struct json_object *m = json_object_array_get_idx(messages, i);
		struct json_object *content, *type;

		if (!json_object_object_get_ex(m, "content", &content) ||
		    !json_object_is_type(content, json_type_array))
			continue;
		for (size_t j = 0; j < json_object_array_length(content); j++) {
			struct json_object *part =
			        json_object_array_get_idx(content, j);
			if (json_object_object_get_ex(part, "type", &type) &&
			    json_object_is_type(type, json_type_string) &&
			    strcmp(json_object_get_string(type), "image_url") ==
			            0)
				images++;
		}
	}
	return images;
}

/*
 * A web search: a chat call with web_search_options (OpenAI's search
 * models, Gemini's grounding) is billed one search, at the price of its
 * search_context_size (the model's search_context_cost_per_query, else
 * tollgate_settings.tool_prices.web_search).  A provider that counts its
 * searches in the usage (Perplexity's num_search_queries) is billed
 * those at the same price, which is why it is set for every call that
 * has one, and held for one: its models search unasked.
 */
static enum tg_rc
search_bounds(const struct tg_config *cfg, const struct tg_deployment *d,
              struct json_object *body, struct tg_bounds *b, struct tg_err *err)
{
	struct json_object *opts = NULL;
	bool asked =
	        json_object_object_get_ex(body, "web_search_options", &opts) &&
	        opts != NULL;
	enum tg_search_context size = tg_api_search_context(opts);

	if (!tg_config_tool_price(cfg, d, TG_TOOL_WEB_SEARCH, size,
	                          &b->tool_price[TG_TOOL_WEB_SEARCH])) {
		if (asked)
			return tg_err_set(err, TG_ERR_UNPROCESSABLE,
			                  "web_search_options",
			                  "web search has no price for "
			                  "model=%s: set "
			                  "tollgate_settings.tool_prices."
			                  "web_search",
			                  d->model_name);
		return TG_OK;
	}
	/* Billed one whatever the answer says when asked; held for one
	 * when the model searches unasked too (Perplexity), whose answer
	 * counts them. */
	if (asked)
		b->searches = 1;
	if (asked || tg_provider(d->provider)->searches_unasked) {
		b->tool_calls = 1;
		b->tool_call_price = b->tool_price[TG_TOOL_WEB_SEARCH];
	}
	return TG_OK;
}

static enum tg_rc
bounds(const struct tg_config *cfg, const struct tg_deployment *d,
       const struct tg_req *req, struct tg_bounds *b, struct tg_err *err)
{
	struct json_object *body = tg_req_json(req), *messages;
	int64_t mct = tg_api_field_int(req, F_MAX_COMPLETION_TOKENS);
	int64_t mt = tg_api_field_int(req, F_MAX_TOKENS);
	int64_t n = tg_api_field_int(req, F_N);
	size_t body_len;

	memset(b, 0, sizeof(*b));
	b->service_tiers = tg_api_service_tiers(body);
	b->prompt_field = "messages";
	/* A BPE token covers at least one byte of text, so the body's size
	 * bounds the prompt; an image is billed by its size, not its bytes. */
	tg_req_body(req, &body_len);
	b->prompt = (int64_t)body_len;
	if (json_object_object_get_ex(body, "messages", &messages) &&
	    json_object_is_type(messages, json_type_array))
		b->prompt += count_image_parts(messages) * TG_IMAGE_TOKENS_MAX;
	/* Both given: the larger, as upstreams differ in which they honour
	 * (OpenAI refuses the pair, older servers know only max_tokens).
	 * The front line made each an integer in the body (TG_FIELD_TOKENS),
	 * so the upstream sees the bound used here. */
	b->output = tg_api_output_bound(cfg, d, mct > mt ? mct : mt);
	b->output_field =
	        mct > 0 && mct >= mt ? "max_completion_tokens" : "max_tokens";
	/* "n" choices: each may use the whole bound (TG_API_N_MAX at most,
	 * checked before, so the product fits). */
	if (n > 1)
		b->output *= n;
	return search_bounds(cfg, d, body, b, err);
}

/* Bytes of text a message or a delta carries (content, refusal, reasoning,
 * tool calls' names and arguments): each token produced is at least one of
 * them. */
static int64_t
message_bytes(struct json_object *m)
{
	struct json_object *calls, *fn;
	int64_t n;

	n = tg_api_string_len(m, "content") + tg_api_string_len(m, "refusal") +
	    tg_api_string_len(m, "reasoning_content");
	if (!json_object_object_get_ex(m, "tool_calls", &calls) ||
	    !json_object_is_type(calls, json_type_array))
		return n;
	for (size_t j = 0; j < json_object_array_length(calls); j++)
		if (json_object_object_get_ex(
		            json_object_array_get_idx(calls, j), "function",
		            &fn))
			n += tg_api_string_len(fn, "arguments") +
			     tg_api_string_len(fn, "name");
	return n;
}

static int64_t
choice_bytes(struct json_object *choice)
{
	struct json_object *m;

	return json_object_object_get_ex(choice, "message", &m)
	               ? message_bytes(m)
	               : 0;
}

static int64_t
delta_bytes(struct json_object *choice)
{
	struct json_object *m;

	return json_object_object_get_ex(choice, "delta", &m) ? message_bytes(m)
	                                                      : 0;
}

static void
read_answer(const char *body, size_t len, struct tg_answer *a)
{
	tg_api_choices_answer(body, len, a, choice_bytes);
}

static enum tg_relay_action
stream_event(struct tg_relay *r, const struct tg_sse_event *ev,
             struct json_object *obj)
{
	return tg_api_choices_event(r, ev, obj, delta_bytes);
}

static const struct tg_stream_dialect dialect = {
        .event = stream_event,
        .whole = tg_api_choices_whole,
        .closing = "data: [DONE]\n\n",
        .error_event = tg_api_choices_error_event,
};

const struct tg_api_adapter tg_api_chat = {
        .api = TG_API_CHAT,
        .call_type = "acompletion",
        .fields = tg_api_chat_fields,
        .nfields = NFIELDS,
        .f_model = F_MODEL,
        .f_stream = F_STREAM,
        .check = check,
        .bounds = bounds,
        .prepare = tg_api_choices_prepare,
        .read_answer = read_answer,
        .stream = &dialect,
};
