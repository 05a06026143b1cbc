/*
 * ledger: admission against a hard budget, settlement, and reclaiming the
 * holds of crashed processes (SPEC 4.3, 4.4; DESIGN "The ledger").
 *
 * Why it is safe under concurrency: admission is one conditional UPDATE of
 * the customer row (spend + reserved + estimate <= max_budget, reserved +=
 * estimate), which InnoDB serialises on that row, so no number of
 * processes or machines can together admit more than the budget allows.
 * Each hold is also a reservations row, so that settlement and the reclaim
 * of expired holds release it exactly once: whoever DELETEs the row
 * subtracts its amount, and nobody else does.
 *
 * Why it survives faults: every write is one transaction retried by
 * tg_db_txn() on deadlock and lost connection.  A retry after a COMMIT
 * whose answer was lost finds its own row (duplicate request_id) and knows
 * the first attempt went through, so nothing is counted twice.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ledger.h"
#include "period.h"
#include "util.h"

/* "YYYY-MM-DD HH:MM:SS.ffffff" (UTC) for Unix microseconds us. */
static void
time_us_sql(int64_t us, char buf[32])
{
	time_t secs = (time_t)(us / 1000000);
	long frac = (long)(us % 1000000);
	char base[20];

	if (frac < 0) {
		frac += 1000000;
		secs--;
	}
	tg_time_sql(secs, base);
	snprintf(buf, 32, "%s.%06ld", base, frac);
}

static int64_t
wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static enum tg_rc
refuse(const char *user_id, tg_money spend, tg_money max_budget,
       struct tg_err *err)
{
	char s[TG_MONEY_STRLEN], m[TG_MONEY_STRLEN];

	tg_money_format(spend, s, sizeof(s));
	tg_money_format(max_budget, m, sizeof(m));
	return tg_err_set(err, TG_ERR_BUDGET, NULL,
	                  "ExceededBudget: End User=%s over budget. Spend=%s, "
	                  "Budget=%s",
	                  user_id, s, m);
}

struct admit_arg {
	const struct tg_customer *c;
	tg_money estimate;
	long hold_seconds;
	const char *request_id;
	bool already; /* the hold exists: a retried commit had gone through */
};

/*
 * INSERT the hold first, then the conditional UPDATE: a refusal rolls the
 * INSERT back (TG_ERR_BUDGET from here means "refused", no message yet).
 */
static enum tg_rc
admit_txn(struct tg_db *db, void *varg, struct tg_err *err)
{
	struct admit_arg *a = varg;
	struct tg_db_param params[4];
	struct tg_db_result res;
	enum tg_rc rc;

	params[0] = tg_db_str(a->request_id);
	params[1] = tg_db_str(a->c->user_id);
	params[2] = tg_db_money(a->estimate);
	params[3] = tg_db_int(a->hold_seconds);
	rc = tg_db_exec(db,
	                "INSERT INTO reservations (request_id, user_id, amount,"
	                " expires_at, created_at) VALUES (?, ?,"
	                " CAST(? AS DECIMAL(20,10)),"
	                " UTC_TIMESTAMP(6) + INTERVAL ? SECOND,"
	                " UTC_TIMESTAMP(6))",
	                params, 4, &res, err);
	if (rc == TG_ERR_DB && tg_db_duplicate(db)) {
		a->already = true;
		return TG_ERR_CONFLICT; /* roll back nothing; caller: held */
	}
	if (rc != TG_OK)
		return rc;
	tg_db_result_free(&res);

	params[0] = tg_db_str(a->c->budget.budget_id);
	params[1] = tg_db_money(a->estimate);
	params[2] = tg_db_str(a->c->user_id);
	params[3] = tg_db_money(a->estimate);
	rc = tg_db_exec(
	        db,
	        "UPDATE customers c JOIN budgets b"
	        " ON b.budget_id = COALESCE(c.budget_id, ?)"
	        " SET c.reserved = c.reserved + CAST(? AS DECIMAL(20,10))"
	        " WHERE c.user_id = ? AND (b.max_budget IS NULL OR"
	        " c.spend + c.reserved + CAST(? AS DECIMAL(20,10))"
	        " <= b.max_budget)",
	        params, 4, &res, err);
	if (rc != TG_OK)
		return rc;
	rc = res.affected > 0 ? TG_OK : TG_ERR_BUDGET;
	tg_db_result_free(&res);
	return rc;
}

