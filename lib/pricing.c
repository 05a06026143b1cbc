/*
 * pricing: the prices of one model (an entry of LiteLLM's
 * model_prices_and_context_window.json format) and the cost of a request.
 * The table of every entry, read from the file, is lib/price_table.c.
 *
 * Why parse the JSON text of each number: a price such as 1.5e-07 has no
 * exact binary double, and money must be exact.  json-c keeps the original
 * text of every number it parses (json_object_get_string() returns it), so
 * each price goes from that text straight to integer units of 1e-15 USD with
 * tg_price_parse(), never through a double.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "money.h"
#include "pricing.h"
#include "pricing_priv.h"
#include "util.h"

/*
 * A price from a JSON value: the number's own text, parsed exactly.  Strings
 * are accepted too (a hand-edited file may quote them).  Negative prices are
 * refused.
 */
static bool
price_from_json(struct json_object *v, tg_price *out)
{
	const char *text = NULL;
	tg_price price;

	switch (json_object_get_type(v)) {
	case json_type_double:
	case json_type_int:
	case json_type_string: text = json_object_get_string(v); break;
	case json_type_null:
	case json_type_boolean:
	case json_type_object:
	case json_type_array: return false;
	}
	if (text == NULL || !tg_price_parse(text, &price) || price < 0)
		return false;
	*out = price;
	return true;
}

/* A positive token count, or 0 when absent or not a positive integer. */
static int64_t
tokens_from_json(struct json_object *entry, const char *key)
{
	struct json_object *v;
	int64_t n;

	if (!json_object_object_get_ex(entry, key, &v) ||
	    json_object_get_type(v) != json_type_int)
		return 0;
	n = json_object_get_int64(v);
	return n > 0 ? n : 0;
}

const char *
tg_tool_name(enum tg_tool t)
{
	switch (t) {
	case TG_TOOL_WEB_SEARCH: return "web_search";
	case TG_TOOL_WEB_SEARCH_PREVIEW: return "web_search_preview";
	case TG_TOOL_FILE_SEARCH: return "file_search";
	case TG_TOOL_CODE_INTERPRETER: return "code_interpreter";
	case TG_TOOL_IMAGE_GENERATION: return "image_generation";
	case TG_TOOL_COUNT: break;
	}
	return "tool";
}

/*
 * The hosted tools' prices an entry gives (LiteLLM's keys): the web search's
 * by search context size, a file search's (per thousand calls in the file)
 * and a code interpreter's session.
 */
static void
tools_from_json(struct json_object *entry, struct tg_price_entry *e)
{
	static const char *const sizes[TG_SEARCH_SIZES] = {
	        [TG_SEARCH_LOW] = "search_context_size_low",
	        [TG_SEARCH_MEDIUM] = "search_context_size_medium",
	        [TG_SEARCH_HIGH] = "search_context_size_high"};
	struct json_object *v, *ctx;
	tg_price per_1k;
	bool all = true;

	if (json_object_object_get_ex(entry, "search_context_cost_per_query",
	                              &ctx) &&
	    json_object_is_type(ctx, json_type_object)) {
		for (size_t i = 0; i < TG_SEARCH_SIZES; i++)
			all = all &&
			      json_object_object_get_ex(ctx, sizes[i], &v) &&
			      price_from_json(v, &e->search_context[i]);
		e->has_search_context = all;
	}
	if (json_object_object_get_ex(entry, "file_search_cost_per_1k_calls",
	                              &v) &&
	    price_from_json(v, &per_1k)) {
		/* Rounded up: a call never costs less than its share. */
		e->tool[TG_TOOL_FILE_SEARCH] = (per_1k + 999) / 1000;
		e->has_tool[TG_TOOL_FILE_SEARCH] = true;
	}
	if (json_object_object_get_ex(
	            entry, "code_interpreter_cost_per_session", &v) &&
	    price_from_json(v, &e->tool[TG_TOOL_CODE_INTERPRETER]))
		e->has_tool[TG_TOOL_CODE_INTERPRETER] = true;
}

/* The price at key of entry into *out, when it has a usable one. */
static bool
opt_price(struct json_object *entry, const char *key, tg_price *out)
{
	struct json_object *v;

	return json_object_object_get_ex(entry, key, &v) &&
	       price_from_json(v, out);
}

