/*
 * test-pricing: the price table (LiteLLM's JSON format) and request costs.
 *
 * The shipped price file is found through TG_SRCDIR (set by `make check`),
 * else ../etc relative to the working directory.  Other files are written
 * to a mkdtemp() directory and removed.
 */
#define _POSIX_C_SOURCE 200809L

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../tap.h"
#include "money.h"
#include "pricing.h"

static char tmpdir[] = "/tmp/tg-test-pricing-XXXXXX";

static char *
write_tmp(const char *name, const char *text)
{
	static char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	if (f == NULL) {
		perror(path);
		exit(1);
	}
	fputs(text, f);
	fclose(f);
	return path;
}

static const char *
money_str(tg_money m)
{
	static char buf[TG_MONEY_STRLEN];

	tg_money_format(m, buf, sizeof(buf));
	return buf;
}

static tg_price
price_of(const char *text)
{
	tg_price p = -1;

	if (!tg_price_parse(text, &p))
		diag("cannot parse price %s", text);
	return p;
}

/* json-c gives back the exact text of a parsed number: pricing relies on it. */
/* The cost of prompt tokens (cached of them read from the cache) and
 * completion tokens. */
static enum tg_rc
cost3(const struct tg_price_entry *e, int64_t prompt, int64_t completion,
      int64_t cached, tg_money *out, struct tg_err *err)
{
	struct tg_usage u;

	memset(&u, 0, sizeof(u));
	u.prompt_tokens = prompt;
	u.completion_tokens = completion;
	u.cached_tokens = cached;
	return tg_pricing_cost(e, &u, out, err);
}

static void
test_jsonc_keeps_number_text(void)
{
	static const char *const numbers[] = {
	        "5e-07", "1.5e-06", "1.5E-06", "0.00000015", "2.5e-06",
	        "1e-05", "7.5e-08", "0.0",     "3",          "1.65e-07",
	};

	for (size_t i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++) {
		char doc[128];
		struct json_object *o, *v;

		snprintf(doc, sizeof(doc), "{\"p\": %s}", numbers[i]);
		o = json_tokener_parse(doc);
		ok(o && json_object_object_get_ex(o, "p", &v),
		   "json-c parses %s", numbers[i]);
		if (o && json_object_object_get_ex(o, "p", &v))
			is_string(numbers[i], json_object_get_string(v),
			          "json-c keeps the text of %s", numbers[i]);
		json_object_put(o);
	}
}

static const char *
shipped_path(void)
{
	static char path[1024];
	const char *src = getenv("TG_SRCDIR");

	snprintf(path, sizeof(path), "%s/etc/model_prices.json",
	         src && src[0] ? src : "..");
	return path;
}

/* SPEC 7.2, exactly. */
static const struct {
	const char *name, *input, *output, *cache_read;
} spec_prices[] = {
        {"gpt-3.5-turbo", "5e-07", "1.5e-06", NULL},
        {"gpt-4", "3e-05", "6e-05", NULL},
        {"gpt-4-turbo", "1e-05", "3e-05", NULL},
        {"gpt-4o", "2.5e-06", "1e-05", "1.25e-06"},
        {"gpt-4o-mini", "1.5e-07", "6e-07", "7.5e-08"},
        {"gpt-4.1", "2e-06", "8e-06", NULL},
        {"gpt-4.1-mini", "4e-07", "1.6e-06", NULL},
        {"gpt-4.1-nano", "1e-07", "4e-07", NULL},
        {"o4-mini", "1.1e-06", "4.4e-06", NULL},
        {"azure/gpt-35-turbo", "5e-07", "1.5e-06", NULL},
        {"azure/gpt-4o", "2.5e-06", "1e-05", NULL},
        {"azure/gpt-4o-mini", "1.65e-07", "6.6e-07", NULL},
        {"mistral/mistral-small-latest", "6e-08", "1.8e-07", NULL},
        {"mistral/mistral-medium-latest", "1.5e-06", "7.5e-06", NULL},
        {"mistral/mistral-large-latest", "5e-07", "1.5e-06", NULL},
        {"mistral/open-mistral-nemo", "3e-07", "3e-07", NULL},
};

/*
 * Dated variants, as LiteLLM's model_prices_and_context_window.json lists
 * them (BerriAI/litellm commit 00035b69f416be24e2e323c13198d9b7d2d1bdf9).
 * Some snapshots cost more or less than their undated alias.
 */