/* The current spend and max_budget, for the refusal message. */
static void
current_spend(struct tg_db *db, const struct tg_customer *c, tg_money *spend,
              tg_money *max_budget)
{
	struct tg_db_param params[2];
	struct tg_db_result res;
	struct tg_err ignored;
	tg_money s, m;

	*spend = c->spend;
	*max_budget = c->budget.max_budget.v;
	params[0] = tg_db_str(c->budget.budget_id);
	params[1] = tg_db_str(c->user_id);
	if (tg_db_exec(db,
	               "SELECT c.spend, b.max_budget FROM customers c JOIN"
	               " budgets b ON b.budget_id = COALESCE(c.budget_id, ?)"
	               " WHERE c.user_id = ?",
	               params, 2, &res, &ignored) != TG_OK)
		return;
	if (res.nrows == 1 && tg_db_cell(&res, 0, 0) != NULL &&
	    tg_db_cell(&res, 0, 1) != NULL &&
	    tg_money_parse(tg_db_cell(&res, 0, 0), &s) &&
	    tg_money_parse(tg_db_cell(&res, 0, 1), &m)) {
		*spend = s;
		*max_budget = m;
	}
	tg_db_result_free(&res);
}

enum tg_rc
tg_ledger_admit(struct tg_db *db, const struct tg_customer *c,
                tg_money estimate, enum tg_enforcement mode, long hold_seconds,
                const char *request_id, struct tg_reservation *out,
                struct tg_err *err)
{
	struct tg_reservation r;
	struct admit_arg arg;
	enum tg_rc rc = TG_OK;

	memset(&r, 0, sizeof(r));
	if (c == NULL || !c->has_budget || !c->budget.max_budget.set)
		goto out; /* nothing to enforce, nothing held */
	switch (mode) {
	case TG_ENFORCE_POST:
		/* LiteLLM's rule: admit while spend < max_budget. */
		if (c->spend >= c->budget.max_budget.v)
			rc = refuse(c->user_id, c->spend,
			            c->budget.max_budget.v, err);
		goto out;
	case TG_ENFORCE_RESERVE: break;
	}
	if (estimate < 0)
		return tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                  "negative cost estimate");
	memset(&arg, 0, sizeof(arg));
	arg.c = c;
	arg.estimate = estimate;
	arg.hold_seconds = hold_seconds > 0 ? hold_seconds : 1;
	arg.request_id = request_id;
	for (int attempt = 0; attempt < 2; attempt++) {
		rc = tg_db_txn(db, admit_txn, &arg, err);
		if (rc == TG_ERR_CONFLICT && arg.already)
			rc = TG_OK;
		if (rc != TG_ERR_BUDGET)
			break;
		if (attempt == 0) {
			/* Holds of dead processes may be in the way. */
			int n = 0;
			rc = tg_ledger_reclaim(db, c->user_id, 100, &n, err);
			if (rc != TG_OK)
				break;
			rc = TG_ERR_BUDGET;
			if (n == 0)
				break;
		}
	}
	if (rc == TG_ERR_BUDGET) {
		tg_money spend, max_budget;
		current_spend(db, c, &spend, &max_budget);
		rc = refuse(c->user_id, spend, max_budget, err);
	}
	if (rc != TG_OK)
		goto out;
	r.held = true;
	tg_strlcpy(r.request_id, sizeof(r.request_id), request_id);
	tg_strlcpy(r.user_id, sizeof(r.user_id), c->user_id);
	r.amount = estimate;
out:
	if (rc == TG_OK)
		*out = r;
	return rc;
}

struct settle_arg {
	const struct tg_customer *c;
	const struct tg_ledger_entry *e;
	const struct tg_reservation *r;
	bool already; /* the ledger row exists: settled by a lost commit */
};

