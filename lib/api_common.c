/*
 * api_common: what the API adapters share (lib/api.h): the output bound of
 * SPEC 4.3, reading counts and ids from answers, and the stream of
 * "choices" chunks that chat completions and legacy completions both send.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "jsonx.h"
#include "pricing.h"
#include "relay.h"

int64_t
tg_api_output_bound(const struct tg_config *cfg, const struct tg_deployment *d,
                    int64_t given)
{
	if (given > 0)
		return given;
	if (d->price.max_output_tokens > 0)
		return d->price.max_output_tokens;
	return cfg->default_max_tokens;
}

int64_t
tg_api_field_int(const struct tg_req *req, size_t i)
{
	const struct tg_value *v = tg_req_field(req, i);

	return v->given ? v->num : 0;
}

int64_t
tg_api_string_len(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return 0;
	return json_object_get_string_len(v);
}

bool
tg_api_get_count(struct json_object *o, const char *key, int64_t *v,
                 bool *present)
{
	struct json_object *x;

	*present = false;
	*v = 0;
	if (!json_object_object_get_ex(o, key, &x) || x == NULL)
		return true;
	if (!json_object_is_type(x, json_type_int))
		return false;
	errno = 0;
	*v = json_object_get_int64(x);
	if (*v < 0 || (*v == INT64_MAX && errno != 0))
		return false;
	*present = true;
	return true;
}

void
tg_api_set_response_id(struct tg_answer *a, const char *id)
{
	size_t n;

	if (id == NULL || (n = strlen(id)) == 0 || n > TG_RESPONSE_ID_MAX)
		return;
	/* What is kept is shown, stored and looked up: nothing odd. */
	for (size_t i = 0; i < n; i++)
		if (id[i] <= ' ' || id[i] > '~' || id[i] == '"' ||
		    id[i] == '\\')
			return;
	memcpy(a->response_id, id, n + 1);
}

/* Where the named members' values are in a walked text. */
struct members {
	const char *const *names;
	size_t n;
	size_t at[8], len[8];
	bool found[8];
};

static bool
member_seen(void *arg, const char *key, size_t key_len, size_t value,
            size_t value_len)
{
	struct members *m = arg;

	for (size_t i = 0; i < m->n; i++)
		if (strlen(m->names[i]) == key_len &&
		    memcmp(m->names[i], key, key_len) == 0) {
			/* Once: the walk refuses a repeated key. */
			m->found[i] = true;
			m->at[i] = value;
			m->len[i] = value_len;
		}
	return true;
}

bool
tg_api_members(const char *text, size_t len, const char *const *names, size_t n,
               struct json_object **out)
{
	struct members m;
	struct json_object *root, *v;

	memset(&m, 0, sizeof(m));
	m.names = names;
	m.n = n < 8 ? n : 8;
	for (size_t i = 0; i < n; i++)
		out[i] = NULL;
	if (tg_json_walk_members(text, len, member_seen, &m)) {
		/* Only the members asked for are parsed: the rest was
		 * walked. */
		for (size_t i = 0; i < m.n; i++)
			if (m.found[i])
				out[i] =
				        tg_json_parse(text + m.at[i], m.len[i]);
		return true;
	}
	root = tg_json_parse(text, len);
	if (root == NULL || !json_object_is_type(root, json_type_object)) {
		json_object_put(root);
		return false;
	}
	for (size_t i = 0; i < n; i++)
		if (json_object_object_get_ex(root, names[i], &v))
			out[i] = json_object_get(v);
	json_object_put(root);
	return true;
}

/* ---- the stream of "choices" chunks ---- */

/* Note the choices a chunk carries, and those it ends. */
static void
note_choices(struct tg_relay *r, struct json_object *chunk)
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
		if (idx < 0 || idx >= TG_API_N_MAX)
			continue;
		r->seen[idx / 64] |= 1ull << (idx % 64);
		if (json_object_object_get_ex(ch, "finish_reason", &v) &&
		    json_object_is_type(v, json_type_string))
			r->finished[idx / 64] |= 1ull << (idx % 64);
	}
}

