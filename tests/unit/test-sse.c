/*
 * test-sse: the incremental server-sent-events parser (lib/sse.c).
 *
 * Every stream in the table is fed whole, byte by byte and cut in two at
 * every offset, and each way must give the same events (parsed fields and
 * raw bytes), the same return code and the same message.  Every row carries
 * its line so a failure points at it.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "../tap.h"
#include "sse.h"
#include "util.h"

#define ROW __LINE__

struct want_ev {
	const char *data;
	size_t data_len;
	const char *event;
	const char *id;
	const char *raw;
	size_t raw_len;
	bool done;
	bool terminated;
};

/* An event with all fields; EV for the common "data only, terminated". */
#define EVX(d, name, id, r, done, term)                                        \
	{                                                                      \
		d, sizeof(d) - 1, name, id, r, sizeof(r) - 1, done, term       \
	}
#define EV(d, r) EVX(d, "", "", r, false, true)

#define MAX_EVENTS 8

struct row {
	int line;
	const char *what;
	const char *in;
	size_t in_len;
	size_t max_event; /* 0: the default */
	int stop_at;      /* the callback stops at this event (1-based) */
	bool stop_sets_err;
	enum tg_rc want_rc;
	const char *want_msg; /* substring of err->message when not TG_OK */
	struct want_ev ev[MAX_EVENTS]; /* ends at the first NULL data */
};

#define IN(s) s, sizeof(s) - 1

/* A typical OpenAI chat.completion.chunk stream with include_usage. */
#define OA_HEAD                                                                \
	"{\"id\":\"chatcmpl-AbC\",\"object\":\"chat.completion.chunk\","       \
	"\"created\":1735689600,\"model\":\"gpt-4o-mini-2024-07-18\","         \
	"\"system_fingerprint\":\"fp_0aa8d3e20b\","
#define OA_1                                                                   \
	OA_HEAD "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"," \
	        "\"content\":\"\",\"refusal\":null},\"logprobs\":null,"        \
	        "\"finish_reason\":null}],\"usage\":null}"
#define OA_2                                                                   \
	OA_HEAD "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},"   \
	        "\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}"
#define OA_3                                                                   \
	OA_HEAD "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\\n\"}," \
	        "\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}"
#define OA_4                                                                   \
	OA_HEAD "\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,"    \
	        "\"finish_reason\":\"stop\"}],\"usage\":null}"
#define OA_USAGE                                                               \
	OA_HEAD "\"choices\":[],\"usage\":{\"prompt_tokens\":9,"               \
	        "\"completion_tokens\":2,\"total_tokens\":11,"                 \
	        "\"prompt_tokens_details\":{\"cached_tokens\":0},"             \
	        "\"completion_tokens_details\":{\"reasoning_tokens\":0}}}"