static const struct {
	const char *name, *input, *output, *cache_read;
	int64_t max_output_tokens;
} dated_prices[] = {
        {"gpt-3.5-turbo-0125", "5e-07", "1.5e-06", NULL, 4096},
        {"gpt-3.5-turbo-1106", "1e-06", "2e-06", NULL, 4096},
        {"gpt-4-0613", "3e-05", "6e-05", NULL, 4096},
        {"gpt-4-turbo-2024-04-09", "1e-05", "3e-05", NULL, 4096},
        {"gpt-4o-2024-05-13", "5e-06", "1.5e-05", NULL, 4096},
        {"gpt-4o-2024-08-06", "2.5e-06", "1e-05", "1.25e-06", 16384},
        {"gpt-4o-mini-2024-07-18", "1.5e-07", "6e-07", "7.5e-08", 16384},
        {"gpt-4.1-nano-2025-04-14", "1e-07", "4e-07", "2.5e-08", 32768},
        {"o4-mini-2025-04-16", "1.1e-06", "4.4e-06", "2.75e-07", 100000},
        {"azure/gpt-4o-2024-11-20", "2.75e-06", "1.1e-05", "1.25e-06", 16384},
        {"azure/gpt-4o-mini-2024-07-18", "1.65e-07", "6.6e-07", "7.5e-08",
         16384},
        {"mistral/mistral-large-2411", "2e-06", "6e-06", NULL, 128000},
        {"mistral/open-mistral-nemo-2407", "3e-07", "3e-07", NULL, 128000},
};

static void
test_shipped_dated(const struct tg_pricing *p)
{
	for (size_t i = 0; i < sizeof(dated_prices) / sizeof(dated_prices[0]);
	     i++) {
		const struct tg_price_entry *e =
		        tg_pricing_find(p, dated_prices[i].name);

		if (!ok(e != NULL, "dated %s is in the shipped file",
		        dated_prices[i].name))
			continue;
		is_int(price_of(dated_prices[i].input), e->input, "%s input %s",
		       dated_prices[i].name, dated_prices[i].input);
		is_int(price_of(dated_prices[i].output), e->output,
		       "%s output %s", dated_prices[i].name,
		       dated_prices[i].output);
		if (dated_prices[i].cache_read != NULL)
			ok(e->has_cache_read &&
			           e->cache_read ==
			                   price_of(dated_prices[i].cache_read),
			   "%s cache read %s", dated_prices[i].name,
			   dated_prices[i].cache_read);
		else
			ok(!e->has_cache_read, "%s has no cache-read price",
			   dated_prices[i].name);
		is_int(dated_prices[i].max_output_tokens, e->max_output_tokens,
		       "%s max_output_tokens", dated_prices[i].name);
	}
	/* A prefix or an unlisted date does not match. */
	ok(tg_pricing_find(p, "gpt-4o-2024") == NULL, "no prefix match");
	ok(tg_pricing_find(p, "gpt-4o-2099-01-01") == NULL,
	   "unlisted date not found");
}

static void
test_shipped(struct tg_pricing **out)
{
	struct tg_pricing *p = NULL;
	struct tg_err err;
	enum tg_rc rc;

	tg_err_clear(&err);
	rc = tg_pricing_load(shipped_path(), &p, &err);
	is_int(TG_OK, rc, "shipped price file %s loads", shipped_path());
	if (rc != TG_OK) {
		diag("%s", err.message);
		*out = NULL;
		return;
	}
	for (size_t i = 0; i < sizeof(spec_prices) / sizeof(spec_prices[0]);
	     i++) {
		const struct tg_price_entry *e =
		        tg_pricing_find(p, spec_prices[i].name);

		ok(e != NULL, "%s is in the shipped file", spec_prices[i].name);
		if (e == NULL)
			continue;
		is_int(price_of(spec_prices[i].input), e->input, "%s input %s",
		       spec_prices[i].name, spec_prices[i].input);
		is_int(price_of(spec_prices[i].output), e->output,
		       "%s output %s", spec_prices[i].name,
		       spec_prices[i].output);
		if (spec_prices[i].cache_read != NULL) {
			ok(e->has_cache_read, "%s has a cache-read price",
			   spec_prices[i].name);
			is_int(price_of(spec_prices[i].cache_read),
			       e->cache_read, "%s cache read %s",
			       spec_prices[i].name, spec_prices[i].cache_read);
		}
		ok(e->max_output_tokens > 0, "%s has max_output_tokens",
		   spec_prices[i].name);
	}
	ok(tg_pricing_find(p, "sample_spec") == NULL, "sample_spec skipped");
	ok(tg_pricing_find(p, "no-such-model") == NULL, "unknown -> NULL");
	ok(tg_pricing_find(p, "GPT-4O") == NULL, "lookup is case-sensitive");
	is_int(16384, tg_pricing_find(p, "gpt-4o-mini")->max_output_tokens,
	       "gpt-4o-mini max_output_tokens");
	*out = p;
}

