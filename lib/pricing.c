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
 * The reasoning and audio rates of r, whose text rates are set: the
 * entry's own where it gives them, else the text's.
 */
static void
derive(struct tg_price_tier *r, const struct tg_price_entry *e)
{
	r->reasoning = e->has_reasoning ? e->reasoning : r->output;
	r->audio_input = e->has_audio_input ? e->audio_input : r->input;
	r->audio_output = e->has_audio_output ? e->audio_output : r->output;
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
	derive(&r, e);
	return r;
}

static const int64_t tier_thresholds[TG_PRICE_TIERS] = {128000, 200000, 272000};

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
	const struct tg_price_tier base = base_rates(e);
	char key[96];

	e->ntiers = 0;
	for (size_t i = 0; i < TG_PRICE_TIERS; i++) {
		struct tg_price_tier t = base;
		int k = (int)(tier_thresholds[i] / 1000);
		bool in, out;

		t.above = tier_thresholds[i];
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
		derive(&t, e);
		e->tier[e->ntiers++] = t;
	}
}

/* The larger of a and b. */
static tg_price
pmax(tg_price a, tg_price b)
{
	return a > b ? a : b;
}

/*
 * A rate of service tier sfx ("priority", "flex") at key (a rate key of
 * the map, with above_<k>k_tokens when k > 0): key_<sfx> or, for a
 * long-context tier, <key>_above_<k>k_tokens_<sfx>.
 */
static bool
service_price(struct json_object *entry, const char *key, int k,
              const char *sfx, tg_price *out)
{
	char name[112];

	if (k > 0)
		snprintf(name, sizeof(name), "%s_above_%dk_tokens_%s", key, k,
		         sfx);
	else
		snprintf(name, sizeof(name), "%s_%s", key, sfx);
	return opt_price(entry, name, out);
}

/*
 * The rates of t that service tier sfx gives (at long-context tier k, 0
 * for the base); true when it gives any.
 */
static bool
service_rates(struct json_object *entry, int k, const char *sfx,
              struct tg_price_tier *t)
{
	bool any = false;

	any |= service_price(entry, "input_cost_per_token", k, sfx, &t->input);
	any |= service_price(entry, "output_cost_per_token", k, sfx,
	                     &t->output);
	any |= service_price(entry, "cache_read_input_token_cost", k, sfx,
	                     &t->cache_read);
	any |= service_price(entry, "cache_creation_input_token_cost", k, sfx,
	                     &t->cache_write);
	if (k == 0) {
		any |= service_price(entry, "output_cost_per_reasoning_token",
		                     0, sfx, &t->reasoning);
		any |= service_price(entry, "input_cost_per_audio_token", 0,
		                     sfx, &t->audio_input);
		any |= service_price(entry, "output_cost_per_audio_token", 0,
		                     sfx, &t->audio_output);
	}
	return any;
}

/*
 * Service tier st's rates (keys ending in _<sfx>): a rate it does not give
 * is the default's, and a long-context rate it does not give is the
 * larger of the default's long-context rate and its own base rate, so
 * that a long prompt never costs less per token than a short one.
 */
static void
service_from_json(struct json_object *entry, struct tg_price_entry *e,
                  enum tg_service_tier st)
{
	const char *sfx = tg_service_tier_name(st);
	struct tg_price_service *s = &e->service[st];
	struct tg_price_tier base = base_rates(e);

	/* The derived rates follow the tier's own text rates unless the
	 * entry or the tier prices them. */
	s->base = base;
	if (!service_rates(entry, 0, sfx, &s->base))
		return;
	e->has_service[st] = true;
	if (!e->has_reasoning &&
	    !service_price(entry, "output_cost_per_reasoning_token", 0, sfx,
	                   &s->base.reasoning))
		s->base.reasoning = s->base.output;
	if (!e->has_audio_input &&
	    !service_price(entry, "input_cost_per_audio_token", 0, sfx,
	                   &s->base.audio_input))
		s->base.audio_input = s->base.input;
	if (!e->has_audio_output &&
	    !service_price(entry, "output_cost_per_audio_token", 0, sfx,
	                   &s->base.audio_output))
		s->base.audio_output = s->base.output;
	s->ntiers = 0;
	for (size_t i = 0; i < e->ntiers; i++) {
		const struct tg_price_tier *d = &e->tier[i];
		struct tg_price_tier t = *d;
		int k = (int)(d->above / 1000);

		t.input = pmax(d->input, s->base.input);
		t.output = pmax(d->output, s->base.output);
		t.cache_read = pmax(d->cache_read, s->base.cache_read);
		t.cache_write = pmax(d->cache_write, s->base.cache_write);
		t.cache_write_1h =
		        pmax(d->cache_write_1h, s->base.cache_write_1h);
		t.reasoning = pmax(d->reasoning, s->base.reasoning);
		t.audio_input = pmax(d->audio_input, s->base.audio_input);
		t.audio_output = pmax(d->audio_output, s->base.audio_output);
		(void)service_rates(entry, k, sfx, &t);
		s->tier[s->ntiers++] = t;
	}
}

