/*
 * ratelimit: rpm_limit, tpm_limit and max_parallel_requests of an
 * account's budget (SPEC 5), kept in the database so that all processes on
 * all machines enforce one count.
 *
 * Why admission is race-free: it runs in one transaction that first locks
 * each limited account's row (SELECT ... FOR UPDATE; the customer's, then
 * the key's), so the admissions of one account run one at a time; each
 * then reads the committed counts (the sessions are READ COMMITTED), checks
 * them and records itself before releasing the locks.  A refusal by either
 * account rolls back, so it records nothing for both.
 *
 * Why release does not take those locks: it only lowers the parallel count
 * (DELETE of its own in_flight rows) and adds settled tokens (one upsert of
 * the minute's row), which an admission may see or miss without breaking a
 * limit; not queueing behind admissions keeps settlement off the hot rows.
 *
 * Time is the database server's UTC clock (UNIX_TIMESTAMP(),
 * UTC_TIMESTAMP()), so machines with skewed clocks agree on the minute.
 * Expired in_flight rows (their process died) never count; they and past
 * minutes' windows are deleted, a bounded number at a time, when an
 * account's minute begins.
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
has_limits(const struct tg_account *a)
{
	const struct tg_budget *b = a->budget;

	return b != NULL && (b->rpm_limit.set || b->tpm_limit.set ||
	                     b->max_parallel_requests.set);
}

/* A whole number cell; false for NULL or anything else. */
static bool
cell_i64(const char *s, int64_t *out)
{
	return s != NULL && tg_decimal_parse(s, 0, out);
}

struct admit_arg {
	const struct tg_account *accounts;
	size_t n;
	const char *request_id;
	long hold_seconds;
	bool in_flight[TG_RATELIMIT_ACCOUNTS]; /* a row was recorded */
	bool already; /* a lost commit had admitted this request */
	/* On refusal: */
	const struct tg_account *refused;
	const char *limit_type;
	int64_t limit;
	time_t now, resets_at;
};

/* Room for one more request in flight?  TG_ERR_RATE_LIMIT (the message is
 * the caller's) when not; this request's own row, from a retried commit,
 * does not count. */
static enum tg_rc
check_parallel(struct tg_db *db, struct admit_arg *a,
               const struct tg_account *acct, struct tg_err *err)
{
	const struct tg_budget *b = acct->budget;
	struct tg_db_param params[3];
	struct tg_db_result res;
	int64_t count = 0, earliest = 0;
	enum tg_rc rc;

	params[0] = tg_db_str(tg_account_kind_name(acct->kind));
	params[1] = tg_db_str(acct->id);
	params[2] = tg_db_str(a->request_id);
	rc = tg_db_exec(db,
	                "SELECT COUNT(*),"
	                " CAST(CEIL(UNIX_TIMESTAMP(MIN(expires_at))) AS SIGNED)"
	                " FROM in_flight WHERE kind = ? AND user_id = ?"
	                " AND expires_at > UTC_TIMESTAMP(6)"
	                " AND request_id <> ?",
	                params, 3, &res, err);
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
		a->refused = acct;
		a->limit_type = "parallel_requests";
		a->limit = b->max_parallel_requests.v;
		a->resets_at = (time_t)earliest;
		rc = TG_ERR_RATE_LIMIT;
	}
	tg_db_result_free(&res);
	return rc;
}

/* rpm_limit and tpm_limit against the minute starting at window; *fresh
 * tells that the minute has no row yet (the account's first request). */
