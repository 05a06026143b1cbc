/*
 * test-period: budget_duration parsing and the calendar-aligned next reset
 * of SPEC section 6 (lib/period.c), at fixed UTC timestamps.
 */
#include <string.h>
#include <time.h>

#include "../tap.h"
#include "period.h"
#include "util.h"

#define ROW __LINE__

struct parse_row {
	int line;
	const char *in;
	bool ok;
	long n;
	enum tg_period_unit unit;
};

static const struct parse_row parse_rows[] = {
        {ROW, "30s", true, 30, TG_PERIOD_SEC},
        {ROW, "15m", true, 15, TG_PERIOD_MIN},
        {ROW, "6h", true, 6, TG_PERIOD_HOUR},
        {ROW, "1d", true, 1, TG_PERIOD_DAY},
        {ROW, "30d", true, 30, TG_PERIOD_DAY},
        {ROW, "1w", true, 1, TG_PERIOD_WEEK},
        {ROW, "1mo", true, 1, TG_PERIOD_MONTH},
        {ROW, "12mo", true, 12, TG_PERIOD_MONTH},
        {ROW, "2592000s", true, 2592000, TG_PERIOD_SEC},
        {ROW, "07d", true, 7, TG_PERIOD_DAY},
        {ROW, "1000000000s", true, 1000000000, TG_PERIOD_SEC},
        {ROW, "0d", false, 0, TG_PERIOD_DAY},
        {ROW, "00s", false, 0, TG_PERIOD_DAY},
        {ROW, "-1d", false, 0, TG_PERIOD_DAY},
        {ROW, "+1d", false, 0, TG_PERIOD_DAY},
        {ROW, "1", false, 0, TG_PERIOD_DAY},
        {ROW, "d", false, 0, TG_PERIOD_DAY},
        {ROW, "", false, 0, TG_PERIOD_DAY},
        {ROW, " 1d", false, 0, TG_PERIOD_DAY},
        {ROW, "1d ", false, 0, TG_PERIOD_DAY},
        {ROW, "1 d", false, 0, TG_PERIOD_DAY},
        {ROW, "1D", false, 0, TG_PERIOD_DAY},
        {ROW, "1M", false, 0, TG_PERIOD_DAY},
        {ROW, "1y", false, 0, TG_PERIOD_DAY},
        {ROW, "1month", false, 0, TG_PERIOD_DAY},
        {ROW, "1dd", false, 0, TG_PERIOD_DAY},
        {ROW, "1.5d", false, 0, TG_PERIOD_DAY},
        {ROW, "1e2s", false, 0, TG_PERIOD_DAY},
        {ROW, "1000000001s", false, 0, TG_PERIOD_DAY},
        {ROW, "99999999999999999999999d", false, 0, TG_PERIOD_DAY},
};

struct next_row {
	int line;
	const char *now;
	const char *duration;
	const char *want;
};

#define NOW "2026-11-27T20:46:00Z" /* a Friday */

