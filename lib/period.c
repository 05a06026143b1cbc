/*
 * period: budget_duration strings ("30s", "15m", "6h", "1d", "1w", "1mo")
 * and the calendar-aligned reset times of SPEC section 6.
 *
 * Why calendar-aligned rather than "N units after the last reset": a reset
 * computed from a fixed calendar depends only on the clock, so every process
 * agrees on it without coordination, and resets applied lazily (in the
 * statement that reads or charges a customer) can never drift or be applied
 * twice.  All computation is in UTC with timegm/gmtime_r.
 */
#define _DEFAULT_SOURCE
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "period.h"

/*
 * Upper bound of N.  Large enough for any sensible period ("2592000s" is 30
 * days), small enough that no computation below can overflow.
 */
#define PERIOD_N_MAX 1000000000L

bool
tg_period_parse(const char *s, struct tg_period *out)
{
	struct tg_period p;
	const char *c = s;
	long n = 0;

	if (s == NULL || *c < '0' || *c > '9')
		return false;
	for (; *c >= '0' && *c <= '9'; c++) {
		n = n * 10 + (*c - '0');
		if (n > PERIOD_N_MAX)
			return false;
	}
	if (n < 1)
		return false;
	if (strcmp(c, "s") == 0)
		p.unit = TG_PERIOD_SEC;
	else if (strcmp(c, "m") == 0)
		p.unit = TG_PERIOD_MIN;
	else if (strcmp(c, "h") == 0)
		p.unit = TG_PERIOD_HOUR;
	else if (strcmp(c, "d") == 0)
		p.unit = TG_PERIOD_DAY;
	else if (strcmp(c, "w") == 0)
		p.unit = TG_PERIOD_WEEK;
	else if (strcmp(c, "mo") == 0)
		p.unit = TG_PERIOD_MONTH;
	else
		return false;
	p.n = n;
	*out = p;
	return true;
}

/* 00:00:00 UTC of the day that contains t. */
static time_t
day_start(time_t t)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	return timegm(&tm);
}

/* Monday 00:00:00 UTC of the ISO week that contains t. */
static time_t
week_start(time_t t)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	/* tm_wday: Sunday 0 .. Saturday 6; days since Monday: */
	return day_start(t) - (time_t)((tm.tm_wday + 6) % 7) * 86400;
}

/* The 1st, 00:00:00 UTC, of the month `months` after the one holding t. */
static time_t
month_start_plus(time_t t, long months)
{
	struct tm tm;
	long m;

	gmtime_r(&t, &tm);
	m = (long)tm.tm_mon + months;
	tm.tm_year += (int)(m / 12);
	tm.tm_mon = (int)(m % 12);
	tm.tm_mday = 1;
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	return timegm(&tm);
}

/*
 * Ns, Nm, Nh: the next multiple of the step, counted from the start of the
 * enclosing minute, hour or day, and never past the end of it (so "7s"
 * resets at :07, :14, ... :56 and again at the next minute).  A step longer
 * than its enclosing unit is counted within the day instead ("90m", "120s");
 * one longer than a day runs from today's midnight like Nd ("36h").
 */
static time_t
next_within(time_t now, long step, long unit_len)
{
	time_t day = day_start(now);
	long container = unit_len * 60; /* s -> minute, m -> hour */
	long long since, next;
	time_t base;

	if (unit_len == 3600 || step > container)
		container = 86400;
	if (step > 86400)
		return day + (time_t)step;
	since = (long long)(now - day);
	base = day + (time_t)(since - since % container);
	since = (long long)(now - base);
	next = (since / step + 1) * step;
	if (next > container)
		next = container;
	return base + (time_t)next;
}

time_t
tg_period_next(const struct tg_period *p, time_t now)
{
	switch (p->unit) {
	case TG_PERIOD_SEC: return next_within(now, p->n, 1);
	case TG_PERIOD_MIN: return next_within(now, p->n * 60, 60);
	case TG_PERIOD_HOUR: return next_within(now, p->n * 3600, 3600);
	case TG_PERIOD_DAY:
		if (p->n == 7)
			return week_start(now) + 7 * 86400;
		if (p->n == 30)
			return month_start_plus(now, 1);
		/* Today's midnight + N days: 1d is the next midnight. */
		return day_start(now) + (time_t)p->n * 86400;
	case TG_PERIOD_WEEK:
		/* This week's Monday + N weeks: 1w is the next Monday. */
		return week_start(now) + (time_t)p->n * 7 * 86400;
	case TG_PERIOD_MONTH: return month_start_plus(now, p->n);
	}
	return now + 86400; /* not reached: every unit is handled above */
}

void
tg_period_span(const struct tg_period *p, long *months, long long *seconds)
{
	long long unit = 1;

	*months = 0;
	*seconds = 0;
	switch (p->unit) {
	case TG_PERIOD_SEC: unit = 1; break;
	case TG_PERIOD_MIN: unit = 60; break;
	case TG_PERIOD_HOUR: unit = 3600; break;
	case TG_PERIOD_DAY: unit = 86400; break;
	case TG_PERIOD_WEEK: unit = 7 * 86400; break;
	case TG_PERIOD_MONTH: *months = p->n; return;
	}
	/* n <= PERIOD_N_MAX: at most 6.1e14 seconds, no overflow. */
	*seconds = (long long)p->n * unit;
}