/*
 * The entry's rates as billed: a cache price the entry lacks is the input
 * price (a cache write for 1 hour: the 5-minute write's), so a token is
 * never billed at 0 because a price was left out.
 */
static struct tg_price_tier
base_rates(const struct tg_price_entry *e)
{
	struct tg_price_tier r;

	r.above = 0;
	r.input = e->input;
	r.output = e->output;
	r.cache_read = e->has_cache_read ? e->cache_read : e->input;
	r.cache_write = e->has_cache_write ? e->cache_write : e->input;
	r.cache_write_1h =
	        e->has_cache_write_1h ? e->cache_write_1h : r.cache_write;
	return r;
}

/*
 * The long-context tiers of an entry: for each threshold, the rates whose
 * keys end in _above_<k>k_tokens (the 1-hour cache write's is
 * cache_creation_input_token_cost_above_1hr_above_<k>k_tokens).  A tier
 * exists when it gives an input or an output rate; what it does not give
 * is the entry's own rate.
 */
static void
tiers_from_json(struct json_object *entry, struct tg_price_entry *e)
{
	static const int64_t thresholds[TG_PRICE_TIERS] = {128000, 200000,
	                                                   272000};
	const struct tg_price_tier base = base_rates(e);
	char key[96];

	e->ntiers = 0;
	for (size_t i = 0; i < TG_PRICE_TIERS; i++) {
		struct tg_price_tier t = base;
		int k = (int)(thresholds[i] / 1000);
		bool in, out;

		t.above = thresholds[i];
		snprintf(key, sizeof(key),
		         "input_cost_per_token_above_%dk_tokens", k);
		in = opt_price(entry, key, &t.input);
		snprintf(key, sizeof(key),
		         "output_cost_per_token_above_%dk_tokens", k);
		out = opt_price(entry, key, &t.output);
		if (!in && !out)
			continue;
		snprintf(key, sizeof(key),
		         "cache_read_input_token_cost_above_%dk_tokens", k);
		if (!opt_price(entry, key, &t.cache_read) && in &&
		    !e->has_cache_read)
			t.cache_read = t.input;
		snprintf(key, sizeof(key),
		         "cache_creation_input_token_cost_above_%dk_tokens", k);
		if (!opt_price(entry, key, &t.cache_write) && in &&
		    !e->has_cache_write)
			t.cache_write = t.input;
		snprintf(key, sizeof(key),
		         "cache_creation_input_token_cost_above_1hr_above_%dk_"
		         "tokens",
		         k);
		/* A 1-hour write never costs less than a 5-minute one. */
		if (!opt_price(entry, key, &t.cache_write_1h) &&
		    t.cache_write_1h < t.cache_write)
			t.cache_write_1h = t.cache_write;
		e->tier[e->ntiers++] = t;
	}
}

bool
tg_price_entry_from_json(struct json_object *entry, struct tg_price_entry *out)
{
	struct tg_price_entry e;
	struct json_object *v;

	memset(&e, 0, sizeof(e));
	if (!json_object_object_get_ex(entry, "input_cost_per_token", &v) ||
	    !price_from_json(v, &e.input))
		return false;
	if (!json_object_object_get_ex(entry, "output_cost_per_token", &v)) {
		/* An embedding model bills no output: LiteLLM's map leaves
		 * the price out for some (mistral/mistral-embed). */
		if (!json_object_object_get_ex(entry, "mode", &v) ||
		    !json_object_is_type(v, json_type_string) ||
		    strcmp(json_object_get_string(v), "embedding") != 0)
			return false;
		e.output = 0;
	} else if (!price_from_json(v, &e.output)) {
		return false;
	}
	e.has_cache_read =
	        opt_price(entry, "cache_read_input_token_cost", &e.cache_read);
	e.has_cache_write = opt_price(entry, "cache_creation_input_token_cost",
	                              &e.cache_write);
	e.has_cache_write_1h =
	        opt_price(entry, "cache_creation_input_token_cost_above_1hr",
	                  &e.cache_write_1h);
	tiers_from_json(entry, &e);
	e.max_output_tokens = tokens_from_json(entry, "max_output_tokens");
	e.max_input_tokens = tokens_from_json(entry, "max_input_tokens");
	tools_from_json(entry, &e);
	/* LiteLLM's legacy "max_tokens" means the output limit. */
	if (e.max_output_tokens == 0)
		e.max_output_tokens = tokens_from_json(entry, "max_tokens");
	*out = e;
	return true;
}

