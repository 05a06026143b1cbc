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

/* A hold charged by the reclaim: its model and amount, for /metrics once
 * the transaction commits. */
struct charged_hold {
	char model[256];
	tg_money amount;
};

struct reclaim_arg {
	const char *user_id;
	const char *default_budget_id;
	const struct tg_alerting *alerts;
	int limit;
	int reclaimed;
	struct charged_hold *charged; /* limit of them */
	size_t ncharged;
};

/* An account of an expired hold, as the reclaim's charge finds it. */
struct reclaimed {
	enum tg_account_kind kind;
	const char *id;
	bool has_next;       /* its budget has a period ... */
	char next_s[20];     /* ... that would end here if one began now */
	char now_s[20];      /* the server's clock */
	char period_end[32]; /* the end of the period the charge lands in
	                        ("" for none) */
	char key_alias[256]; /* a key's, for its events ("" for none) */
	bool model;          /* the hold is on its model_spend row too ... */
	char model_period_end[32]; /* ... whose period ends then ("" none) */
};

/* The end of the period of p's model_spend row for model (the row locked)
 * into p->model_period_end, for the unsettled row's metadata. */
static enum tg_rc
model_period(struct tg_db *db, struct reclaimed *p, const char *model,
             struct tg_err *err)
{
	struct tg_db_param params[3];
	struct tg_db_result res;
	enum tg_rc rc;

	params[0] = tg_db_str(tg_account_kind_name(p->kind));
	params[1] = tg_db_str(p->id);
	params[2] = tg_db_str(model);
	rc = tg_db_exec(db,
	                "SELECT DATE_FORMAT(spend_reset_at, '%Y-%m-%d %T')"
	                " FROM model_spend WHERE kind = ? AND account_id = ?"
	                " AND model = ? FOR UPDATE",
	                params, 3, &res, err);
	if (rc != TG_OK)
		return rc;
	if (res.nrows == 1)
		tg_strlcpy(p->model_period_end, sizeof(p->model_period_end),
		           tg_db_cell(&res, 0, 0));
	tg_db_result_free(&res);
	return TG_OK;
}

/* The hold of amount on p's model_spend row for model: charged (or not,
 * when charged is false) and released, as a settlement would. */
static enum tg_rc
model_charge(struct tg_db *db, const struct reclaimed *p, const char *model,
             tg_money amount, bool charged, struct tg_err *err)
{
	struct tg_db_param params[5];

	params[0] = tg_db_money(charged ? amount : 0);
	params[1] = tg_db_money(amount);
	params[2] = tg_db_str(tg_account_kind_name(p->kind));
	params[3] = tg_db_str(p->id);
	params[4] = tg_db_str(model);
	return tg_db_run(db,
	                 "UPDATE model_spend SET spend = spend +"
	                 " CAST(? AS DECIMAL(20,10)), reserved ="
	                 " GREATEST(reserved - CAST(? AS DECIMAL(20,10)), 0)"
	                 " WHERE kind = ? AND account_id = ? AND model = ?",
	                 params, 5, NULL, err);
}

/*
 * The account's period (and the server's clock): p->has_next and next_s
 * when its budget has one, and period_end.  The row is locked until the
 * transaction ends.
 */
static enum tg_rc
reclaim_period(struct tg_db *db, const struct reclaim_arg *a,
               struct reclaimed *p, struct tg_err *err)
{
	struct tg_db_param params[2];
	struct tg_db_result res;
	struct tg_period period;
	time_t now;
	enum tg_rc rc;

