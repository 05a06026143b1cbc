/*
 * fuzz-sse: the server-sent-events parser (lib/sse.c).  An input is the
 * stream as the upstream sends it, any bytes.
 *
 * The parser must not care how the network cuts a stream, so the input is
 * parsed whole, one byte at a time (up to 1 KiB) and cut at points drawn
 * from the input's hash, each with the default cap and with a small cap (also
 * drawn), and every way must give the same events (data, name, id, raw bytes,
 * flags), the same rc and the same message.  Each event must also be what the
 * relay relies on: its raw bytes are the next bytes of the stream it came from
 * (only dropped blocks between), at most the cap, ending in a line end
 * unless it is the unterminated last one; done means data is "[DONE]"; data
 * holds no CR.  A callback that stops the parser stops it at once, with its
 * rc, and the parser is closed after.
 */
#define _GNU_SOURCE /* memmem */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "sse.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond, what)                                                      \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "fuzz-sse: %s: %s\n", what, #cond);    \
			abort();                                               \
		}                                                              \
	} while (0)

/* The events of one parse, serialised for comparison. */
struct log {
	char *p;
	size_t len, cap;
	size_t nevents;
	size_t stop_at; /* the callback stops at this event (1-based), 0: no */
	const char *in; /* the stream, for the raw-bytes check */
	size_t in_len;
	size_t in_pos; /* where the previous event's bytes ended */
	size_t max_event;
	bool unterminated_seen;
};

static void
log_add(struct log *l, const void *s, size_t n)
{
	if (l->len + n > l->cap) {
		l->cap = (l->len + n) * 2 + 64;
		l->p = tg_xrealloc(l->p, l->cap);
	}
	memcpy(l->p + l->len, s, n);
	l->len += n;
}

static void
log_add_bytes(struct log *l, const char *s, size_t n)
{
	log_add(l, &n, sizeof(n));
	log_add(l, s, n);
}

static enum tg_rc
on_event(void *arg, const struct tg_sse_event *ev, struct tg_err *err)
{
	struct log *l = arg;
	const char *at;
	char flags[2] = {ev->done, ev->terminated};

	CHECK(!l->unterminated_seen, "an event after the unterminated one");
	CHECK(ev->data_len <= ev->raw_len, "data within the raw bytes");
	CHECK(ev->raw_len <= l->max_event, "raw bytes within the cap");
	CHECK(ev->raw_len > 0, "an event has bytes");
	CHECK(memchr(ev->data, '\r', ev->data_len) == NULL, "no CR in data");
	CHECK(ev->data[ev->data_len] == '\0', "data NUL-terminated");
	CHECK(ev->raw[ev->raw_len] == '\0', "raw NUL-terminated");
	CHECK(ev->done ==
	              (ev->data_len == 6 && memcmp(ev->data, "[DONE]", 6) == 0),
	      "done iff data is [DONE]");
	CHECK(!ev->terminated || ev->raw[ev->raw_len - 1] == '\n' ||
	              ev->raw[ev->raw_len - 1] == '\r',
	      "a terminated event ends its line");
	/* Bytes of dropped blocks (comments, id-only) may come between. */
	at = memmem(l->in + l->in_pos, l->in_len - l->in_pos, ev->raw,
	            ev->raw_len);
	CHECK(at != NULL, "raw bytes are the stream's next bytes");
	l->in_pos = (size_t)(at - l->in) + ev->raw_len;
	if (!ev->terminated)
		l->unterminated_seen = true;

	log_add_bytes(l, ev->data, ev->data_len);
	log_add_bytes(l, ev->event, strlen(ev->event));
	log_add_bytes(l, ev->id, strlen(ev->id));
	log_add_bytes(l, ev->raw, ev->raw_len);
	log_add(l, flags, sizeof(flags));
	l->nevents++;
	if (l->nevents == l->stop_at) {
		if (err)
			tg_err_set(err, TG_ERR_BUDGET, NULL, "stop at %zu",
			           l->nevents);
		return TG_ERR_BUDGET;
	}
	return TG_OK;
}

/* A small deterministic generator for the cut points. */
static uint64_t
next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

enum cut { CUT_WHOLE, CUT_BYTES, CUT_RANDOM };

/* Parse in[0..len) cut as cut says; log the events, rc and message. */
static void
parse(const char *in, size_t len, size_t max_event, enum cut cut, uint64_t seed,
      size_t stop_at, struct log *l)
{
	struct tg_sse p;
	struct tg_err err;
	enum tg_rc rc = TG_OK;
	size_t pos = 0, n;
	int rci;

	memset(l, 0, sizeof(*l));
	l->in = in;
	l->in_len = len;
	l->stop_at = stop_at;
	tg_sse_init(&p, max_event);
	l->max_event = p.max_event;
	tg_err_clear(&err);
	seed |= 1;
	while (pos < len && rc == TG_OK) {
		switch (cut) {
		case CUT_WHOLE: n = len; break;
		case CUT_BYTES: n = 1; break;
		case CUT_RANDOM:
			/* Mostly short pieces, sometimes empty ones. */
			n = (size_t)(next_rand(&seed) % 24);
			break;
		}
		if (n > len - pos)
			n = len - pos;
		rc = tg_sse_feed(&p, in + pos, n, on_event, l, &err);
		pos += n;
	}
	if (rc == TG_OK)
		rc = tg_sse_finish(&p, on_event, l, &err);
	else
		CHECK(tg_sse_feed(&p, "x", 1, on_event, l, NULL) ==
		              TG_ERR_INTERNAL,
		      "closed after a failure");
	if (stop_at > 0 && stop_at <= l->nevents)
		CHECK(rc == TG_ERR_BUDGET && l->nevents == stop_at,
		      "the callback's rc stops the parser");
	CHECK(rc == TG_OK || err.rc == rc, "err filled on failure");
	rci = (int)rc;
	log_add(l, &rci, sizeof(rci));
	if (rc != TG_OK)
		log_add_bytes(l, err.message, strlen(err.message));
	tg_sse_free(&p);
}

static void
same(const struct log *a, const struct log *b, const char *what)
{
	CHECK(a->nevents == b->nevents, what);
	CHECK(a->len == b->len && memcmp(a->p, b->p, a->len) == 0, what);
}

static uint64_t
hash(const uint8_t *data, size_t size)
{
	uint64_t h = 14695981039346656037ULL; /* FNV-1a */

	for (size_t i = 0; i < size; i++)
		h = (h ^ data[i]) * 1099511628211ULL;
	return h;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	uint64_t h = hash(data, size);
	/* A cap small enough to be hit often, and the default. */
	size_t caps[2] = {0, 1 + (size_t)(h % 512)};
	struct log whole, other;

	for (size_t c = 0; c < 2; c++) {
		parse(in, size, caps[c], CUT_WHOLE, 0, 0, &whole);
		/* One feed per byte costs the most: short streams only. */
		if (size <= 1024) {
			parse(in, size, caps[c], CUT_BYTES, 0, 0, &other);
			same(&whole, &other, "byte by byte differs from whole");
			free(other.p);
		}
		parse(in, size, caps[c], CUT_RANDOM, h >> 9, 0, &other);
		same(&whole, &other, "cut at random differs from whole");
		free(other.p);
		if (whole.nevents > 0) {
			/* Stopped at an event: the same events up to it. */
			size_t stop = 1 + (size_t)(h >> 20) % whole.nevents;

			parse(in, size, caps[c], CUT_RANDOM, h >> 3, stop,
			      &other);
			CHECK(other.nevents == stop, "stops where asked");
			free(other.p);
		}
		free(whole.p);
	}
	return 0;
}