bool
tg_api_choices_whole(const struct tg_relay *r)
{
	/* Ended with [DONE], or every choice that began also ended. */
	return r->ended || ((r->seen[0] | r->seen[1]) != 0 &&
	                    (r->seen[0] & ~r->finished[0]) == 0 &&
	                    (r->seen[1] & ~r->finished[1]) == 0);
}

const struct tg_usage_names tg_usage_chat = {
        "prompt_tokens", "completion_tokens", "prompt_tokens_details",
        "completion_tokens_details"};
const struct tg_usage_names tg_usage_responses = {
        "input_tokens", "output_tokens", "input_tokens_details",
        "output_tokens_details"};

unsigned
tg_api_service_tiers(struct json_object *body)
{
	struct json_object *v;
	const char *s;

	if (!json_object_object_get_ex(body, "service_tier", &v) ||
	    !json_object_is_type(v, json_type_string))
		return TG_SERVICE_ANY;
	s = json_object_get_string(v);
	if (strcmp(s, "default") == 0 || strcmp(s, "standard_only") == 0)
		return TG_SERVICE_BIT(TG_SERVICE_DEFAULT);
	if (strcmp(s, "flex") == 0)
		return TG_SERVICE_BIT(TG_SERVICE_DEFAULT) |
		       TG_SERVICE_BIT(TG_SERVICE_FLEX);
	if (strcmp(s, "priority") == 0)
		return TG_SERVICE_BIT(TG_SERVICE_DEFAULT) |
		       TG_SERVICE_BIT(TG_SERVICE_PRIORITY);
	return TG_SERVICE_ANY;
}

enum tg_search_context
tg_api_search_context(struct json_object *o)
{
	struct json_object *v;
	const char *size;

	if (!json_object_object_get_ex(o, "search_context_size", &v) ||
	    !json_object_is_type(v, json_type_string))
		return TG_SEARCH_MEDIUM;
	size = json_object_get_string(v);
	if (strcmp(size, "low") == 0)
		return TG_SEARCH_LOW;
	if (strcmp(size, "high") == 0)
		return TG_SEARCH_HIGH;
	return TG_SEARCH_MEDIUM;
}

enum tg_service_tier
tg_api_service_tier_of(struct json_object *v)
{
	return json_object_is_type(v, json_type_string)
	               ? tg_service_tier_parse(json_object_get_string(v))
	               : TG_SERVICE_DEFAULT;
}

/*
 * The count at key of details (an object or absent) into *n; false when
 * it is there and not a count.
 */
static bool
detail_count(struct json_object *details, const char *key, int64_t *n)
{
	bool has;

	return !json_object_is_type(details, json_type_object) ||
	       tg_api_get_count(details, key, n, &has);
}

/* The upstream's own cost of the call (OpenRouter's usage.cost, USD), exact
 * from the number's text; false when absent or not a cost. */
static bool
reported_cost(struct json_object *usage, tg_money *out)
{
	struct json_object *v;
	tg_money m;

	if (!json_object_object_get_ex(usage, "cost", &v) ||
	    !(json_object_is_type(v, json_type_double) ||
	      json_object_is_type(v, json_type_int)) ||
	    !tg_money_parse(json_object_get_string(v), &m) || m < 0)
		return false;
	*out = m;
	return true;
}

bool
tg_api_usage(struct json_object *usage, const struct tg_usage_names *k,
             struct tg_usage *out)
{
	struct json_object *details, *out_details, *v;
	struct tg_usage u;
	int64_t searches;
	bool has_prompt, has_completion, has_total, has_cached, has;