/* Costs (SPEC 7.2 worked example, cache reads, rounding up). */
static void
test_costs(const struct tg_pricing *p)
{
	static const struct {
		int line;
		const char *model;
		int64_t prompt, completion, cached;
		const char *want;
	} rows[] = {
	        /* The SPEC's worked example. */
	        {__LINE__, "gpt-4o-mini", 1000, 500, 0, "0.00045"},
	        {__LINE__, "gpt-4o-mini", 0, 0, 0, "0"},
	        /* 600 x 2.5e-06 + 400 x 1.25e-06 + 100 x 1e-05 */
	        {__LINE__, "gpt-4o", 1000, 100, 400, "0.003"},
	        /* 1000 cached of 1000 at 7.5e-08 + 10 x 6e-07 */
	        {__LINE__, "gpt-4o-mini", 1000, 10, 1000, "0.000081"},
	        /* no cache-read price: cached tokens at the input price */
	        {__LINE__, "gpt-4", 1000, 100, 400, "0.036"},
	        /* more cached than prompt: all billed at input price */
	        {__LINE__, "gpt-4o", 1000, 0, 2000, "0.0025"},
	        {__LINE__, "azure/gpt-4o-mini", 1000, 1000, 0, "0.000825"},
	        {__LINE__, "mistral/mistral-small-latest", 1, 1, 0,
	         "0.00000024"},
	        {__LINE__, "gpt-3.5-turbo", 1234, 567, 0, "0.0014675"},
	        /* Dated snapshots priced apart from their alias. */
	        /* 1000 x 5e-06 + 500 x 1.5e-05 */
	        {__LINE__, "gpt-4o-2024-05-13", 1000, 500, 0, "0.0125"},
	        /* 1000 x 1e-06 + 1000 x 2e-06 */
	        {__LINE__, "gpt-3.5-turbo-1106", 1000, 1000, 0, "0.003"},
	        /* 600 x 2.75e-06 + 400 x 1.25e-06 + 100 x 1.1e-05 */
	        {__LINE__, "azure/gpt-4o-2024-11-20", 1000, 100, 400,
	         "0.00325"},
	        /* 1000 cached of 1000 at 7.5e-08 + 10 x 6e-07 */
	        {__LINE__, "gpt-4o-mini-2024-07-18", 1000, 10, 1000,
	         "0.000081"},
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct tg_price_entry *e =
		        tg_pricing_find(p, rows[i].model);
		struct tg_err err;
		tg_money m = -1;
		enum tg_rc rc;

		if (!ok(e != NULL, "line %d: %s found", rows[i].line,
		        rows[i].model))
			continue;
		tg_err_clear(&err);
		rc = cost3(e, rows[i].prompt, rows[i].completion,
		           rows[i].cached, &m, &err);
		is_int(TG_OK, rc, "line %d: cost ok", rows[i].line);
		is_string(rows[i].want, money_str(m),
		          "line %d: %s %lld+%lld (cached %lld) = %s",
		          rows[i].line, rows[i].model,
		          (long long)rows[i].prompt,
		          (long long)rows[i].completion,
		          (long long)rows[i].cached, rows[i].want);
	}
}

static void
test_cost_edges(void)
{
	struct tg_price_entry tiny = {0}, big = {0};
	struct tg_err err;
	tg_money m = 42;

	tiny.input = 1; /* 1e-15 USD per token */
	tiny.output = 1;
	tg_err_clear(&err);
	is_int(TG_OK, cost3(&tiny, 1, 0, 0, &m, &err), "tiny cost ok");
	is_string("0.0000000001", money_str(m),
	          "a fraction of 1e-10 USD rounds up");
	is_int(TG_OK, cost3(&tiny, 100000, 0, 0, &m, &err),
	       "1e5 tiny tokens ok");
	is_string("0.0000000001", money_str(m), "1e-10 exactly");
	is_int(TG_OK, cost3(&tiny, 100001, 0, 0, &m, &err),
	       "1e5+1 tiny tokens ok");
	is_string("0.0000000002", money_str(m), "just above rounds up");

	m = 42;
	is_int(TG_ERR_UNPROCESSABLE, cost3(&tiny, -1, 0, 0, &m, &err),
	       "negative prompt refused");
	is_int(TG_ERR_UNPROCESSABLE, cost3(&tiny, 0, -1, 0, &m, &err),
	       "negative completion refused");
	is_int(TG_ERR_UNPROCESSABLE, cost3(&tiny, 0, 0, -1, &m, &err),
	       "negative cached refused");
	is_int(TG_ERR_UNPROCESSABLE,
	       tg_pricing_estimate(&tiny, -1, 0,
	                           TG_SERVICE_BIT(TG_SERVICE_DEFAULT), &m,
	                           &err),
	       "negative estimate refused");
	is_int(42, m, "out untouched on error");

	big.input = 1000000000000000LL; /* 1 USD per token */
	big.output = 1000000000000000LL;
	is_int(TG_ERR_INTERNAL, cost3(&big, INT64_MAX, 0, 0, &m, &err),
	       "overflow refused");
	is_int(TG_ERR_INTERNAL,
	       tg_pricing_estimate(&big, INT64_MAX / 2, INT64_MAX / 2,
	                           TG_SERVICE_BIT(TG_SERVICE_DEFAULT), &m,
	                           &err),
	       "estimate overflow refused");
	is_int(42, m, "out untouched on overflow");
}

