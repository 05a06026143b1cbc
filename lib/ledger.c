/*
 * ledger: holds, admission against a hard budget and settlement (SPEC 4.3,
 * 4.4; DESIGN "The ledger").  Charging the holds of crashed processes is in
 * lib/ledger_reclaim.c; the rule for them is in ledger.h.
 *
 * Why it is safe under concurrency: admission is one conditional UPDATE of
 * the customer row (spend + reserved + estimate <= max_budget, reserved +=
 * estimate), which InnoDB serialises on that row, so no number of
 * processes or machines can together admit more than the budget allows.
 * Each hold is also a reservations row, so that settlement and the reclaim
 * of expired holds release it exactly once: whoever DELETEs the row
 * subtracts its amount (and the reclaim charges it), and nobody else does.
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

#include <json-c/json.h>

#include "events.h"
#include "log.h"
#include "jsonx.h"
#include "ledger.h"
#include "ledger_priv.h"
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
	const struct tg_customer *c; /* NULL: no customer */
	tg_money estimate;
	const struct tg_hold_request *hr;
	bool conditional; /* reserve mode with a max_budget */
	bool already; /* the hold exists: a retried commit had gone through */
};

/*
 * INSERT the hold first, then add it to the customer's reserved (only if
 * the budget allows it, when conditional): a refusal rolls the INSERT back
 * (TG_ERR_BUDGET from here means "refused", no message yet).
 */
static enum tg_rc
admit_txn(struct tg_db *db, void *varg, struct tg_err *err)
{
	struct admit_arg *a = varg;
	struct tg_db_param params[7];
	struct tg_db_result res;
	char start_s[32];
	enum tg_rc rc;

	time_us_sql(a->hr->start_us != 0 ? a->hr->start_us : wall_us(),
	            start_s);
	params[0] = tg_db_str(a->hr->request_id);
	params[1] = tg_db_str(a->c != NULL ? a->c->user_id : "");
	params[2] = tg_db_money(a->estimate);
	params[3] = tg_db_int(a->hr->hold_seconds);
	params[4] = tg_db_str(a->hr->model);
	params[5] = tg_db_str(a->hr->api_key_hash);
	params[6] = tg_db_str(start_s);
	rc = tg_db_exec(db,
	                "INSERT INTO reservations (request_id, user_id, amount,"
	                " expires_at, created_at, model, api_key, start_time)"
	                " VALUES (?, ?, CAST(? AS DECIMAL(20,10)),"
	                " UTC_TIMESTAMP(6) + INTERVAL ? SECOND,"
	                " UTC_TIMESTAMP(6), ?, ?, ?)",
	                params, 7, &res, err);
	if (rc == TG_ERR_DB && tg_db_duplicate(db)) {
		a->already = true;
		return TG_ERR_CONFLICT; /* roll back nothing; caller: held */
	}
	if (rc != TG_OK)
		return rc;
	tg_db_result_free(&res);
	if (a->c == NULL)
		return TG_OK;

	if (!a->conditional) {
		params[0] = tg_db_money(a->estimate);
		params[1] = tg_db_str(a->c->user_id);
		rc = tg_db_exec(db,
		                "UPDATE customers SET reserved = reserved +"
		                " CAST(? AS DECIMAL(20,10)) WHERE user_id = ?",
		                params, 2, &res, err);
		if (rc == TG_OK)
			tg_db_result_free(&res);
		return rc;
	}
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
                tg_money estimate, enum tg_enforcement mode,
                const struct tg_hold_request *hr, struct tg_reservation *out,
                struct tg_err *err)
{
	struct tg_reservation r;
	struct admit_arg arg;
	bool has_max = c != NULL && c->has_budget && c->budget.max_budget.set;
	enum tg_rc rc = TG_OK;