	memset(&u, 0, sizeof(u));
	if (!json_object_is_type(usage, json_type_object) ||
	    !tg_api_get_count(usage, k->prompt, &u.prompt_tokens,
	                      &has_prompt) ||
	    !tg_api_get_count(usage, k->completion, &u.completion_tokens,
	                      &has_completion) ||
	    !tg_api_get_count(usage, "total_tokens", &u.total_tokens,
	                      &has_total))
		return false;
	if (!has_prompt && !has_completion)
		return false;
	if (!has_total &&
	    __builtin_add_overflow(u.prompt_tokens, u.completion_tokens,
	                           &u.total_tokens))
		return false;
	details = json_object_object_get_ex(usage, k->details, &v) ? v : NULL;
	has_cached = false;
	if (json_object_is_type(details, json_type_object) &&
	    !tg_api_get_count(details, "cached_tokens", &u.cached_tokens,
	                      &has_cached))
		return false;
	/* DeepSeek: prompt_cache_hit_tokens (+ _miss_tokens) instead. */
	if (!has_cached && !tg_api_get_count(usage, "prompt_cache_hit_tokens",
	                                     &u.cached_tokens, &has_cached))
		return false;
	if (!detail_count(details, "audio_tokens", &u.audio_prompt_tokens))
		return false;
	out_details =
	        json_object_object_get_ex(usage, k->out_details, &v) ? v : NULL;
	if (!detail_count(out_details, "reasoning_tokens",
	                  &u.reasoning_tokens) ||
	    !detail_count(out_details, "audio_tokens",
	                  &u.audio_completion_tokens))
		return false;
	if (u.cached_tokens > u.prompt_tokens)
		return false; /* cached tokens are a part of the prompt */
	u.has_cost = reported_cost(usage, &u.cost);
	u.present = true;
	/* The hosted tools' calls are counted apart, from the output, and
	 * the service tier from the answer, not its usage. */
	memcpy(u.tool_calls, out->tool_calls, sizeof(u.tool_calls));
	u.service_tier = out->service_tier;
	/* Perplexity counts its searches in the usage. */
	if (!tg_api_get_count(usage, "num_search_queries", &searches, &has) ||
	    !has)
		searches = 0;
	if (searches > u.tool_calls[TG_TOOL_WEB_SEARCH])
		u.tool_calls[TG_TOOL_WEB_SEARCH] = searches;
	*out = u;
	return true;
}

/* The bytes of text of obj's choices; -1 when it has no choices array. */
static int64_t
choices_bytes(struct json_object *obj, tg_api_choice_bytes choice_bytes)
{
	struct json_object *choices;
	int64_t n = 0;

	if (!json_object_object_get_ex(obj, "choices", &choices) ||
	    !json_object_is_type(choices, json_type_array))
		return -1;
	for (size_t i = 0; i < json_object_array_length(choices); i++)
		n += choice_bytes(json_object_array_get_idx(choices, i));
	return n;
}

void
tg_api_choices_answer(const char *body, size_t len, struct tg_answer *a,
                      tg_api_choice_bytes choice_bytes)
{
	static const char *const names[] = {"usage", "id", "service_tier"};
	struct json_object *v[3], *obj;

	memset(a, 0, sizeof(*a));
	if (tg_api_members(body, len, names, 3, v)) {
		a->u.service_tier = tg_api_service_tier_of(v[2]);
		if (v[0] != NULL)
			tg_api_usage(v[0], &tg_usage_chat, &a->u);
		if (json_object_is_type(v[1], json_type_string))
			tg_api_set_response_id(a, json_object_get_string(v[1]));
		for (size_t i = 0; i < 3; i++)
			json_object_put(v[i]);
	}
	if (a->u.present)
		return;
	/* No usage: the text bounds the tokens produced (the whole body
	 * when it is not the answer it should be). */
	obj = tg_json_parse(body, len);
	a->text_bytes = obj != NULL ? choices_bytes(obj, choice_bytes) : -1;
	if (a->text_bytes < 0)
		a->text_bytes = (int64_t)len;
	json_object_put(obj);
}