static const struct next_row next_rows[] = {
        {ROW, NOW, "1d", "2026-11-28T00:00:00Z"},
        {ROW, NOW, "7d", "2026-11-30T00:00:00Z"},
        {ROW, NOW, "1w", "2026-11-30T00:00:00Z"},
        {ROW, NOW, "30d", "2026-12-01T00:00:00Z"},
        {ROW, NOW, "1mo", "2026-12-01T00:00:00Z"},
        {ROW, NOW, "2d", "2026-11-29T00:00:00Z"},
        {ROW, NOW, "10d", "2026-12-07T00:00:00Z"},
        {ROW, NOW, "6h", "2026-11-28T00:00:00Z"},
        {ROW, NOW, "1h", "2026-11-27T21:00:00Z"},
        {ROW, NOW, "5h", "2026-11-28T00:00:00Z"},
        {ROW, NOW, "15m", "2026-11-27T21:00:00Z"},
        {ROW, NOW, "10m", "2026-11-27T20:50:00Z"},
        {ROW, NOW, "1m", "2026-11-27T20:47:00Z"},
        {ROW, NOW, "30s", "2026-11-27T20:46:30Z"},
        {ROW, NOW, "1s", "2026-11-27T20:46:01Z"},
        {ROW, NOW, "2w", "2026-12-07T00:00:00Z"},
        {ROW, NOW, "3w", "2026-12-14T00:00:00Z"},
        {ROW, NOW, "3mo", "2027-02-01T00:00:00Z"},
        {ROW, NOW, "12mo", "2027-11-01T00:00:00Z"},
        {ROW, NOW, "14mo", "2028-01-01T00:00:00Z"},
        /* multiples that do not divide their unit stop at its end */
        {ROW, "2026-11-27T20:58:00Z", "7m", "2026-11-27T21:00:00Z"},
        {ROW, "2026-11-27T20:46:56Z", "7s", "2026-11-27T20:47:00Z"},
        {ROW, "2026-11-27T13:00:00Z", "7h", "2026-11-27T14:00:00Z"},
        /* steps longer than their unit count within the day / from midnight */
        {ROW, NOW, "90m", "2026-11-27T21:00:00Z"},
        {ROW, "2026-11-27T20:46:30Z", "120s", "2026-11-27T20:48:00Z"},
        {ROW, NOW, "24h", "2026-11-28T00:00:00Z"},
        {ROW, NOW, "36h", "2026-11-28T12:00:00Z"},
        /* exactly on a boundary: the next one, never now */
        {ROW, "2026-11-27T18:00:00Z", "6h", "2026-11-28T00:00:00Z"},
        {ROW, "2026-11-27T20:46:30Z", "30s", "2026-11-27T20:47:00Z"},
        {ROW, "2026-11-30T00:00:00Z", "1d", "2026-12-01T00:00:00Z"},
        {ROW, "2026-11-30T00:00:00Z", "1w", "2026-12-07T00:00:00Z"},
        {ROW, "2026-11-30T00:00:00Z", "7d", "2026-12-07T00:00:00Z"},
        {ROW, "2026-11-30T00:00:00Z", "1mo", "2026-12-01T00:00:00Z"},
        {ROW, "2026-12-01T00:00:00Z", "1mo", "2027-01-01T00:00:00Z"},
        {ROW, "2026-12-01T00:00:00Z", "30d", "2027-01-01T00:00:00Z"},
        /* Sunday night: the week ends at Monday 00:00 */
        {ROW, "2026-11-29T23:59:59Z", "7d", "2026-11-30T00:00:00Z"},
        {ROW, "2026-11-29T23:59:59Z", "1w", "2026-11-30T00:00:00Z"},
        /* year rollover */
        {ROW, "2026-12-31T23:59:59Z", "1d", "2027-01-01T00:00:00Z"},
        {ROW, "2026-12-31T23:59:59Z", "1mo", "2027-01-01T00:00:00Z"},
        {ROW, "2026-12-31T23:59:59Z", "1w", "2027-01-04T00:00:00Z"},
        {ROW, "2026-12-31T23:59:59Z", "15m", "2027-01-01T00:00:00Z"},
        {ROW, "2026-12-31T23:59:59Z", "6h", "2027-01-01T00:00:00Z"},
        {ROW, "2026-12-15T10:00:00Z", "3mo", "2027-03-01T00:00:00Z"},
        {ROW, "2026-11-15T10:00:00Z", "2mo", "2027-01-01T00:00:00Z"},
        /* leap years and short months */
        {ROW, "2028-02-28T12:00:00Z", "1d", "2028-02-29T00:00:00Z"},
        {ROW, "2028-02-29T12:00:00Z", "30d", "2028-03-01T00:00:00Z"},
        {ROW, "2027-02-28T12:00:00Z", "1d", "2027-03-01T00:00:00Z"},
        {ROW, "2027-01-31T12:00:00Z", "1mo", "2027-02-01T00:00:00Z"},
        {ROW, "2027-04-30T23:00:00Z", "2d", "2027-05-02T00:00:00Z"},
};

