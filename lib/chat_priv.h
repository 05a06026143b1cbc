/*
 * chat_priv: what lib/chat.c (the request's flow, non-streamed answers)
 * and lib/chat_stream.c (streamed answers) share.  Not for other modules.
 */
#ifndef TG_CHAT_PRIV_H
#define TG_CHAT_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "app.h"
#include "config.h"
#include "customer.h"
#include "err.h"
#include "key.h"
#include "ledger.h"
#include "money.h"
#include "ratelimit.h"
#include "upstream.h"

#define MAX_CANDIDATES 64

/* One chat completion in progress. */
struct chat {
	struct tg_req *req;
	const struct tg_config *cfg;
	struct tg_db *db;
	struct json_object *body;
	const char *body_text; /* as it came, body_len bytes */
	size_t body_len;
	char user_id[256];
	bool has_customer;
	struct tg_customer cust;
	const struct tg_key *key; /* the virtual key used, or NULL (SPEC 13) */
	const char *model;
	size_t cand[MAX_CANDIDATES];
	size_t ncand;
	tg_money estimate;
	struct tg_reservation resv;
	struct tg_ratelimit_hold limits; /* active until released */
};

/* Whether a failed attempt may be tried again (another deployment, or
 * the same one once more). */
bool tg_chat_retryable(enum tg_rc rc, const struct tg_upstream_response *resp);

/* The ledger row's metadata JSON text (caller frees). */
char *tg_chat_metadata(const struct tg_deployment *d, int attempts,
                       bool estimated);

/*
 * Usage when the upstream did not report it: the prompt bound of SPEC 4.3
 * and one token per byte of generated text.
 */
void tg_chat_bounded_usage(struct chat *c, const struct tg_deployment *d,
                           int64_t text_bytes, struct tg_usage *u);

/* The ledger row of a request; strings borrowed from c and api_base. */
void tg_chat_entry_init(struct chat *c, const struct tg_deployment *d,
                        const char *api_base, const char *meta,
                        struct tg_ledger_entry *e);

/*
 * Settle e (spooled when the database is out of reach) and release the
 * rate limits; *charged (may be NULL) gets the charge.  TG_ERR_DB in the
 * SPEC's terms when it can be neither settled nor spooled.
 */
enum tg_rc tg_chat_settle(struct chat *c, const struct tg_ledger_entry *e,
                          tg_money *charged, struct tg_err *err);

/* The answer for a non-2xx upstream status (no charge). */
enum tg_rc tg_chat_upstream_error(struct tg_req *req,
                                  const struct tg_upstream_response *resp,
                                  struct tg_err *err);

/* Streamed: relay events as they come, settle before [DONE] (SPEC 4.5). */
enum tg_rc tg_chat_stream(struct chat *c, struct tg_err *err);

#endif