static void
test_estimate(const struct tg_pricing *p)
{
	const struct tg_price_entry *e = tg_pricing_find(p, "gpt-4o-mini");
	struct tg_err err;
	tg_money m = -1;

	if (!ok(e != NULL, "gpt-4o-mini for estimate"))
		return;
	tg_err_clear(&err);
	is_int(TG_OK,
	       tg_pricing_estimate(e, 1000, 4096,
	                           TG_SERVICE_BIT(TG_SERVICE_DEFAULT), &m,
	                           &err),
	       "estimate ok");
	/* 1000 x 1.5e-07 + 4096 x 6e-07 */
	is_string("0.0026076", money_str(m), "estimate 1000 + 4096");
	is_int(TG_OK,
	       tg_pricing_estimate(e, 1000, 500,
	                           TG_SERVICE_BIT(TG_SERVICE_DEFAULT), &m,
	                           &err),
	       "estimate ok");
	is_string("0.00045", money_str(m), "estimate = cost when exact");
}

/* A generated file of 2,000 entries, in the forms LiteLLM's file has. */
/*
 * Reasoning, audio, service tiers and a price per request, each computed
 * by hand from the entry's prices.
 */
static void
test_more_dimensions(void)
{
	const char *path = write_tmp(
	        "more.json",
	        "{\"reason\": {\"input_cost_per_token\": 1e-06,"
	        " \"output_cost_per_token\": 2e-06,"
	        " \"output_cost_per_reasoning_token\": 3e-06},"
	        " \"audio\": {\"input_cost_per_token\": 2.5e-06,"
	        " \"output_cost_per_token\": 1e-05,"
	        " \"input_cost_per_audio_token\": 4e-05,"
	        " \"output_cost_per_audio_token\": 8e-05},"
	        " \"svc\": {\"input_cost_per_token\": 1.25e-06,"
	        " \"output_cost_per_token\": 1e-05,"
	        " \"cache_read_input_token_cost\": 1.25e-07,"
	        " \"input_cost_per_token_priority\": 2.5e-06,"
	        " \"output_cost_per_token_priority\": 2e-05,"
	        " \"cache_read_input_token_cost_priority\": 2.5e-07,"
	        " \"input_cost_per_token_flex\": 6.25e-07,"
	        " \"output_cost_per_token_flex\": 5e-06,"
	        " \"cache_read_input_token_cost_flex\": 6.25e-08},"
	        " \"svctier\": {\"input_cost_per_token\": 1e-06,"
	        " \"output_cost_per_token\": 2e-06,"
	        " \"input_cost_per_token_above_272k_tokens\": 2e-06,"
	        " \"output_cost_per_token_above_272k_tokens\": 3e-06,"
	        " \"input_cost_per_token_priority\": 3e-06,"
	        " \"input_cost_per_token_above_272k_tokens_priority\": 5e-06},"
	        " \"perreq\": {\"input_cost_per_token\": 1e-06,"
	        " \"output_cost_per_token\": 1e-06,"
	        " \"input_cost_per_request\": 0.005}}");
	struct tg_pricing *p = NULL;
	const struct tg_price_entry *e;
	struct tg_usage u;
	struct tg_err err;
	tg_money m;

	tg_err_clear(&err);
	if (!ok(tg_pricing_load(path, &p, &err) == TG_OK,
	        "the more dimensions' file loads (%s)", err.message))
		return;
	/* 100 x 1e-6 + 30 x 2e-6 + 20 reasoning x 3e-6 */
	e = tg_pricing_find(p, "reason");
	memset(&u, 0, sizeof(u));
	u.prompt_tokens = 100;
	u.completion_tokens = 50;
	u.reasoning_tokens = 20;
	is_int(TG_OK, tg_pricing_cost(e, &u, &m, &err), "reasoning ok");
	is_string("0.00022", money_str(m), "reasoning tokens at their rate");
	/* More reasoning than output: all of it at the dearest (3e-6). */
	u.prompt_tokens = 0;
	u.completion_tokens = 10;
	is_int(TG_OK, tg_pricing_cost(e, &u, &m, &err), "inconsistent ok");
	is_string("0.00003", money_str(m),
	          "reasoning beyond the output: the output at the dearest");
	is_int(TG_OK,
	       tg_pricing_estimate(e, 100, 100,
	                           TG_SERVICE_BIT(TG_SERVICE_DEFAULT), &m,
	                           &err),
	       "estimate ok");
	is_string("0.0004", money_str(m),
	          "the hold: the output bound at the reasoning rate");
	/* 60 x 2.5e-6 + 40 audio x 4e-5 + 20 x 1e-5 + 10 audio x 8e-5 */
	e = tg_pricing_find(p, "audio");
	memset(&u, 0, sizeof(u));
	u.prompt_tokens = 100;
	u.audio_prompt_tokens = 40;
	u.completion_tokens = 30;
	u.audio_completion_tokens = 10;
	is_int(TG_OK, tg_pricing_cost(e, &u, &m, &err), "audio ok");
	is_string("0.00275", money_str(m), "audio tokens at their rates");
	/* gpt-5's shape: 800 x in + 200 cached x read + 100 x out. */
	e = tg_pricing_find(p, "svc");
	ok(e->has_service[TG_SERVICE_PRIORITY] &&
	           e->has_service[TG_SERVICE_FLEX],
	   "priority and flex read");
	memset(&u, 0, sizeof(u));
	u.prompt_tokens = 1000;
	u.cached_tokens = 200;
	u.completion_tokens = 100;
	is_int(TG_OK, tg_pricing_cost(e, &u, &m, &err), "default ok");
	is_string("0.002025", money_str(m), "default tier");
	u.service_tier = TG_SERVICE_PRIORITY;
	is_int(TG_OK, tg_pricing_cost(e, &u, &m, &err), "priority ok");
	is_string("0.00405", money_str(m), "priority tier");
	u.service_tier = TG_SERVICE_FLEX;
	is_int(TG_OK, tg_pricing_cost(e, &u, &m, &err), "flex ok");
	is_string("0.0010125", money_str(m), "flex tier");
	is_int(TG_OK,
	       tg_pricing_estimate(e, 1000, 100, TG_SERVICE_ANY, &m, &err),
	       "estimate ok");
	is_string("0.0045", money_str(m),
	          "a call that may get priority is held at priority rates");
	is_int(TG_OK,
	       tg_pricing_estimate(e, 1000, 100,
	                           TG_SERVICE_BIT(TG_SERVICE_DEFAULT) |
	                                   TG_SERVICE_BIT(TG_SERVICE_FLEX),
	                           &m, &err),
	       "estimate ok");
	is_string("0.00225", money_str(m),
	          "a flex call is held at the default's (it may fall back)");
	/* Priority above 272k: its own input (5e-6), the output the larger
	 * of the tier's (3e-6) and priority's (2e-6, the default's). */
	e = tg_pricing_find(p, "svctier");
	memset(&u, 0, sizeof(u));
	u.prompt_tokens = 300000;
	u.completion_tokens = 10;
	u.service_tier = TG_SERVICE_PRIORITY;
	is_int(TG_OK, tg_pricing_cost(e, &u, &m, &err), "priority tier ok");
	is_string("1.50003", money_str(m), "priority's long-context tier");
	u.prompt_tokens = 1000;
	is_int(TG_OK, tg_pricing_cost(e, &u, &m, &err), "short priority ok");
	is_string("0.00302", money_str(m),
	          "a short priority prompt: 1000 x 3e-6 + 10 x 2e-6");
	/* 10 x 1e-6 + 10 x 1e-6 + 0.005 */
	e = tg_pricing_find(p, "perreq");
	memset(&u, 0, sizeof(u));
	u.prompt_tokens = 10;
	u.completion_tokens = 10;
	is_int(TG_OK, tg_pricing_cost(e, &u, &m, &err), "per request ok");
	is_string("0.00502", money_str(m), "the price per request");
	is_int(TG_OK, tg_pricing_estimate(e, 10, 10, TG_SERVICE_ANY, &m, &err),
	       "estimate ok");
	is_string("0.00502", money_str(m), "held too");
	tg_pricing_free(p);
}

