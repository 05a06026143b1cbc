/*
 * relay: a streamed answer relayed event by event (see relay.h).
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonx.h"
#include "relay.h"
#include "util.h"

void
tg_relay_init(struct tg_relay *r, struct tg_req *req,
              const struct tg_stream_dialect *dialect, bool client_usage)
{
	memset(r, 0, sizeof(*r));
	r->req = req;
	r->dialect = dialect;
	r->up = dialect;
	r->client_usage = client_usage;
	r->usage_asked = client_usage;
	tg_sse_init(&r->sse, 0);
}

void
tg_relay_attempt(struct tg_relay *r, const struct tg_deployment *d,
                 const struct tg_stream_dialect *up,
                 const struct tg_translation *tr)
{
	r->d = d;
	r->up = up;
	r->tr = tr;
	/* The upstream's dialect writes nothing itself when translating. */
	r->client_usage = tr == NULL && r->usage_asked;
	memset(&r->tx, 0, sizeof(r->tx));
	r->tx.open = -1;
	r->ended = r->failed = false;
	memset(&r->answer, 0, sizeof(r->answer));
	memset(r->seen, 0, sizeof(r->seen));
	memset(r->finished, 0, sizeof(r->finished));
	r->sequence = 0;
	r->output_counted = false;
	r->held_len = 0;
	tg_sse_free(&r->sse);
	tg_sse_init(&r->sse, 0);
	tg_err_clear(&r->parse_err);
}

void
tg_relay_write(struct tg_relay *r, const char *buf, size_t len)
{
	if (!r->started) {
		/* As LiteLLM: the region of the deployment that answered. */
		if (r->d->region != NULL)
			tg_req_add_header(r->req, "x-litellm-model-region",
			                  r->d->region);
		tg_req_stream_begin(r->req, 200, "text/event-stream");
		r->started = true;
	}
	/* A client that left gets nothing more; the upstream is still read
	 * to its end so that its real usage is charged. */
	tg_req_stream_write(r->req, buf, len);
}

void
tg_relay_write_json(struct tg_relay *r, const char *name,
                    struct json_object *obj)
{
	size_t n, at = 0, nlen = name != NULL ? strlen(name) : 0;
	const char *text = json_object_to_json_string_length(
	        obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
	        &n);
	char *line = tg_xmalloc(n + nlen + 18);

	if (name != NULL) {
		memcpy(line, "event: ", 7);
		memcpy(line + 7, name, nlen);
		line[7 + nlen] = '\n';
		at = 8 + nlen;
	}
	memcpy(line + at, "data: ", 6);
	memcpy(line + at + 6, text, n);
	memcpy(line + at + 6 + n, "\n\n", 3);
	tg_relay_write(r, line, at + n + 8);
	free(line);
}

/* The event's bytes, with the blank line that ends it when the stream
 * ended before it, written or kept for later. */
static void
forward(struct tg_relay *r, const struct tg_sse_event *ev, bool hold)
{
	if (!hold) {
		tg_relay_write(r, ev->raw, ev->raw_len);
		if (!ev->terminated)
			tg_relay_write(r, "\n\n", 2);
		return;
	}
	r->held = tg_xrealloc(r->held, r->held_len + ev->raw_len + 3);
	memcpy(r->held + r->held_len, ev->raw, ev->raw_len);
	r->held_len += ev->raw_len;
	if (!ev->terminated) {
		memcpy(r->held + r->held_len, "\n\n", 2);
		r->held_len += 2;
	}
}

static enum tg_rc
on_event(void *arg, const struct tg_sse_event *ev, struct tg_err *err)
{
	struct tg_relay *r = arg;
	struct json_object *obj = NULL;
	enum tg_relay_action action;

	(void)err;
	if (!ev->done) {
		obj = tg_json_parse(ev->data, ev->data_len);
		if (obj != NULL &&
		    !json_object_is_type(obj, json_type_object)) {
			json_object_put(obj);
			obj = NULL;
		}
	}
	action = r->up->event(r, ev, obj);
	if (r->tr != NULL) {
		/* The client's events for it; its end waits for the
		 * settlement (tg_relay_end). */
		r->tr->event(r, ev, obj);
		json_object_put(obj);
		return TG_OK;
	}
	json_object_put(obj);
	switch (action) {
	case TG_RELAY_FORWARD: forward(r, ev, false); break;
	case TG_RELAY_HOLD: forward(r, ev, true); break;
	case TG_RELAY_DROP: break;
	}
	return TG_OK;
}

enum tg_rc
tg_relay_data(void *arg, const char *buf, size_t len)
{
	struct tg_relay *r = arg;

	return tg_sse_feed(&r->sse, buf, len, on_event, r, &r->parse_err);
}

enum tg_rc
tg_relay_finish(struct tg_relay *r, enum tg_rc rc, struct tg_err *err)
{
	if (rc == TG_OK)
		rc = tg_sse_finish(&r->sse, on_event, r, err);
	tg_sse_free(&r->sse);
	return rc;
}

void
tg_relay_end(struct tg_relay *r, bool settled, const struct tg_err *err,
             const struct tg_err *cut_err)
{
	if (!settled) {
		r->dialect->error_event(r, err);
		return;
	}
	if (cut_err != NULL) {
		r->dialect->error_event(r, cut_err);
		return;
	}
	if (r->held_len > 0)
		tg_relay_write(r, r->held, r->held_len);
	if (!r->failed && r->tr != NULL)
		r->tr->finish(r);
	if (!r->failed && r->dialect->closing != NULL)
		tg_relay_write(r, r->dialect->closing,
		               strlen(r->dialect->closing));
}

void
tg_relay_free(struct tg_relay *r)
{
	tg_sse_free(&r->sse);
	free(r->held);
	r->held = NULL;
	r->held_len = 0;
}