/* The rates a prompt of prompt_tokens is billed at: the highest tier it
 * is above, else the entry's own. */
static struct tg_price_tier
rates_for(const struct tg_price_entry *price, int64_t prompt_tokens)
{
	for (size_t i = price->ntiers; i > 0; i--)
		if (prompt_tokens > price->tier[i - 1].above)
			return price->tier[i - 1];
	return base_rates(price);
}

/* The dearest of the input-side rates r has. */
static tg_price
dearest_input(const struct tg_price_tier *r)
{
	tg_price m = r->input;

	if (r->cache_read > m)
		m = r->cache_read;
	if (r->cache_write > m)
		m = r->cache_write;
	if (r->cache_write_1h > m)
		m = r->cache_write_1h;
	return m;
}

enum tg_rc
tg_pricing_cost(const struct tg_price_entry *price, const struct tg_usage *u,
                tg_money *out, struct tg_err *err)
{
	struct tg_price_tier r;
	tg_money total = 0;
	int64_t plain = u->prompt_tokens, read = u->cached_tokens,
	        write = u->cache_write_tokens,
	        write_1h = u->cache_write_1h_tokens;
	bool ok;

	if (u->prompt_tokens < 0 || u->completion_tokens < 0 || read < 0 ||
	    write < 0 || write_1h < 0)
		return tg_err_set(err, TG_ERR_UNPROCESSABLE, NULL,
		                  "negative token count");
	r = rates_for(price, u->prompt_tokens);
	/* Each part is at most the prompt, so the sum cannot overflow. */
	if (read <= plain && write <= plain && write_1h <= plain &&
	    read + write + write_1h <= plain) {
		plain -= read + write + write_1h;
		ok = tg_money_add_cost(&total, plain, r.input) &&
		     tg_money_add_cost(&total, read, r.cache_read) &&
		     tg_money_add_cost(&total, write, r.cache_write) &&
		     tg_money_add_cost(&total, write_1h, r.cache_write_1h);
	} else {
		ok = tg_money_add_cost(&total, plain, dearest_input(&r));
	}
	if (!ok || !tg_money_add_cost(&total, u->completion_tokens, r.output))
		return tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                  "cost of the request overflows");
	*out = total;
	return TG_OK;
}

bool
tg_pricing_add_tools(tg_money *acc, const int64_t calls[TG_TOOL_COUNT],
                     const tg_price price_per_call[TG_TOOL_COUNT])
{
	tg_money total = *acc;

	for (size_t i = 0; i < TG_TOOL_COUNT; i++)
		if (calls[i] > 0 &&
		    !tg_money_add_cost(&total, calls[i], price_per_call[i]))
			return false;
	*acc = total;
	return true;
}

enum tg_rc
tg_pricing_estimate(const struct tg_price_entry *price, int64_t prompt_bound,
                    int64_t output_bound, tg_money *out, struct tg_err *err)
{
	tg_money worst = 0;

	if (prompt_bound < 0 || output_bound < 0)
		return tg_err_set(err, TG_ERR_UNPROCESSABLE, NULL,
		                  "negative token count");
	/* The prompt may come in below the bound, so every tier up to the
	 * bound's could apply: the dearest of them. */
	for (size_t i = 0; i <= price->ntiers; i++) {
		struct tg_price_tier r =
		        i == 0 ? base_rates(price) : price->tier[i - 1];
		tg_money total = 0;

		if (i > 0 && prompt_bound <= r.above)
			break;
		if (!tg_money_add_cost(&total, prompt_bound,
		                       dearest_input(&r)) ||
		    !tg_money_add_cost(&total, output_bound, r.output))
			return tg_err_set(err, TG_ERR_INTERNAL, NULL,
			                  "cost estimate of the request "
			                  "overflows");
		if (total > worst)
			worst = total;
	}
	*out = worst;
	return TG_OK;
}