static void
test_generated(void)
{
	size_t cap = 2000 * 256 + 1024, used = 0;
	char *text = malloc(cap);
	struct tg_pricing *p = NULL;
	struct tg_err err;
	const struct tg_price_entry *e;
	enum tg_rc rc;
	char *path;

	used += (size_t)snprintf(
	        text + used, cap - used,
	        "{\n  \"sample_spec\": {\"input_cost_per_token\""
	        ": \"cost\", \"output_cost_per_token\": 0},\n");
	for (int i = 0; i < 2000; i++) {
		switch (i % 5) {
		case 0: /* exponent form */
			used += (size_t)snprintf(
			        text + used, cap - used,
			        "  \"model-%d\": {\"input_cost_per_token\": "
			        "%de-09,"
			        " \"output_cost_per_token\": %de-08, "
			        "\"max_output_tokens\": %d, \"mode\": "
			        "\"chat\"},\n",
			        i, i + 1, i + 1, i + 1);
			break;
		case 1: /* plain decimals, max_tokens only */
			used += (size_t)snprintf(
			        text + used, cap - used,
			        "  \"prov/model-%d\": "
			        "{\"input_cost_per_token\": "
			        "0.000000%03d, \"output_cost_per_token\": "
			        "0.0000%03d,"
			        " \"max_tokens\": 8191, "
			        "\"cache_read_input_token_"
			        "cost\": 1e-09, \"litellm_provider\": "
			        "\"prov\"},\n",
			        i, i % 1000, i % 1000);
			break;
		case 2: /* image model: no per-token output price */
			used += (size_t)snprintf(
			        text + used, cap - used,
			        "  \"image-%d\": {\"input_cost_per_pixel\": "
			        "1e-08, "
			        "\"output_cost_per_pixel\": 0.0, \"mode\": "
			        "\"image_generation\"},\n",
			        i);
			break;
		case 3: /* embedding: input only */
			used += (size_t)snprintf(
			        text + used, cap - used,
			        "  \"embed-%d\": {\"input_cost_per_token\": "
			        "1e-07, "
			        "\"supports\": [1, 2, {\"x\": null}]},\n",
			        i);
			break;
		default: /* integers and a quoted price */
			used += (size_t)snprintf(
			        text + used, cap - used,
			        "  \"free-%d\": {\"input_cost_per_token\": 0, "
			        "\"output_cost_per_token\": \"2E-6\"},\n",
			        i);
			break;
		}
	}
	/* A figure finer than 1e-15 is not exact: that entry is skipped.  An
	 * embedding model without an output price is kept, at 0. */
	used += (size_t)snprintf(
	        text + used, cap - used,
	        "  \"embedding-5\": {\"input_cost_per_token\": 1e-07,"
	        " \"mode\": \"embedding\"},\n"
	        "  \"too-fine\": {\"input_cost_per_token\": "
	        "1.23456789012345678e-07, "
	        "\"output_cost_per_token\": 1e-06},\n"
	        "  \"negative\": {\"input_cost_per_token\": "
	        "-1e-06, \"output_cost_per_token\": 1e-06}\n}\n");
	path = write_tmp("big.json", text);
	free(text);

	tg_err_clear(&err);
	rc = tg_pricing_load(path, &p, &err);
	is_int(TG_OK, rc, "2,000-entry file loads");
	if (rc != TG_OK) {
		diag("%s", err.message);
		unlink(path);
		return;
	}
	e = tg_pricing_find(p, "model-0");
	ok(e && e->input == 1000000 && e->output == 10000000 &&
	           e->max_output_tokens == 1 && !e->has_cache_read,
	   "model-0 exponent-form prices");
	e = tg_pricing_find(p, "model-1995");
	ok(e && e->input == price_of("1996e-09") &&
	           e->output == price_of("1996e-08"),
	   "model-1995 prices");
	e = tg_pricing_find(p, "prov/model-1996");
	ok(e && e->input == price_of("0.000000996") &&
	           e->output == price_of("0.0000996") &&
	           e->max_output_tokens == 8191 && e->has_cache_read &&
	           e->cache_read == price_of("1e-09"),
	   "prov/model-1996: decimals, max_tokens, cache read");
	ok(tg_pricing_find(p, "image-2") == NULL, "image entry skipped");
	ok(tg_pricing_find(p, "embed-3") == NULL,
	   "input-only entry without a mode skipped");
	e = tg_pricing_find(p, "embedding-5");
	ok(e && e->input == price_of("1e-07") && e->output == 0,
	   "an embedding model without an output price: 0");
	e = tg_pricing_find(p, "free-4");
	ok(e && e->input == 0 && e->output == price_of("2e-06"),
	   "integer and quoted prices");
	ok(tg_pricing_find(p, "too-fine") == NULL, "inexact price skipped");
	ok(tg_pricing_find(p, "negative") == NULL, "negative price skipped");
	ok(tg_pricing_find(p, "sample_spec") == NULL, "sample_spec skipped");
	tg_pricing_free(p);
	unlink(path);
}