static enum tg_rc
check_window(struct tg_db *db, struct admit_arg *a,
             const struct tg_account *acct, const char *window, time_t window_t,
             bool *fresh, struct tg_err *err)
{
	const struct tg_budget *b = acct->budget;
	struct tg_db_param params[3];
	struct tg_db_result res;
	int64_t requests = 0, tokens = 0;
	enum tg_rc rc;

	params[0] = tg_db_str(tg_account_kind_name(acct->kind));
	params[1] = tg_db_str(acct->id);
	params[2] = tg_db_str(window);
	rc = tg_db_exec(db,
	                "SELECT requests, tokens FROM rate_windows"
	                " WHERE kind = ? AND user_id = ? AND window_start = ?",
	                params, 3, &res, err);
	if (rc != TG_OK)
		return rc;
	*fresh = res.nrows == 0;
	if (res.nrows > 0 && (!cell_i64(tg_db_cell(&res, 0, 0), &requests) ||
	                      !cell_i64(tg_db_cell(&res, 0, 1), &tokens))) {
		rc = tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                "malformed rate_windows row");
		goto out;
	}
	if (b->rpm_limit.set && requests >= b->rpm_limit.v) {
		a->limit_type = "requests";
		a->limit = b->rpm_limit.v;
		rc = TG_ERR_RATE_LIMIT;
	} else if (b->tpm_limit.set && tokens >= b->tpm_limit.v) {
		a->limit_type = "tokens";
		a->limit = b->tpm_limit.v;
		rc = TG_ERR_RATE_LIMIT;
	}
	if (rc == TG_ERR_RATE_LIMIT) {
		a->refused = acct;
		a->resets_at = window_t + 60;
	}
out:
	tg_db_result_free(&res);
	return rc;
}

/* Past minutes and expired holds of the account, a bounded number. */
static enum tg_rc
sweep(struct tg_db *db, const struct tg_account *acct, const char *window,
      struct tg_err *err)
{
	struct tg_db_param params[3];
	enum tg_rc rc;

	params[0] = tg_db_str(tg_account_kind_name(acct->kind));
	params[1] = tg_db_str(acct->id);
	params[2] = tg_db_str(window);
	rc = tg_db_run(db,
	               "DELETE FROM rate_windows WHERE kind = ? AND user_id = ?"
	               " AND window_start < CAST(? AS DATETIME) - INTERVAL 1"
	               " MINUTE LIMIT 100",
	               params, 3, NULL, err);
	if (rc != TG_OK)
		return rc;
	return tg_db_run(db,
	                 "DELETE FROM in_flight WHERE kind = ? AND user_id = ?"
	                 " AND expires_at <= UTC_TIMESTAMP(6) LIMIT 100",
	                 params, 2, NULL, err);
}

/* Lock and check one account; *present false when its row is gone (deleted
 * since it was loaded: nothing left to limit). */
static enum tg_rc
check_account(struct tg_db *db, struct admit_arg *a,
              const struct tg_account *acct, bool *present, char window[20],
              bool *fresh, struct tg_err *err)
{
	const struct tg_budget *b = acct->budget;
	struct tg_db_param param = tg_db_str(acct->id);
	struct tg_db_result res;
	time_t window_t;
	int64_t now = 0;
	enum tg_rc rc;

	*present = *fresh = false;
	rc = tg_db_exec(db, tg_account_kind(acct->kind)->sql.lock, &param, 1,
	                &res, err);
	if (rc != TG_OK)
		return rc;
	if (res.nrows == 0) {
		tg_db_result_free(&res);
		return TG_OK;
	}
	if (!cell_i64(tg_db_cell(&res, 0, 0), &now) || now < 0) {
		tg_db_result_free(&res);
		return tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                  "malformed server time");
	}
	tg_db_result_free(&res);
	*present = true;
	a->now = (time_t)now;
	if (b->max_parallel_requests.set &&
	    (rc = check_parallel(db, a, acct, err)) != TG_OK)
		return rc;
	if (!b->rpm_limit.set && !b->tpm_limit.set)
		return TG_OK;
	window_t = a->now - a->now % 60;
	tg_time_sql(window_t, window);
	return check_window(db, a, acct, window, window_t, fresh, err);
}

