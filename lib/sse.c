/*
 * sse: incremental server-sent-events parser (WHATWG HTML, "Interpreting an
 * event stream"), for relaying a streamed chat completion (SPEC 4.5).
 *
 * The bytes of the event being read are kept in one buffer (raw); the
 * current line is its tail from line_start, so a line is parsed only once it
 * is complete and no byte is copied twice except "data:" values.  Every
 * buffer is bounded by max_event: raw by the explicit check in raw_append(),
 * data/event/id because each is built from bytes already inside raw.
 *
 * Two deliberate departures from EventSource, both for the relay:
 *  - at the end of the stream an event that has data but lacks its blank
 *    line is still dispatched (some upstreams omit it; it may be the usage
 *    chunk we bill from);
 *  - every event carries its raw bytes, so it can be forwarded unchanged.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sse.h"
#include "util.h"

static const unsigned char utf8_bom[3] = {0xEF, 0xBB, 0xBF};

void
tg_sse_init(struct tg_sse *p, size_t max_event)
{
	memset(p, 0, sizeof(*p));
	if (max_event == 0)
		max_event = TG_SSE_MAX_EVENT_DEFAULT;
	/* Keeps max_event + 1 and the doubling in buf_reserve() from
	 * overflowing. */
	if (max_event > SIZE_MAX / 4)
		max_event = SIZE_MAX / 4;
	p->max_event = max_event;
}

void
tg_sse_free(struct tg_sse *p)
{
	free(p->raw.p);
	free(p->data.p);
	free(p->event.p);
	free(p->id.p);
	p->raw = p->data = p->event = p->id = (struct tg_sse_buf){0};
}

/* Room for need bytes plus a NUL; never more than limit unless need is. */
static void
buf_reserve(struct tg_sse_buf *b, size_t need, size_t limit)
{
	size_t cap;

	if (need + 1 <= b->cap)
		return;
	cap = b->cap ? b->cap * 2 : 256;
	if (cap > limit)
		cap = limit;
	if (cap < need + 1)
		cap = need + 1;
	b->p = tg_xrealloc(b->p, cap);
	b->cap = cap;
}

