/*
 * test-money: exact decimal parsing, shortest formatting, checked addition
 * and cost rounding (lib/money.c).  Every table row carries its line so a
 * failure points at the row.
 */
#include <stdint.h>
#include <string.h>

#include "../tap.h"
#include "money.h"

#define ROW __LINE__

struct parse_row {
	int line;
	const char *in;
	int scale;
	bool ok;
	int64_t want;
};

static const struct parse_row parse_rows[] = {
        {ROW, "0", 10, true, 0},
        {ROW, "-0", 10, true, 0},
        {ROW, "0.000", 10, true, 0},
        {ROW, "0e5", 10, true, 0},
        {ROW, "12", 10, true, 120000000000LL},
        {ROW, "+12", 10, true, 120000000000LL},
        {ROW, "0.001413", 10, true, 14130000},
        {ROW, "-1.5", 10, true, -15000000000LL},
        {ROW, "0.1", 10, true, 1000000000},
        {ROW, "0.0000000001", 10, true, 1},
        {ROW, "0.00000000010000", 10, true, 1},
        {ROW, ".5", 10, true, 5000000000LL},
        {ROW, "5.", 10, true, 50000000000LL},
        {ROW, "5e-07", 15, true, 500000000},
        {ROW, "1.5e-07", 15, true, 150000000},
        {ROW, "1.25E-06", 15, true, 1250000000},
        {ROW, "1.5E+3", 10, true, 15000000000000LL},
        {ROW, "1.5e3", 0, true, 1500},
        {ROW, "6e-08", 15, true, 60000000},
        {ROW, "0.0000005", 15, true, 500000000},
        {ROW, "1e-15", 15, true, 1},
        {ROW, "100e-17", 15, true, 1},
        {ROW, "0.0014130000", 10, true, 14130000},
        {ROW, "922337203.6854775807", 10, true, INT64_MAX},
        {ROW, "-922337203.6854775808", 10, true, INT64_MIN},
        {ROW, "9223372036854775807", 0, true, INT64_MAX},
        {ROW, "92233720368547758070000e-4", 0, true, INT64_MAX},
        {ROW, "00000000000000000000000000012", 0, true, 12},
        {ROW, "1.00000000000000000000000000", 0, true, 1},
        /* refusals */
        {ROW, "1e-11", 10, false, 0},
        {ROW, "0.00000000001", 10, false, 0},
        {ROW, "1.5e-16", 15, false, 0},
        {ROW, "922337203.6854775808", 10, false, 0},
        {ROW, "9223372036854775808", 0, false, 0},
        {ROW, "1e19", 0, false, 0},
        {ROW, "1e999999999", 10, false, 0},
        {ROW, "1e-999999999", 10, false, 0},
        {ROW, "123456789012345678901", 0, false, 0},
        {ROW, "abc", 10, false, 0},
        {ROW, "", 10, false, 0},
        {ROW, "-", 10, false, 0},
        {ROW, ".", 10, false, 0},
        {ROW, "1.2.3", 10, false, 0},
        {ROW, "nan", 10, false, 0},
        {ROW, "NaN", 10, false, 0},
        {ROW, "inf", 10, false, 0},
        {ROW, "-Infinity", 10, false, 0},
        {ROW, "0x10", 10, false, 0},
        {ROW, " 1", 10, false, 0},
        {ROW, "1 ", 10, false, 0},
        {ROW, "--1", 10, false, 0},
        {ROW, "+-1", 10, false, 0},
        {ROW, "1e", 10, false, 0},
        {ROW, "1e+", 10, false, 0},
        {ROW, "e5", 10, false, 0},
        {ROW, "1,5", 10, false, 0},
        {ROW, "1e5.5", 10, false, 0},
};

struct format_row {
	int line;
	int64_t v;
	int scale;
	const char *want;
};

static const struct format_row format_rows[] = {
        {ROW, 0, 10, "0"},
        {ROW, 14130000, 10, "0.001413"},
        {ROW, 40000000000LL, 10, "4"},
        {ROW, -5000000000LL, 10, "-0.5"},
        {ROW, 1, 10, "0.0000000001"},
        {ROW, -1, 10, "-0.0000000001"},
        {ROW, 11120000, 10, "0.001112"},
        {ROW, 4500000, 10, "0.00045"},
        {ROW, 123456789012LL, 10, "12.3456789012"},
        {ROW, INT64_MAX, 10, "922337203.6854775807"},
        {ROW, INT64_MIN, 10, "-922337203.6854775808"},
        {ROW, INT64_MAX, 0, "9223372036854775807"},
        {ROW, 150000000, 15, "0.00000015"},
        {ROW, 1, 15, "0.000000000000001"},
        {ROW, 1000, 3, "1"},
};

struct add_row {
	int line;
	int64_t a, b;
	bool ok;
	int64_t want;
};

static const struct add_row add_rows[] = {
        {ROW, 1000000000, 2000000000, true, 3000000000LL},
        {ROW, -5, 5, true, 0},
        {ROW, INT64_MAX, 0, true, INT64_MAX},
        {ROW, INT64_MAX, 1, false, 0},
        {ROW, INT64_MIN, -1, false, 0},
        {ROW, INT64_MAX, INT64_MIN, true, -1},
};

struct cost_row {
	int line;
	int64_t acc, tokens;
	int64_t price;
	bool ok;
	int64_t want;
};