/* Record the admitted request for one account. */
static enum tg_rc
record_account(struct tg_db *db, struct admit_arg *a, size_t i,
               const char *window, bool fresh, struct tg_err *err)
{
	const struct tg_account *acct = &a->accounts[i];
	const struct tg_budget *b = acct->budget;
	struct tg_db_param params[4];
	enum tg_rc rc;

	params[0] = tg_db_str(a->request_id);
	params[1] = tg_db_str(tg_account_kind_name(acct->kind));
	params[2] = tg_db_str(acct->id);
	params[3] = tg_db_int(a->hold_seconds);
	if (b->max_parallel_requests.set) {
		rc = tg_db_run(
		        db,
		        "INSERT INTO in_flight (request_id, kind, user_id,"
		        " expires_at, created_at) VALUES (?, ?, ?,"
		        " UTC_TIMESTAMP(6) + INTERVAL ? SECOND,"
		        " UTC_TIMESTAMP(6))",
		        params, 4, NULL, err);
		if (rc == TG_ERR_CONFLICT) {
			/* A retry whose first commit went through. */
			a->already = true;
			return TG_ERR_CONFLICT;
		}
		if (rc != TG_OK)
			return rc;
		a->in_flight[i] = true;
	}
	if (b->rpm_limit.set) {
		params[0] = params[1];
		params[1] = params[2];
		params[2] = tg_db_str(window);
		rc = tg_db_run(db,
		               "INSERT INTO rate_windows (kind, user_id,"
		               " window_start, requests, tokens)"
		               " VALUES (?, ?, ?, 1, 0) ON DUPLICATE KEY UPDATE"
		               " requests = requests + 1",
		               params, 3, NULL, err);
		if (rc != TG_OK)
			return rc;
	}
	/* Once a minute per account, while its row is locked anyway. */
	if (fresh)
		return sweep(db, acct, window, err);
	return TG_OK;
}

static enum tg_rc
admit_txn(struct tg_db *db, void *varg, struct tg_err *err)
{
	struct admit_arg *a = varg;
	char window[TG_RATELIMIT_ACCOUNTS][20];
	bool present[TG_RATELIMIT_ACCOUNTS], fresh[TG_RATELIMIT_ACCOUNTS];
	enum tg_rc rc;

	a->already = false;
	a->refused = NULL;
	for (size_t i = 0; i < a->n; i++) {
		a->in_flight[i] = present[i] = fresh[i] = false;
		if (!has_limits(&a->accounts[i]))
			continue;
		rc = check_account(db, a, &a->accounts[i], &present[i],
		                   window[i], &fresh[i], err);
		if (rc != TG_OK)
			return rc;
	}
	/* Admitted by all: record it. */
	for (size_t i = 0; i < a->n; i++) {
		if (!present[i])
			continue;
		rc = record_account(db, a, i, window[i], fresh[i], err);
		if (rc != TG_OK)
			return rc;
	}
	return TG_OK;
}

enum tg_rc
tg_ratelimit_admit(struct tg_db *db, const struct tg_account *accounts,
                   size_t n, const char *request_id, long hold_seconds,
                   struct tg_ratelimit_hold *out, struct tg_err *err)
{
	struct tg_ratelimit_hold h;
	struct admit_arg arg;
	char resets[20];
	bool any = false;
	enum tg_rc rc = TG_OK;

