/*
 * pricing: per-token prices in LiteLLM's model_prices_and_context_window.json
 * format, and the cost of a request.
 *
 * The price file is read once per process, when the config is loaded; each
 * deployment's price is resolved then and kept in the deployment, so a
 * request never searches the table (O(1) per request whatever its size).
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
	/* Long-context tiers, lowest first. */
	struct tg_price_tier tier[TG_PRICE_TIERS];
	size_t ntiers;
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

/* "web_search", "web_search_preview", "file_search", "code_interpreter",
 * "image_generation": the tool's name in config and messages. */
const char *tg_tool_name(enum tg_tool t);

/* What an answer says it used, for its cost. */
struct tg_usage {
	bool present;          /* the answer reported its token usage */
	int64_t prompt_tokens; /* every input token: read, written, cached */
	int64_t completion_tokens;
	int64_t total_tokens;
	int64_t cached_tokens;         /* read from the cache: a part of
	                                  prompt_tokens */
	int64_t cache_write_tokens;    /* written to a 5-minute cache: a part
	                                  of prompt_tokens */
	int64_t cache_write_1h_tokens; /* written to a 1-hour cache: a part of
	                                  prompt_tokens */
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
 * here): the prompt's tokens by class (read from the cache at cache_read,
 * written to it at cache_write or cache_write_1h, the rest at input) and
 * the completion at output, all at the rates of the highest tier the
 * prompt is above.  Parts of the prompt that add up to more than it are
 * inconsistent: then the whole prompt is billed at the dearest of its
 * rates, which never undercharges.  Exact, rounded up to 1e-10 USD.
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
 * kind) and output_bound at the output rate, at the dearest tier the
 * prompt bound can reach.  The caller computes the bounds (the API
 * adapter's, lib/api.h); this only prices them.
 */
enum tg_rc tg_pricing_estimate(const struct tg_price_entry *price,
                               int64_t prompt_bound, int64_t output_bound,
                               tg_money *out, struct tg_err *err);

#endif
