/*
 * ratelimit: rpm_limit, tpm_limit and max_parallel_requests of a customer's
 * budget (SPEC 5), kept in the database so that all processes on all
 * machines enforce one count.
 *
 * Why admission is race-free: it runs in one transaction that first locks
 * the customer's row (SELECT ... FOR UPDATE), so the admissions of one
 * customer run one at a time; each then reads the committed counts (the
 * sessions are READ COMMITTED), checks them and records itself before
 * releasing the lock.  A refusal rolls back, so it records nothing.
 *
 * Why release does not take that lock: it only lowers the parallel count
 * (DELETE of its own in_flight row) and adds settled tokens (one upsert of
 * the minute's row), which an admission may see or miss without breaking a
 * limit; not queueing behind admissions keeps settlement off the hot row.
 *
 * Time is the database server's UTC clock (UNIX_TIMESTAMP(),
 * UTC_TIMESTAMP()), so machines with skewed clocks agree on the minute.
 * Expired in_flight rows (their process died) never count; they and past
 * minutes' windows are deleted, a bounded number at a time, when a
 * customer's minute begins.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "money.h"
#include "ratelimit.h"
#include "util.h"

static bool
has_limits(const struct tg_customer *c)
{
	return c != NULL && c->has_budget &&
	       (c->budget.rpm_limit.set || c->budget.tpm_limit.set ||
	        c->budget.max_parallel_requests.set);
}

/* A whole number cell; false for NULL or anything else. */
static bool
cell_i64(const char *s, int64_t *out)
{
	return s != NULL && tg_decimal_parse(s, 0, out);
}

struct admit_arg {
	const struct tg_customer *c;
	const char *request_id;
	long hold_seconds;
	bool in_flight; /* a row was recorded */
	bool already;   /* a lost commit had admitted this request */
	/* On refusal: */
	const char *limit_type;
	int64_t limit;
	time_t now, resets_at;
};

/* Room for one more request in flight?  TG_ERR_RATE_LIMIT (the message is
 * the caller's) when not; this request's own row, from a retried commit,
 * does not count. */
static enum tg_rc
check_parallel(struct tg_db *db, struct admit_arg *a, struct tg_err *err)
{
	const struct tg_budget *b = &a->c->budget;
	struct tg_db_param params[2];
	struct tg_db_result res;
	int64_t count = 0, earliest = 0;
	enum tg_rc rc;

	params[0] = tg_db_str(a->c->user_id);
	params[1] = tg_db_str(a->request_id);
	rc = tg_db_exec(db,
	                "SELECT COUNT(*),"
	                " CAST(CEIL(UNIX_TIMESTAMP(MIN(expires_at))) AS SIGNED)"
	                " FROM in_flight WHERE user_id = ?"
	                " AND expires_at > UTC_TIMESTAMP(6)"
	                " AND request_id <> ?",
	                params, 2, &res, err);
	if (rc != TG_OK)
		return rc;
	if (res.nrows != 1 || !cell_i64(tg_db_cell(&res, 0, 0), &count))
		rc = tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                "malformed in_flight count");
	else if (count >= b->max_parallel_requests.v) {
		/* Free at the latest when the first hold expires. */
		if (!cell_i64(tg_db_cell(&res, 0, 1), &earliest) ||
		    earliest <= (int64_t)a->now)
			earliest = (int64_t)a->now + 1;
		a->limit_type = "parallel_requests";
		a->limit = b->max_parallel_requests.v;
		a->resets_at = (time_t)earliest;
		rc = TG_ERR_RATE_LIMIT;
	}
	tg_db_result_free(&res);
	return rc;
}

/* rpm_limit and tpm_limit against the minute starting at window; *fresh
 * tells that the minute has no row yet (the customer's first request). */
