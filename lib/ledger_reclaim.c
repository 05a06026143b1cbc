/*
 * ledger_reclaim: charging the holds of requests whose process died
 * (SPEC 4.3; the rule is in ledger.h).  Every so often, after a response,
 * a process takes the holds whose deadline passed (FOR UPDATE SKIP LOCKED:
 * those being settled right now are not its to take) and charges each at
 * its amount in an "unsettled" ledger row, as a settlement would: a due
 * period reset first, then the charge, in one transaction.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "events.h"
#include "ledger.h"
#include "ledger_priv.h"
#include "period.h"
#include "util.h"

struct reclaim_arg {
	const char *user_id;
	const char *default_budget_id;
	const struct tg_alerting *alerts;
	int limit;
	int reclaimed;
};

/*
 * The customer's period as the reclaim's charge finds it: *has_next and
 * next_s when its budget has one, now_s (the server's clock), and
 * period_end, the end of the period the charge lands in ("" for none).
 * The row is locked until the transaction ends.
 */
static enum tg_rc
reclaim_period(struct tg_db *db, const struct reclaim_arg *a, const char *uid,
               bool *has_next, char next_s[20], char now_s[20],
               char period_end[32], struct tg_err *err)
{
	struct tg_db_param params[2];
	struct tg_db_result res;
	struct tg_period period;
	time_t now;
	enum tg_rc rc;

	*has_next = false;
	period_end[0] = '\0';
	params[0] = tg_db_str(a->default_budget_id);
	params[1] = tg_db_str(uid);
	rc = tg_db_exec(db,
	                "SELECT DATE_FORMAT(c.spend_reset_at, '%Y-%m-%d %T'),"
	                " b.budget_duration, (c.spend_reset_at IS NULL OR"
	                " c.spend_reset_at <= UTC_TIMESTAMP()),"
	                " DATE_FORMAT(UTC_TIMESTAMP(), '%Y-%m-%d %T')"
	                " FROM customers c LEFT JOIN budgets b"
	                " ON b.budget_id = COALESCE(c.budget_id, ?)"
	                " WHERE c.user_id = ? FOR UPDATE",
	                params, 2, &res, err);
	if (rc != TG_OK)
		return rc;
	if (res.nrows == 1 && tg_db_cell(&res, 0, 3) != NULL &&
	    tg_time_parse_sql(tg_db_cell(&res, 0, 3), &now)) {
		tg_strlcpy(now_s, 20, tg_db_cell(&res, 0, 3));
		if (tg_db_cell(&res, 0, 1) != NULL &&
		    tg_period_parse(tg_db_cell(&res, 0, 1), &period)) {
			tg_time_sql(tg_period_next(&period, now), next_s);
			*has_next = true;
		}
		if (*has_next && tg_db_cell(&res, 0, 2) != NULL &&
		    strcmp(tg_db_cell(&res, 0, 2), "1") == 0)
			tg_strlcpy(period_end, 32, next_s); /* a new period */
		else if (tg_db_cell(&res, 0, 0) != NULL)
			tg_strlcpy(period_end, 32, tg_db_cell(&res, 0, 0));
	}
	tg_db_result_free(&res);
	return TG_OK;
}

/* Charge one expired hold (its reservations row is locked by us). */
static enum tg_rc
charge_hold(struct tg_db *db, const struct reclaim_arg *a,
            const struct tg_db_result *holds, size_t i, bool *done,
            struct tg_err *err)
{
	const char *rid = tg_db_cell(holds, i, 0);
	const char *uid = tg_db_cell(holds, i, 1);
	const char *amount_s = tg_db_cell(holds, i, 2);
	const char *start_s = tg_db_cell(holds, i, 5);
	const char *expired_s = tg_db_cell(holds, i, 6);
	struct tg_db_param params[8];
	struct tg_db_result res;
	struct json_object *m;
	char next_s[20] = "", now_s[20] = "", period_end[32];
	char reason[160];
	char *meta;
	tg_money amount;
	bool charged = true, has_next;
	enum tg_rc rc;