static enum tg_rc
settle_txn(struct tg_db *db, void *varg, struct tg_err *err)
{
	struct settle_arg *a = varg;
	const struct tg_ledger_entry *e = a->e;
	struct tg_db_param params[16];
	struct tg_db_result res;
	char start_s[32], end_s[32], now_s[20], next_s[20];
	int64_t start_us, end_us;
	tg_money released = 0;
	bool has_next = false;
	struct tg_period period;
	time_t now;
	enum tg_rc rc;

	end_us = e->end_us != 0 ? e->end_us : wall_us();
	start_us = e->start_us != 0 ? e->start_us : end_us;
	time_us_sql(start_us, start_s);
	time_us_sql(end_us, end_s);
	params[0] = tg_db_str(e->request_id);
	params[1] = tg_db_str(e->end_user != NULL ? e->end_user : "");
	params[2] = tg_db_str(e->model);
	params[3] = tg_db_str(e->model_id);
	params[4] = tg_db_str(e->api_key_hash);
	params[5] = tg_db_str(e->call_type);
	params[6] = tg_db_str(e->success ? "success" : "failure");
	params[7] = tg_db_money(e->spend);
	params[8] = tg_db_int(e->prompt_tokens);
	params[9] = tg_db_int(e->completion_tokens);
	params[10] = tg_db_int(e->total_tokens);
	params[11] = tg_db_str(start_s);
	params[12] = tg_db_str(end_s);
	params[13] = tg_db_int((end_us - start_us) / 1000);
	params[14] = tg_db_str(e->api_base);
	params[15] = tg_db_str(e->metadata);
	rc = tg_db_exec(db,
	                "INSERT INTO spend_logs (request_id, end_user, model,"
	                " model_id, api_key, call_type, status, spend,"
	                " prompt_tokens, completion_tokens, total_tokens,"
	                " start_time, end_time, request_duration_ms, api_base,"
	                " metadata) VALUES (?, ?, ?, ?, ?, ?, ?,"
	                " CAST(? AS DECIMAL(20,10)), ?, ?, ?, ?, ?, ?, ?, ?)",
	                params, 16, &res, err);
	if (rc == TG_ERR_DB && tg_db_duplicate(db)) {
		a->already = true;
		return TG_ERR_CONFLICT;
	}
	if (rc != TG_OK)
		return rc;
	tg_db_result_free(&res);

	if (a->r != NULL && a->r->held) {
		params[0] = tg_db_str(a->r->request_id);
		rc = tg_db_exec(db,
		                "DELETE FROM reservations WHERE request_id = ?",
		                params, 1, &res, err);
		if (rc != TG_OK)
			return rc;
		/* Only the one who deletes the hold gives its amount back. */
		if (res.affected > 0)
			released = a->r->amount;
		tg_db_result_free(&res);
	}
	if (a->c == NULL)
		return TG_OK;

	now = (time_t)(end_us / 1000000);
	if (a->c->has_budget && a->c->budget.budget_duration != NULL &&
	    tg_period_parse(a->c->budget.budget_duration, &period)) {
		tg_time_sql(tg_period_next(&period, now), next_s);
		has_next = true;
	}
	tg_time_sql(now, now_s);
	/*
	 * A due reset first (spend is assigned before spend_reset_at, so it
	 * tests the old value), then the charge and the release.
	 */
	params[0] = has_next ? tg_db_str(next_s) : tg_db_null();
	params[1] = tg_db_str(now_s);
	params[2] = tg_db_money(e->spend);
	params[3] = params[0];
	params[4] = params[1];
	params[5] = params[0];
	params[6] = tg_db_money(released);
	params[7] = tg_db_str(a->c->user_id);
	rc = tg_db_exec(db,
	                "UPDATE customers SET"
	                " spend = IF(? IS NOT NULL AND spend_reset_at <= ?, 0,"
	                " spend) + CAST(? AS DECIMAL(20,10)),"
	                " spend_reset_at = IF(? IS NOT NULL AND"
	                " (spend_reset_at IS NULL OR spend_reset_at <= ?), ?,"
	                " spend_reset_at),"
	                " reserved = GREATEST(reserved -"
	                " CAST(? AS DECIMAL(20,10)), 0)"
	                " WHERE user_id = ?",
	                params, 8, &res, err);
	if (rc != TG_OK)
		return rc;
	tg_db_result_free(&res);
	return TG_OK;
}