	memset(&h, 0, sizeof(h));
	if (n > TG_RATELIMIT_ACCOUNTS)
		n = TG_RATELIMIT_ACCOUNTS;
	for (size_t i = 0; i < n; i++)
		any |= has_limits(&accounts[i]);
	if (!any)
		goto out; /* the hot path: no query */
	memset(&arg, 0, sizeof(arg));
	arg.accounts = accounts;
	arg.n = n;
	arg.request_id = request_id;
	arg.hold_seconds = hold_seconds > 0 ? hold_seconds : 1;
	rc = tg_db_txn(db, admit_txn, &arg, err);
	if (rc == TG_ERR_CONFLICT && arg.already) {
		/* The first commit recorded every slot this one would. */
		for (size_t i = 0; i < n; i++)
			arg.in_flight[i] =
			        has_limits(&accounts[i]) &&
			        accounts[i].budget->max_parallel_requests.set;
		rc = TG_OK;
	}
	if (rc == TG_ERR_RATE_LIMIT && arg.refused != NULL) {
		tg_time_sql(arg.resets_at, resets);
		tg_err_set(
		        err, TG_ERR_RATE_LIMIT, NULL,
		        "Rate limit exceeded for %s: %s. Limit type: %s. "
		        "Current limit: %lld, Remaining: 0. Limit resets at: "
		        "%s UTC",
		        arg.refused->kind == TG_ACCOUNT_KEY   ? "api_key"
		        : arg.refused->kind == TG_ACCOUNT_TAG ? "tag"
		                                              : "end_user",
		        arg.refused->id, arg.limit_type, (long long)arg.limit,
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
	h.n = n;
	for (size_t i = 0; i < n; i++) {
		h.acct[i].kind = accounts[i].kind;
		tg_strlcpy(h.acct[i].id, sizeof(h.acct[i].id), accounts[i].id);
		h.acct[i].in_flight = arg.in_flight[i];
		h.acct[i].tpm = has_limits(&accounts[i]) &&
		                accounts[i].budget->tpm_limit.set;
	}
	tg_strlcpy(h.request_id, sizeof(h.request_id), request_id);
out:
	if (rc == TG_OK)
		*out = h;
	return rc;
}

struct release_arg {
	const struct tg_ratelimit_hold *h;
	int64_t tokens;
};

static enum tg_rc
release_txn(struct tg_db *db, void *varg, struct tg_err *err)
{
	struct release_arg *a = varg;
	struct tg_db_param params[4];
	bool in_flight = false;
	enum tg_rc rc;

	for (size_t i = 0; i < a->h->n; i++) {
		in_flight |= a->h->acct[i].in_flight;
		if (a->tokens <= 0 || !a->h->acct[i].tpm)
			continue;
		params[0] = tg_db_str(tg_account_kind_name(a->h->acct[i].kind));
		params[1] = tg_db_str(a->h->acct[i].id);
		params[2] = tg_db_int(a->tokens);
		params[3] = tg_db_int(a->tokens);
		rc = tg_db_run(db,
		               "INSERT INTO rate_windows (kind, user_id,"
		               " window_start, requests, tokens) VALUES (?, ?,"
		               " DATE_FORMAT(UTC_TIMESTAMP(),"
		               " '%Y-%m-%d %H:%i:00'), 0, ?)"
		               " ON DUPLICATE KEY UPDATE tokens = tokens + ?",
		               params, 4, NULL, err);
		if (rc != TG_OK)
			return rc;
	}
	if (in_flight) {
		/* Every account's slot of the request at once. */
		params[0] = tg_db_str(a->h->request_id);
		rc = tg_db_run(db, "DELETE FROM in_flight WHERE request_id = ?",
		               params, 1, NULL, err);
		if (rc != TG_OK)
			return rc;
	}
	return TG_OK;
}

enum tg_rc
tg_ratelimit_release(struct tg_db *db, const struct tg_ratelimit_hold *h,
                     int64_t total_tokens, struct tg_err *err)
{
	struct release_arg arg;
	bool work = false;

	if (h == NULL || !h->active)
		return TG_OK;
	memset(&arg, 0, sizeof(arg));
	arg.h = h;
	arg.tokens = total_tokens > 0 ? total_tokens : 0;
	/* Tokens matter only to a tpm_limit; nothing to count otherwise. */
	for (size_t i = 0; i < h->n; i++)
		work |= h->acct[i].in_flight ||
		        (arg.tokens > 0 && h->acct[i].tpm);
	if (!work)
		return TG_OK;
	return tg_db_txn(db, release_txn, &arg, err);
}