static enum tg_rc
check_window(struct tg_db *db, struct admit_arg *a, const char *window,
             time_t window_t, bool *fresh, struct tg_err *err)
{
	const struct tg_budget *b = &a->c->budget;
	struct tg_db_param params[2];
	struct tg_db_result res;
	int64_t requests = 0, tokens = 0;
	enum tg_rc rc;

	params[0] = tg_db_str(a->c->user_id);
	params[1] = tg_db_str(window);
	rc = tg_db_exec(db,
	                "SELECT requests, tokens FROM rate_windows"
	                " WHERE user_id = ? AND window_start = ?",
	                params, 2, &res, err);
	if (rc != TG_OK)
		return rc;
	*fresh = res.nrows == 0;
	if (res.nrows > 0 && (!cell_i64(tg_db_cell(&res, 0, 0), &requests) ||
	                      !cell_i64(tg_db_cell(&res, 0, 1), &tokens))) {
		rc = tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                "malformed rate_windows row");
		goto out;
	}
	a->resets_at = window_t + 60;
	if (b->rpm_limit.set && requests >= b->rpm_limit.v) {
		a->limit_type = "requests";
		a->limit = b->rpm_limit.v;
		rc = TG_ERR_RATE_LIMIT;
	} else if (b->tpm_limit.set && tokens >= b->tpm_limit.v) {
		a->limit_type = "tokens";
		a->limit = b->tpm_limit.v;
		rc = TG_ERR_RATE_LIMIT;
	}
out:
	tg_db_result_free(&res);
	return rc;
}

/* Past minutes and expired holds of the customer, a bounded number. */
static enum tg_rc
sweep(struct tg_db *db, const char *user_id, const char *window,
      struct tg_err *err)
{
	struct tg_db_param params[2];
	enum tg_rc rc;

	params[0] = tg_db_str(user_id);
	params[1] = tg_db_str(window);
	rc = tg_db_exec(db,
	                "DELETE FROM rate_windows WHERE user_id = ?"
	                " AND window_start < CAST(? AS DATETIME) - INTERVAL 1"
	                " MINUTE LIMIT 100",
	                params, 2, NULL, err);
	if (rc != TG_OK)
		return rc;
	rc = tg_db_run(db,
	               "DELETE FROM in_flight WHERE user_id = ?"
	               " AND expires_at <= UTC_TIMESTAMP(6) LIMIT 100",
	               params, 1, NULL, err);
	if (rc != TG_OK)
		return rc;
	return TG_OK;
}

static enum tg_rc
admit_txn(struct tg_db *db, void *varg, struct tg_err *err)
{
	struct admit_arg *a = varg;
	const struct tg_budget *b = &a->c->budget;
	struct tg_db_param params[3];
	struct tg_db_result res;
	char window[20];
	time_t window_t = 0;
	int64_t now = 0;
	bool fresh = false, per_minute;
	enum tg_rc rc;

	a->in_flight = a->already = false;
	params[0] = tg_db_str(a->c->user_id);
	rc = tg_db_exec(db,
	                "SELECT UNIX_TIMESTAMP() FROM customers"
	                " WHERE user_id = ? FOR UPDATE",
	                params, 1, &res, err);
	if (rc != TG_OK)
		return rc;
	if (res.nrows == 0) {
		/* Deleted since it was loaded: nobody left to limit. */
		tg_db_result_free(&res);
		return TG_OK;
	}
	if (!cell_i64(tg_db_cell(&res, 0, 0), &now) || now < 0) {
		tg_db_result_free(&res);
		return tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                  "malformed server time");
	}
	tg_db_result_free(&res);
	a->now = (time_t)now;

	if (b->max_parallel_requests.set &&
	    (rc = check_parallel(db, a, err)) != TG_OK)
		return rc;
	per_minute = b->rpm_limit.set || b->tpm_limit.set;
	if (per_minute) {
		window_t = a->now - a->now % 60;
		tg_time_sql(window_t, window);
		rc = check_window(db, a, window, window_t, &fresh, err);
		if (rc != TG_OK)
			return rc;
	}

	/* Admitted: record it. */
	if (b->max_parallel_requests.set) {
		params[0] = tg_db_str(a->request_id);
		params[1] = tg_db_str(a->c->user_id);
		params[2] = tg_db_int(a->hold_seconds);
		rc = tg_db_exec(db,
		                "INSERT INTO in_flight (request_id, user_id,"
		                " expires_at, created_at) VALUES (?, ?,"
		                " UTC_TIMESTAMP(6) + INTERVAL ? SECOND,"
		                " UTC_TIMESTAMP(6))",
		                params, 3, NULL, err);
		if (rc == TG_ERR_CONFLICT) {
			/* A retry whose first commit went through. */
			a->already = true;
			return TG_ERR_CONFLICT;
		}
		if (rc != TG_OK)
			return rc;
		a->in_flight = true;
	}
	if (b->rpm_limit.set) {
		params[0] = tg_db_str(a->c->user_id);
		params[1] = tg_db_str(window);
		rc = tg_db_exec(db,
		                "INSERT INTO rate_windows (user_id,"
		                " window_start, requests, tokens)"
		                " VALUES (?, ?, 1, 0) ON DUPLICATE KEY UPDATE"
		                " requests = requests + 1",
		                params, 2, NULL, err);
		if (rc != TG_OK)
			return rc;
	}
	/* Once a minute per customer, while its row is locked anyway. */
	if (per_minute && fresh)
		return sweep(db, a->c->user_id, window, err);
	return TG_OK;
}

