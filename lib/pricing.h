/*
 * pricing: per-token prices in LiteLLM's model_prices_and_context_window.json
 * format, and the cost of a request.
 *
 * The price file is read when the config is loaded (again when either
 * changes, lib/app.c); each deployment's price is resolved then and kept in
 * the deployment, so a request never searches the table (O(1) per request
 * whatever its size).  With its index (lib/price_table.h) only the entries
 * the config names are parsed.
 */
#ifndef TG_PRICING_H
#define TG_PRICING_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "money.h"

/*
 * The hosted tools a provider runs itself and bills per call (the
 * Responses API's web search, file search, code interpreter and image
 * generation), as a call's output counts them: "web_search_call" items and
 * so on.  A code interpreter is billed per container, so its count is of
 * the containers its calls ran in.
 */
enum tg_tool {
	TG_TOOL_WEB_SEARCH,         /* "web_search", "web_search_2025_08_26" */
	TG_TOOL_WEB_SEARCH_PREVIEW, /* "web_search_preview..." */
	TG_TOOL_FILE_SEARCH,
	TG_TOOL_CODE_INTERPRETER,
	TG_TOOL_IMAGE_GENERATION,
	TG_TOOL_COUNT
};

/* A web search's price depends on its search_context_size. */
enum tg_search_context {
	TG_SEARCH_LOW,
	TG_SEARCH_MEDIUM, /* the default */
	TG_SEARCH_HIGH,
	TG_SEARCH_SIZES
};

/*
 * The service tiers a provider bills at (OpenAI's service_tier, as the
 * answer reports it): LiteLLM's keys ending in _priority and _flex.  A
 * model without a tier's prices bills it at the default's.
 */
enum tg_service_tier {
	TG_SERVICE_DEFAULT, /* "default", "auto", "standard", none */
	TG_SERVICE_PRIORITY,
	TG_SERVICE_FLEX,
	TG_SERVICE_TIERS
};
#define TG_SERVICE_BIT(t) (1u << (t))
#define TG_SERVICE_ANY    (TG_SERVICE_BIT(TG_SERVICE_TIERS) - 1u)

/* The tier a service_tier value names (an unknown one: the default). */
enum tg_service_tier tg_service_tier_parse(const char *s);
/* "default", "priority", "flex". */
const char *tg_service_tier_name(enum tg_service_tier t);

/* The most long-context tiers an entry has (LiteLLM's keys end in
 * _above_128k_tokens, _above_200k_tokens, _above_272k_tokens). */
#define TG_PRICE_TIERS 3

/*
 * A long-context tier: once a request's prompt (every input token, cached
 * and written to the cache included) is above `above` tokens, every token
 * of it is billed at these rates.  A rate the file does not give for the
 * tier is the entry's own (resolved when the file is read).
 */
struct tg_price_tier {
	int64_t above;
	tg_price input, output, cache_read, cache_write, cache_write_1h;
	/* Reasoning tokens (output_cost_per_reasoning_token), audio in
	 * and out (input_cost_per_audio_token, output_cost_per_audio_token):
	 * without their own price, the text's. */
	tg_price reasoning, audio_input, audio_output;
};

/*
 * The rates of a service tier other than the default (priority, flex):
 * its own base rates and long-context tiers, each rate the file does not
 * give for it the default's (a long-context rate never below the tier's
 * own base rate).
 */
struct tg_price_service {
	struct tg_price_tier base;
	struct tg_price_tier tier[TG_PRICE_TIERS];
	size_t ntiers;
};

struct tg_price_entry {
	tg_price input;      /* input_cost_per_token */
	tg_price output;     /* output_cost_per_token */
	tg_price cache_read; /* cache_read_input_token_cost */
	bool has_cache_read;
	/* A prompt cache write (Anthropic): cache_creation_input_token_cost
	 * for the 5-minute cache, ..._above_1hr for the 1-hour one.  Without
	 * them a write is billed at the input price (the 1-hour one at the
	 * 5-minute one's). */
	tg_price cache_write, cache_write_1h;
	bool has_cache_write, has_cache_write_1h;
	/* Reasoning and audio tokens at their own rates (see
	 * struct tg_price_tier). */
	tg_price reasoning, audio_input, audio_output;
	bool has_reasoning, has_audio_input, has_audio_output;
	/* A price per call on top of the tokens' (input_cost_per_request). */
	tg_price per_request;
	bool has_per_request;
	/* Long-context tiers, lowest first. */
	struct tg_price_tier tier[TG_PRICE_TIERS];
	size_t ntiers;
	/* The priority and flex tiers' rates ([TG_SERVICE_DEFAULT] unused:
	 * the fields above), resolved when the file is read. */
	struct tg_price_service service[TG_SERVICE_TIERS];
	bool has_service[TG_SERVICE_TIERS];
	int64_t max_output_tokens; /* 0 when unknown */
	int64_t max_input_tokens;  /* 0 when unknown */
	/* Per-call prices of the hosted tools (in tg_price units per call):
	 * search_context_cost_per_query by size, file_search_cost_per_1k_calls
	 * / 1000, code_interpreter_cost_per_session. */
	bool has_search_context;
	tg_price search_context[TG_SEARCH_SIZES];
	bool has_tool[TG_TOOL_COUNT];
	tg_price tool[TG_TOOL_COUNT];
};