	p->has_next = false;
	p->period_end[0] = p->key_alias[0] = '\0';
	params[0] = tg_db_str(
	        p->kind == TG_ACCOUNT_CUSTOMER ? a->default_budget_id : NULL);
	params[1] = tg_db_str(p->id);
	rc = tg_db_exec(db, tg_account_kind(p->kind)->sql.period, params, 2,
	                &res, err);
	if (rc != TG_OK)
		return rc;
	if (res.nrows == 1 && tg_db_cell(&res, 0, 3) != NULL &&
	    tg_time_parse_sql(tg_db_cell(&res, 0, 3), &now)) {
		tg_strlcpy(p->now_s, sizeof(p->now_s), tg_db_cell(&res, 0, 3));
		if (tg_db_cell(&res, 0, 1) != NULL &&
		    tg_period_parse(tg_db_cell(&res, 0, 1), &period)) {
			tg_time_sql(tg_period_next(&period, now), p->next_s);
			p->has_next = true;
		}
		if (p->has_next && tg_db_cell(&res, 0, 2) != NULL &&
		    strcmp(tg_db_cell(&res, 0, 2), "1") == 0)
			tg_strlcpy(p->period_end, sizeof(p->period_end),
			           p->next_s); /* a new period */
		else if (tg_db_cell(&res, 0, 0) != NULL)
			tg_strlcpy(p->period_end, sizeof(p->period_end),
			           tg_db_cell(&res, 0, 0));
		if (tg_db_cell(&res, 0, 4) != NULL)
			tg_strlcpy(p->key_alias, sizeof(p->key_alias),
			           tg_db_cell(&res, 0, 4));
	}
	tg_db_result_free(&res);
	return TG_OK;
}

/* The member of m's object name (made when absent). */
static struct json_object *
member_object(struct json_object *m, const char *name)
{
	struct json_object *o;

	if (!json_object_object_get_ex(m, name, &o)) {
		o = json_object_new_object();
		json_object_object_add(m, name, o);
	}
	return o;
}

/* A tag's periods in the unsettled row's metadata: its name in "tags",
 * in "tag_period_end" and (held on its model_spend row) in
 * "tag_model_period_end". */
static void
tag_period_metadata(struct json_object *m, const struct reclaimed *p)
{
	struct json_object *tags;

	if (!json_object_object_get_ex(m, "tags", &tags)) {
		tags = json_object_new_array();
		json_object_object_add(m, "tags", tags);
	}
	json_object_array_add(tags, json_object_new_string(p->id));
	json_object_object_add(member_object(m, "tag_period_end"), p->id,
	                       p->period_end[0]
	                               ? json_object_new_string(p->period_end)
	                               : NULL);
	if (p->model)
		json_object_object_add(
		        member_object(m, "tag_model_period_end"), p->id,
		        p->model_period_end[0]
		                ? json_object_new_string(p->model_period_end)
		                : NULL);
}

/* The unsettled row's metadata (caller frees): why, and which period of
 * each account the charge went into, so that a settlement replacing the
 * row later corrects only those. */
static char *
reclaim_metadata(const char *expired_s, const struct reclaimed *p, size_t n)
{
	struct json_object *m = json_object_new_object();
	char reason[160];
	char *meta;

	snprintf(reason, sizeof(reason),
	         "the request's process ended before it was settled (hold "
	         "expired %.40s UTC); charged the hold, an upper bound of its "
	         "cost",
	         expired_s != NULL ? expired_s : "");
	json_object_object_add(m, "reason", json_object_new_string(reason));
	for (size_t i = 0; i < n; i++) {
		if (p[i].kind == TG_ACCOUNT_TAG) {
			tag_period_metadata(m, &p[i]);
			continue;
		}
		json_object_object_add(
		        m,
		        p[i].kind == TG_ACCOUNT_KEY ? "key_period_end"
		                                    : "period_end",
		        p[i].period_end[0]
		                ? json_object_new_string(p[i].period_end)
		                : NULL);
		if (p[i].model)
			json_object_object_add(
			        m,
			        p[i].kind == TG_ACCOUNT_KEY
			                ? "key_model_period_end"
			                : "model_period_end",
			        p[i].model_period_end[0]
			                ? json_object_new_string(
			                          p[i].model_period_end)
			                : NULL);
	}
	meta = tg_xstrdup(
	        json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN));
	json_object_put(m);
	return meta;
}