void
tg_pricing_set_service(struct tg_price_entry *e, enum tg_service_tier st,
                       const tg_price *input, const tg_price *output,
                       const tg_price *cache_read)
{
	struct tg_price_service *s;

	if (st == TG_SERVICE_DEFAULT || st >= TG_SERVICE_TIERS)
		return;
	s = &e->service[st];
	if (!e->has_service[st]) {
		s->base = base_rates(e);
		s->ntiers = e->ntiers;
		memcpy(s->tier, e->tier, sizeof(s->tier));
		e->has_service[st] = true;
	}
	if (input != NULL)
		s->base.input = *input;
	if (output != NULL)
		s->base.output = *output;
	if (cache_read != NULL)
		s->base.cache_read = *cache_read;
	if (!e->has_reasoning)
		s->base.reasoning = s->base.output;
	if (!e->has_audio_input)
		s->base.audio_input = s->base.input;
	if (!e->has_audio_output)
		s->base.audio_output = s->base.output;
	/* A long prompt never costs less per token than a short one. */
	for (size_t i = 0; i < s->ntiers; i++) {
		struct tg_price_tier *t = &s->tier[i];

		t->input = pmax(t->input, s->base.input);
		t->output = pmax(t->output, s->base.output);
		t->cache_read = pmax(t->cache_read, s->base.cache_read);
		t->reasoning = pmax(t->reasoning, s->base.reasoning);
		t->audio_input = pmax(t->audio_input, s->base.audio_input);
		t->audio_output = pmax(t->audio_output, s->base.audio_output);
	}
}

enum tg_service_tier
tg_service_tier_parse(const char *s)
{
	if (s == NULL)
		return TG_SERVICE_DEFAULT;
	if (strcmp(s, "priority") == 0)
		return TG_SERVICE_PRIORITY;
	if (strcmp(s, "flex") == 0)
		return TG_SERVICE_FLEX;
	return TG_SERVICE_DEFAULT;
}

const char *
tg_service_tier_name(enum tg_service_tier t)
{
	switch (t) {
	case TG_SERVICE_PRIORITY: return "priority";
	case TG_SERVICE_FLEX: return "flex";
	case TG_SERVICE_DEFAULT:
	case TG_SERVICE_TIERS: break;
	}
	return "default";
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
	e.has_reasoning = opt_price(entry, "output_cost_per_reasoning_token",
	                            &e.reasoning);
	e.has_audio_input =
	        opt_price(entry, "input_cost_per_audio_token", &e.audio_input);
	e.has_audio_output = opt_price(entry, "output_cost_per_audio_token",
	                               &e.audio_output);
	e.has_per_request =
	        opt_price(entry, "input_cost_per_request", &e.per_request);
	tiers_from_json(entry, &e);
	service_from_json(entry, &e, TG_SERVICE_PRIORITY);
	service_from_json(entry, &e, TG_SERVICE_FLEX);
	e.max_output_tokens = tokens_from_json(entry, "max_output_tokens");
	e.max_input_tokens = tokens_from_json(entry, "max_input_tokens");
	tools_from_json(entry, &e);
	/* LiteLLM's legacy "max_tokens" means the output limit. */
	if (e.max_output_tokens == 0)
		e.max_output_tokens = tokens_from_json(entry, "max_tokens");
	*out = e;
	return true;
}

/* The rates a prompt of prompt_tokens is billed at in service tier st:
 * the highest long-context tier it is above, else the base rates. */
static struct tg_price_tier
rates_for(const struct tg_price_entry *price, enum tg_service_tier st,
          int64_t prompt_tokens)
{
	const struct tg_price_tier *tier = price->tier;
	size_t n = price->ntiers;

	if (st != TG_SERVICE_DEFAULT && st < TG_SERVICE_TIERS &&
	    price->has_service[st]) {
		tier = price->service[st].tier;
		n = price->service[st].ntiers;
	}
	for (size_t i = n; i > 0; i--)
		if (prompt_tokens > tier[i - 1].above)
			return tier[i - 1];
	if (tier != price->tier)
		return price->service[st].base;
	return base_rates(price);
}

