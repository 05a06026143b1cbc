/*
 * tap: a tiny Test Anything Protocol writer for the unit tests, read by
 * automake's tap-driver.sh.  Header-only so each test is one file.
 */
#ifndef TG_TAP_H
#define TG_TAP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_count;
static int tap_failed;

static inline void
plan(int n)
{
	printf("1..%d\n", n);
	fflush(stdout);
}

/* Plan at the end, for table-driven tests whose count is computed. */
static inline int
done_testing(void)
{
	printf("1..%d\n", tap_count);
	return tap_failed ? 1 : 0;
}

static inline bool tap_vok(bool cond, const char *file, int line,
                           const char *fmt, va_list ap)
        __attribute__((format(printf, 4, 0)));
static inline bool tap_ok(bool cond, const char *file, int line,
                          const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static inline void diag(const char *fmt, ...)
        __attribute__((format(printf, 1, 2)));

static inline bool
tap_vok(bool cond, const char *file, int line, const char *fmt, va_list ap)
{
	tap_count++;
	printf("%s %d - ", cond ? "ok" : "not ok", tap_count);
	vprintf(fmt, ap);
	printf("\n");
	if (!cond) {
		tap_failed++;
		printf("# failed at %s:%d\n", file, line);
	}
	fflush(stdout);
	return cond;
}

static inline bool
tap_ok(bool cond, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	bool r;

	va_start(ap, fmt);
	r = tap_vok(cond, file, line, fmt, ap);
	va_end(ap);
	return r;
}

static inline void
diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

/* Out of line: inlined, gcc follows the "want is NULL" branch into the
 * message's arguments and warns of a NULL %s that is not there. */
static __attribute__((noinline, unused)) bool
tap_streq(const char *want, const char *got)
{
	return (want == NULL && got == NULL) ||
	       (want && got && strcmp(want, got) == 0);
}

#define ok(cond, ...) tap_ok((cond), __FILE__, __LINE__, __VA_ARGS__)

#define is_int(want, got, ...)                                                 \
	do {                                                                   \
		long long tap_w_ = (long long)(want),                          \
		          tap_g_ = (long long)(got);                           \
		if (!tap_ok(tap_w_ == tap_g_, __FILE__, __LINE__,              \
		            __VA_ARGS__))                                      \
			diag("  wanted: %lld\n#      got: %lld", tap_w_,       \
			     tap_g_);                                          \
	} while (0)

#define is_string(want, got, ...)                                              \
	do {                                                                   \
		const char *tap_w_ = (want), *tap_g_ = (got);                  \
		bool tap_eq_ = tap_streq(tap_w_, tap_g_);                      \
		if (!tap_ok(tap_eq_, __FILE__, __LINE__, __VA_ARGS__))         \
			diag("  wanted: %s\n#      got: %s",                   \
			     tap_w_ ? tap_w_ : "(null)",                       \
			     tap_g_ ? tap_g_ : "(null)");                      \
	} while (0)

#endif