static const struct row rows[] = {
        {ROW,
         "single event",
         IN("data: hello\n\n"),
         0,
         0,
         false,
         TG_OK,
         NULL,
         {EV("hello", "data: hello\n\n")}},
        {ROW,
         "multiple events",
         IN("data: a\n\ndata: b\n\ndata: c\n\n"),
         0,
         0,
         false,
         TG_OK,
         NULL,
         {EV("a", "data: a\n\n"), EV("b", "data: b\n\n"),
          EV("c", "data: c\n\n")}},
        {ROW,
         "multi-line data",
         IN("data: line1\ndata: line2\ndata:\ndata: line4\n\n"),
         0,
         0,
         false,
         TG_OK,
         NULL,
         {EV("line1\nline2\n\nline4",
             "data: line1\ndata: line2\ndata:\ndata: line4\n\n")}},
        {ROW,
         "CRLF",
         IN("data: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n"),
         0,
         0,
         false,
         TG_OK,
         NULL,
         {EV("a\nb", "data: a\r\ndata: b\r\n\r\n"),
          EV("c", "data: c\r\n\r\n")}},
        {ROW,
         "CR",
         IN("data: a\rdata: b\r\rdata: c\r\r"),
         0,
         0,
         false,
         TG_OK,
         NULL,
         {EV("a\nb", "data: a\rdata: b\r\r"), EV("c", "data: c\r\r")}},
        {ROW,
         "mixed line ends",
         IN("data: a\r\ndata: b\rdata: c\n\r\ndata: d\n\r"),
         0,
         0,
         false,
         TG_OK,
         NULL,
         {EV("a\nb\nc", "data: a\r\ndata: b\rdata: c\n\r\n"),
          EV("d", "data: d\n\r")}},
        {ROW,
         "CR then CRLF: blank line's LF stays with its event",
         IN("data: x\r\r\ndata: y\n\n"),
         0,
         0,
         false,
         TG_OK,
         NULL,
         {EV("x", "data: x\r\r\n"), EV("y", "data: y\n\n")}},
        {ROW,
         "LF then CR is two line ends",
         IN("data: x\n\rdata: y\n\n"),
         0,
         0,
         false,
         TG_OK,
         NULL,
         {EV("x", "data: x\n\r"), EV("y", "data: y\n\n")}},
        {ROW,
         "comments ignored, comment-only block dropped",
         IN(": keepalive\n\n: c\ndata: x\n: mid\n\n:\r\n\r\n"),
         0,
         0,
         false,
         TG_OK,
         NULL,
         {EV("x", ": c\ndata: x\n: mid\n\n")}},
        {ROW,
         "event: and id:",
         IN("event: delta\nid: 7\ndata: x\n\ndata: y\n\nid\ndata: z\n\n"),
         0,
         0,
         false,
         TG_OK,
         NULL,
         {EVX("x", "delta", "7", "event: delta\nid: 7\ndata: x\n\n", false,
              true),
          EVX("y", "", "7", "data: y\n\n", false, true),
          EVX("z", "", "", "id\ndata: z\n\n", false, true)}},
        {ROW,
         "id with NUL ignored",
         IN("id: 1\ndata: a\n\nid: 2\0\ndata: b\n\n"),
         0,
         0,
         false,
         TG_OK,
         NULL,
         {EVX("a", "", "1", "id: 1\ndata: a\n\n", false, true),
          EVX("b", "", "1", "id: 2\0\ndata: b\n\n", false, true)}},
        {ROW,
         "data: without space, two spaces, no colon",
         IN("data:x\n\ndata:  y\n\ndata\n\n"),
         0,
         0,
         false,
         TG_OK,
         NULL,
         {EV("x", "data:x\n\n"), EV(" y", "data:  y\n\n"), EV("", "data\n\n")}},
        {ROW,
         "unknown fields ignored",
         IN("retry: 100\nfoo: bar\nData: no\ndata : no\ndata: x\n\n"),
         0,
         0,
         false,
         TG_OK,
         NULL,
         {EV("x", "retry: 100\nfoo: bar\nData: no\ndata : no\ndata: x\n\n")}},
        {ROW,
         "block without data resets the event name",
         IN("event: only\n\ndata: y\n\n"),
         0,
         0,
         false,
         TG_OK,
         NULL,
         {EV("y", "data: y\n\n")}},
        {ROW,
         "NUL inside data",
         IN("data: a\0b\n\n"),
         0,
         0,
         false,
         TG_OK,
         NULL,
         {EV("a\0b", "data: a\0b\n\n")}},
        {ROW,
         "[DONE]",
         IN("data: [DONE]\n\ndata:[DONE]\n\ndata: [DONE] \n\ndata: [done]\n\n"
            "data: [DONE]\ndata:\n\n"),
         0,
         0,
         false,
         TG_OK,
         NULL,
         {EVX("[DONE]", "", "", "data: [DONE]\n\n", true, true),
          EVX("[DONE]", "", "", "data:[DONE]\n\n", true, true),
          EV("[DONE] ", "data: [DONE] \n\n"), EV("[done]", "data: [done]\n\n"),
          EV("[DONE]\n", "data: [DONE]\ndata:\n\n")}},
        {ROW,
         "final event without blank line",
         IN("data: a\n\ndata: b\n"),
         0,
         0,
         false,
         TG_OK,
         NULL,
         {EV("a", "data: a\n\n"), EVX("b", "", "", "data: b\n", false, false)}},
        {ROW,
         "final event without any line end",
         IN("data: a\n\ndata: [DONE]"),
         0,
         0,
         false,
         TG_OK,
         NULL,
         {EV("a", "data: a\n\n"),
          EVX("[DONE]", "", "", "data: [DONE]", true, false)}},
        {ROW,
         "final blank line ending in CR",
         IN("data: a\r\r"),
         0,
         0,
         false,
         TG_OK,
         NULL,
         {EV("a", "data: a\r\r")}},
        {ROW,
         "final partial line without data dropped",
         IN("data: a\n\n: partial"),
         0,
         0,
         false,
         TG_OK,
         NULL,
         {EV("a", "data: a\n\n")}},
        {ROW,
         "final block without data dropped",
         IN("data: a\n\nevent: x\nid: 3\n"),
         0,
         0,
         false,
         TG_OK,
         NULL,
         {EV("a", "data: a\n\n")}},
        {ROW, "empty stream", IN(""), 0, 0, false, TG_OK, NULL, {{0}}},
        {ROW,
         "only blank lines",
         IN("\n\n\r\n\r\r"),
         0,
         0,
         false,
         TG_OK,
         NULL,
         {{0}}},
        {ROW,
         "leading blank lines",
         IN("\n\r\ndata: x\n\n"),
         0,
         0,
         false,
         TG_OK,
         NULL,
         {EV("x", "data: x\n\n")}},
        {ROW,
         "BOM skipped",
         IN("\xEF\xBB\xBF"
            "data: x\n\n"),
         0,
         0,
         false,
         TG_OK,
         NULL,
         {EV("x", "data: x\n\n")}},
        {ROW,
         "BOM only at the very start",
         IN("\xEF\xBB\xBF"
            "data: x\n\n\xEF\xBB\xBF"
            "data: y\n\n"),
         0,
         0,
         false,
         TG_OK,
         NULL,
         {EV("x", "data: x\n\n")}},
        {ROW,
         "half a BOM is content",
         IN("\xEF\xBB: c\ndata: x\n\n"),
         0,
         0,
         false,
         TG_OK,
         NULL,
         {EV("x", "\xEF\xBB: c\ndata: x\n\n")}},
        {ROW,
         "half a BOM then a line end",
         IN("\xEF\rdata: x\n\n"),
         0,
         0,
         false,
         TG_OK,
         NULL,
         {EV("x", "\xEF\rdata: x\n\n")}},
        {ROW,
         "stream of half a BOM",
         IN("\xEF\xBB"),
         0,
         0,
         false,
         TG_OK,
         NULL,
         {{0}}},
        /* The cap counts an event's raw bytes, line ends included. */
        {ROW,
         "event exactly at the cap",
         IN("data: 01234567\n\n"),
         16,
         0,
         false,
         TG_OK,
         NULL,
         {EV("01234567", "data: 01234567\n\n")}},
        {ROW,
         "event over the cap",
         IN("data: 012345678\n\n"),
         16,
         0,
         false,
         TG_ERR_UPSTREAM,
         "upstream event larger than 16 bytes",
         {{0}}},
        {ROW,
         "oversized event after a good one",
         IN("data: a\n\ndata: 0123456789abcdef\n\ndata: b\n\n"),
         16,
         0,
         false,
         TG_ERR_UPSTREAM,
         "upstream event larger than 16 bytes",
         {EV("a", "data: a\n\n")}},
        {ROW,
         "CRLF's LF counts toward the cap",
         IN("data: 0123456\r\n\r\n"),
         16,
         0,
         false,
         TG_ERR_UPSTREAM,
         "larger than 16 bytes",
         {{0}}},
        {ROW,
         "CRLF event exactly at the cap",
         IN("data: 012345\r\n\r\n"),
         16,
         0,
         false,
         TG_OK,
         NULL,
         {EV("012345", "data: 012345\r\n\r\n")}},
        {ROW,
         "endless line rejected",
         IN("::::::::::::::::::::::::::::::::::::::::"),
         16,
         0,
         false,
         TG_ERR_UPSTREAM,
         "larger than 16 bytes",
         {{0}}},
        {ROW,
         "endless comments rejected",
         IN(":a\n:b\n:c\n:d\n:e\n:f\n"),
         10,
         0,
         false,
         TG_ERR_UPSTREAM,
         "larger than 10 bytes",
         {{0}}},
        {ROW,
         "cap is per event, not per stream",
         IN("data: 0123456\n\ndata: 0123456\n\n\n\n\n\n\n\n\n\n\n\n"
            "data: 0123456\n\n"),
         16,
         0,
         false,
         TG_OK,
         NULL,
         {EV("0123456", "data: 0123456\n\n"),
          EV("0123456", "data: 0123456\n\n"),
          EV("0123456", "data: 0123456\n\n")}},
        {ROW,
         "callback stop propagated",
         IN("data: a\n\ndata: b\n\ndata: c\n\n"),
         0,
         2,
         true,
         TG_ERR_TIMEOUT,
         "client went away",
         {EV("a", "data: a\n\n"), EV("b", "data: b\n\n")}},
        {ROW,
         "callback stop without a message",
         IN("data: a\n\ndata: b\n\n"),
         0,
         1,
         false,
         TG_ERR_TIMEOUT,
         "stream handler stopped",
         {EV("a", "data: a\n\n")}},
        {ROW,
         "callback stop at the end of the stream",
         IN("data: a\n\ndata: b"),
         0,
         2,
         true,
         TG_ERR_TIMEOUT,
         "client went away",
         {EV("a", "data: a\n\n"), EVX("b", "", "", "data: b", false, false)}},
        {ROW,
         "callback stop on a CR-ended event",
         IN("data: a\r\rdata: b\r\r"),
         0,
         1,
         true,
         TG_ERR_TIMEOUT,
         "client went away",
         {EV("a", "data: a\r\r")}},
        {ROW,
         "OpenAI stream with usage chunk",
         IN("data: " OA_1 "\n\ndata: " OA_2 "\n\ndata: " OA_3 "\n\ndata: " OA_4
            "\n\ndata: " OA_USAGE "\n\ndata: [DONE]\n\n"),
         0,
         0,
         false,
         TG_OK,
         NULL,
         {EV(OA_1, "data: " OA_1 "\n\n"), EV(OA_2, "data: " OA_2 "\n\n"),
          EV(OA_3, "data: " OA_3 "\n\n"), EV(OA_4, "data: " OA_4 "\n\n"),
          EV(OA_USAGE, "data: " OA_USAGE "\n\n"),
          EVX("[DONE]", "", "", "data: [DONE]\n\n", true, true)}},
        {ROW,
         "OpenAI stream, CRLF, no final blank line",
         IN("data: " OA_1 "\r\n\r\ndata: " OA_USAGE "\r\n\r\ndata: [DONE]\r\n"),
         0,
         0,
         false,
         TG_OK,
         NULL,
         {EV(OA_1, "data: " OA_1 "\r\n\r\n"),
          EV(OA_USAGE, "data: " OA_USAGE "\r\n\r\n"),
          EVX("[DONE]", "", "", "data: [DONE]\r\n", true, false)}},
};