/* The dearest of the input-side rates r has. */
static tg_price
dearest_input(const struct tg_price_tier *r)
{
	return pmax(pmax(pmax(r->input, r->cache_read),
	                 pmax(r->cache_write, r->cache_write_1h)),
	            r->audio_input);
}

/* The dearest of the output-side rates r has. */
static tg_price
dearest_output(const struct tg_price_tier *r)
{
	return pmax(pmax(r->output, r->reasoning), r->audio_output);
}

/*
 * Add whole tokens, of which the parts n[i] are billed at rate[i] and the
 * rest at rest_rate, to *total; parts adding up to more than the whole
 * make all of it billed at dearest.  False on overflow.
 */
static bool
add_parts(tg_money *total, int64_t whole, const int64_t *n,
          const tg_price *rate, size_t nparts, tg_price rest_rate,
          tg_price dearest)
{
	int64_t rest = whole;

	for (size_t i = 0; i < nparts; i++) {
		if (n[i] > rest)
			return tg_money_add_cost(total, whole, dearest);
		rest -= n[i];
	}
	for (size_t i = 0; i < nparts; i++)
		if (!tg_money_add_cost(total, n[i], rate[i]))
			return false;
	return tg_money_add_cost(total, rest, rest_rate);
}

enum tg_rc
tg_pricing_cost(const struct tg_price_entry *price, const struct tg_usage *u,
                tg_money *out, struct tg_err *err)
{
	struct tg_price_tier r;
	tg_money total = 0;
	const int64_t in[4] = {u->cached_tokens, u->cache_write_tokens,
	                       u->cache_write_1h_tokens,
	                       u->audio_prompt_tokens};
	const int64_t outn[2] = {u->reasoning_tokens,
	                         u->audio_completion_tokens};

	if (u->prompt_tokens < 0 || u->completion_tokens < 0 || in[0] < 0 ||
	    in[1] < 0 || in[2] < 0 || in[3] < 0 || outn[0] < 0 || outn[1] < 0)
		return tg_err_set(err, TG_ERR_UNPROCESSABLE, NULL,
		                  "negative token count");
	r = rates_for(price, u->service_tier, u->prompt_tokens);
	{
		const tg_price in_rate[4] = {r.cache_read, r.cache_write,
		                             r.cache_write_1h, r.audio_input};
		const tg_price out_rate[2] = {r.reasoning, r.audio_output};

		if (!add_parts(&total, u->prompt_tokens, in, in_rate, 4,
		               r.input, dearest_input(&r)) ||
		    !add_parts(&total, u->completion_tokens, outn, out_rate, 2,
		               r.output, dearest_output(&r)) ||
		    (price->has_per_request &&
		     !tg_money_add_cost(&total, 1, price->per_request)))
			return tg_err_set(err, TG_ERR_INTERNAL, NULL,
			                  "cost of the request overflows");
	}
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
                    int64_t output_bound, unsigned services, tg_money *out,
                    struct tg_err *err)
{
	tg_money worst = 0;

	if (prompt_bound < 0 || output_bound < 0)
		return tg_err_set(err, TG_ERR_UNPROCESSABLE, NULL,
		                  "negative token count");
	/* The prompt may come in below the bound, so every long-context
	 * tier up to the bound's could apply, in each service tier the call
	 * may be billed at: the dearest of them all. */
	for (size_t st = 0; st < TG_SERVICE_TIERS; st++) {
		const struct tg_price_tier *tier = price->tier;
		struct tg_price_tier base = base_rates(price);
		size_t n = price->ntiers;

		if (st != TG_SERVICE_DEFAULT) {
			if (!(services & TG_SERVICE_BIT(st)) ||
			    !price->has_service[st])
				continue;
			base = price->service[st].base;
			tier = price->service[st].tier;
			n = price->service[st].ntiers;
		}
		for (size_t i = 0; i <= n; i++) {
			const struct tg_price_tier *r =
			        i == 0 ? &base : &tier[i - 1];
			tg_money total = 0;

			if (i > 0 && prompt_bound <= r->above)
				break;
			if (!tg_money_add_cost(&total, prompt_bound,
			                       dearest_input(r)) ||
			    !tg_money_add_cost(&total, output_bound,
			                       dearest_output(r)))
				return tg_err_set(err, TG_ERR_INTERNAL, NULL,
				                  "cost estimate of the "
				                  "request overflows");
			if (total > worst)
				worst = total;
		}
	}
	if (price->has_per_request &&
	    !tg_money_add_cost(&worst, 1, price->per_request))
		return tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                  "cost estimate of the request overflows");
	*out = worst;
	return TG_OK;
}
