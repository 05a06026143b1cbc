/*
 * money: exact decimal amounts in integers.
 *
 * Money is never held in binary floating point: 0.1 + 0.2 must be 0.3 in the
 * ledger.  An amount (tg_money) counts units of 1e-10 USD, the scale of the
 * DECIMAL(20,10) columns; a per-token price (tg_price) counts units of
 * 1e-15 USD, enough for any real price list.  All arithmetic is checked for
 * overflow.
 */
#ifndef TG_MONEY_H
#define TG_MONEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef int64_t tg_money; /* units of 1e-10 USD */
typedef int64_t tg_price; /* units of 1e-15 USD per token */

#define TG_MONEY_SCALE 10
#define TG_PRICE_SCALE 15
/* Longest output of tg_money_format(), with the NUL. */
#define TG_MONEY_STRLEN 32

/*
 * Parse a decimal number ("12", "0.001413", "-1.5", "5e-07", "1.5E+3") into
 * an integer count of 10^-scale units.  Exact: a value with more fractional
 * digits than scale (after the exponent is applied, ignoring trailing zeros)
 * or outside int64 is refused.  Leading/trailing spaces, "", "nan", "inf",
 * hex and a second sign are refused.  *out is written only on success.
 */
bool tg_decimal_parse(const char *s, int scale, int64_t *out);

static inline bool
tg_money_parse(const char *s, tg_money *out)
{
	return tg_decimal_parse(s, TG_MONEY_SCALE, out);
}

static inline bool
tg_price_parse(const char *s, tg_price *out)
{
	return tg_decimal_parse(s, TG_PRICE_SCALE, out);
}

/*
 * Write v (10^-scale units) as the shortest exact decimal: "0.001413", "4",
 * "-0.5", never an exponent.  Returns the length, or 0 if buf (len bytes)
 * is too small; buf is always NUL-terminated when len > 0.
 */
size_t tg_decimal_format(int64_t v, int scale, char *buf, size_t len);

static inline size_t
tg_money_format(tg_money v, char *buf, size_t len)
{
	return tg_decimal_format(v, TG_MONEY_SCALE, buf, len);
}

/* *out = a + b; false (and *out untouched) on overflow. */
bool tg_money_add(tg_money a, tg_money b, tg_money *out);

/*
 * Cost of `tokens` tokens at `price` each, added to *acc (in tg_money units),
 * with the product rounded up to the next 1e-10 USD so that rounding never
 * favours the customer over the budget.  False on negative input or
 * overflow, *acc untouched.
 */
bool tg_money_add_cost(tg_money *acc, int64_t tokens, tg_price price);

#endif