enum tg_relay_action
tg_api_choices_event(struct tg_relay *r, const struct tg_sse_event *ev,
                     struct json_object *chunk,
                     tg_api_choice_bytes choice_bytes)
{
	struct json_object *usage, *choices, *v;
	tg_money cost = 0;
	int64_t n;
	bool usage_only, priced = false;

	if (ev->done) {
		/* Held back: settlement comes first (SPEC 4.5), and the
		 * dialect's closing says it then. */
		r->ended = true;
		return TG_RELAY_DROP;
	}
	if (chunk == NULL)
		return TG_RELAY_FORWARD;
	if (json_object_object_get_ex(chunk, "error", &v) && v != NULL)
		r->failed = true;
	if ((n = choices_bytes(chunk, choice_bytes)) > 0)
		r->answer.text_bytes += n;
	note_choices(r, chunk);
	if (r->answer.response_id[0] == '\0' &&
	    json_object_object_get_ex(chunk, "id", &v) &&
	    json_object_is_type(v, json_type_string))
		tg_api_set_response_id(&r->answer, json_object_get_string(v));
	if (json_object_object_get_ex(chunk, "service_tier", &v))
		r->answer.u.service_tier = tg_api_service_tier_of(v);
	/* Groq streams its usage as x_groq.usage in the last chunk. */
	if (!json_object_object_get_ex(chunk, "usage", &usage) &&
	    json_object_object_get_ex(chunk, "x_groq", &v) &&
	    json_object_object_get_ex(v, "usage", &usage) &&
	    tg_api_usage(usage, &tg_usage_chat, &r->answer.u))
		return TG_RELAY_FORWARD;
	if (!json_object_object_get_ex(chunk, "usage", &usage) ||
	    !json_object_is_type(usage, json_type_object))
		return TG_RELAY_FORWARD;
	if (tg_api_usage(usage, &tg_usage_chat, &r->answer.u)) {
		struct tg_err ignored;

		tg_err_clear(&ignored);
		priced = tg_pricing_cost(&r->d->price, &r->answer.u, &cost,
		                         &ignored) == TG_OK;
	}
	usage_only = !json_object_object_get_ex(chunk, "choices", &choices) ||
	             !json_object_is_type(choices, json_type_array) ||
	             json_object_array_length(choices) == 0;
	if (!r->client_usage)
		/* Asked for by us, not by the client: not the client's. */
		return usage_only ? TG_RELAY_DROP : TG_RELAY_FORWARD;
	if (priced)
		json_object_object_add(usage, "cost", tg_json_money(cost));
	tg_relay_write_json(r, NULL, chunk);
	return TG_RELAY_DROP;
}

void
tg_api_choices_error_event(struct tg_relay *r, const struct tg_err *err)
{
	struct json_object *env = tg_error_envelope(err);

	tg_relay_write_json(r, NULL, env);
	json_object_put(env);
}

void
tg_api_choices_prepare(struct json_object *body, bool streamed,
                       bool *client_usage)
{
	struct json_object *opts, *v;

	*client_usage = false;
	if (!streamed)
		return;
	/* Whether the client asked for stream_options.include_usage; either
	 * way it is asked of the upstream, which is how the charge is
	 * known. */
	if (!json_object_object_get_ex(body, "stream_options", &opts) ||
	    !json_object_is_type(opts, json_type_object)) {
		opts = json_object_new_object();
		json_object_object_add(body, "stream_options", opts);
	}
	if (json_object_object_get_ex(opts, "include_usage", &v) &&
	    json_object_is_type(v, json_type_boolean))
		*client_usage = json_object_get_boolean(v);
	json_object_object_add(opts, "include_usage",
	                       json_object_new_boolean(1));
}

const struct tg_api_adapter *
tg_api_adapter(enum tg_api api)
{
	switch (api) {
	case TG_API_CHAT: return &tg_api_chat;
	case TG_API_RESPONSES: return &tg_api_responses;
	case TG_API_EMBEDDINGS: return &tg_api_embeddings;
	case TG_API_COMPLETIONS: return &tg_api_completions;
	case TG_API_MESSAGES: return &tg_api_messages;
	case TG_API_COUNT: break;
	}
	return &tg_api_chat;
}

const char *
tg_api_path_of_call_type(const char *call_type)
{
	for (int a = 0; a < TG_API_COUNT && call_type != NULL; a++)
		if (strcmp(tg_api_adapter((enum tg_api)a)->call_type,
		           call_type) == 0)
			return tg_api_path((enum tg_api)a);
	return "";
}
