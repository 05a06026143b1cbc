/*
 * ledger: admission against a hard budget, settlement, and reclaiming the
 * holds of crashed processes (SPEC 4.3, 4.4; DESIGN "The ledger").
 *
 * Admission is one conditional UPDATE, so any number of processes on any
 * number of machines cannot together admit more than the budget allows.
 * Settlement is one transaction: ledger row, spend, reservation release.
 */
#ifndef TG_LEDGER_H
#define TG_LEDGER_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "customer.h"
#include "db.h"
#include "err.h"
#include "money.h"

struct tg_reservation {
	bool held; /* false: nothing was reserved (no customer, or no
	              max_budget) */
	char request_id[37];
	char user_id[256];
	tg_money amount;
};

/*
 * Admit a request of worst-case cost estimate for customer c.  With a
 * max_budget: reserve mode admits only if spend + reserved + estimate <=
 * max_budget, atomically recording reserved += estimate and a reservation
 * row that expires after hold_seconds; post mode admits while spend <
 * max_budget and reserves nothing.  Without a max_budget nothing is
 * reserved.  Refusal: TG_ERR_BUDGET "ExceededBudget: End User=<id> over
 * budget. Spend=<spend>, Budget=<max_budget>".  Before refusing, expired
 * reservations of this customer are reclaimed and the check is retried.
 */
enum tg_rc tg_ledger_admit(struct tg_db *db, const struct tg_customer *c,
                           tg_money estimate, enum tg_enforcement mode,
                           long hold_seconds, const char *request_id,
                           struct tg_reservation *out, struct tg_err *err);

/* One spend_logs row.  Strings may be NULL (stored as NULL or ""). */
struct tg_ledger_entry {
	const char *request_id;
	const char *end_user;     /* "" when the request had no customer */
	const char *model;        /* the client's model name */
	const char *model_id;     /* the deployment: litellm_params.model */
	const char *api_key_hash; /* sha256 hex of the key used */
	const char *call_type;    /* "acompletion" */
	const char *api_base;
	bool success;
	tg_money spend;
	int64_t prompt_tokens, completion_tokens, total_tokens;
	int64_t start_us, end_us; /* Unix epoch microseconds */
	const char *metadata;     /* JSON object text or NULL */
};

/*
 * In one transaction (retried on deadlock / lost connection): insert the
 * ledger row, add its spend to the customer (applying a due reset first),
 * and release r's hold if it is still held (a reclaimed hold is not
 * released twice).  r may be NULL or not held.  TG_ERR_DB when it cannot be
 * written; then nothing of it remains.
 */
enum tg_rc tg_ledger_settle(struct tg_db *db, const struct tg_customer *c,
                            const struct tg_ledger_entry *e,
                            const struct tg_reservation *r, struct tg_err *err);

/*
 * Release holds whose deadline passed (their process died), at most limit
 * of them; *reclaimed (may be NULL) gets the count.
 */
enum tg_rc tg_ledger_reclaim(struct tg_db *db, const char *user_id, int limit,
                             int *reclaimed, struct tg_err *err);

#endif
