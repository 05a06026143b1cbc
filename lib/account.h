/*
 * account: what customers (SPEC 3) and virtual keys (SPEC 13) share as the
 * accounts a call is charged to.  Both hold spend (the current period's),
 * reserved (the holds of their calls in flight) and spend_reset_at, and
 * point at a budget row for their limits; a call with a virtual key and a
 * customer id is admitted, limited, charged and alerted on for both.
 *
 * The modules that do so (ledger, ratelimit, events) keep one statement
 * text per kind, so that each kind's table is read through its own primary
 * key; the rows they share (rate_windows, in_flight, alert_marks) carry
 * the kind's name, since a customer id may be any text, a key's token
 * included.
 */
#ifndef TG_ACCOUNT_H
#define TG_ACCOUNT_H

#include <stdbool.h>

#include "db.h"
#include "err.h"

struct tg_budget;   /* budget.h */
struct tg_opt_time; /* budget.h */

enum tg_account_kind {
	TG_ACCOUNT_CUSTOMER, /* customers, by user_id */
	TG_ACCOUNT_KEY,      /* api_keys, by token (sha256 hex of the key) */
};

/* "customer" or "key": the kind column of the shared tables, and the
 * webhook event_group (SPEC 9). */
const char *tg_account_kind_name(enum tg_account_kind kind);

/*
 * Budget periods pass lazily (SPEC 6): when budget has a budget_duration
 * and the account's period ended (spend_reset_at, unset: never started),
 * start the next one: spend 0 (kept when the first period starts) and
 * spend_reset_at the end of the period that holds now, in one UPDATE
 * guarded by the old spend_reset_at, so that processes racing over the
 * same due reset apply it once.  *changed tells that the account must be
 * read again (also when another process won the race).  budget NULL: no
 * budget, nothing to do.
 */
enum tg_rc tg_account_apply_reset(struct tg_db *db, enum tg_account_kind kind,
                                  const char *id,
                                  const struct tg_budget *budget,
                                  const struct tg_opt_time *spend_reset_at,
                                  bool *changed, struct tg_err *err);

#endif