/* Charge one expired hold (its reservations row is locked by us). */
static enum tg_rc
charge_hold(struct tg_db *db, struct reclaim_arg *a,
            const struct tg_db_result *holds, size_t i, bool *done,
            struct tg_err *err)
{
	const char *rid = tg_db_cell(holds, i, 0);
	const char *uid = tg_db_cell(holds, i, 1);
	const char *amount_s = tg_db_cell(holds, i, 2);
	const char *api_key = tg_db_cell(holds, i, 4);
	const char *start_s = tg_db_cell(holds, i, 5);
	const char *expired_s = tg_db_cell(holds, i, 6);
	const char *key_token = tg_db_cell(holds, i, 7);
	/* sql/010's model_accounts and sql/011's tags; a schema before them
	 * has none. */
	const char *model_s = holds->ncols > 8 ? tg_db_cell(holds, i, 8) : NULL;
	const char *tags_s = holds->ncols > 9 ? tg_db_cell(holds, i, 9) : NULL;
	unsigned models = model_s != NULL ? (unsigned)atoi(model_s) : 0;
	struct tg_db_param params[8];
	struct reclaimed p[2 + TG_TAG_MAX];
	struct tg_reservation tags;
	const char *alias = NULL;
	size_t n = 0;
	uint64_t deleted = 0;
	char *meta;
	tg_money amount;
	bool charged = true;
	enum tg_rc rc;

	*done = false;
	if (rid == NULL || uid == NULL || amount_s == NULL ||
	    !tg_money_parse(amount_s, &amount))
		return tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                  "malformed reservation row");
	params[0] = tg_db_str(rid);
	rc = tg_db_run(db, "DELETE FROM reservations WHERE request_id = ?",
	               params, 1, &deleted, err);
	if (rc != TG_OK || deleted == 0)
		return rc;
	/* Every account the hold was taken from: customer, key, tags (the
	 * order they are locked in). */
	memset(p, 0, sizeof(p));
	memset(&tags, 0, sizeof(tags));
	if (!tg_ledger_tags_parse(tags_s, &tags))
		return tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                  "malformed tags of reservation %s", rid);
	p[n].kind = TG_ACCOUNT_CUSTOMER;
	p[n++].id = uid;
	if (key_token != NULL) {
		p[n].kind = TG_ACCOUNT_KEY;
		p[n++].id = key_token;
	}
	for (size_t t = 0; t < tags.ntags; t++) {
		p[n].kind = TG_ACCOUNT_TAG;
		p[n].id = tags.tags[t].name;
		p[n++].model = (tags.tags[t].flags & TG_HOLD_TAG_MODEL) != 0;
	}
	for (size_t k = 0; k < n; k++) {
		if (p[k].kind != TG_ACCOUNT_TAG)
			p[k].model = (models & TG_HOLD_MODEL(p[k].kind)) != 0;
		p[k].model = p[k].model && tg_db_cell(holds, i, 3) != NULL;
		if ((rc = reclaim_period(db, a, &p[k], err)) != TG_OK)
			return rc;
		if (p[k].kind == TG_ACCOUNT_KEY && p[k].key_alias[0] != '\0')
			alias = p[k].key_alias;
	}
	/* The model rows' periods, before the row that records them. */
	for (size_t k = 0; k < n; k++)
		if (p[k].model &&
		    (rc = model_period(db, &p[k], tg_db_cell(holds, i, 3),
		                       err)) != TG_OK)
			return rc;

	meta = reclaim_metadata(expired_s, p, n);
	params[0] = tg_db_str(rid);
	params[1] = tg_db_str(uid);
	params[2] = tg_db_str(tg_db_cell(holds, i, 3));
	params[3] = tg_db_str(api_key);
	params[4] = tg_db_money(amount);
	params[5] = tg_db_str(start_s);
	params[6] = tg_db_str(meta);
	rc = tg_db_run(db,
	               "INSERT INTO spend_logs (request_id, end_user, model,"
	               " api_key, call_type, status, spend, start_time,"
	               " end_time, request_duration_ms, metadata) VALUES"
	               " (?, ?, ?, ?, 'acompletion', 'unsettled',"
	               " CAST(? AS DECIMAL(20,10)),"
	               " COALESCE(?, UTC_TIMESTAMP(6)), UTC_TIMESTAMP(6), 0,"
	               " ?)",
	               params, 7, NULL, err);
	free(meta);
	if (rc == TG_ERR_CONFLICT) {
		/* Settled after all (the hold outlived its row): release. */
		charged = false;
		rc = TG_OK;
	} else if (rc == TG_OK && tags.ntags > 0) {
		const char *names[TG_TAG_MAX];

		for (size_t t = 0; t < tags.ntags; t++)
			names[t] = tags.tags[t].name;
		rc = tg_ledger_index_tags(db, rid, start_s, names, tags.ntags,
		                          err);
	}
	/* As a settlement would: a due reset first, then the charge. */
	for (size_t k = 0; k < n && rc == TG_OK; k++) {
		struct tg_event_account ev = {
		        p[k].kind, p[k].id, a->default_budget_id,
		        api_key,   alias,   NULL};

		rc = tg_ledger_charge_account(
		        db, p[k].kind, p[k].id,
		        p[k].has_next ? p[k].next_s : NULL, p[k].now_s,
		        charged ? amount : 0, amount, err);
		if (rc == TG_OK && p[k].model)
			rc = model_charge(db, &p[k], tg_db_cell(holds, i, 3),
			                  amount, charged, err);
		if (rc == TG_OK && charged)
			rc = tg_events_charged(db, a->alerts, &ev, false, 0,
			                       err);
	}
	if (rc != TG_OK)
		return rc;
	if (charged && a->ncharged < (size_t)a->limit) {
		struct charged_hold *c = &a->charged[a->ncharged++];

		tg_strlcpy(c->model, sizeof(c->model),
		           tg_db_cell(holds, i, 3) != NULL
		                   ? tg_db_cell(holds, i, 3)
		                   : "");
		c->amount = amount;
	}
	*done = true;
	return TG_OK;
}