enum tg_rc
tg_ledger_settle(struct tg_db *db, const struct tg_customer *c,
                 const struct tg_ledger_entry *e,
                 const struct tg_reservation *r, struct tg_err *err)
{
	struct settle_arg arg;
	enum tg_rc rc;

	if (e->spend < 0)
		return tg_err_set(err, TG_ERR_INTERNAL, NULL, "negative spend");
	memset(&arg, 0, sizeof(arg));
	arg.c = c;
	arg.e = e;
	arg.r = r;
	rc = tg_db_txn(db, settle_txn, &arg, err);
	if (rc == TG_ERR_CONFLICT && arg.already)
		rc = TG_OK;
	return rc;
}

struct reclaim_arg {
	const char *user_id;
	int limit;
	int reclaimed;
};

static enum tg_rc
reclaim_txn(struct tg_db *db, void *varg, struct tg_err *err)
{
	struct reclaim_arg *a = varg;
	struct tg_db_param params[2];
	struct tg_db_result holds, res;
	enum tg_rc rc;

	a->reclaimed = 0;
	/* SKIP LOCKED: holds being settled right now are not ours to take. */
	if (a->user_id != NULL) {
		params[0] = tg_db_str(a->user_id);
		params[1] = tg_db_int(a->limit);
		rc = tg_db_exec(db,
		                "SELECT request_id, user_id, amount FROM"
		                " reservations WHERE user_id = ? AND expires_at"
		                " <= UTC_TIMESTAMP(6) ORDER BY expires_at"
		                " LIMIT ? FOR UPDATE SKIP LOCKED",
		                params, 2, &holds, err);
	} else {
		params[0] = tg_db_int(a->limit);
		rc = tg_db_exec(db,
		                "SELECT request_id, user_id, amount FROM"
		                " reservations WHERE expires_at <="
		                " UTC_TIMESTAMP(6) ORDER BY expires_at"
		                " LIMIT ? FOR UPDATE SKIP LOCKED",
		                params, 1, &holds, err);
	}
	if (rc != TG_OK)
		return rc;
	for (size_t i = 0; i < holds.nrows; i++) {
		const char *rid = tg_db_cell(&holds, i, 0);
		const char *uid = tg_db_cell(&holds, i, 1);
		const char *amount_s = tg_db_cell(&holds, i, 2);
		tg_money amount;

		if (rid == NULL || uid == NULL || amount_s == NULL ||
		    !tg_money_parse(amount_s, &amount)) {
			rc = tg_err_set(err, TG_ERR_INTERNAL, NULL,
			                "malformed reservation row");
			goto out;
		}
		params[0] = tg_db_str(rid);
		rc = tg_db_exec(db,
		                "DELETE FROM reservations WHERE request_id = ?",
		                params, 1, &res, err);
		if (rc != TG_OK)
			goto out;
		if (res.affected == 0) {
			tg_db_result_free(&res);
			continue;
		}
		tg_db_result_free(&res);
		params[0] = tg_db_money(amount);
		params[1] = tg_db_str(uid);
		rc = tg_db_exec(
		        db,
		        "UPDATE customers SET reserved = GREATEST(reserved"
		        " - CAST(? AS DECIMAL(20,10)), 0) WHERE user_id = ?",
		        params, 2, &res, err);
		if (rc != TG_OK)
			goto out;
		tg_db_result_free(&res);
		a->reclaimed++;
	}
out:
	tg_db_result_free(&holds);
	return rc;
}

enum tg_rc
tg_ledger_reclaim(struct tg_db *db, const char *user_id, int limit,
                  int *reclaimed, struct tg_err *err)
{
	struct reclaim_arg arg;
	enum tg_rc rc;

	memset(&arg, 0, sizeof(arg));
	arg.user_id = user_id;
	arg.limit = limit > 0 ? limit : 100;
	rc = tg_db_txn(db, reclaim_txn, &arg, err);
	if (rc == TG_OK && reclaimed != NULL)
		*reclaimed = arg.reclaimed;
	return rc;
}