static const struct cost_row cost_rows[] = {
        {ROW, 0, 0, 150000000, true, 0},
        /* 1000 x 1.5e-07 = 0.00015 exactly */
        {ROW, 0, 1000, 150000000, true, 1500000},
        /* 1 token at 1e-15 rounds up to 1e-10 */
        {ROW, 0, 1, 1, true, 1},
        /* 1 token at 1.5e-07 = 1500 units exactly */
        {ROW, 0, 1, 150000000, true, 1500},
        /* 3 tokens x 6e-08 = 1.8e-07 = 1800 units */
        {ROW, 0, 3, 60000000, true, 1800},
        /* 1 x 123456 e-15 = 1.23456e-10 -> rounds up to 2 */
        {ROW, 0, 1, 123456, true, 2},
        {ROW, 0, 1, 100000, true, 1},
        {ROW, 0, 1, 100001, true, 2},
        {ROW, 7, 2, 100000, true, 9},
        {ROW, 0, -1, 100000, false, 0},
        {ROW, 0, 1, -1, false, 0},
        {ROW, 0, INT64_MAX, INT64_MAX, false, 0},
        {ROW, INT64_MAX, 1, 1, false, 0},
        /* INT64_MAX tokens at 1e-15 = INT64_MAX/1e5 rounded up: fits */
        {ROW, 0, INT64_MAX, 1, true, 92233720368548LL},
};

static void
test_parse(void)
{
	size_t i;

	for (i = 0; i < sizeof(parse_rows) / sizeof(parse_rows[0]); i++) {
		const struct parse_row *r = &parse_rows[i];
		int64_t got = -42;
		bool ok = tg_decimal_parse(r->in, r->scale, &got);

		if (r->ok) {
			if (!tap_ok(ok && got == r->want, __FILE__, r->line,
			            "parse \"%s\" at scale %d", r->in,
			            r->scale))
				diag("  wanted %lld, got ok=%d %lld",
				     (long long)r->want, ok, (long long)got);
		} else {
			if (!tap_ok(!ok && got == -42, __FILE__, r->line,
			            "refuse \"%s\" at scale %d", r->in,
			            r->scale))
				diag("  got ok=%d %lld", ok, (long long)got);
		}
	}
}

static void
test_format(void)
{
	size_t i;
	char buf[TG_MONEY_STRLEN], tiny[4];

	for (i = 0; i < sizeof(format_rows) / sizeof(format_rows[0]); i++) {
		const struct format_row *r = &format_rows[i];
		size_t n = tg_decimal_format(r->v, r->scale, buf, sizeof(buf));
		int64_t back = 0;

		if (!tap_ok(strcmp(buf, r->want) == 0 && n == strlen(r->want),
		            __FILE__, r->line, "format %lld at scale %d",
		            (long long)r->v, r->scale))
			diag("  wanted %s, got %s (%zu)", r->want, buf, n);
		tap_ok(tg_decimal_parse(buf, r->scale, &back) && back == r->v,
		       __FILE__, r->line, "format/parse round trip of %s", buf);
	}
	is_int(0, tg_decimal_format(14130000, 10, tiny, sizeof(tiny)),
	       "too small a buffer gives 0");
	is_string("", tiny, "and an empty string");
	is_int(1, tg_decimal_format(4, 0, tiny, 2), "exact fit works");
	is_string("4", tiny, "exact fit text");
}

static void
test_add(void)
{
	size_t i;
	tg_money sum = 0, a, b;
	char buf[TG_MONEY_STRLEN];

	for (i = 0; i < sizeof(add_rows) / sizeof(add_rows[0]); i++) {
		const struct add_row *r = &add_rows[i];
		tg_money got = -42;
		bool ok = tg_money_add(r->a, r->b, &got);

		tap_ok(ok == r->ok && got == (r->ok ? r->want : -42), __FILE__,
		       r->line, "add %lld + %lld", (long long)r->a,
		       (long long)r->b);
	}
	ok(tg_money_parse("0.1", &a) && tg_money_parse("0.2", &b) &&
	           tg_money_add(a, b, &sum),
	   "0.1 + 0.2 adds");
	tg_money_format(sum, buf, sizeof(buf));
	is_string("0.3", buf, "0.1 + 0.2 = 0.3 exactly");
}

static void
test_cost(void)
{
	size_t i;
	tg_money acc = 0;
	tg_price in, outp;
	char buf[TG_MONEY_STRLEN];

	for (i = 0; i < sizeof(cost_rows) / sizeof(cost_rows[0]); i++) {
		const struct cost_row *r = &cost_rows[i];
		tg_money got = r->acc;
		bool ok = tg_money_add_cost(&got, r->tokens, r->price);

		if (!tap_ok(ok == r->ok && got == (r->ok ? r->want : r->acc),
		            __FILE__, r->line, "cost %lld + %lld x %lld",
		            (long long)r->acc, (long long)r->tokens,
		            (long long)r->price))
			diag("  got ok=%d %lld", ok, (long long)got);
	}

	/* SPEC 7.2 worked example: gpt-4o-mini 1000 + 500 tokens. */
	ok(tg_price_parse("1.5e-07", &in) && tg_price_parse("6e-07", &outp),
	   "gpt-4o-mini prices parse");
	ok(tg_money_add_cost(&acc, 1000, in) &&
	           tg_money_add_cost(&acc, 500, outp),
	   "gpt-4o-mini cost adds");
	tg_money_format(acc, buf, sizeof(buf));
	is_string("0.00045", buf, "1000 x 1.5e-07 + 500 x 6e-07 = 0.00045");
}

int
main(void)
{
	test_parse();
	test_format();
	test_add();
	test_cost();
	return done_testing();
}