enum tg_rc
tg_ratelimit_admit(struct tg_db *db, const struct tg_customer *c,
                   const char *request_id, long hold_seconds,
                   struct tg_ratelimit_hold *out, struct tg_err *err)
{
	struct tg_ratelimit_hold h;
	struct admit_arg arg;
	char resets[20];
	enum tg_rc rc = TG_OK;

	memset(&h, 0, sizeof(h));
	if (!has_limits(c))
		goto out; /* the hot path: no query */
	memset(&arg, 0, sizeof(arg));
	arg.c = c;
	arg.request_id = request_id;
	arg.hold_seconds = hold_seconds > 0 ? hold_seconds : 1;
	rc = tg_db_txn(db, admit_txn, &arg, err);
	if (rc == TG_ERR_CONFLICT && arg.already) {
		arg.in_flight = true;
		rc = TG_OK;
	}
	if (rc == TG_ERR_RATE_LIMIT) {
		tg_time_sql(arg.resets_at, resets);
		tg_err_set(err, TG_ERR_RATE_LIMIT, NULL,
		           "Rate limit exceeded for end_user: %s. Limit type: "
		           "%s. Current limit: %lld, Remaining: 0. Limit "
		           "resets at: %s UTC",
		           c->user_id, arg.limit_type, (long long)arg.limit,
		           resets);
		/* A parallel slot frees when any call in flight ends, usually
		 * long before the worst case the message names; SDKs ignore
		 * retry-after beyond a minute anyway. */
		h.retry_after = strcmp(arg.limit_type, "parallel_requests") == 0
		                        ? 1
		                : arg.resets_at > arg.now
		                        ? (long)(arg.resets_at - arg.now)
		                        : 1;
		*out = h; /* only retry_after: the caller's header */
		goto out;
	}
	if (rc != TG_OK)
		goto out;
	h.active = true;
	h.in_flight = arg.in_flight;
	tg_strlcpy(h.request_id, sizeof(h.request_id), request_id);
out:
	if (rc == TG_OK)
		*out = h;
	return rc;
}

struct release_arg {
	const struct tg_customer *c;
	const struct tg_ratelimit_hold *h;
	int64_t tokens;
};

static enum tg_rc
release_txn(struct tg_db *db, void *varg, struct tg_err *err)
{
	struct release_arg *a = varg;
	struct tg_db_param params[3];
	enum tg_rc rc;

	if (a->tokens > 0) {
		params[0] = tg_db_str(a->c->user_id);
		params[1] = tg_db_int(a->tokens);
		params[2] = tg_db_int(a->tokens);
		rc = tg_db_run(db,
		               "INSERT INTO rate_windows (user_id,"
		               " window_start, requests, tokens) VALUES (?,"
		               " DATE_FORMAT(UTC_TIMESTAMP(),"
		               " '%Y-%m-%d %H:%i:00'), 0, ?)"
		               " ON DUPLICATE KEY UPDATE tokens = tokens + ?",
		               params, 3, NULL, err);
		if (rc != TG_OK)
			return rc;
	}
	if (a->h->in_flight) {
		params[0] = tg_db_str(a->h->request_id);
		rc = tg_db_run(db, "DELETE FROM in_flight WHERE request_id = ?",
		               params, 1, NULL, err);
		if (rc != TG_OK)
			return rc;
	}
	return TG_OK;
}

enum tg_rc
tg_ratelimit_release(struct tg_db *db, const struct tg_customer *c,
                     const struct tg_ratelimit_hold *h, int64_t total_tokens,
                     struct tg_err *err)
{
	struct release_arg arg;

	if (h == NULL || !h->active || !has_limits(c))
		return TG_OK;
	memset(&arg, 0, sizeof(arg));
	arg.c = c;
	arg.h = h;
	/* Tokens matter only to a tpm_limit; nothing to count otherwise. */
	arg.tokens =
	        c->budget.tpm_limit.set && total_tokens > 0 ? total_tokens : 0;
	if (arg.tokens == 0 && !h->in_flight)
		return TG_OK;
	return tg_db_txn(db, release_txn, &arg, err);
}