struct got_ev {
	char *data;
	size_t data_len;
	char *event;
	char *id;
	char *raw;
	size_t raw_len;
	bool done;
	bool terminated;
};

struct record {
	struct got_ev ev[MAX_EVENTS];
	size_t n;
	size_t extra; /* events beyond MAX_EVENTS */
	int stop_at;
	bool stop_sets_err;
};

static char *
copy(const char *s, size_t n)
{
	char *c = tg_xmalloc(n + 1);

	memcpy(c, s, n);
	c[n] = '\0';
	return c;
}

static enum tg_rc
on_event(void *arg, const struct tg_sse_event *ev, struct tg_err *err)
{
	struct record *rec = arg;
	struct got_ev *g;

	if (rec->n == MAX_EVENTS) {
		rec->extra++;
		return TG_OK;
	}
	g = &rec->ev[rec->n++];
	g->data = copy(ev->data, ev->data_len);
	g->data_len = ev->data_len;
	g->event = tg_xstrdup(ev->event);
	g->id = tg_xstrdup(ev->id);
	g->raw = copy(ev->raw, ev->raw_len);
	g->raw_len = ev->raw_len;
	g->done = ev->done;
	g->terminated = ev->terminated;
	/* The parser promises NUL-terminated fields. */
	if (ev->data[ev->data_len] != '\0' || ev->raw[ev->raw_len] != '\0')
		g->done = !g->done; /* shows up as a mismatch */
	if (rec->stop_at > 0 && (size_t)rec->stop_at == rec->n) {
		if (rec->stop_sets_err)
			return tg_err_set(err, TG_ERR_TIMEOUT, NULL,
			                  "client went away");
		return TG_ERR_TIMEOUT;
	}
	return TG_OK;
}

