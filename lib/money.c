/*
 * money: exact decimal amounts held as int64 counts of 10^-scale units.
 *
 * Why integers: the ledger must add 0.1 and 0.2 and get 0.3, and a price
 * such as 1.5e-07 must multiply a token count without binary rounding.
 * Parsing refuses anything that cannot be held exactly rather than rounding
 * it, so a bad price file or request is reported instead of silently
 * changing what customers pay.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "money.h"

/* 10^0 .. 10^18: every power of ten that fits in int64. */
static const uint64_t pow10_u64[] = {
        1ULL,
        10ULL,
        100ULL,
        1000ULL,
        10000ULL,
        100000ULL,
        1000000ULL,
        10000000ULL,
        100000000ULL,
        1000000000ULL,
        10000000000ULL,
        100000000000ULL,
        1000000000000ULL,
        10000000000000ULL,
        100000000000000ULL,
        1000000000000000ULL,
        10000000000000000ULL,
        100000000000000000ULL,
        1000000000000000000ULL,
};
#define POW10_MAX 18

/* Exponents beyond this are refused: no int64 value needs more. */
#define EXP_LIMIT 100000

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

bool
tg_decimal_parse(const char *s, int scale, int64_t *out)
{
	const char *p = s;
	bool neg = false, any_digit = false, ok = false;
	/* Significant digits (leading zeros dropped), at most 20 kept. */
	char sig[24];
	size_t nsig = 0;
	long frac_digits = 0; /* significant digits after the point */
	long exp10 = 0, e = 0;
	long int_zeros = 0; /* integer-part zeros beyond 20 digits */
	uint64_t mag = 0, limit;
	size_t i;

	if (s == NULL || scale < 0 || scale > POW10_MAX)
		goto out;
	if (*p == '-' || *p == '+') {
		neg = (*p == '-');
		p++;
	}
	/* Integer part. */
	for (; is_digit(*p); p++) {
		any_digit = true;
		if (nsig == 0 && *p == '0')
			continue;
		if (nsig >= 20) {
			/* Zeros may still be scaled down by an exponent. */
			if (*p != '0' || int_zeros >= EXP_LIMIT)
				goto out;
			int_zeros++;
			continue;
		}
		sig[nsig++] = *p;
	}
	if (*p == '.') {
		p++;
		for (; is_digit(*p); p++) {
			any_digit = true;
			frac_digits++;
			if (nsig == 0 && *p == '0')
				continue;
			if (nsig >= 20) {
				/* Only zeros may follow; they change nothing.
				 */
				if (*p != '0')
					goto out;
				frac_digits--;
				continue;
			}
			sig[nsig++] = *p;
		}
	}
	if (!any_digit)
		goto out;
	if (*p == 'e' || *p == 'E') {
		bool eneg = false, edigit = false;

		p++;
		if (*p == '-' || *p == '+') {
			eneg = (*p == '-');
			p++;
		}
		for (; is_digit(*p); p++) {
			edigit = true;
			if (e > EXP_LIMIT)
				continue; /* refused below */
			e = e * 10 + (*p - '0');
		}
		if (!edigit || e > EXP_LIMIT)
			goto out;
		if (eneg)
			e = -e;
	}
	if (*p != '\0')
		goto out;

	if (nsig == 0) {
		/* Zero in any spelling ("0", "-0.000", "0e5"). */
		*out = 0;
		ok = true;
		goto out;
	}
	/* value = sig * 10^(e - frac_digits); drop the trailing zeros of sig.
	 */
	exp10 = e - frac_digits + int_zeros;
	while (nsig > 1 && sig[nsig - 1] == '0') {
		nsig--;
		exp10++;
	}
	exp10 += scale;
	if (exp10 < 0)
		goto out; /* finer than 10^-scale: not exact */
	if ((long)nsig + exp10 > 20)
		goto out; /* certainly beyond int64 */
	for (i = 0; i < nsig; i++) {
		unsigned d = (unsigned)(sig[i] - '0');

		if (__builtin_mul_overflow(mag, 10, &mag) ||
		    __builtin_add_overflow(mag, d, &mag))
			goto out;
	}
	if (exp10 > POW10_MAX ||
	    __builtin_mul_overflow(mag, pow10_u64[exp10], &mag))
		goto out;
	limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	if (mag > limit)
		goto out;
	if (neg)
		*out = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN
		                                      : -(int64_t)mag;
	else
		*out = (int64_t)mag;
	ok = true;
out:
	return ok;
}

size_t
tg_decimal_format(int64_t v, int scale, char *buf, size_t len)
{
	char tmp[48];
	char *end = tmp + sizeof(tmp), *p = end;
	uint64_t mag, ipart, fpart;
	size_t n = 0;
	int i, nfrac;

	if (len > 0)
		buf[0] = '\0';
	if (scale < 0 || scale > POW10_MAX || len == 0)
		goto out;
	mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
	ipart = mag / pow10_u64[scale];
	fpart = mag % pow10_u64[scale];

	/* Fraction: scale digits with the trailing zeros dropped. */
	nfrac = scale;
	while (nfrac > 0 && fpart % 10 == 0) {
		fpart /= 10;
		nfrac--;
	}
	for (i = 0; i < nfrac; i++) {
		*--p = (char)('0' + fpart % 10);
		fpart /= 10;
	}
	if (nfrac > 0)
		*--p = '.';
	do {
		*--p = (char)('0' + ipart % 10);
		ipart /= 10;
	} while (ipart > 0);
	if (v < 0)
		*--p = '-';
	n = (size_t)(end - p);
	if (n + 1 > len) {
		n = 0;
		goto out;
	}
	memcpy(buf, p, n);
	buf[n] = '\0';
out:
	return n;
}

bool
tg_money_add(tg_money a, tg_money b, tg_money *out)
{
	tg_money sum;

	if (__builtin_add_overflow(a, b, &sum))
		return false;
	*out = sum;
	return true;
}

bool
tg_money_add_cost(tg_money *acc, int64_t tokens, tg_price price)
{
	/* A price counts 1e-15 USD, money 1e-10 USD. */
	const __int128 ratio =
	        (__int128)pow10_u64[TG_PRICE_SCALE - TG_MONEY_SCALE];
	__int128 product, units;
	tg_money sum;

	if (tokens < 0 || price < 0)
		return false;
	/* Both factors < 2^63, so the product fits in 126 bits. */
	product = (__int128)tokens * (__int128)price;
	/* Round up: a fraction of 1e-10 USD is charged, never given away. */
	units = (product + ratio - 1) / ratio;
	if (units > INT64_MAX)
		return false;
	if (__builtin_add_overflow(*acc, (tg_money)units, &sum))
		return false;
	*acc = sum;
	return true;
}