	memset(&r, 0, sizeof(r));
	memset(&arg, 0, sizeof(arg));
	if (estimate < 0)
		return tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                  "negative cost estimate");
	switch (mode) {
	case TG_ENFORCE_POST:
		/* LiteLLM's rule: admit while spend < max_budget.  The hold
		 * is still taken: it is how a crash is charged. */
		if (has_max && c->spend >= c->budget.max_budget.v) {
			struct tg_err ev_err;

			tg_err_clear(&ev_err);
			if (tg_events_refused(db, hr->alerts, c->user_id,
			                      c->budget.budget_id,
			                      hr->api_key_hash,
			                      &ev_err) != TG_OK)
				tg_log_warn("the budget_crossed event of a "
				            "refusal was not written: %s",
				            ev_err.message);
			return refuse(c->user_id, c->spend,
			              c->budget.max_budget.v, err);
		}
		break;
	case TG_ENFORCE_RESERVE: arg.conditional = has_max; break;
	}
	arg.c = c;
	arg.estimate = estimate;
	arg.hr = hr;
	/*
	 * No reclaim of expired holds before refusing: a reclaimed hold is
	 * charged, not refunded, so it would not make room.
	 */
	rc = tg_db_txn(db, admit_txn, &arg, err);
	if (rc == TG_ERR_CONFLICT && arg.already)
		rc = TG_OK;
	if (rc == TG_ERR_BUDGET) {
		tg_money spend, max_budget;
		struct tg_err ev_err;

		current_spend(db, c, &spend, &max_budget);
		tg_err_clear(&ev_err);
		if (tg_events_refused(db, hr->alerts, c->user_id,
		                      c->budget.budget_id, hr->api_key_hash,
		                      &ev_err) != TG_OK)
			tg_log_warn("the budget_crossed event of a refusal "
			            "was not written: %s",
			            ev_err.message);
		rc = refuse(c->user_id, spend, max_budget, err);
	}
	if (rc != TG_OK)
		return rc;
	r.held = true;
	r.budgeted = arg.conditional;
	tg_strlcpy(r.request_id, sizeof(r.request_id), hr->request_id);
	tg_strlcpy(r.user_id, sizeof(r.user_id), c != NULL ? c->user_id : "");
	r.amount = estimate;
	*out = r;
	return TG_OK;
}

struct tg_ledger_account
tg_ledger_account_of(const struct tg_customer *c)
{
	struct tg_ledger_account a;

	memset(&a, 0, sizeof(a));
	if (c == NULL)
		return a;
	a.user_id = c->user_id;
	if (c->has_budget) {
		a.budget_id = c->budget.budget_id;
		a.budget_duration = c->budget.budget_duration;
	}
	return a;
}

enum tg_rc
tg_ledger_charge_account(struct tg_db *db, const char *user_id,
                         const char *next_s, const char *now_s, tg_money charge,
                         tg_money release, struct tg_err *err)
{
	struct tg_db_param params[8];
	struct tg_db_result res;
	enum tg_rc rc;

	params[0] = tg_db_str(next_s);
	params[1] = tg_db_str(now_s);
	params[2] = tg_db_money(charge);
	params[3] = params[0];
	params[4] = params[1];
	params[5] = params[0];
	params[6] = tg_db_money(release);
	params[7] = tg_db_str(user_id);
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
	if (rc == TG_OK)
		tg_db_result_free(&res);
	return rc;
}

struct settle_arg {
	const struct tg_ledger_account *acct;
	const struct tg_ledger_entry *e;
	const struct tg_reservation *r;
	tg_money charged;
	bool already; /* the ledger row exists: settled by a lost commit */
};

/*
 * What a budgeted hold may be charged when its cost exceeds it (an upstream
 * that ignored the output bound): as much as keeps spend + reserved <=
 * max_budget once the hold is gone, so that neither this charge nor the
 * other holds' settlements take spend past max_budget.  *room gets it;
 * false when the customer has no max_budget (nothing to cap).  The row is
 * locked until the transaction ends.
 */