#define HOLDS_SQL(extra, where)                                                \
	"SELECT request_id, user_id, amount, model, api_key, start_time,"      \
	" expires_at, key_token" extra " FROM reservations WHERE" where        \
	" expires_at <= UTC_TIMESTAMP(6) ORDER BY expires_at"                  \
	" LIMIT ? FOR UPDATE SKIP LOCKED"

/* [schema: before sql/010, before sql/011, since][of one customer] */
static const char *const holds_sql[3][2] = {
        {HOLDS_SQL("", ""), HOLDS_SQL("", " user_id = ? AND")},
        {HOLDS_SQL(", model_accounts", ""),
         HOLDS_SQL(", model_accounts", " user_id = ? AND")},
        {HOLDS_SQL(", model_accounts, tags", ""),
         HOLDS_SQL(", model_accounts, tags", " user_id = ? AND")},
};

static enum tg_rc
reclaim_txn(struct tg_db *db, void *varg, struct tg_err *err)
{
	struct reclaim_arg *a = varg;
	struct tg_db_param params[2];
	struct tg_db_result holds;
	enum tg_rc rc;

	a->reclaimed = 0;
	a->ncharged = 0;
	/* SKIP LOCKED: holds being settled right now are not ours to take.
	 * A schema before sql/010 has no model_accounts, one before sql/011
	 * no tags (1054: unknown column): its holds are on no model_spend
	 * row, on no tag. */
	for (int schema = 2; schema >= 0; schema--) {
		if (a->user_id != NULL) {
			params[0] = tg_db_str(a->user_id);
			params[1] = tg_db_int(a->limit);
		} else {
			params[0] = tg_db_int(a->limit);
		}
		rc = tg_db_exec(db, holds_sql[schema][a->user_id != NULL],
		                params, a->user_id != NULL ? 2 : 1, &holds,
		                err);
		if (rc == TG_OK || schema == 0 || tg_db_errno(db) != 1054)
			break;
		tg_err_clear(err);
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
	arg.charged = tg_xcalloc((size_t)arg.limit, sizeof(*arg.charged));
	rc = tg_db_txn(db, reclaim_txn, &arg, err);
	if (rc == TG_OK && reclaimed != NULL)
		*reclaimed = arg.reclaimed;
	/* Committed: the ledger's spend grew by these (SPEC 15). */
	for (size_t i = 0; rc == TG_OK && i < arg.ncharged; i++)
		tg_ledger_count_spend(arg.charged[i].model,
		                      arg.charged[i].amount);
	free(arg.charged);
	return rc;
}