/* Append without a size check: callers append only bytes bounded by raw. */
static void
buf_append(struct tg_sse_buf *b, const char *s, size_t n, size_t limit)
{
	buf_reserve(b, b->len + n, limit);
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
buf_set(struct tg_sse_buf *b, const char *s, size_t n, size_t limit)
{
	b->len = 0;
	buf_append(b, s, n, limit);
}

/* The one place the cap on an event is enforced. */
static enum tg_rc
raw_append(struct tg_sse *p, const char *s, size_t n, struct tg_err *err)
{
	if (n > p->max_event - p->raw.len)
		return tg_err_set(err, TG_ERR_UPSTREAM, NULL,
		                  "upstream event larger than %zu bytes",
		                  p->max_event);
	buf_append(&p->raw, s, n, p->max_event + 1);
	return TG_OK;
}

/* Forget the event being read; the last event id survives (WHATWG). */
static void
reset_event(struct tg_sse *p)
{
	p->raw.len = 0;
	p->line_start = 0;
	p->data.len = 0;
	p->event.len = 0;
	p->block_end_pending = false;
}

/* A complete field line (no line end). */
static void
parse_line(struct tg_sse *p, const char *line, size_t len)
{
	const char *colon = memchr(line, ':', len);
	const char *value;
	size_t name_len, value_len;
	size_t limit = p->max_event + 1;

	if (len == 0 || colon == line)
		return; /* blank lines are handled by the caller; a comment */
	name_len = colon ? (size_t)(colon - line) : len;
	value = colon ? colon + 1 : line + len;
	value_len = len - (size_t)(value - line);
	if (value_len > 0 && value[0] == ' ') {
		value++;
		value_len--;
	}
	if (name_len == 4 && memcmp(line, "data", 4) == 0) {
		buf_append(&p->data, value, value_len, limit);
		buf_append(&p->data, "\n", 1, limit);
	} else if (name_len == 5 && memcmp(line, "event", 5) == 0) {
		buf_set(&p->event, value, value_len, limit);
	} else if (name_len == 2 && memcmp(line, "id", 2) == 0) {
		if (memchr(value, '\0', value_len) == NULL)
			buf_set(&p->id, value, value_len, limit);
	}
	/* "retry" and unknown fields: ignored, as EventSource does. */
}

/*
 * The current block has ended: dispatch it if it has data, else drop it.
 * Resets the event either way.
 */
static enum tg_rc
end_block(struct tg_sse *p, bool terminated, tg_sse_event_fn fn, void *arg,
          struct tg_err *err)
{
	struct tg_sse_event ev;
	enum tg_rc rc = TG_OK;

	if (p->data.len == 0)
		goto out;
	/* Drop the LF that followed the last data value. */
	p->data.p[p->data.len - 1] = '\0';
	ev.data = p->data.p;
	ev.data_len = p->data.len - 1;
	ev.event = p->event.len ? p->event.p : "";
	ev.id = p->id.len ? p->id.p : "";
	ev.raw = p->raw.p;
	ev.raw_len = p->raw.len;
	ev.done = ev.data_len == 6 && memcmp(ev.data, "[DONE]", 6) == 0;
	ev.terminated = terminated;
	if (err)
		tg_err_clear(err);
	rc = fn(arg, &ev, err);
	if (rc != TG_OK && err && err->rc == TG_OK)
		tg_err_set(err, rc, NULL, "stream handler stopped at an event");
out:
	reset_event(p);
	return rc;
}

/* A line ended with term (CR or LF), not yet in raw. */
static enum tg_rc
end_line(struct tg_sse *p, char term, tg_sse_event_fn fn, void *arg,
         struct tg_err *err)
{
	size_t line_len = p->raw.len - p->line_start;
	enum tg_rc rc;

	rc = raw_append(p, &term, 1, err);
	if (rc != TG_OK)
		goto out;
	p->after_cr = term == '\r';
	if (line_len == 0) {
		/* After a CR the LF of a CRLF may still come and belongs to
		 * this block's bytes, so the block ends with the next byte. */
		if (term == '\r')
			p->block_end_pending = true;
		else
			rc = end_block(p, true, fn, arg, err);
		goto out;
	}
	parse_line(p, p->raw.p + p->line_start, line_len);
	p->line_start = p->raw.len;
out:
	return rc;
}

/* The stream's bytes after any BOM. */
static enum tg_rc
feed_bytes(struct tg_sse *p, const char *buf, size_t len, tg_sse_event_fn fn,
           void *arg, struct tg_err *err)
{
	enum tg_rc rc = TG_OK;
	size_t i = 0, j;

	while (i < len) {
		if (p->after_cr) {
			p->after_cr = false;
			if (buf[i] == '\n') {
				rc = raw_append(p, "\n", 1, err);
				if (rc != TG_OK)
					goto out;
				p->line_start = p->raw.len;
				i++;
			}
			if (p->block_end_pending) {
				rc = end_block(p, true, fn, arg, err);
				if (rc != TG_OK)
					goto out;
			}
			continue;
		}
		for (j = i; j < len && buf[j] != '\r' && buf[j] != '\n'; j++)
			;
		rc = raw_append(p, buf + i, j - i, err);
		if (rc != TG_OK || j == len)
			goto out;
		rc = end_line(p, buf[j], fn, arg, err);
		if (rc != TG_OK)
			goto out;
		i = j + 1;
	}
out:
	return rc;
}

static enum tg_rc
closed_rc(struct tg_err *err)
{
	return tg_err_set(err, TG_ERR_INTERNAL, NULL,
	                  "event stream parser used after its end");
}

enum tg_rc
tg_sse_feed(struct tg_sse *p, const char *buf, size_t len, tg_sse_event_fn fn,
            void *arg, struct tg_err *err)
{
	enum tg_rc rc = TG_OK;
	size_t i = 0, matched;

	if (p->closed)
		return closed_rc(err);
	while (p->bom_matched < sizeof(utf8_bom) && i < len) {
		if ((unsigned char)buf[i] == utf8_bom[p->bom_matched]) {
			p->bom_matched++;
			i++;
			continue;
		}
		/* Not a BOM after all: what looked like one is content. */
		matched = p->bom_matched;
		p->bom_matched = sizeof(utf8_bom);
		rc = feed_bytes(p, (const char *)utf8_bom, matched, fn, arg,
		                err);
		if (rc != TG_OK)
			goto out;
	}
	rc = feed_bytes(p, buf + i, len - i, fn, arg, err);
out:
	if (rc != TG_OK)
		p->closed = true;
	return rc;
}

enum tg_rc
tg_sse_finish(struct tg_sse *p, tg_sse_event_fn fn, void *arg,
              struct tg_err *err)
{
	enum tg_rc rc = TG_OK;
	size_t line_len;

	if (p->closed)
		return closed_rc(err);
	/* A stream of one or two bytes of a would-be BOM: content. */
	if (p->bom_matched > 0 && p->bom_matched < sizeof(utf8_bom)) {
		rc = feed_bytes(p, (const char *)utf8_bom, p->bom_matched, fn,
		                arg, err);
		if (rc != TG_OK)
			goto out;
	}
	if (p->block_end_pending) {
		rc = end_block(p, true, fn, arg, err);
		goto out;
	}
	line_len = p->raw.len - p->line_start;
	if (line_len > 0)
		parse_line(p, p->raw.p + p->line_start, line_len);
	rc = end_block(p, false, fn, arg, err);
out:
	p->closed = true;
	return rc;
}