/*
 * Rates of service tier st given in the config (model_info's
 * input_cost_per_token_priority and the like; NULL: not given) over e's:
 * what is not given stays as the price file had it, or the default's.
 */
void tg_pricing_set_service(struct tg_price_entry *e, enum tg_service_tier st,
                            const tg_price *input, const tg_price *output,
                            const tg_price *cache_read);

/* "web_search", "web_search_preview", "file_search", "code_interpreter",
 * "image_generation": the tool's name in config and messages. */
const char *tg_tool_name(enum tg_tool t);

/* What an answer says it used, for its cost. */
struct tg_usage {
	bool present;          /* the answer reported its token usage */
	int64_t prompt_tokens; /* every input token: read, written, cached */
	int64_t completion_tokens;
	int64_t total_tokens;
	int64_t cached_tokens;           /* read from the cache: a part of
	                                    prompt_tokens */
	int64_t cache_write_tokens;      /* written to a 5-minute cache: a part
	                                    of prompt_tokens */
	int64_t cache_write_1h_tokens;   /* written to a 1-hour cache: a part of
	                                    prompt_tokens */
	int64_t audio_prompt_tokens;     /* audio: a part of prompt_tokens */
	int64_t reasoning_tokens;        /* a part of completion_tokens */
	int64_t audio_completion_tokens; /* a part of completion_tokens */
	enum tg_service_tier service_tier; /* as the answer reports it */
	/* The cost the upstream reported (OpenRouter's usage.cost), charged
	 * instead of the prices when the deployment trusts it. */
	bool has_cost;
	tg_money cost;
	int64_t tool_calls[TG_TOOL_COUNT];
};

struct tg_pricing; /* opaque: a name -> entry table */

/*
 * Load a LiteLLM-format price file.  Entries without both per-token costs
 * (image, audio, per-second pricing) are skipped, not errors.  Prices are
 * parsed exactly from the JSON text of each number.  On failure err says
 * "<path>: <reason>" and *out is untouched.  Free with tg_pricing_free().
 */
enum tg_rc tg_pricing_load(const char *path, struct tg_pricing **out,
                           struct tg_err *err);
void tg_pricing_free(struct tg_pricing *p);

/* Find name (exact, case-sensitive).  Returns NULL when absent. */
const struct tg_price_entry *tg_pricing_find(const struct tg_pricing *p,
                                             const char *name);

/*
 * Cost of a completed request's tokens (u's tool calls are not counted
 * here), at the rates of the service tier it reports and of the highest
 * long-context tier its prompt is above: the prompt's tokens by class
 * (read from the cache at cache_read, written to it at cache_write or
 * cache_write_1h, audio at audio_input, the rest at input), the
 * completion's (reasoning at reasoning, audio at audio_output, the rest at
 * output), and the price per request.  Parts that add up to more than
 * their whole are inconsistent: then the whole is billed at the dearest of
 * its rates, which never undercharges.  Exact, rounded up to 1e-10 USD.
 * TG_ERR_UNPROCESSABLE on negative counts, TG_ERR_INTERNAL on overflow.
 */
enum tg_rc tg_pricing_cost(const struct tg_price_entry *price,
                           const struct tg_usage *u, tg_money *out,
                           struct tg_err *err);

/*
 * The cost of u's tool calls at price_per_call[tool] each, added to *acc.
 * False on overflow, *acc untouched.
 */
bool tg_pricing_add_tools(tg_money *acc, const int64_t calls[TG_TOOL_COUNT],
                          const tg_price price_per_call[TG_TOOL_COUNT]);

/*
 * Worst-case cost of a request before it is sent (SPEC 4.3): prompt_bound
 * tokens at the dearest input-side rate (input, a cache write of either
 * kind, audio) and output_bound at the dearest output-side one (output,
 * reasoning, audio), at the dearest long-context tier the prompt bound
 * can reach, of the service tiers in services (TG_SERVICE_BIT()s; the
 * default's is always among them), plus the price per request.  The
 * caller computes the bounds (the API adapter's, lib/api.h); this only
 * prices them.
 */
enum tg_rc tg_pricing_estimate(const struct tg_price_entry *price,
                               int64_t prompt_bound, int64_t output_bound,
                               unsigned services, tg_money *out,
                               struct tg_err *err);

#endif