	*done = false;
	if (rid == NULL || uid == NULL || amount_s == NULL ||
	    !tg_money_parse(amount_s, &amount))
		return tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                  "malformed reservation row");
	params[0] = tg_db_str(rid);
	rc = tg_db_exec(db, "DELETE FROM reservations WHERE request_id = ?",
	                params, 1, &res, err);
	if (rc != TG_OK)
		return rc;
	if (res.affected == 0) {
		tg_db_result_free(&res);
		return TG_OK;
	}
	tg_db_result_free(&res);
	rc = reclaim_period(db, a, uid, &has_next, next_s, now_s, period_end,
	                    err);
	if (rc != TG_OK)
		return rc;

	/* period_end: which period's spend the charge went into, so that a
	 * settlement replacing this row later corrects only that one. */
	snprintf(reason, sizeof(reason),
	         "the request's process ended before it was settled (hold "
	         "expired %.40s UTC); charged the hold, an upper bound of its "
	         "cost",
	         expired_s != NULL ? expired_s : "");
	m = json_object_new_object();
	json_object_object_add(m, "reason", json_object_new_string(reason));
	json_object_object_add(
	        m, "period_end",
	        period_end[0] ? json_object_new_string(period_end) : NULL);
	meta = tg_xstrdup(
	        json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN));
	json_object_put(m);
	params[0] = tg_db_str(rid);
	params[1] = tg_db_str(uid);
	params[2] = tg_db_str(tg_db_cell(holds, i, 3));
	params[3] = tg_db_str(tg_db_cell(holds, i, 4));
	params[4] = tg_db_money(amount);
	params[5] = tg_db_str(start_s);
	params[6] = tg_db_str(meta);
	rc = tg_db_exec(db,
	                "INSERT INTO spend_logs (request_id, end_user, model,"
	                " api_key, call_type, status, spend, start_time,"
	                " end_time, request_duration_ms, metadata) VALUES"
	                " (?, ?, ?, ?, 'acompletion', 'unsettled',"
	                " CAST(? AS DECIMAL(20,10)),"
	                " COALESCE(?, UTC_TIMESTAMP(6)), UTC_TIMESTAMP(6), 0,"
	                " ?)",
	                params, 7, &res, err);
	free(meta);
	if (rc == TG_ERR_DB && tg_db_duplicate(db)) {
		/* Settled after all (the hold outlived its row): release. */
		charged = false;
		rc = TG_OK;
	} else if (rc == TG_OK) {
		tg_db_result_free(&res);
	}
	if (rc != TG_OK)
		return rc;
	/* As a settlement would: a due reset first, then the charge. */
	rc = tg_ledger_charge_account(db, uid, has_next ? next_s : NULL, now_s,
	                              charged ? amount : 0, amount, err);
	if (rc == TG_OK && charged)
		rc = tg_events_charged(db, a->alerts, uid, a->default_budget_id,
		                       false, 0, NULL, err);
	if (rc != TG_OK)
		return rc;
	*done = true;
	return TG_OK;
}

static enum tg_rc
reclaim_txn(struct tg_db *db, void *varg, struct tg_err *err)
{
	struct reclaim_arg *a = varg;
	struct tg_db_param params[2];
	struct tg_db_result holds;
	enum tg_rc rc;

	a->reclaimed = 0;
	/* SKIP LOCKED: holds being settled right now are not ours to take. */
	if (a->user_id != NULL) {
		params[0] = tg_db_str(a->user_id);
		params[1] = tg_db_int(a->limit);
		rc = tg_db_exec(db,
		                "SELECT request_id, user_id, amount, model,"
		                " api_key, start_time, expires_at FROM"
		                " reservations WHERE user_id = ? AND expires_at"
		                " <= UTC_TIMESTAMP(6) ORDER BY expires_at"
		                " LIMIT ? FOR UPDATE SKIP LOCKED",
		                params, 2, &holds, err);
	} else {
		params[0] = tg_db_int(a->limit);
		rc = tg_db_exec(db,
		                "SELECT request_id, user_id, amount, model,"
		                " api_key, start_time, expires_at FROM"
		                " reservations WHERE expires_at <="
		                " UTC_TIMESTAMP(6) ORDER BY expires_at"
		                " LIMIT ? FOR UPDATE SKIP LOCKED",
		                params, 1, &holds, err);
	}
	if (rc != TG_OK)
		return rc;
	for (size_t i = 0; i < holds.nrows; i++) {
		bool done;

		rc = charge_hold(db, a, &holds, i, &done, err);
		if (rc != TG_OK)
			break;
		if (done)
			a->reclaimed++;
	}
	tg_db_result_free(&holds);
	return rc;
}

enum tg_rc
tg_ledger_reclaim(struct tg_db *db, const char *user_id,
                  const char *default_budget_id,
                  const struct tg_alerting *alerts, int limit, int *reclaimed,
                  struct tg_err *err)
{
	struct reclaim_arg arg;
	enum tg_rc rc;

	memset(&arg, 0, sizeof(arg));
	arg.user_id = user_id;
	arg.default_budget_id = default_budget_id;
	arg.alerts = alerts;
	arg.limit = limit > 0 ? limit : 100;
	rc = tg_db_txn(db, reclaim_txn, &arg, err);
	if (rc == TG_OK && reclaimed != NULL)
		*reclaimed = arg.reclaimed;
	return rc;
}
