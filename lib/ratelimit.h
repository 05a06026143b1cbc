/*
 * ratelimit: rpm_limit, tpm_limit and max_parallel_requests of a customer's
 * budget (SPEC 5), shared by every process and machine through the
 * database (tables rate_windows and in_flight, sql/002_rate_limits.sql).
 *
 * Requests count when admitted, tokens when the request is released after
 * settlement; a request in flight holds a slot until it is released or its
 * deadline passes (its process died).
 */
#ifndef TG_RATELIMIT_H
#define TG_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "customer.h"
#include "db.h"
#include "err.h"

/* What an admission recorded, for tg_ratelimit_release(). */
struct tg_ratelimit_hold {
	bool active;    /* the customer has limits: release has work */
	bool in_flight; /* an in_flight row was recorded */
	char request_id[256];
	long retry_after; /* TG_ERR_RATE_LIMIT: seconds for retry-after */
};

/*
 * Admit request_id of customer c against its budget's limits.  Without any
 * of the three limits it returns TG_OK at once, touching no database, and
 * *out is not active.  Otherwise, in one transaction serialised on the
 * customer's row: fewer than max_parallel_requests unexpired requests in
 * flight (this one is then recorded, expiring after hold_seconds), fewer
 * than rpm_limit requests admitted this UTC minute (then counted), fewer
 * than tpm_limit tokens settled this minute.
 *
 * Refusal: TG_ERR_RATE_LIMIT "Rate limit exceeded for end_user: <id>. Limit
 * type: <requests|tokens|parallel_requests>. Current limit: <n>, Remaining:
 * 0. Limit resets at: <YYYY-MM-DD HH:MM:SS> UTC", nothing recorded, and,
 * unlike other errors, out->retry_after set (>= 1 second) for the caller's
 * retry-after header.  TG_ERR_DB when the database fails.
 */
enum tg_rc tg_ratelimit_admit(struct tg_db *db, const struct tg_customer *c,
                              const char *request_id, long hold_seconds,
                              struct tg_ratelimit_hold *out,
                              struct tg_err *err);

/*
 * End the request h admitted: add total_tokens (its settled usage, 0 when
 * it failed) to the customer's current minute when it has a tpm_limit, and
 * free its in-flight slot.  A hold that is not active is a no-op.  On
 * TG_ERR_DB the slot stays until it expires.
 */
enum tg_rc tg_ratelimit_release(struct tg_db *db, const struct tg_customer *c,
                                const struct tg_ratelimit_hold *h,
                                int64_t total_tokens, struct tg_err *err);

#endif
