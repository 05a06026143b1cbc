/*
 * fuzz-money: exact decimal money (lib/money.c).
 *
 * An input is a decimal as it comes in a request, a config or the price
 * file ("0.001413", "5e-07", "-1.5E+3", any bytes), optionally followed by
 * a NUL and raw bytes that make three int64 numbers for the arithmetic.
 * With NUL-free inputs the same bytes serve as both.
 *
 * Properties, at every scale 0..18 (money is 10, prices 15):
 *  - parse then format then parse gives the same value, and the format is
 *    the shortest exact decimal: no exponent, no '+', no leading zero but
 *    the one before the point, no trailing zero after it, no "-0";
 *  - a parsed value is consistent across scales: s at scale k+1 is 10x s
 *    at scale k; and it agrees with strtod() to double precision;
 *  - every int64 formats, and the text parses back to it;
 *  - tg_money_add and tg_money_add_cost equal 128-bit reference arithmetic,
 *    refuse exactly when the result does not fit, and leave the
 *    accumulator untouched when they refuse.
 * UBSan checks that no step overflows.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "money.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond, what, text)                                                \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "fuzz-money: %s: %s (\"%s\")\n", what, \
			        #cond, text);                                  \
			abort();                                               \
		}                                                              \
	} while (0)

static const int64_t pow10_i64[] = {
        1LL,
        10LL,
        100LL,
        1000LL,
        10000LL,
        100000LL,
        1000000LL,
        10000000LL,
        100000000LL,
        1000000000LL,
        10000000000LL,
        100000000000LL,
        1000000000000LL,
        10000000000000LL,
        100000000000000LL,
        1000000000000000LL,
        10000000000000000LL,
        100000000000000000LL,
        1000000000000000000LL,
};

/* The shape of tg_decimal_format()'s output. */
static void
check_shortest(const char *s, int scale)
{
	const char *p = s, *dot = strchr(s, '.');
	size_t n = strlen(s);

	CHECK(n > 0 && n < TG_MONEY_STRLEN, "length", s);
	CHECK(strcmp(s, "-0") != 0, "no -0", s);
	if (*p == '-')
		p++;
	CHECK(*p >= '0' && *p <= '9', "starts with a digit", s);
	CHECK(p[0] != '0' || p[1] == '\0' || p[1] == '.', "no leading zero", s);
	for (const char *c = p; *c; c++)
		CHECK((*c >= '0' && *c <= '9') || c == dot, "only digits", s);
	if (dot != NULL) {
		CHECK(dot[1] != '\0', "no bare point", s);
		CHECK(s[n - 1] != '0', "no trailing zero", s);
		CHECK((long)strlen(dot + 1) <= scale, "no more decimals", s);
	}
}

static void
check_format(int64_t v, int scale)
{
	char text[TG_MONEY_STRLEN];
	int64_t back;
	size_t n = tg_decimal_format(v, scale, text, sizeof(text));

	CHECK(n > 0 && n == strlen(text), "every int64 formats", text);
	check_shortest(text, scale);
	CHECK(tg_decimal_parse(text, scale, &back) && back == v,
	      "format then parse", text);
	/* A buffer one byte short is refused, and still a string. */
	{
		char small[TG_MONEY_STRLEN];

		CHECK(tg_decimal_format(v, scale, small, n) == 0 &&
		              small[0] == '\0',
		      "too small a buffer", text);
	}
}

static void
check_parse(const char *s)
{
	int64_t prev = 0;
	bool prev_ok = false;

	for (int scale = 0; scale <= 18; scale++) {
		int64_t v = 0x5a5a, again;
		char text[TG_MONEY_STRLEN];
		bool ok = tg_decimal_parse(s, scale, &v);

		if (!ok) {
			CHECK(v == 0x5a5a, "out untouched on refusal", s);
		} else {
			double d = strtod(s, NULL);
			double want = (double)v / (double)pow10_i64[scale];

			CHECK(tg_decimal_format(v, scale, text, sizeof(text)) >
			              0,
			      "formats", s);
			check_shortest(text, scale);
			CHECK(tg_decimal_parse(text, scale, &again) &&
			              again == v,
			      "parse, format, parse", s);
			CHECK(fabs(d - want) <= fabs(want) * 1e-12 + 1e-300,
			      "agrees with strtod", s);
		}
		/* More decimals of scale never make a value unreadable,
		 * unless it outgrows int64. */
		if (prev_ok) {
			int64_t ten;

			if (__builtin_mul_overflow(prev, 10, &ten))
				CHECK(!ok, "beyond int64 at a finer scale", s);
			else
				CHECK(ok && v == ten, "10x at a finer scale",
				      s);
		} else if (scale > 0 && ok) {
			/* Refused at scale-1 but read at scale: it needed
			 * that decimal. */
			CHECK(v % 10 != 0, "needed the extra decimal", s);
		}
		prev = v;
		prev_ok = ok;
	}
	/* The scales outside 0..18 are refused. */
	{
		int64_t v;

		CHECK(!tg_decimal_parse(s, -1, &v) &&
		              !tg_decimal_parse(s, 19, &v),
		      "bad scale", s);
	}
}

static void
check_arith(int64_t a, int64_t b, int64_t c)
{
	__int128 sum = (__int128)a + b;
	int64_t out = 0x77, acc = a;
	bool ok = tg_money_add(a, b, &out);

	CHECK(ok == (sum >= INT64_MIN && sum <= INT64_MAX), "add refuses", "");
	CHECK(ok ? out == (int64_t)sum : out == 0x77, "add result", "");

	/* tokens = b, price = c: cost rounded up to money units. */
	ok = tg_money_add_cost(&acc, b, c);
	if (b < 0 || c < 0) {
		CHECK(!ok && acc == a, "negative cost refused", "");
	} else {
		__int128 product = (__int128)b * c;
		__int128 units = (product + 99999) / 100000;
		__int128 total = (__int128)a + units;

		CHECK(ok == (units <= INT64_MAX && total >= INT64_MIN &&
		             total <= INT64_MAX),
		      "add_cost refuses", "");
		CHECK(ok ? acc == (int64_t)total : acc == a, "add_cost result",
		      "");
		/* Rounded up, by less than one unit. */
		CHECK(!ok || units * 100000 >= product, "rounded up", "");
		CHECK(!ok || units * 100000 - product < 100000, "by < 1 unit",
		      "");
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, '\0', size);
	size_t tlen = nul ? (size_t)(nul - data) : size;
	const uint8_t *raw = nul ? nul + 1 : data;
	size_t rlen = nul ? size - tlen - 1 : size;
	unsigned char bytes[25] = {0};
	int64_t n[3];
	char *text;

	if (tlen > 512)
		return 0;
	text = malloc(tlen + 1);
	memcpy(text, data, tlen);
	text[tlen] = '\0';
	check_parse(text);
	free(text);

	memcpy(bytes, raw, rlen < sizeof(bytes) ? rlen : sizeof(bytes));
	memcpy(n, bytes, sizeof(n));
	for (int scale = 0; scale <= 18; scale++)
		check_format(n[0], scale);
	check_format(INT64_MIN, bytes[24] % 19);
	check_format(INT64_MAX, bytes[24] % 19);
	check_arith(n[0], n[1], n[2]);
	/* Realistic magnitudes too: the raw numbers are mostly huge. */
	check_arith(n[0] >> 24, n[1] >> 40, n[2] >> 44);
	return 0;
}