static void
test_bad_files(void)
{
	static const struct {
		int line;
		const char *name, *text, *want;
	} rows[] = {
	        {__LINE__, "trunc.json", "{\"a\": {\"input_cost_per_token\": 1",
	         ": invalid JSON"},
	        {__LINE__, "syntax.json", "{\n\"a\": {\n\"b\": 1,,\n}}",
	         ":3: invalid JSON"},
	        {__LINE__, "array.json", "[1, 2]", ": the price file is not"},
	        {__LINE__, "trailing.json", "{} x", ":1: invalid JSON"},
	        {__LINE__, "empty.json", "", ": invalid JSON"},
	};
	struct tg_pricing *p;
	struct tg_err err;
	char *path, want[600];

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		p = (struct tg_pricing *)&err; /* must stay untouched */
		path = write_tmp(rows[i].name, rows[i].text);
		tg_err_clear(&err);
		is_int(TG_ERR_CONFIG, tg_pricing_load(path, &p, &err),
		       "line %d: %s refused", rows[i].line, rows[i].name);
		snprintf(want, sizeof(want), "%s%s", path, rows[i].want);
		ok(strncmp(err.message, want, strlen(want)) == 0,
		   "line %d: message '%s' starts with '%s'", rows[i].line,
		   err.message, want);
		ok(p == (struct tg_pricing *)&err, "line %d: out untouched",
		   rows[i].line);
		unlink(path);
	}

	snprintf(want, sizeof(want), "%s/missing.json", tmpdir);
	tg_err_clear(&err);
	is_int(TG_ERR_CONFIG, tg_pricing_load(want, &p, &err),
	       "missing file refused");
	ok(strstr(err.message, "missing.json: cannot read") != NULL,
	   "missing file message names the path: %s", err.message);

	path = write_tmp("ws.json",
	                 "  {\"m\": {\"input_cost_per_token\": 1e-06,"
	                 " \"output_cost_per_token\": 2e-06}}\n\n");
	tg_err_clear(&err);
	p = NULL;
	is_int(TG_OK, tg_pricing_load(path, &p, &err),
	       "surrounding whitespace is fine");
	ok(p && tg_pricing_find(p, "m") != NULL, "entry found");
	tg_pricing_free(p);
	unlink(path);
	tg_pricing_free(NULL);
	ok(tg_pricing_find(NULL, "m") == NULL, "find in NULL table");
}

