/*
 * period: budget_duration strings and calendar-aligned resets (SPEC 6).
 */
#ifndef TG_PERIOD_H
#define TG_PERIOD_H

#include <stdbool.h>
#include <time.h>

enum tg_period_unit {
	TG_PERIOD_SEC,
	TG_PERIOD_MIN,
	TG_PERIOD_HOUR,
	TG_PERIOD_DAY,
	TG_PERIOD_WEEK,
	TG_PERIOD_MONTH
};

struct tg_period {
	long n; /* >= 1 */
	enum tg_period_unit unit;
};

/* Parse "<N>s|m|h|d|w|mo" with N a positive integer (no sign, no spaces). */
bool tg_period_parse(const char *s, struct tg_period *out);

/*
 * The end of the period that contains now (UTC), i.e. the next reset time:
 * 1d next midnight; 7d and 1w next Monday 00:00; 30d and 1mo the 1st of the
 * next month; other Nd midnight + N days (N-1 after the next midnight);
 * Nh/Nm/Ns the next multiple within the day/hour/minute; other Nw this
 * week's Monday + 7N days (7(N-1) after the next Monday, as Nd counts from
 * today's midnight); Nmo the 1st of the month N months on.
 * Always > now.
 */
time_t tg_period_next(const struct tg_period *p, time_t now);

/*
 * The length of p as a span counted from any instant, not aligned to the
 * calendar (a virtual key's "duration", SPEC 13: "2s" is two seconds from
 * now): *months for Nmo (a calendar month each, added by the database's
 * date arithmetic), else *seconds.  The other is 0.
 */
void tg_period_span(const struct tg_period *p, long *months,
                    long long *seconds);

#endif