static void
test_parse(void)
{
	size_t i;

	for (i = 0; i < sizeof(parse_rows) / sizeof(parse_rows[0]); i++) {
		const struct parse_row *r = &parse_rows[i];
		struct tg_period p = {-42, TG_PERIOD_SEC};
		bool ok = tg_period_parse(r->in, &p);

		if (r->ok)
			tap_ok(ok && p.n == r->n && p.unit == r->unit, __FILE__,
			       r->line, "parse \"%s\"", r->in);
		else
			tap_ok(!ok && p.n == -42, __FILE__, r->line,
			       "refuse \"%s\"", r->in);
	}
	ok(!tg_period_parse(NULL, &(struct tg_period){0, TG_PERIOD_SEC}),
	   "refuse NULL");
}

static void
test_next(void)
{
	size_t i;

	for (i = 0; i < sizeof(next_rows) / sizeof(next_rows[0]); i++) {
		const struct next_row *r = &next_rows[i];
		struct tg_period p;
		time_t now, want, got = 0;
		char gotbuf[21];
		bool ok;

		ok = tg_period_parse(r->duration, &p) &&
		     tg_time_parse_iso8601(r->now, &now) &&
		     tg_time_parse_iso8601(r->want, &want);
		if (ok)
			got = tg_period_next(&p, now);
		tg_time_iso8601(got, gotbuf);
		if (!tap_ok(ok && got == want && got > now, __FILE__, r->line,
		            "%s at %s resets at %s", r->duration, r->now,
		            r->want))
			diag("  got %s", gotbuf);
	}
}

/*
 * Every rule gives a reset > now.  For the rules that tile the calendar
 * (not "other Nd/Nw/Nmo", which count from the current day/week/month and
 * so depend on when the period began), the second before a reset also
 * resets then.
 */
static void
test_properties(void)
{
	static const char *const durations[] = {
	        "1s", "7s", "30s", "120s", "1m", "15m", "90m", "1h", "6h", "5h",
	        "24h", "1d", "7d", "30d", "1w", "1mo",
	        /* not tiling: only the first property */
	        "36h", "2d", "2w", "3mo"};
	const size_t tiling = 16;
	size_t i;
	time_t start, t;
	bool after = true, stable = true;

	tg_time_parse_iso8601("2026-11-27T20:46:00Z", &start);
	for (i = 0; i < sizeof(durations) / sizeof(durations[0]); i++) {
		struct tg_period p;

		tg_period_parse(durations[i], &p);
		for (t = start; t < start + 40 * 86400; t += 3607) {
			time_t next = tg_period_next(&p, t);

			if (next <= t)
				after = false;
			/* One second before the reset lies in the same period.
			 */
			if (i < tiling &&
			    tg_period_next(&p, next - 1) != next) {
				diag("  %s: %lld", durations[i], (long long)t);
				stable = false;
			}
		}
	}
	ok(after, "every reset lies after now");
	ok(stable, "the second before a reset resets at the same time");
}

/* Spans for a key's duration: plain lengths, months left to the database. */
static void
test_span(void)
{
	static const struct {
		int line;
		const char *text;
		long months;
		long long seconds;
	} rows[] = {
	        {ROW, "2s", 0, 2},
	        {ROW, "90m", 0, 5400},
	        {ROW, "6h", 0, 21600},
	        {ROW, "30d", 0, 2592000},
	        {ROW, "2w", 0, 1209600},
	        {ROW, "1mo", 1, 0},
	        {ROW, "18mo", 18, 0},
	        {ROW, "1000000000w", 0, 604800000000000LL},
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct tg_period p;
		long months = -1;
		long long seconds = -1;

		if (!ok(tg_period_parse(rows[i].text, &p), "parse %s (line %d)",
		        rows[i].text, rows[i].line))
			continue;
		tg_period_span(&p, &months, &seconds);
		ok(months == rows[i].months && seconds == rows[i].seconds,
		   "span of %s: %ld months, %lld s (line %d)", rows[i].text,
		   months, seconds, rows[i].line);
	}
}

int
main(void)
{
	test_parse();
	test_next();
	test_properties();
	test_span();
	return done_testing();
}
