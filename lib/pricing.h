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

struct tg_price_entry {
	tg_price input;      /* input_cost_per_token */
	tg_price output;     /* output_cost_per_token */
	tg_price cache_read; /* cache_read_input_token_cost */
	bool has_cache_read;
	int64_t max_output_tokens; /* 0 when unknown */
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
 * Cost of a completed request: prompt_tokens x input + completion_tokens x
 * output, where cached_tokens (a part of prompt_tokens) are billed at
 * cache_read when the entry has one.  Exact, rounded up to 1e-10 USD.
 * TG_ERR_UNPROCESSABLE on negative counts, TG_ERR_INTERNAL on overflow.
 */
enum tg_rc tg_pricing_cost(const struct tg_price_entry *price,
                           int64_t prompt_tokens, int64_t completion_tokens,
                           int64_t cached_tokens, tg_money *out,
                           struct tg_err *err);

/*
 * Worst-case cost of a request before it is sent (SPEC 4.3):
 * prompt_bound x input + output_bound x output.  The caller computes the
 * bounds (tg_chat_estimate_bounds); this only prices them.
 */
enum tg_rc tg_pricing_estimate(const struct tg_price_entry *price,
                               int64_t prompt_bound, int64_t output_bound,
                               tg_money *out, struct tg_err *err);

#endif
