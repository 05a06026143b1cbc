/*
 * relay: a streamed answer, relayed to the client event by event (SPEC 4.5)
 * while the meter learns from it what the call used.
 *
 * The upstream's bytes go through the SSE parser; each event is shown to
 * the API's dialect (lib/api.h), which notes in the relay what it says and
 * tells whether it goes to the client now, never, or once the call is
 * settled (the events that end a stream: a client must not see a stream
 * end before its charge is in the ledger).  The meter then settles and
 * calls tg_relay_end(), which sends what was held, or an error event in
 * the API's shape.
 */
#ifndef TG_RELAY_H
#define TG_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "app.h"
#include "config.h"
#include "err.h"
#include "sse.h"
#include "translate.h"

/* The content blocks (tool calls) a translated stream keeps apart. */
#define TG_RELAY_BLOCKS 64

struct tg_relay {
	struct tg_req *req;
	const struct tg_deployment *d;
	/* The client's API's: its closing and its error event. */
	const struct tg_stream_dialect *dialect;
	/* The upstream's API's, which reads its events: the client's, or
	 * another's when tr translates. */
	const struct tg_stream_dialect *up;
	const struct tg_translation *tr; /* NULL: the events go as they come */
	bool client_usage;    /* the client asked for the usage it gets (false
	                         to the upstream's dialect when translating) */
	bool usage_asked;     /* the client asked for it, when translating */
	int64_t output_bound; /* the hold's on this attempt's deployment */
	bool started;         /* the event stream to the client has begun */

	/* What the dialect noted of this attempt's stream. */
	bool ended;  /* its proper end was seen ([DONE], a terminal event) */
	bool failed; /* the upstream said the call failed (an error event) */
	struct tg_answer answer; /* usage (answer.u.present), id, text */
	/* Chat and completions: the choices (by index, < TG_API_N_MAX)
	 * begun, and ended with a finish_reason. */
	uint64_t seen[2], finished[2];
	/* The Responses API: the last sequence_number relayed. */
	int64_t sequence;
	/* Anthropic's: a message_delta gave the output's count (until then
	 * the text relayed bounds it). */
	bool output_counted;

	/* A translated stream: what the client was told so far
	 * (lib/translate_*.c). */
	struct {
		bool begun;  /* its first event went out */
		int open;    /* the open content block, -1: none */
		int nblocks; /* blocks begun */
		int tool[TG_RELAY_BLOCKS]; /* a block's tool call index, -1 */
		int ntools;                /* tool calls begun */
		char stop[32]; /* the upstream's stop or finish reason */
		char id[TG_RESPONSE_ID_MAX + 1];
		char model[128];
		int64_t created;
	} tx;

	/* Internal. */
	struct tg_sse sse;
	char *held; /* the events held back, as received */
	size_t held_len;
	struct tg_err parse_err;
};

/* Start r for a call of req through dialect; client_usage as the API's
 * prepare() said. */
void tg_relay_init(struct tg_relay *r, struct tg_req *req,
                   const struct tg_stream_dialect *dialect, bool client_usage);

/* Forget what a failed attempt saw, for an attempt on deployment d, whose
 * events are read by dialect up and translated by tr (NULL: none). */
void tg_relay_attempt(struct tg_relay *r, const struct tg_deployment *d,
                      const struct tg_stream_dialect *up,
                      const struct tg_translation *tr);

/* The upstream's bytes (a tg_upstream_data_fn: arg is the relay). */
enum tg_rc tg_relay_data(void *arg, const char *buf, size_t len);

/* The upstream's stream ended (rc: how): the last event, if it was cut. */
enum tg_rc tg_relay_finish(struct tg_relay *r, enum tg_rc rc,
                           struct tg_err *err);

/*
 * The call is settled (settled false: it could not be, err says why): a
 * whole stream gets its held events and the dialect's closing; one that
 * failed upstream, its held events only; one cut short (cut_err), or one
 * whose settlement failed, the API's error event instead.
 */
void tg_relay_end(struct tg_relay *r, bool settled, const struct tg_err *err,
                  const struct tg_err *cut_err);

/* Free what r holds. */
void tg_relay_free(struct tg_relay *r);

/* ---- for the dialects ---- */

/* Write buf to the client (the event stream begins with the first). */
void tg_relay_write(struct tg_relay *r, const char *buf, size_t len);

/* Write obj to the client as one event ("event: <name>" first when name is
 * not NULL). */
void tg_relay_write_json(struct tg_relay *r, const char *name,
                         struct json_object *obj);

#endif