static void
record_free(struct record *rec)
{
	size_t i;

	for (i = 0; i < rec->n; i++) {
		free(rec->ev[i].data);
		free(rec->ev[i].event);
		free(rec->ev[i].id);
		free(rec->ev[i].raw);
	}
	rec->n = 0;
}

/*
 * Feed r's stream in pieces ending at cuts[0..ncuts) (ascending, the last
 * being the length), then finish.  Returns the first failing rc.
 */
static enum tg_rc
run(const struct row *r, const size_t *cuts, size_t ncuts, struct record *rec,
    struct tg_err *err)
{
	struct tg_sse p;
	enum tg_rc rc = TG_OK;
	size_t i, from = 0;

	memset(rec, 0, sizeof(*rec));
	rec->stop_at = r->stop_at;
	rec->stop_sets_err = r->stop_sets_err;
	tg_err_clear(err);
	tg_sse_init(&p, r->max_event);
	for (i = 0; i < ncuts && rc == TG_OK; i++) {
		rc = tg_sse_feed(&p, r->in + from, cuts[i] - from, on_event,
		                 rec, err);
		from = cuts[i];
	}
	if (rc == TG_OK)
		rc = tg_sse_finish(&p, on_event, rec, err);
	/* Whatever happened, memory stays within the cap. */
	if (p.raw.cap > p.max_event + 1 || p.data.cap > p.max_event + 1)
		rc = TG_ERR_CONFLICT; /* never produced by the parser */
	tg_sse_free(&p);
	return rc;
}

