/*
 * ratelimit: rpm_limit, tpm_limit and max_parallel_requests of an
 * account's budget (SPEC 5; a customer's, and a virtual key's, SPEC 13),
 * shared by every process and machine through the database (tables
 * rate_windows and in_flight, sql/002_rate_limits.sql, keyed by the
 * account's kind since sql/006_keys.sql).
 *
 * Requests count when admitted, tokens when the request is released after
 * settlement; a request in flight holds a slot until it is released or its
 * deadline passes (its process died).  A call of a virtual key for a
 * customer is admitted only if both accounts' limits admit it.
 */
#ifndef TG_RATELIMIT_H
#define TG_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "account.h"
#include "budget.h"
#include "db.h"
#include "err.h"
#include "tag.h"

/* The most accounts one call is limited by: its customer, its key and
 * its tags. */
#define TG_RATELIMIT_ACCOUNTS (2 + TG_TAG_MAX)

/*
 * A refusal for a minute window whose reset is further off than this gets
 * "x-should-retry: false": the OpenAI SDKs honour a retry-after of up to a
 * minute, and would hold the caller's call that long; up to here (their
 * own longest backoff, 8 s) an automatic retry is what they do anyway.
 */
#define TG_RATELIMIT_RETRY_INLINE_S 8

/* What an admission recorded, for tg_ratelimit_release(). */
struct tg_ratelimit_hold {
	bool active; /* an account has limits: release has work */
	size_t n;
	struct {
		enum tg_account_kind kind;
		char id[256];
		bool in_flight; /* an in_flight row was recorded */
		bool tpm;       /* settled tokens count against a tpm_limit */
	} acct[TG_RATELIMIT_ACCOUNTS];
	char request_id[256];
	long retry_after; /* TG_ERR_RATE_LIMIT: seconds for retry-after */
};

/*
 * Admit request_id against the limits of the budgets of accounts[0..n) (n <=
 * TG_RATELIMIT_ACCOUNTS; customer, key, then tags by name, the order every
 * transaction locks them in).  Accounts without any of the three limits cost
 * nothing, and with none at all it returns TG_OK at once, touching no database,
 * and *out is not active.  Otherwise, in one transaction serialised on each
 * limited account's row: fewer than max_parallel_requests unexpired
 * requests in flight (this one is then recorded, expiring after
 * hold_seconds), fewer than rpm_limit requests admitted this UTC minute
 * (then counted), fewer than tpm_limit tokens settled this minute.  Every
 * account must admit; a refusal records nothing for any.
 *
 * Refusal: TG_ERR_RATE_LIMIT "Rate limit exceeded for <end_user|api_key|tag>:
 * <id>. Limit type: <requests|tokens|parallel_requests>. Current limit:
 * <n>, Remaining: 0. Limit resets at: <YYYY-MM-DD HH:MM:SS> UTC", and,
 * unlike other errors, out->retry_after set (>= 1 second) for the caller's
 * retry-after header.  TG_ERR_DB when the database fails.
 */
enum tg_rc tg_ratelimit_admit(struct tg_db *db,
                              const struct tg_account *accounts, size_t n,
                              const char *request_id, long hold_seconds,
                              struct tg_ratelimit_hold *out,
                              struct tg_err *err);

/*
 * End the request h admitted: add total_tokens (its settled usage, 0 when
 * it failed) to the current minute of each account with a tpm_limit, and
 * free its in-flight slots.  A hold that is not active is a no-op.  On
 * TG_ERR_DB the slots stay until they expire.
 */
enum tg_rc tg_ratelimit_release(struct tg_db *db,
                                const struct tg_ratelimit_hold *h,
                                int64_t total_tokens, struct tg_err *err);

#endif