static enum tg_rc
over_hold_room(struct tg_db *db, const struct settle_arg *a, const char *next_s,
               const char *now_s, bool *capped, tg_money *room,
               struct tg_err *err)
{
	struct tg_db_param params[4];
	struct tg_db_result res;
	tg_money spend, reserved, max_budget;
	enum tg_rc rc;

	*capped = false;
	/* spend as the settlement's UPDATE will see it: reset only when the
	 * budget has a period (next_s), as there. */
	params[0] = tg_db_str(next_s);
	params[1] = tg_db_str(now_s);
	params[2] = tg_db_str(a->acct->budget_id);
	params[3] = tg_db_str(a->acct->user_id);
	rc = tg_db_exec(db,
	                "SELECT IF(? IS NOT NULL AND"
	                " c.spend_reset_at <= ?, 0, c.spend), c.reserved,"
	                " b.max_budget FROM customers c LEFT JOIN budgets b"
	                " ON b.budget_id = COALESCE(c.budget_id, ?)"
	                " WHERE c.user_id = ? FOR UPDATE",
	                params, 4, &res, err);
	if (rc != TG_OK)
		return rc;
	if (res.nrows == 1 && tg_db_cell(&res, 0, 2) != NULL &&
	    tg_money_parse(tg_db_cell(&res, 0, 0), &spend) &&
	    tg_money_parse(tg_db_cell(&res, 0, 1), &reserved) &&
	    tg_money_parse(tg_db_cell(&res, 0, 2), &max_budget)) {
		/* The hold is in reserved, or (reclaimed) already in spend:
		 * either way it is given back before the room is measured. */
		*room = max_budget - spend - reserved + a->r->amount;
		if (*room < 0)
			*room = 0;
		*capped = true;
	}
	tg_db_result_free(&res);
	return TG_OK;
}

/* metadata with "over_hold": true and "uncapped_cost" (caller frees). */
static char *
over_hold_metadata(const char *metadata, tg_money uncapped)
{
	struct json_object *m = NULL;
	char *out;

	if (metadata != NULL)
		m = json_tokener_parse(metadata);
	if (m == NULL || !json_object_is_type(m, json_type_object)) {
		json_object_put(m);
		m = json_object_new_object();
	}
	json_object_object_add(m, "over_hold", json_object_new_boolean(1));
	json_object_object_add(m, "uncapped_cost", tg_json_money(uncapped));
	out = tg_xstrdup(
	        json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN));
	json_object_put(m);
	return out;
}

/* What a row already written for the request says. */
struct existing {
	bool replace;        /* "unsettled": this settlement replaces it */
	tg_money spend;      /* what it charged */
	bool period_known;   /* an unsettled row's metadata.period_end */
	char period_end[20]; /* "" for a customer without periods */
};

/*
 * The row of the request is there already.  A settled one means this is
 * the retry of a commit that went through; an unsettled one (its hold
 * expired while this settlement waited in a spool) is replaced.
 */
static enum tg_rc
existing_row(struct tg_db *db, const struct settle_arg *a, struct existing *x,
             struct tg_err *err)
{
	struct tg_db_param params[1];
	struct tg_db_result res;
	struct json_object *meta, *v;
	enum tg_rc rc;

	memset(x, 0, sizeof(*x));
	params[0] = tg_db_str(a->e->request_id);
	rc = tg_db_exec(db,
	                "SELECT status, spend, metadata FROM spend_logs WHERE"
	                " request_id = ? FOR UPDATE",
	                params, 1, &res, err);
	if (rc != TG_OK)
		return rc;
	if (res.nrows == 1 && tg_db_cell(&res, 0, 1) != NULL &&
	    tg_money_parse(tg_db_cell(&res, 0, 1), &x->spend) &&
	    tg_db_cell(&res, 0, 0) != NULL &&
	    strcmp(tg_db_cell(&res, 0, 0), "unsettled") == 0) {
		x->replace = true;
		meta = tg_db_cell(&res, 0, 2) != NULL
		               ? json_tokener_parse(tg_db_cell(&res, 0, 2))
		               : NULL;
		if (meta != NULL &&
		    json_object_object_get_ex(meta, "period_end", &v)) {
			x->period_known = true;
			if (json_object_is_type(v, json_type_string))
				tg_strlcpy(x->period_end, sizeof(x->period_end),
				           json_object_get_string(v));
		}
		json_object_put(meta);
	}
	tg_db_result_free(&res);
	return TG_OK;
}