/* Compare one run with r's expectations; describe the first difference. */
static bool
matches(const struct row *r, const struct record *rec, enum tg_rc rc,
        const struct tg_err *err, char *why, size_t whylen)
{
	size_t i, nwant = 0;

	while (nwant < MAX_EVENTS && r->ev[nwant].data != NULL)
		nwant++;
	if (rc != r->want_rc) {
		snprintf(why, whylen, "rc %s, wanted %s (%.400s)",
		         tg_rc_str(rc), tg_rc_str(r->want_rc), err->message);
		return false;
	}
	if (rc != TG_OK && (err->rc != rc || r->want_msg == NULL ||
	                    strstr(err->message, r->want_msg) == NULL)) {
		snprintf(why, whylen, "message \"%.200s\", wanted \"%.200s\"",
		         err->message, r->want_msg ? r->want_msg : "");
		return false;
	}
	if (rec->n + rec->extra != nwant) {
		snprintf(why, whylen, "%zu events, wanted %zu",
		         rec->n + rec->extra, nwant);
		return false;
	}
	for (i = 0; i < nwant; i++) {
		const struct want_ev *w = &r->ev[i];
		const struct got_ev *g = &rec->ev[i];

		if (g->data_len != w->data_len ||
		    memcmp(g->data, w->data, w->data_len) != 0)
			snprintf(why, whylen, "event %zu data \"%s\"", i + 1,
			         g->data);
		else if (strcmp(g->event, w->event) != 0)
			snprintf(why, whylen, "event %zu name \"%s\"", i + 1,
			         g->event);
		else if (strcmp(g->id, w->id) != 0)
			snprintf(why, whylen, "event %zu id \"%s\"", i + 1,
			         g->id);
		else if (g->raw_len != w->raw_len ||
		         memcmp(g->raw, w->raw, w->raw_len) != 0)
			snprintf(why, whylen,
			         "event %zu raw (%zu bytes) \"%s\"", i + 1,
			         g->raw_len, g->raw);
		else if (g->done != w->done)
			snprintf(why, whylen, "event %zu done %d", i + 1,
			         g->done);
		else if (g->terminated != w->terminated)
			snprintf(why, whylen, "event %zu terminated %d", i + 1,
			         g->terminated);
		else
			continue;
		return false;
	}
	return true;
}

static bool
run_and_match(const struct row *r, const size_t *cuts, size_t ncuts, char *why,
              size_t whylen)
{
	struct record rec;
	struct tg_err err;
	enum tg_rc rc = run(r, cuts, ncuts, &rec, &err);
	bool good = matches(r, &rec, rc, &err, why, whylen);

	record_free(&rec);
	return good;
}