/* A usage of the prompt's parts and the completion. */
static struct tg_usage
usage(int64_t plain, int64_t read, int64_t write, int64_t write_1h,
      int64_t completion)
{
	struct tg_usage u;

	memset(&u, 0, sizeof(u));
	u.prompt_tokens = plain + read + write + write_1h;
	u.cached_tokens = read;
	u.cache_write_tokens = write;
	u.cache_write_1h_tokens = write_1h;
	u.completion_tokens = completion;
	return u;
}

/*
 * Every per-token dimension of an entry (the cache's reads and writes of
 * both kinds, the long-context tier), against costs worked out by hand.
 */
static void
test_dimensions(void)
{
	static const struct {
		int line;
		const char *model;
		int64_t plain, read, write, write_1h, completion;
		const char *want;
	} rows[] = {
	        /* 100 x 3e-6 + 200 x 3e-7 + 300 x 3.75e-6 + 400 x 6e-6
	         * + 50 x 1.5e-5 */
	        {__LINE__, "sonnet", 100, 200, 300, 400, 50, "0.004635"},
	        /* 200,000 is not above 200k: 200000 x 3e-6 */
	        {__LINE__, "sonnet", 200000, 0, 0, 0, 0, "0.6"},
	        /* 200,001 is: 1 x 6e-6 + 200000 x 6e-7 + 10 x 2.25e-5 */
	        {__LINE__, "sonnet", 1, 200000, 0, 0, 10, "0.120231"},
	        /* a cache write counts toward the tier: 250000 x 1.2e-5 */
	        {__LINE__, "sonnet", 0, 0, 0, 250000, 0, "3"},
	        /* 199,000 + 2,000 written for 5 minutes: 199000 x 6e-6
	         * + 2000 x 7.5e-6 */
	        {__LINE__, "sonnet", 199000, 0, 2000, 0, 0, "1.209"},
	        /* no 1-hour price above 200k: the tier's 5-minute write
	         * (7.5e-6) when dearer than the entry's 1-hour one (6e-6):
	         * 300000 x 7.5e-6 */
	        {__LINE__, "sonnet4", 0, 0, 0, 300000, 0, "2.25"},
	        /* no cache prices at all: every part at the input price,
	         * 400 x 1e-6 + 5 x 2e-6 */
	        {__LINE__, "plain", 100, 100, 100, 100, 5, "0.00041"},
	        /* a 5-minute write price but no 1-hour one: 10 x 1e-6 +
	         * 10 x 2e-6 + 10 x 2e-6 */
	        {__LINE__, "write5m", 10, 0, 10, 10, 0, "0.00005"},
	};
	const char *path = write_tmp(
	        "dims.json",
	        "{\"sonnet\": {\"input_cost_per_token\": 3e-06,"
	        " \"output_cost_per_token\": 1.5e-05,"
	        " \"cache_read_input_token_cost\": 3e-07,"
	        " \"cache_creation_input_token_cost\": 3.75e-06,"
	        " \"cache_creation_input_token_cost_above_1hr\": 6e-06,"
	        " \"input_cost_per_token_above_200k_tokens\": 6e-06,"
	        " \"output_cost_per_token_above_200k_tokens\": 2.25e-05,"
	        " \"cache_read_input_token_cost_above_200k_tokens\": 6e-07,"
	        " \"cache_creation_input_token_cost_above_200k_tokens\":"
	        " 7.5e-06,"
	        " \"cache_creation_input_token_cost_above_1hr_above_200k_"
	        "tokens\": 1.2e-05},"
	        " \"sonnet4\": {\"input_cost_per_token\": 3e-06,"
	        " \"output_cost_per_token\": 1.5e-05,"
	        " \"cache_read_input_token_cost\": 3e-07,"
	        " \"cache_creation_input_token_cost\": 3.75e-06,"
	        " \"cache_creation_input_token_cost_above_1hr\": 6e-06,"
	        " \"input_cost_per_token_above_200k_tokens\": 6e-06,"
	        " \"output_cost_per_token_above_200k_tokens\": 2.25e-05,"
	        " \"cache_read_input_token_cost_above_200k_tokens\": 6e-07,"
	        " \"cache_creation_input_token_cost_above_200k_tokens\":"
	        " 7.5e-06},"
	        " \"plain\": {\"input_cost_per_token\": 1e-06,"
	        " \"output_cost_per_token\": 2e-06},"
	        " \"write5m\": {\"input_cost_per_token\": 1e-06,"
	        " \"output_cost_per_token\": 2e-06,"
	        " \"cache_creation_input_token_cost\": 2e-06}}");
	struct tg_pricing *p = NULL;
	const struct tg_price_entry *e;
	struct tg_usage u;
	struct tg_err err;
	tg_money m;

	tg_err_clear(&err);
	if (!ok(tg_pricing_load(path, &p, &err) == TG_OK,
	        "the dimensions' file loads (%s)", err.message))
		return;
	e = tg_pricing_find(p, "sonnet");
	ok(e != NULL && e->ntiers == 1 && e->tier[0].above == 200000,
	   "sonnet has one tier, above 200k");
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		e = tg_pricing_find(p, rows[i].model);
		u = usage(rows[i].plain, rows[i].read, rows[i].write,
		          rows[i].write_1h, rows[i].completion);
		m = -1;
		if (!ok(e != NULL, "line %d: %s found", rows[i].line,
		        rows[i].model))
			continue;
		is_int(TG_OK, tg_pricing_cost(e, &u, &m, &err),
		       "line %d: cost ok", rows[i].line);
		is_string(rows[i].want, money_str(m),
		          "line %d: %s %lld plain, %lld read, %lld written 5m, "
		          "%lld written 1h, %lld out = %s",
		          rows[i].line, rows[i].model, (long long)rows[i].plain,
		          (long long)rows[i].read, (long long)rows[i].write,
		          (long long)rows[i].write_1h,
		          (long long)rows[i].completion, rows[i].want);
	}
	/* Parts beyond the prompt: all of it at the dearest input-side
	 * rate (the 1-hour write, 6e-6), never less. */
	e = tg_pricing_find(p, "sonnet");
	u = usage(0, 80, 50, 0, 0);
	u.prompt_tokens = 100;
	is_int(TG_OK, tg_pricing_cost(e, &u, &m, &err), "inconsistent ok");
	is_string("0.0006", money_str(m),
	          "parts beyond the prompt: the prompt at the dearest rate");
	/* The hold: every input token at the dearest rate that could apply
	 * (1000 x 6e-6 + 100 x 1.5e-5), the tier's once the bound can
	 * cross it (300000 x 1.2e-5). */
	is_int(TG_OK,
	       tg_pricing_estimate(e, 1000, 100,
	                           TG_SERVICE_BIT(TG_SERVICE_DEFAULT), &m,
	                           &err),
	       "estimate ok");
	is_string("0.0075", money_str(m), "hold below the tier: 1-hour write");
	is_int(TG_OK,
	       tg_pricing_estimate(e, 300000, 0,
	                           TG_SERVICE_BIT(TG_SERVICE_DEFAULT), &m,
	                           &err),
	       "estimate ok");
	is_string("3.6", money_str(m), "hold that can cross 200k: the tier");
	is_int(TG_OK,
	       tg_pricing_estimate(e, 200000, 10,
	                           TG_SERVICE_BIT(TG_SERVICE_DEFAULT), &m,
	                           &err),
	       "estimate ok");
	/* 200000 x 6e-6 + 10 x 1.5e-5: a bound of 200k cannot be above it */
	is_string("1.20015", money_str(m), "hold at exactly 200k: no tier");
	tg_pricing_free(p);
	unlink(path);
}

