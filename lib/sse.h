/*
 * sse: an incremental parser of server-sent events (SPEC 4.5).
 *
 * A streamed chat completion arrives as text/event-stream in reads of any
 * size.  The relay must see whole events (to read the usage chunk, to drop
 * it, to settle before "data: [DONE]") yet forward each event unchanged and
 * at once, so the parser hands over every event both parsed (WHATWG
 * EventSource rules) and as the raw bytes it came in.  The bytes of one event
 * are capped, so an upstream cannot make us hold unbounded memory.
 */
#ifndef TG_SSE_H
#define TG_SSE_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

/* A cap that fits any chat completion chunk with room to spare. */
#define TG_SSE_MAX_EVENT_DEFAULT ((size_t)1 << 20)

/*
 * One event.  Every pointer is NUL-terminated, owned by the parser and valid
 * only during the callback.
 */
struct tg_sse_event {
	const char *data; /* "data:" values joined with "\n"; may hold NULs */
	size_t data_len;
	const char *event; /* "event:" name, "" when the event had none */
	const char *id;    /* last event id ("id:" persists across events) */
	const char *raw;   /* the event's bytes exactly as received */
	size_t raw_len;
	bool done;       /* data is exactly "[DONE]" */
	bool terminated; /* false: the stream ended before its blank line */
};

/*
 * The callback.  Return TG_OK to go on; anything else stops the parser and
 * is returned by tg_sse_feed()/tg_sse_finish().  When it stops, it should
 * fill err (which may be NULL); if it does not, a generic message is set.
 */
typedef enum tg_rc (*tg_sse_event_fn)(void *arg, const struct tg_sse_event *ev,
                                      struct tg_err *err);

/* Growing byte buffer; internal to the parser. */
struct tg_sse_buf {
	char *p; /* NUL-terminated when not NULL */
	size_t len;
	size_t cap;
};

/* Parser state; treat as opaque.  Embed it and call tg_sse_init(). */
struct tg_sse {
	size_t max_event;      /* cap on one event's raw bytes */
	struct tg_sse_buf raw; /* bytes of the event being read */
	size_t line_start;     /* where the current line starts in raw */
	struct tg_sse_buf data;
	struct tg_sse_buf event;
	struct tg_sse_buf id;
	unsigned bom_matched;   /* bytes of a leading BOM seen; 3: decided */
	bool after_cr;          /* last line ended in CR: an LF may follow */
	bool block_end_pending; /* blank line ended in CR: waiting for an LF */
	bool closed;            /* finished or failed: only free is valid */
};

/*
 * Prepare p for a new stream.  max_event caps the raw bytes of one event,
 * line ends included (0 means TG_SSE_MAX_EVENT_DEFAULT).  Allocates nothing.
 */
void tg_sse_init(struct tg_sse *p, size_t max_event);

/*
 * Parse the next len bytes of the stream, split anywhere, calling fn(arg,
 * ev, err) once for each complete event in order.  Events end at a blank
 * line; a block without any "data:" line (only comments, "event:" or "id:")
 * is not an event and its bytes are dropped.  Lines end in LF, CRLF or CR;
 * one UTF-8 BOM at the very start of the stream is skipped.  An event whose
 * blank line ends in CR as the last byte of buf is dispatched by the next
 * feed (or tg_sse_finish), since an LF may still follow.
 *
 * Returns TG_OK; TG_ERR_UPSTREAM when one event exceeds max_event bytes;
 * the callback's rc when it stops; TG_ERR_INTERNAL when p was closed.
 * After any failure p is closed.
 */
enum tg_rc tg_sse_feed(struct tg_sse *p, const char *buf, size_t len,
                       tg_sse_event_fn fn, void *arg, struct tg_err *err);

/*
 * End of stream: dispatch an event still waiting, including an unterminated
 * one that has data (ev->terminated is false; a last line without its line
 * end counts as a line).  Anything else left over is dropped.  Closes p.
 * Returns as tg_sse_feed().
 */
enum tg_rc tg_sse_finish(struct tg_sse *p, tg_sse_event_fn fn, void *arg,
                         struct tg_err *err);

/* Release p's memory; p may then be initialised again.  Safe to repeat. */
void tg_sse_free(struct tg_sse *p);

#endif