static void
test_rows(void)
{
	size_t i, k, *cuts;
	char why[512];

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		size_t whole = r->in_len, split[2];
		bool good;

		if (!tap_ok(run_and_match(r, &whole, 1, why, sizeof(why)),
		            __FILE__, r->line, "%s: whole", r->what))
			diag("  %s", why);

		cuts = tg_xmalloc((r->in_len + 1) * sizeof(*cuts));
		for (k = 0; k < r->in_len; k++)
			cuts[k] = k + 1;
		if (!tap_ok(run_and_match(r, cuts, r->in_len, why, sizeof(why)),
		            __FILE__, r->line, "%s: byte by byte", r->what))
			diag("  %s", why);
		free(cuts);

		good = true;
		for (k = 0; k <= r->in_len && good; k++) {
			split[0] = k;
			split[1] = r->in_len;
			good = run_and_match(r, split, 2, why, sizeof(why));
		}
		if (!tap_ok(good, __FILE__, r->line, "%s: every 2-way split",
		            r->what))
			diag("  cut at %zu: %s", k - 1, why);
	}
}

static enum tg_rc
count_event(void *arg, const struct tg_sse_event *ev, struct tg_err *err)
{
	size_t *n = arg;

	(void)ev;
	(void)err;
	(*n)++;
	return TG_OK;
}

/* The default cap is 1 MiB: an event of exactly that passes, one more byte
 * does not. */
static void
test_default_cap(void)
{
	size_t len = TG_SSE_MAX_EVENT_DEFAULT, n = 0;
	char *big = tg_xmalloc(len + 1);
	struct tg_sse p;
	struct tg_err err;

	memcpy(big, "data: ", 6);
	memset(big + 6, 'x', len - 8);
	memcpy(big + len - 2, "\n\n", 2);
	tg_sse_init(&p, 0);
	is_int(TG_OK, tg_sse_feed(&p, big, len, count_event, &n, &err),
	       "1 MiB event accepted by the default cap");
	is_int(1, n, "and dispatched");
	tg_sse_free(&p);

	big[len - 2] = 'x';
	memcpy(big + len - 1, "\n\n", 2);
	n = 0;
	tg_sse_init(&p, 0);
	is_int(TG_ERR_UPSTREAM,
	       tg_sse_feed(&p, big, len + 1, count_event, &n, &err),
	       "1 MiB + 1 byte event refused");
	is_string("upstream event larger than 1048576 bytes", err.message,
	          "with the cap in the message");
	is_int(502, tg_err_status(&err), "as a 502");
	is_int(0, n, "and not dispatched");
	tg_sse_free(&p);
	free(big);
}

/* A parser is done after finish or a failure, and says so. */
static void
test_closed(void)
{
	struct tg_sse p;
	struct tg_err err;
	size_t n = 0;

	tg_sse_init(&p, 8);
	is_int(TG_OK, tg_sse_feed(&p, "", 0, count_event, &n, &err),
	       "empty feed is fine");
	is_int(TG_ERR_UPSTREAM,
	       tg_sse_feed(&p, "data: a\n\n", 9, count_event, &n, &err),
	       "9-byte event over an 8-byte cap");
	is_int(TG_ERR_INTERNAL,
	       tg_sse_feed(&p, "data: b\n\n", 9, count_event, &n, &err),
	       "feed after a failure refused");
	is_string("event stream parser used after its end", err.message,
	          "with a message");
	is_int(TG_ERR_INTERNAL, tg_sse_finish(&p, count_event, &n, &err),
	       "finish after a failure refused");
	is_int(0, n, "nothing dispatched");
	tg_sse_free(&p);
	tg_sse_free(&p);

	tg_sse_init(&p, 0);
	is_int(TG_OK,
	       tg_sse_feed(&p, "data: a\n\ndata: b", 16, count_event, &n, &err),
	       "feed after re-init");
	is_int(TG_OK, tg_sse_finish(&p, count_event, &n, &err), "finish");
	is_int(2, n, "both events");
	is_int(TG_ERR_INTERNAL, tg_sse_feed(&p, "\n", 1, count_event, &n, &err),
	       "feed after finish refused");
	is_int(TG_ERR_INTERNAL, tg_sse_finish(&p, count_event, &n, &err),
	       "second finish refused");
	is_int(2, n, "nothing more dispatched");
	tg_sse_free(&p);
}

int
main(void)
{
	test_rows();
	test_default_cap();
	test_closed();
	return done_testing();
}