static enum tg_rc
settle_txn(struct tg_db *db, void *varg, struct tg_err *err)
{
	struct settle_arg *a = varg;
	const struct tg_ledger_entry *e = a->e;
	struct tg_db_param params[16];
	struct tg_db_result res;
	char start_s[32], end_s[32], now_s[20], next_s[20];
	char *meta = NULL;
	int64_t start_us, end_us;
	tg_money released = 0, room = 0;
	bool has_next = false, capped = false;
	struct existing x;
	struct tg_period period;
	time_t now;
	enum tg_rc rc;

	memset(&x, 0, sizeof(x));
	end_us = e->end_us != 0 ? e->end_us : wall_us();
	start_us = e->start_us != 0 ? e->start_us : end_us;
	now = (time_t)(end_us / 1000000);
	tg_time_sql(now, now_s);
	time_us_sql(start_us, start_s);
	time_us_sql(end_us, end_s);
	if (a->acct->budget_duration != NULL &&
	    tg_period_parse(a->acct->budget_duration, &period)) {
		tg_time_sql(tg_period_next(&period, now), next_s);
		has_next = true;
	}

	a->charged = e->spend;
	if (a->acct->user_id != NULL && a->r != NULL && a->r->held &&
	    a->r->budgeted && e->spend > a->r->amount) {
		rc = over_hold_room(db, a, has_next ? next_s : NULL, now_s,
		                    &capped, &room, err);
		if (rc != TG_OK)
			return rc;
		if (capped && room < a->charged)
			a->charged = room;
		if (capped)
			meta = over_hold_metadata(e->metadata, e->spend);
	}

	params[0] = tg_db_str(e->request_id);
	params[1] = tg_db_str(e->end_user != NULL ? e->end_user : "");
	params[2] = tg_db_str(e->model);
	params[3] = tg_db_str(e->model_id);
	params[4] = tg_db_str(e->api_key_hash);
	params[5] = tg_db_str(e->call_type);
	params[6] = tg_db_str(e->success ? "success" : "failure");
	params[7] = tg_db_money(a->charged);
	params[8] = tg_db_int(e->prompt_tokens);
	params[9] = tg_db_int(e->completion_tokens);
	params[10] = tg_db_int(e->total_tokens);
	params[11] = tg_db_str(start_s);
	params[12] = tg_db_str(end_s);
	params[13] = tg_db_int((end_us - start_us) / 1000);
	params[14] = tg_db_str(e->api_base);
	params[15] = tg_db_str(meta != NULL ? meta : e->metadata);
	rc = tg_db_exec(db,
	                "INSERT INTO spend_logs (request_id, end_user, model,"
	                " model_id, api_key, call_type, status, spend,"
	                " prompt_tokens, completion_tokens, total_tokens,"
	                " start_time, end_time, request_duration_ms, api_base,"
	                " metadata) VALUES (?, ?, ?, ?, ?, ?, ?,"
	                " CAST(? AS DECIMAL(20,10)), ?, ?, ?, ?, ?, ?, ?, ?)",
	                params, 16, &res, err);
	if (rc == TG_ERR_DB && tg_db_duplicate(db)) {
		rc = existing_row(db, a, &x, err);
		if (rc != TG_OK)
			goto out;
		if (!x.replace) {
			/* Settled by the first commit: what it charged. */
			a->charged = x.spend;
			a->already = true;
			rc = TG_ERR_CONFLICT;
			goto out;
		}
		/* The same values, in an UPDATE of the unsettled row. */
		params[0] = params[6];
		params[1] = params[7];
		for (int i = 2; i < 9; i++)
			params[i] = params[i + 6];
		params[9] = params[15];
		params[10] = tg_db_str(e->model_id);
		params[11] = tg_db_str(e->request_id);
		rc = tg_db_exec(
		        db,
		        "UPDATE spend_logs SET status = ?,"
		        " spend = CAST(? AS DECIMAL(20,10)),"
		        " prompt_tokens = ?, completion_tokens = ?,"
		        " total_tokens = ?, start_time = ?, end_time = ?,"
		        " request_duration_ms = ?, api_base = ?,"
		        " metadata = ?, model_id = ? WHERE request_id = ?"
		        " AND status = 'unsettled'",
		        params, 12, &res, err);
	}
	if (rc != TG_OK)
		goto out;
	tg_db_result_free(&res);

	if (a->r != NULL && a->r->held) {
		params[0] = tg_db_str(a->r->request_id);
		rc = tg_db_exec(db,
		                "DELETE FROM reservations WHERE request_id = ?",
		                params, 1, &res, err);
		if (rc != TG_OK)
			goto out;
		/* Only the one who deletes the hold gives its amount back. */
		if (res.affected > 0)
			released = a->r->amount;
		tg_db_result_free(&res);
	}
	if (a->acct->user_id == NULL)
		goto out;

	if (x.replace) {
		/*
		 * The unsettled charge went into the period that was current
		 * when the hold was reclaimed (its period_end).  Only while
		 * that period is still the customer's, and no reset is due, is
		 * it corrected to the real charge; a closed period's counter is
		 * gone, and the row alone tells the truth about it.
		 */
		params[0] = has_next ? tg_db_str(next_s) : tg_db_null();
		params[1] = tg_db_str(now_s);
		params[2] = x.period_known && x.period_end[0] != '\0'
		                    ? tg_db_str(x.period_end)
		                    : tg_db_null();
		params[3] = tg_db_money(a->charged);
		params[4] = tg_db_money(x.spend);
		params[5] = tg_db_str(a->acct->user_id);
		rc = tg_db_exec(db,
		                "UPDATE customers SET"
		                " spend = IF(? IS NOT NULL AND"
		                " spend_reset_at <= ?, spend,"
		                " spend + IF(spend_reset_at <=>"
		                " CAST(? AS DATETIME(6)),"
		                " CAST(? AS DECIMAL(20,10))"
		                " - CAST(? AS DECIMAL(20,10)), 0))"
		                " WHERE user_id = ?",
		                params, 6, &res, err);
		if (rc == TG_OK)
			tg_db_result_free(&res);
	} else {
		rc = tg_ledger_charge_account(db, a->acct->user_id,
		                              has_next ? next_s : NULL, now_s,
		                              a->charged, released, err);
	}
	if (rc == TG_OK)
		rc = tg_events_charged(db, a->acct->alerts, a->acct->user_id,
		                       a->acct->budget_id, e->success,
		                       a->charged, e->api_key_hash, err);
out:
	free(meta);
	return rc;
}

enum tg_rc
tg_ledger_settle(struct tg_db *db, const struct tg_ledger_account *acct,
                 const struct tg_ledger_entry *e,
                 const struct tg_reservation *r, tg_money *charged,
                 struct tg_err *err)
{
	struct tg_ledger_account none;
	struct settle_arg arg;
	enum tg_rc rc;

	if (e->spend < 0)
		return tg_err_set(err, TG_ERR_INTERNAL, NULL, "negative spend");
	memset(&none, 0, sizeof(none));
	memset(&arg, 0, sizeof(arg));
	arg.acct = acct != NULL ? acct : &none;
	arg.e = e;
	arg.r = r;
	rc = tg_db_txn(db, settle_txn, &arg, err);
	if (rc == TG_ERR_CONFLICT && arg.already)
		rc = TG_OK; /* charged by the first commit, as computed here */
	if (rc == TG_OK && charged != NULL)
		*charged = arg.charged;
	return rc;
}