/* The Claude models ship with every price LiteLLM's map gives them. */
static void
test_shipped_claude(const struct tg_pricing *p)
{
	const struct tg_price_entry *e =
	        tg_pricing_find(p, "claude-sonnet-4-5");
	struct tg_usage u = usage(1000, 2000, 3000, 4000, 500);
	struct tg_err err;
	tg_money m = -1;

	if (!ok(e != NULL, "claude-sonnet-4-5 is shipped"))
		return;
	is_int(price_of("3.75e-06"), e->cache_write, "its 5-minute write");
	is_int(price_of("6e-06"), e->cache_write_1h, "its 1-hour write");
	is_int(200000, e->ntiers == 1 ? e->tier[0].above : 0,
	       "its long-context tier");
	tg_err_clear(&err);
	is_int(TG_OK, tg_pricing_cost(e, &u, &m, &err), "cost ok");
	/* 1000 x 3e-6 + 2000 x 3e-7 + 3000 x 3.75e-6 + 4000 x 6e-6 +
	 * 500 x 1.5e-5 */
	is_string("0.04635", money_str(m), "a call with every part");
	ok(tg_pricing_find(p, "claude-haiku-4-5") != NULL &&
	           tg_pricing_find(p, "claude-opus-4-1") != NULL &&
	           tg_pricing_find(p, "claude-opus-4-5") != NULL,
	   "haiku 4.5, opus 4.1 and 4.5 too");
}

int
main(void)
{
	struct tg_pricing *shipped = NULL;

	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_jsonc_keeps_number_text();
	test_shipped(&shipped);
	if (shipped != NULL) {
		test_shipped_dated(shipped);
		test_costs(shipped);
		test_estimate(shipped);
		test_shipped_claude(shipped);
	}
	test_cost_edges();
	test_dimensions();
	test_more_dimensions();
	test_generated();
	test_bad_files();
	tg_pricing_free(shipped);
	rmdir(tmpdir);
	return done_testing();
}
