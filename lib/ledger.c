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
 * Why it is cheap: the common admission and settlement are each one CALL
 * of a procedure of sql/008 that runs the same transaction as the
 * statements here (tg_db_call(): one round trip instead of five); the
 * procedures leave what they do not do (events, a charge above the hold, a
 * row already there) to those statements.
 *
 * Why it survives faults: every write is one transaction retried by
 * tg_db_txn() or tg_db_call() on deadlock and lost connection.  A retry after a
 * COMMIT whose answer was lost finds its own row (duplicate request_id) and
 * knows the first attempt went through, so nothing is counted twice.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "api.h"
#include "events.h"
#include "log.h"
#include "jsonx.h"
#include "ledger.h"
#include "ledger_priv.h"
#include "metrics.h"
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

static int
cmp_hold_tag(const void *x, const void *y)
{
	return strcmp(((const struct tg_hold_tag *)x)->name,
	              ((const struct tg_hold_tag *)y)->name);
}

char *
tg_ledger_tags_text(const struct tg_reservation *r)
{
	struct json_object *o;
	char *text;

	if (r->ntags == 0)
		return NULL;
	o = json_object_new_object();
	for (size_t i = 0; i < r->ntags && i < TG_TAG_MAX; i++)
		json_object_object_add(
		        o, r->tags[i].name,
		        json_object_new_int((int)r->tags[i].flags));
	text = tg_xstrdup(
	        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return text;
}

bool
tg_ledger_tags_parse(const char *text, struct tg_reservation *r)
{
	struct json_object *o;
	bool ok = true;

	r->ntags = 0;
	if (text == NULL)
		return true;
	o = json_tokener_parse(text);
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return false;
	}
	json_object_object_foreach(o, name, v)
	{
		if (r->ntags == TG_TAG_MAX || strlen(name) >= 256 ||
		    !json_object_is_type(v, json_type_int)) {
			ok = false;
			break;
		}
		tg_strlcpy(r->tags[r->ntags].name,
		           sizeof(r->tags[r->ntags].name), name);
		r->tags[r->ntags++].flags =
		        (unsigned)json_object_get_int(v) &
		        (TG_HOLD_TAG_BUDGETED | TG_HOLD_TAG_MODEL);
	}
	json_object_put(o);
	if (!ok)
		r->ntags = 0;
	/* Ordered by name: the order every transaction locks tags in. */
	qsort(r->tags, r->ntags, sizeof(r->tags[0]), cmp_hold_tag);
	return ok;
}

/* One account a hold is taken from. */
struct admit_account {
	enum tg_account_kind kind;
	const char *id;             /* user_id, or the key's token */
	const char *budget_id;      /* a customer's effective budget (own or the
	                               tier); NULL for a key (its own) */
	bool has_max;               /* its budget has a max_budget */
	tg_money spend, max_budget; /* as loaded */
	const char *key_alias;      /* for its events */
	const struct tg_budget *budget; /* its budget, or NULL */
	/* Its budget's model_max_budget caps the call's model: at cap, with
	 * period ("" for none) ending at cap_next if one began now. */
	bool has_cap;
	tg_money cap;
	char cap_period[32];
	char cap_next[20];
};

/*
 * An account's row of model_spend for the call's model, opened for a hold:
 * created, or its period started again when it ended or its time_period
 * changed (spend is assigned before spend_reset_at and time_period, so
 * each test sees the old values), with the cap it is admitted under.
 */
#define MODEL_OPEN_SQL                                                         \
	"INSERT INTO model_spend (kind, account_id, model, budget_limit,"      \
	" time_period, spend_reset_at) VALUES (?, ?, ?,"                       \
	" CAST(? AS DECIMAL(20,10)), ?, ?) ON DUPLICATE KEY UPDATE"            \
	" spend = IF((spend_reset_at IS NOT NULL AND spend_reset_at <= ?)"     \
	" OR NOT (time_period <=> VALUES(time_period)), 0, spend),"            \
	" spend_reset_at = IF((spend_reset_at IS NOT NULL AND"                 \
	" spend_reset_at <= ?) OR NOT (time_period <=> VALUES(time_period)),"  \
	" VALUES(spend_reset_at), spend_reset_at),"                            \
	" time_period = VALUES(time_period),"                                  \
	" budget_limit = VALUES(budget_limit)"
/* The hold on it: in reserve mode only if spend + reserved + hold <= cap,
 * in post mode (LiteLLM's rule) while spend < cap. */
#define MODEL_RESERVE_SQL                                                      \
	"UPDATE model_spend SET reserved = reserved +"                         \
	" CAST(? AS DECIMAL(20,10)) WHERE kind = ? AND account_id = ?"         \
	" AND model = ? AND spend + reserved + CAST(? AS DECIMAL(20,10))"      \
	" <= budget_limit"
#define MODEL_RESERVE_POST_SQL                                                 \
	"UPDATE model_spend SET reserved = reserved +"                         \
	" CAST(? AS DECIMAL(20,10)) WHERE kind = ? AND account_id = ?"         \
	" AND model = ? AND spend < budget_limit"

/* The cap of acct's budget on model, if any, into acct. */
static void
model_cap_of(struct admit_account *acct, const struct tg_budget *b,
             const char *model, time_t now)
{
	struct tg_period period;

	acct->has_cap =
	        tg_budget_model_cap(b, model, &acct->cap, acct->cap_period,
	                            sizeof(acct->cap_period));
	acct->cap_next[0] = '\0';
	if (acct->has_cap && acct->cap_period[0] != '\0' &&
	    tg_period_parse(acct->cap_period, &period))
		tg_time_sql(tg_period_next(&period, now), acct->cap_next);
}

/* The refusal of acct's cap on model: LiteLLM's words for a key's. */
static enum tg_rc
refuse_model(const struct admit_account *acct, const char *model,
             tg_money spend, struct tg_err *err)
{
	char s[TG_MONEY_STRLEN], m[TG_MONEY_STRLEN];

	tg_money_format(spend, s, sizeof(s));
	tg_money_format(acct->cap, m, sizeof(m));
	if (acct->kind == TG_ACCOUNT_KEY)
		return tg_err_set(err, TG_ERR_BUDGET, NULL,
		                  "LiteLLM Virtual Key: %s, key_alias: %s, "
		                  "exceeded budget for model=%s. Current cost: "
		                  "%s, Max budget: %s",
		                  acct->id,
		                  acct->key_alias ? acct->key_alias : "None",
		                  model, s, m);
	if (acct->kind == TG_ACCOUNT_TAG)
		return tg_err_set(err, TG_ERR_BUDGET, NULL,
		                  "ExceededBudget: Tag=%s over budget for "
		                  "model=%s. Spend=%s, Budget=%s",
		                  acct->id, model, s, m);
	return tg_err_set(err, TG_ERR_BUDGET, NULL,
	                  "ExceededBudget: End User=%s over budget for "
	                  "model=%s. Spend=%s, Budget=%s",
	                  acct->id, model, s, m);
}

/* The refusal of acct's budget, in the words LiteLLM uses for each. */
static enum tg_rc
refuse(const struct admit_account *acct, tg_money spend, tg_money max_budget,
       struct tg_err *err)
{
	char s[TG_MONEY_STRLEN], m[TG_MONEY_STRLEN];

	tg_money_format(spend, s, sizeof(s));
	tg_money_format(max_budget, m, sizeof(m));
	if (acct->kind == TG_ACCOUNT_KEY)
		return tg_err_set(err, TG_ERR_BUDGET, NULL,
		                  "Budget has been exceeded! Current cost: %s, "
		                  "Max budget: %s",
		                  s, m);
	if (acct->kind == TG_ACCOUNT_TAG)
		return tg_err_set(
		        err, TG_ERR_BUDGET, NULL,
		        "ExceededBudget: Tag=%s over budget. Spend=%s, "
		        "Budget=%s",
		        acct->id, s, m);
	return tg_err_set(err, TG_ERR_BUDGET, NULL,
	                  "ExceededBudget: End User=%s over budget. Spend=%s, "
	                  "Budget=%s",
	                  acct->id, s, m);
}

/* The most accounts of one call: its customer, its key, its tags. */
#define MAX_ACCOUNTS (2 + TG_TAG_MAX)

struct admit_arg {
	/* the customer, then the key, then the tags by name */
	struct admit_account acct[MAX_ACCOUNTS];
	size_t n;
	bool conditional[MAX_ACCOUNTS]; /* reserve mode with a max_budget */
	bool gone[MAX_ACCOUNTS];        /* a tag deleted since it was read */
	const char *user_id;            /* the hold's: "" without a customer */
	const char *key_token;          /* NULL without a key */
	const char *tags;               /* the hold's tags column; NULL: none */
	tg_money estimate;
	const struct tg_hold_request *hr;
	size_t refused;     /* TG_ERR_BUDGET: acct[refused] refused */
	bool refused_model; /* ... its cap on the call's model did */
	bool already; /* the hold exists: a retried commit had gone through */
	bool post;    /* post mode (LiteLLM's rule) */
	unsigned model_accounts; /* TG_HOLD_MODEL() of those with a cap */
	char now_s[20];
};

/* Open acct's model_spend row and hold the estimate on it (TG_ERR_BUDGET:
 * refused). */
static enum tg_rc
reserve_model(struct tg_db *db, struct admit_arg *a,
              const struct admit_account *acct, struct tg_err *err)
{
	const char *kind = tg_account_kind_name(acct->kind);
	struct tg_db_param params[8];
	uint64_t affected = 0;
	enum tg_rc rc;

	params[0] = tg_db_str(kind);
	params[1] = tg_db_str(acct->id);
	params[2] = tg_db_str(a->hr->model);
	params[3] = tg_db_money(acct->cap);
	params[4] =
	        acct->cap_next[0] ? tg_db_str(acct->cap_period) : tg_db_null();
	params[5] =
	        acct->cap_next[0] ? tg_db_str(acct->cap_next) : tg_db_null();
	params[6] = tg_db_str(a->now_s);
	params[7] = tg_db_str(a->now_s);
	rc = tg_db_run(db, MODEL_OPEN_SQL, params, 8, NULL, err);
	if (rc != TG_OK)
		return rc;
	params[0] = tg_db_money(a->estimate);
	params[1] = tg_db_str(kind);
	params[2] = tg_db_str(acct->id);
	params[3] = tg_db_str(a->hr->model);
	params[4] = tg_db_money(a->estimate);
	rc = tg_db_run(db, a->post ? MODEL_RESERVE_POST_SQL : MODEL_RESERVE_SQL,
	               params, a->post ? 4 : 5, &affected, err);
	if (rc == TG_OK && affected == 0)
		rc = TG_ERR_BUDGET;
	return rc;
}

/* Whether tag acct's row is gone (deleted since the call read it). */
static enum tg_rc
tag_gone(struct tg_db *db, const struct admit_account *acct, bool *gone,
         struct tg_err *err)
{
	struct tg_db_param params[2];
	struct tg_db_result res;
	enum tg_rc rc;

	params[0] = tg_db_null();
	params[1] = tg_db_str(acct->id);
	rc = tg_db_exec(db, tg_account_kind(TG_ACCOUNT_TAG)->sql.spend, params,
	                2, &res, err);
	if (rc != TG_OK)
		return rc;
	*gone = res.nrows == 0;
	tg_db_result_free(&res);
	return TG_OK;
}

/*
 * INSERT the hold first, then add it to each account's reserved (only if
 * its budget allows it, when conditional): a refusal rolls it all back
 * (TG_ERR_BUDGET from here means "refused", no message yet).
 */
static enum tg_rc
admit_txn(struct tg_db *db, void *varg, struct tg_err *err)
{
	struct admit_arg *a = varg;
	struct tg_db_param params[10];
	char start_s[32];
	uint64_t affected = 0;
	enum tg_rc rc;

	time_us_sql(a->hr->start_us != 0 ? a->hr->start_us : wall_us(),
	            start_s);
	params[0] = tg_db_str(a->hr->request_id);
	params[1] = tg_db_str(a->user_id);
	params[2] = tg_db_money(a->estimate);
	params[3] = tg_db_int(a->hr->hold_seconds);
	params[4] = tg_db_str(a->hr->model);
	params[5] = tg_db_str(a->hr->api_key_hash);
	params[6] = tg_db_str(start_s);
	params[7] = tg_db_str(a->key_token);
	params[8] = tg_db_int((int64_t)a->model_accounts);
	params[9] = tg_db_str(a->tags);
	/* model_accounts and tags only when there is something to say: a
	 * schema older than sql/010 takes every other hold (a call has tags
	 * only with sql/011's tags table). */
	rc = tg_db_run(db,
	               a->tags != NULL
	                       ? "INSERT INTO reservations (request_id,"
	                         " user_id, amount, expires_at, created_at,"
	                         " model, api_key, start_time, key_token,"
	                         " model_accounts, tags) VALUES (?, ?,"
	                         " CAST(? AS DECIMAL(20,10)),"
	                         " UTC_TIMESTAMP(6) + INTERVAL ? SECOND,"
	                         " UTC_TIMESTAMP(6), ?, ?, ?, ?, ?, ?)"
	               : a->model_accounts == 0
	                       ? "INSERT INTO reservations (request_id,"
	                         " user_id, amount, expires_at, created_at,"
	                         " model, api_key, start_time, key_token)"
	                         " VALUES (?, ?, CAST(? AS DECIMAL(20,10)),"
	                         " UTC_TIMESTAMP(6) + INTERVAL ? SECOND,"
	                         " UTC_TIMESTAMP(6), ?, ?, ?, ?)"
	                       : "INSERT INTO reservations (request_id,"
	                         " user_id, amount, expires_at, created_at,"
	                         " model, api_key, start_time, key_token,"
	                         " model_accounts) VALUES (?, ?,"
	                         " CAST(? AS DECIMAL(20,10)),"
	                         " UTC_TIMESTAMP(6) + INTERVAL ? SECOND,"
	                         " UTC_TIMESTAMP(6), ?, ?, ?, ?, ?)",
	               params,
	               a->tags != NULL          ? 10
	               : a->model_accounts == 0 ? 8
	                                        : 9,
	               NULL, err);
	if (rc == TG_ERR_CONFLICT) {
		a->already = true;
		return TG_ERR_CONFLICT; /* roll back nothing; caller: held */
	}
	if (rc != TG_OK)
		return rc;
	for (size_t i = 0; i < a->n; i++) {
		const struct admit_account *acct = &a->acct[i];

		if (!a->conditional[i]) {
			params[0] = tg_db_money(a->estimate);
			params[1] = tg_db_str(acct->id);
			rc = tg_db_run(db,
			               tg_account_kind(acct->kind)->sql.reserve,
			               params, 2, &affected, err);
		} else {
			params[0] = tg_db_str(acct->budget_id);
			params[1] = tg_db_money(a->estimate);
			params[2] = tg_db_str(acct->id);
			params[3] = tg_db_money(a->estimate);
			rc = tg_db_run(
			        db, tg_account_kind(acct->kind)->sql.reserve_if,
			        params, 4, &affected, err);
		}
		if (rc != TG_OK)
			return rc;
		/* A tag deleted since it was read is no account any more:
		 * what its hold says of it is released on nothing. */
		if (affected == 0 && acct->kind == TG_ACCOUNT_TAG) {
			rc = tag_gone(db, acct, &a->gone[i], err);
			if (rc != TG_OK)
				return rc;
			if (a->gone[i])
				continue;
		}
		if (affected == 0 && a->conditional[i]) {
			a->refused = i;
			return TG_ERR_BUDGET;
		}
		/* The account's row is locked now: its model row is taken
		 * under it, so admissions of one account never race on it. */
		if (acct->has_cap) {
			rc = reserve_model(db, a, acct, err);
			if (rc == TG_ERR_BUDGET) {
				a->refused = i;
				a->refused_model = true;
			}
			if (rc != TG_OK)
				return rc;
		}
	}
	return TG_OK;
}

/* The current spend and max_budget, for the refusal message. */
static void
current_spend(struct tg_db *db, const struct admit_account *acct,
              tg_money *spend, tg_money *max_budget)
{
	struct tg_db_param params[2];
	struct tg_db_result res;
	struct tg_err ignored;
	tg_money s, m;

	*spend = acct->spend;
	*max_budget = acct->max_budget;
	params[0] = tg_db_str(acct->budget_id);
	params[1] = tg_db_str(acct->id);
	if (tg_db_exec(db, tg_account_kind(acct->kind)->sql.spend, params, 2,
	               &res, &ignored) != TG_OK)
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

/* acct refused the hold: its budget_crossed event, then the answer. */
static enum tg_rc
refused(struct tg_db *db, const struct admit_account *acct,
        const struct tg_hold_request *hr, tg_money spend, tg_money max_budget,
        struct tg_err *err)
{
	struct tg_event_account ev = {acct->kind,      acct->id,
	                              acct->budget_id, hr->api_key_hash,
	                              acct->key_alias, NULL};
	struct tg_err ev_err;

	tg_err_clear(&ev_err);
	if (tg_events_refused(db, hr->alerts, &ev, &ev_err) != TG_OK)
		tg_log_warn("the budget_crossed event of a refusal was not "
		            "written: %s",
		            ev_err.message);
	return refuse(acct, spend, max_budget, err);
}

/* The spend of acct's model_spend row for model now, for a refusal's
 * message (left as it is when it cannot be read). */
static void
model_spend_now(struct tg_db *db, const struct admit_account *acct,
                const char *model, tg_money *spend)
{
	struct tg_db_param params[3];
	struct tg_db_result res;
	struct tg_err ignored;
	tg_money s;

	params[0] = tg_db_str(tg_account_kind_name(acct->kind));
	params[1] = tg_db_str(acct->id);
	params[2] = tg_db_str(model);
	tg_err_clear(&ignored);
	if (tg_db_exec(db,
	               "SELECT spend FROM model_spend WHERE kind = ? AND"
	               " account_id = ? AND model = ?",
	               params, 3, &res, &ignored) != TG_OK)
		return;
	if (res.nrows == 1 && tg_money_parse(tg_db_cell(&res, 0, 0), &s))
		*spend = s;
	tg_db_result_free(&res);
}

/*
 * The admission as statements: the hold of estimate from accounts[0..n)
 * as loaded (tg_ledger_admit()'s order), in one transaction
 * (tg_ledger_admit()'s contract); key_alias is the alias of the call's key
 * (NULL: none), which its customer's events name.
 */
static enum tg_rc
admit_statements(struct tg_db *db, const struct tg_account *accounts, size_t n,
                 const char *key_alias, tg_money estimate,
                 enum tg_enforcement mode, const struct tg_hold_request *hr,
                 struct tg_reservation *out, struct tg_err *err)
{
	struct tg_reservation r;
	struct admit_arg arg;
	char *tags_text = NULL;
	const char *user_id = "", *key_token = NULL;
	time_t now;
	enum tg_rc rc = TG_OK;

	memset(&r, 0, sizeof(r));
	memset(&arg, 0, sizeof(arg));
	if (estimate < 0)
		return tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                  "negative cost estimate");
	for (size_t i = 0; i < n && arg.n < MAX_ACCOUNTS; i++) {
		const struct tg_account *a = &accounts[i];
		struct admit_account *acct = &arg.acct[arg.n++];

		acct->kind = a->kind;
		acct->id = a->id;
		acct->budget_id = a->budget_id;
		acct->budget = a->budget;
		acct->has_max = a->budget != NULL && a->budget->max_budget.set;
		acct->spend = a->spend;
		acct->max_budget =
		        a->budget != NULL ? a->budget->max_budget.v : 0;
		acct->key_alias = a->kind == TG_ACCOUNT_KEY ? a->key_alias
		                  : a->kind == TG_ACCOUNT_CUSTOMER ? key_alias
		                                                   : NULL;
		if (a->kind == TG_ACCOUNT_CUSTOMER)
			user_id = a->id;
		else if (a->kind == TG_ACCOUNT_KEY)
			key_token = a->id;
	}
	now = time(NULL);
	tg_time_sql(now, arg.now_s);
	for (size_t i = 0; i < arg.n; i++) {
		struct admit_account *acct = &arg.acct[i];

		model_cap_of(acct, acct->budget, hr->model, now);
		/* A tag's cap is in its flags (below). */
		if (acct->has_cap && acct->kind != TG_ACCOUNT_TAG)
			arg.model_accounts |= TG_HOLD_MODEL(acct->kind);
	}
	arg.post = mode == TG_ENFORCE_POST;
	for (size_t i = 0; i < arg.n; i++) {
		const struct admit_account *acct = &arg.acct[i];

		switch (mode) {
		case TG_ENFORCE_POST:
			/* LiteLLM's rule: admit while spend < max_budget.  The
			 * hold is still taken: it is how a crash is charged. */
			if (acct->has_max && acct->spend >= acct->max_budget)
				return refused(db, acct, hr, acct->spend,
				               acct->max_budget, err);
			break;
		case TG_ENFORCE_RESERVE:
			arg.conditional[i] = acct->has_max;
			break;
		}
	}
	arg.user_id = user_id;
	arg.key_token = key_token;
	arg.estimate = estimate;
	arg.hr = hr;
	/* What the hold says of its tags, known before it is taken. */
	for (size_t i = 0; i < arg.n; i++) {
		struct tg_hold_tag *t;

		if (arg.acct[i].kind != TG_ACCOUNT_TAG)
			continue;
		t = &r.tags[r.ntags++];
		tg_strlcpy(t->name, sizeof(t->name), arg.acct[i].id);
		t->flags = (arg.conditional[i] ? TG_HOLD_TAG_BUDGETED : 0) |
		           (arg.acct[i].has_cap ? TG_HOLD_TAG_MODEL : 0);
	}
	tags_text = tg_ledger_tags_text(&r);
	arg.tags = tags_text;
	/*
	 * No reclaim of expired holds before refusing: a reclaimed hold is
	 * charged, not refunded, so it would not make room.
	 */
	rc = tg_db_txn(db, admit_txn, &arg, err);
	free(tags_text);
	if (rc == TG_ERR_CONFLICT && arg.already)
		rc = TG_OK;
	if (rc == TG_ERR_BUDGET && arg.refused_model) {
		tg_money spend = 0;

		model_spend_now(db, &arg.acct[arg.refused], hr->model, &spend);
		return refuse_model(&arg.acct[arg.refused], hr->model, spend,
		                    err);
	}
	if (rc == TG_ERR_BUDGET) {
		const struct admit_account *acct = &arg.acct[arg.refused];
		tg_money spend, max_budget;

		current_spend(db, acct, &spend, &max_budget);
		return refused(db, acct, hr, spend, max_budget, err);
	}
	if (rc != TG_OK)
		return rc;
	r.held = true;
	for (size_t i = 0; i < arg.n; i++) {
		if (arg.acct[i].kind == TG_ACCOUNT_KEY)
			r.key_budgeted = arg.conditional[i];
		else if (arg.acct[i].kind == TG_ACCOUNT_CUSTOMER)
			r.budgeted = arg.conditional[i];
	}
	tg_strlcpy(r.request_id, sizeof(r.request_id), hr->request_id);
	tg_strlcpy(r.user_id, sizeof(r.user_id), arg.user_id);
	tg_strlcpy(r.key_token, sizeof(r.key_token), arg.key_token);
	r.amount = estimate;
	r.model_accounts = arg.model_accounts;
	*out = r;
	return TG_OK;
}

/*
 * The procedure does not exist (1305: a schema older than sql/007, as while
 * the binaries are upgraded before the migration) or the programs' database
 * user may not run it (1370: no EXECUTE, a grant that predates it): the
 * long way, which needs neither.
 */
static bool
no_procedure(const struct tg_db *db)
{
	return tg_db_errno(db) == 1305 || tg_db_errno(db) == 1370;
}

/*
 * The admission in one CALL of tg_admit: the upsert of customer user_id
 * (NULL: none) and the hold of estimate from it and from key k (NULL:
 * none).  *slow true on TG_OK: nothing was held, because the customer
 * needs what only the statements do (blocked, an allowed region, rate
 * limits, a due period reset; or a schema without the procedure).
 * Otherwise as tg_ledger_admit(); *loaded tells that *cust is the customer
 * as the procedure read it.
 */
static enum tg_rc
admit_call(struct tg_db *db, const char *user_id, const char *default_budget_id,
           const struct tg_key *k, const char *tags, tg_money estimate,
           const struct tg_hold_request *hr, bool *slow,
           struct tg_customer *cust, bool *loaded, struct tg_reservation *out,
           struct tg_err *err)
{
	struct tg_db_param params[11];
	struct tg_db_result res;
	struct tg_reservation r;
	struct admit_account acct;
	struct tg_customer c;
	char start_s[32], now_s[20];
	const char *outcome;
	bool have_cust = false;
	enum tg_rc rc;

	*slow = false;
	*loaded = false;
	if (estimate < 0)
		return tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                  "negative cost estimate");
	memset(&c, 0, sizeof(c));
	time_us_sql(hr->start_us != 0 ? hr->start_us : wall_us(), start_s);
	tg_time_sql(time(NULL), now_s);
	params[0] = tg_db_str(hr->request_id);
	params[1] = tg_db_str(user_id);
	params[2] = tg_db_str(default_budget_id);
	params[3] = tg_db_str(k != NULL ? k->token : NULL);
	params[4] = tg_db_money(estimate);
	params[5] = tg_db_int(hr->hold_seconds);
	params[6] = tg_db_str(hr->model);
	params[7] = tg_db_str(hr->api_key_hash);
	params[8] = tg_db_str(start_s);
	params[9] = tg_db_str(now_s);
	params[10] = tg_db_str(tags);
	rc = tg_db_call(db,
	                "CALL tg_admit_v11(?, ?, ?, ?,"
	                " CAST(? AS DECIMAL(20,10)), ?, ?, ?, ?, ?, ?)",
	                params, 11, &res, err);
	if (rc == TG_ERR_DB && no_procedure(db)) {
		*slow = true;
		return TG_OK;
	}
	if (rc != TG_OK)
		return rc;
	outcome = res.nrows == 1 ? tg_db_cell(&res, 0, 0) : NULL;
	if (outcome == NULL || res.ncols != 11) {
		rc = tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                "malformed answer of tg_admit_v11");
		goto out;
	}
	if (strcmp(outcome, "slow") == 0) {
		*slow = true;
		goto out;
	}
	/* No customer, no key, no tag that exists: nothing to hold. */
	if (strcmp(outcome, "none") == 0)
		goto out;
	if (user_id != NULL) {
		const char *spend = tg_db_cell(&res, 0, 3);
		const char *budget_id = tg_db_cell(&res, 0, 4);
		const char *max_budget = tg_db_cell(&res, 0, 5);
		const char *duration = tg_db_cell(&res, 0, 6);

		if (spend == NULL || !tg_money_parse(spend, &c.spend) ||
		    (max_budget != NULL &&
		     !tg_money_parse(max_budget, &c.budget.max_budget.v))) {
			rc = tg_err_set(err, TG_ERR_INTERNAL, NULL,
			                "malformed customer row in the "
			                "database");
			goto out;
		}
		c.user_id = tg_xstrdup(user_id);
		c.has_budget = budget_id != NULL;
		c.budget.max_budget.set = max_budget != NULL;
		if (budget_id != NULL)
			c.budget.budget_id = tg_xstrdup(budget_id);
		if (duration != NULL)
			c.budget.budget_duration = tg_xstrdup(duration);
		have_cust = true;
	}
	memset(&acct, 0, sizeof(acct));
	if (strcmp(outcome, "refused") == 0 && have_cust) {
		acct.kind = TG_ACCOUNT_CUSTOMER;
		acct.id = c.user_id;
		acct.budget_id = c.has_budget ? c.budget.budget_id : NULL;
		acct.key_alias = k != NULL ? k->key_alias : NULL;
		rc = refused(db, &acct, hr, c.spend, c.budget.max_budget.v,
		             err);
		goto out;
	}
	if (strcmp(outcome, "refused_key") == 0 && k != NULL) {
		tg_money spend = k->spend, max_budget = k->budget.max_budget.v;
		const char *s = tg_db_cell(&res, 0, 1);
		const char *m = tg_db_cell(&res, 0, 2);
		tg_money s_now, m_now;

		/* As read after the refusal, else as loaded. */
		if (s != NULL && m != NULL && tg_money_parse(s, &s_now) &&
		    tg_money_parse(m, &m_now)) {
			spend = s_now;
			max_budget = m_now;
		}
		acct.kind = TG_ACCOUNT_KEY;
		acct.id = k->token;
		acct.key_alias = k->key_alias;
		rc = refused(db, &acct, hr, spend, max_budget, err);
		goto out;
	}
	if (strcmp(outcome, "refused_tag") == 0 &&
	    tg_db_cell(&res, 0, 8) != NULL) {
		tg_money spend = 0, max_budget = 0;

		if (tg_db_cell(&res, 0, 9) != NULL)
			(void)tg_money_parse(tg_db_cell(&res, 0, 9), &spend);
		if (tg_db_cell(&res, 0, 10) != NULL)
			(void)tg_money_parse(tg_db_cell(&res, 0, 10),
			                     &max_budget);
		acct.kind = TG_ACCOUNT_TAG;
		acct.id = tg_db_cell(&res, 0, 8);
		rc = refused(db, &acct, hr, spend, max_budget, err);
		goto out;
	}
	if (strcmp(outcome, "held") != 0 && strcmp(outcome, "already") != 0) {
		rc = tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                "tg_admit_v11 answered '%.32s'", outcome);
		goto out;
	}
	memset(&r, 0, sizeof(r));
	if (!tg_ledger_tags_parse(tg_db_cell(&res, 0, 7), &r)) {
		rc = tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                "malformed tags in the answer of tg_admit_v11");
		goto out;
	}
	r.held = true;
	r.fast = true;
	r.budgeted = have_cust && c.has_budget && c.budget.max_budget.set;
	r.key_budgeted = k != NULL && k->has_budget && k->budget.max_budget.set;
	tg_strlcpy(r.request_id, sizeof(r.request_id), hr->request_id);
	tg_strlcpy(r.user_id, sizeof(r.user_id),
	           user_id != NULL ? user_id : "");
	tg_strlcpy(r.key_token, sizeof(r.key_token),
	           k != NULL ? k->token : NULL);
	r.amount = estimate;
	*out = r;
out:
	tg_db_result_free(&res);
	if (have_cust && (rc == TG_OK || rc == TG_ERR_BUDGET) && !*slow) {
		*cust = c;
		*loaded = true;
	} else if (have_cust) {
		tg_customer_free(&c);
	}
	return rc;
}

static int
cmp_name(const void *x, const void *y)
{
	return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* The tag names of a call as tg_admit_v11 takes them: a JSON array,
 * sorted by their bytes (the order the tags are locked in); NULL for
 * none.  Caller frees. */
static char *
tags_json(const char *const *names, size_t n)
{
	const char *sorted[TG_TAG_MAX];
	struct json_object *arr;
	char *text;

	if (n == 0)
		return NULL;
	if (n > TG_TAG_MAX)
		n = TG_TAG_MAX;
	memcpy(sorted, names, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), cmp_name);
	arr = json_object_new_array();
	for (size_t i = 0; i < n; i++)
		json_object_array_add(arr, json_object_new_string(sorted[i]));
	text = tg_xstrdup(
	        json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN));
	json_object_put(arr);
	return text;
}

/* Whether the virtual key has rate limits (SPEC 5, 13) or per-model
 * budgets: the procedure does not take them. */
static bool
key_limited(const struct tg_key *k)
{
	return k->has_budget &&
	       (k->budget.rpm_limit.set || k->budget.tpm_limit.set ||
	        k->budget.max_parallel_requests.set ||
	        k->budget.model_max_budget != NULL);
}

enum tg_rc
tg_ledger_admit(struct tg_db *db, struct tg_admission *a,
                tg_ledger_gate_fn gate, void *gate_arg,
                struct tg_customer *cust, bool *has_customer,
                struct tg_reservation *out, struct tg_err *err)
{
	enum tg_rc rc;

	memset(out, 0, sizeof(*out));
	*has_customer = false;
	a->ntags = 0;
	a->naccounts = 0;
	/* A hold is how a call whose process dies is still charged; without
	 * a customer, a virtual key or a tag there is no account to charge,
	 * and no hold (ledger.h). */
	if (a->user_id == NULL && a->key == NULL && a->ntag_names == 0)
		return gate(gate_arg, NULL, a, err);
	if (a->estimate_known && a->mode == TG_ENFORCE_RESERVE &&
	    (a->key == NULL || !key_limited(a->key))) {
		char *tags = tags_json(a->tag_names, a->ntag_names);
		bool slow = false;

		rc = admit_call(db, a->user_id, a->default_budget_id, a->key,
		                tags, a->estimate, &a->hold, &slow, cust,
		                has_customer, out, err);
		free(tags);
		if (rc != TG_OK || !slow)
			return rc;
	}
	if (a->ntag_names > 0) {
		rc = tg_tag_load(db, a->tag_names, a->ntag_names, a->tags,
		                 &a->ntags, err);
		if (rc != TG_OK)
			return rc;
	}
	if (a->user_id == NULL && a->key == NULL && a->ntags == 0)
		return gate(gate_arg, NULL, a, err);
	if (a->user_id != NULL) {
		rc = tg_customer_upsert(db, a->user_id, a->default_budget_id,
		                        cust, err);
		if (rc != TG_OK)
			return rc;
		*has_customer = true;
	}
	/* The call's accounts, in the order they are locked. */
	a->naccounts = 0;
	if (*has_customer)
		a->accounts[a->naccounts++] = tg_customer_account(cust);
	if (a->key != NULL)
		a->accounts[a->naccounts++] = tg_key_account(a->key);
	for (size_t i = 0; i < a->ntags; i++)
		a->accounts[a->naccounts++] = tg_tag_account(&a->tags[i]);
	rc = gate(gate_arg, *has_customer ? cust : NULL, a, err);
	if (rc != TG_OK)
		return rc;
	return admit_statements(db, a->accounts, a->naccounts,
	                        a->key != NULL ? a->key->key_alias : NULL,
	                        a->estimate, a->mode, &a->hold, out, err);
}

struct tg_ledger_account
tg_ledger_account_of(const struct tg_customer *c, const struct tg_key *k)
{
	struct tg_ledger_account a;

	memset(&a, 0, sizeof(a));
	if (c != NULL) {
		a.user_id = c->user_id;
		if (c->has_budget) {
			a.budget_id = c->budget.budget_id;
			a.budget_duration = c->budget.budget_duration;
		}
	}
	if (k != NULL) {
		a.key_token = k->token;
		a.key_alias = k->key_alias;
		if (k->has_budget)
			a.key_budget_duration = k->budget.budget_duration;
	}
	return a;
}

enum tg_rc
tg_ledger_charge_account(struct tg_db *db, enum tg_account_kind kind,
                         const char *id, const char *next_s, const char *now_s,
                         tg_money charge, tg_money release, struct tg_err *err)
{
	struct tg_db_param params[8];

	params[0] = tg_db_str(next_s);
	params[1] = tg_db_str(now_s);
	params[2] = tg_db_money(charge);
	params[3] = params[0];
	params[4] = params[1];
	params[5] = params[0];
	params[6] = tg_db_money(release);
	params[7] = tg_db_str(id);
	return tg_db_run(db, tg_account_kind(kind)->sql.charge, params, 8, NULL,
	                 err);
}

/* One account a settlement charges: the customer or the key. */
struct party {
	enum tg_account_kind kind;
	const char *id;
	const char *budget_id; /* a customer's effective budget; NULL: key */
	bool budgeted;         /* its hold was admitted against max_budget */
	bool has_next;         /* its budget has a period ... */
	char next_s[20];       /* ... that would end here if one began now */
	tg_money released;     /* what this settlement gives back of its hold */
	bool model;            /* the hold is on its model_spend row too */
};

struct settle_arg {
	const struct tg_ledger_account *acct;
	const struct tg_ledger_entry *e;
	const struct tg_reservation *r;     /* the caller's, or &held */
	const struct tg_reservation *given; /* the caller's */
	struct tg_reservation held; /* given, with its hold row's tags */
	/* the customer, then the key, then the tags by name */
	struct party party[MAX_ACCOUNTS];
	size_t nparty;
	tg_money charged;
	bool already; /* the ledger row exists: settled by a lost commit */
	/* It replaced an unsettled row of that spend (a reclaimed hold). */
	bool replaced;
	tg_money replaced_spend;
};

/*
 * What a budgeted hold may be charged when its cost exceeds it (an upstream
 * that ignored the output bound): as much as keeps p's spend + reserved <=
 * max_budget once the hold is gone, so that neither this charge nor the
 * other holds' settlements take spend past max_budget.  *room gets it;
 * false when the account has no max_budget (nothing to cap).  The row is
 * locked until the transaction ends.
 */
static enum tg_rc
over_hold_room(struct tg_db *db, const struct settle_arg *a,
               const struct party *p, const char *now_s, bool *capped,
               tg_money *room, struct tg_err *err)
{
	struct tg_db_param params[4];
	struct tg_db_result res;
	tg_money spend, reserved, max_budget;
	enum tg_rc rc;

	*capped = false;
	/* spend as the settlement's UPDATE will see it: reset only when the
	 * budget has a period (next_s), as there. */
	params[0] = p->has_next ? tg_db_str(p->next_s) : tg_db_null();
	params[1] = tg_db_str(now_s);
	params[2] = tg_db_str(p->budget_id);
	params[3] = tg_db_str(p->id);
	rc = tg_db_exec(db, tg_account_kind(p->kind)->sql.room, params, 4, &res,
	                err);
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
	bool replace;   /* "unsettled": this settlement replaces it */
	tg_money spend; /* what it charged */
	/* Per party: the unsettled row's metadata.period_end, key_period_end
	 * or tag_period_end.<name>, "" for an account without periods. */
	bool period_known[MAX_ACCOUNTS];
	char period_end[MAX_ACCOUNTS][20];
	/* The same for the model_spend row it was charged to
	 * (model_period_end, key_model_period_end, tag_model_period_end.<name>;
	 * "" for none). */
	bool model_known[MAX_ACCOUNTS];
	char model_period_end[MAX_ACCOUNTS][20];
};

/*
 * Whether the unsettled row's metadata (meta) says where the period of
 * account (kind, id) ended (model: of its model_spend row): its member of
 * meta (or of meta's "tag_..." object for a tag), into *v (NULL: it said
 * null, a period of none).
 */
static bool
period_member(struct json_object *meta, enum tg_account_kind kind,
              const char *id, bool model, struct json_object **v)
{
	struct json_object *tags;

	*v = NULL;
	if (meta == NULL)
		return false;
	switch (kind) {
	case TG_ACCOUNT_CUSTOMER:
		return json_object_object_get_ex(
		        meta, model ? "model_period_end" : "period_end", v);
	case TG_ACCOUNT_KEY:
		return json_object_object_get_ex(
		        meta, model ? "key_model_period_end" : "key_period_end",
		        v);
	case TG_ACCOUNT_TAG:
		return json_object_object_get_ex(meta,
		                                 model ? "tag_model_period_end"
		                                       : "tag_period_end",
		                                 &tags) &&
		       json_object_is_type(tags, json_type_object) &&
		       json_object_object_get_ex(tags, id, v);
	}
	return false;
}

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
		for (size_t i = 0; i < a->nparty; i++) {
			const struct party *p = &a->party[i];

			if (period_member(meta, p->kind, p->id, true, &v)) {
				x->model_known[i] = true;
				if (json_object_is_type(v, json_type_string))
					tg_strlcpy(
					        x->model_period_end[i],
					        sizeof(x->model_period_end[i]),
					        json_object_get_string(v));
			}
			if (!period_member(meta, p->kind, p->id, false, &v))
				continue;
			x->period_known[i] = true;
			if (json_object_is_type(v, json_type_string))
				tg_strlcpy(x->period_end[i],
				           sizeof(x->period_end[i]),
				           json_object_get_string(v));
		}
		json_object_put(meta);
	}
	tg_db_result_free(&res);
	return TG_OK;
}

/*
 * The unsettled charge went into the period that was the account's when
 * the hold was reclaimed (its period_end).  Only while that period is still
 * the account's, and no reset is due, is it corrected to the real charge; a
 * closed period's counter is gone, and the row alone tells the truth about
 * it.
 */
static enum tg_rc
correct_account(struct tg_db *db, const struct settle_arg *a,
                const struct party *p, const struct existing *x, size_t i,
                const char *now_s, struct tg_err *err)
{
	struct tg_db_param params[6];

	params[0] = p->has_next ? tg_db_str(p->next_s) : tg_db_null();
	params[1] = tg_db_str(now_s);
	params[2] = x->period_known[i] && x->period_end[i][0] != '\0'
	                    ? tg_db_str(x->period_end[i])
	                    : tg_db_null();
	params[3] = tg_db_money(a->charged);
	params[4] = tg_db_money(x->spend);
	params[5] = tg_db_str(p->id);
	return tg_db_run(db, tg_account_kind(p->kind)->sql.correct, params, 6,
	                 NULL, err);
}

/* The accounts of a settlement, with their periods as of now. */
static void
parties(struct settle_arg *a, time_t now)
{
	const struct tg_ledger_account *acct = a->acct;
	struct tg_period period;

	a->nparty = 0;
	if (acct->user_id != NULL) {
		struct party *p = &a->party[a->nparty++];

		memset(p, 0, sizeof(*p));
		p->kind = TG_ACCOUNT_CUSTOMER;
		p->id = acct->user_id;
		p->budget_id = acct->budget_id;
		p->budgeted = a->r != NULL && a->r->held && a->r->budgeted;
		p->model = a->r != NULL && a->r->held &&
		           (a->r->model_accounts &
		            TG_HOLD_MODEL(TG_ACCOUNT_CUSTOMER)) != 0;
		if (acct->budget_duration != NULL &&
		    tg_period_parse(acct->budget_duration, &period)) {
			tg_time_sql(tg_period_next(&period, now), p->next_s);
			p->has_next = true;
		}
	}
	if (acct->key_token != NULL) {
		struct party *p = &a->party[a->nparty++];

		memset(p, 0, sizeof(*p));
		p->kind = TG_ACCOUNT_KEY;
		p->id = acct->key_token;
		p->budgeted = a->r != NULL && a->r->held && a->r->key_budgeted;
		p->model = a->r != NULL && a->r->held &&
		           (a->r->model_accounts &
		            TG_HOLD_MODEL(TG_ACCOUNT_KEY)) != 0;
		if (acct->key_budget_duration != NULL &&
		    tg_period_parse(acct->key_budget_duration, &period)) {
			tg_time_sql(tg_period_next(&period, now), p->next_s);
			p->has_next = true;
		}
	}
	/* The tags the hold was taken from: a call is charged to those that
	 * admitted it (their periods as the database has them: next_s by
	 * tag_periods()). */
	for (size_t i = 0; a->r != NULL && a->r->held && i < a->r->ntags &&
	                   a->nparty < MAX_ACCOUNTS;
	     i++) {
		struct party *p = &a->party[a->nparty++];

		memset(p, 0, sizeof(*p));
		p->kind = TG_ACCOUNT_TAG;
		p->id = a->r->tags[i].name;
		p->budgeted = (a->r->tags[i].flags & TG_HOLD_TAG_BUDGETED) != 0;
		p->model = (a->r->tags[i].flags & TG_HOLD_TAG_MODEL) != 0;
	}
}

/*
 * The periods of a settlement's tags (their budgets' budget_duration), as
 * a settlement's caller gives the customer's and the key's: one read of
 * them all, not locking (their rows are locked by their charges, in the
 * order of every transaction), with now.  A tag deleted meanwhile keeps
 * none; its charge changes nothing.
 */
static enum tg_rc
tag_periods(struct tg_db *db, struct settle_arg *a, time_t now,
            struct tg_err *err)
{
	struct tg_db_param params[TG_TAG_MAX];
	struct tg_db_result res;
	char sql[160 + 3 * TG_TAG_MAX];
	size_t n = 0, first = a->nparty, len;
	struct tg_period period;
	enum tg_rc rc;

	for (size_t i = 0; i < a->nparty; i++)
		if (a->party[i].kind == TG_ACCOUNT_TAG && n < TG_TAG_MAX) {
			if (first == a->nparty)
				first = i;
			params[n++] = tg_db_str(a->party[i].id);
		}
	if (n == 0)
		return TG_OK;
	len = (size_t)snprintf(sql, sizeof(sql),
	                       "SELECT t.tag_name, b.budget_duration FROM tags"
	                       " t JOIN budgets b ON b.budget_id = t.budget_id"
	                       " WHERE t.tag_name IN (?");
	for (size_t i = 1; i < n; i++)
		len += (size_t)snprintf(sql + len, sizeof(sql) - len, ", ?");
	snprintf(sql + len, sizeof(sql) - len, ")");
	rc = tg_db_exec(db, sql, params, n, &res, err);
	if (rc != TG_OK)
		return rc;
	for (size_t r = 0; r < res.nrows; r++) {
		const char *name = tg_db_cell(&res, r, 0);
		const char *duration = tg_db_cell(&res, r, 1);

		if (name == NULL || duration == NULL ||
		    !tg_period_parse(duration, &period))
			continue;
		for (size_t i = first; i < a->nparty; i++) {
			struct party *p = &a->party[i];

			if (p->kind == TG_ACCOUNT_TAG &&
			    strcmp(p->id, name) == 0) {
				tg_time_sql(tg_period_next(&period, now),
				            p->next_s);
				p->has_next = true;
			}
		}
	}
	tg_db_result_free(&res);
	return TG_OK;
}

/*
 * The ledger row's 16 values, in the column order of spend_logs that both
 * settlements insert: entry e charged spend, with metadata, between the
 * two times (as SQL text and in microseconds).
 */
static void
row_params(struct tg_db_param *params, const struct tg_ledger_entry *e,
           tg_money spend, const char *metadata, const char *start_s,
           const char *end_s, int64_t start_us, int64_t end_us)
{
	params[0] = tg_db_str(e->request_id);
	params[1] = tg_db_str(e->end_user != NULL ? e->end_user : "");
	params[2] = tg_db_str(e->model);
	params[3] = tg_db_str(e->model_id);
	params[4] = tg_db_str(e->api_key_hash);
	params[5] = tg_db_str(e->call_type);
	params[6] = tg_db_str(e->success ? "success" : "failure");
	params[7] = tg_db_money(spend);
	params[8] = tg_db_int(e->prompt_tokens);
	params[9] = tg_db_int(e->completion_tokens);
	params[10] = tg_db_int(e->total_tokens);
	params[11] = tg_db_str(start_s);
	params[12] = tg_db_str(end_s);
	params[13] = tg_db_int((end_us - start_us) / 1000);
	params[14] = tg_db_str(e->api_base);
	params[15] = tg_db_str(metadata);
}

/* p's row locked, as over_hold_room() locks it. */
static enum tg_rc
lock_account(struct tg_db *db, const struct party *p, struct tg_err *err)
{
	struct tg_db_param param = tg_db_str(p->id);
	struct tg_db_result res;
	enum tg_rc rc;

	rc = tg_db_exec(db, tg_account_kind(p->kind)->sql.lock, &param, 1, &res,
	                err);
	if (rc == TG_OK)
		tg_db_result_free(&res);
	return rc;
}

/*
 * What a charge above its hold may be on p's model_spend row: as much as
 * keeps spend + reserved <= the cap once the hold is given back (the
 * model's counterpart of over_hold_room()).  The row is locked.
 */
static enum tg_rc
model_room(struct tg_db *db, const struct settle_arg *a, const struct party *p,
           bool *capped, tg_money *room, struct tg_err *err)
{
	struct tg_db_param params[4];
	struct tg_db_result res;
	tg_money r;
	enum tg_rc rc;

	*capped = false;
	params[0] = tg_db_money(a->r->amount);
	params[1] = tg_db_str(tg_account_kind_name(p->kind));
	params[2] = tg_db_str(p->id);
	params[3] = tg_db_str(a->e->model);
	rc = tg_db_exec(db,
	                "SELECT budget_limit - spend - reserved +"
	                " CAST(? AS DECIMAL(20,10)) FROM model_spend"
	                " WHERE kind = ? AND account_id = ? AND model = ?"
	                " AND budget_limit IS NOT NULL FOR UPDATE",
	                params, 4, &res, err);
	if (rc != TG_OK)
		return rc;
	if (res.nrows == 1 && tg_money_parse(tg_db_cell(&res, 0, 0), &r)) {
		*room = r > 0 ? r : 0;
		*capped = true;
	}
	tg_db_result_free(&res);
	return TG_OK;
}

/*
 * The charge of p's model_spend row and the release of its hold there, as
 * the account's; a settlement that replaces an unsettled row corrects it
 * instead, by the difference, only while the row is in the period the
 * unsettled charge went into (the unsettled row's model_period_end).
 */
static enum tg_rc
charge_model(struct tg_db *db, const struct settle_arg *a,
             const struct party *p, const struct existing *x, size_t i,
             struct tg_err *err)
{
	struct tg_db_param params[6];

	if (x->replace) {
		if (!x->model_known[i])
			return TG_OK;
		params[0] = tg_db_money(a->charged);
		params[1] = tg_db_money(x->spend);
		params[2] = tg_db_str(tg_account_kind_name(p->kind));
		params[3] = tg_db_str(p->id);
		params[4] = tg_db_str(a->e->model);
		params[5] = x->model_period_end[i][0] != '\0'
		                    ? tg_db_str(x->model_period_end[i])
		                    : tg_db_null();
		return tg_db_run(db,
		                 "UPDATE model_spend SET spend = GREATEST(spend"
		                 " + CAST(? AS DECIMAL(20,10))"
		                 " - CAST(? AS DECIMAL(20,10)), 0)"
		                 " WHERE kind = ? AND account_id = ? AND"
		                 " model = ? AND spend_reset_at <=>"
		                 " CAST(? AS DATETIME)",
		                 params, 6, NULL, err);
	}
	params[0] = tg_db_money(a->charged);
	params[1] = tg_db_money(p->released);
	params[2] = tg_db_str(tg_account_kind_name(p->kind));
	params[3] = tg_db_str(p->id);
	params[4] = tg_db_str(a->e->model);
	return tg_db_run(db,
	                 "UPDATE model_spend SET spend = spend +"
	                 " CAST(? AS DECIMAL(20,10)), reserved ="
	                 " GREATEST(reserved - CAST(? AS DECIMAL(20,10)), 0)"
	                 " WHERE kind = ? AND account_id = ? AND model = ?",
	                 params, 5, NULL, err);
}

enum tg_rc
tg_ledger_index_tags(struct tg_db *db, const char *request_id,
                     const char *start_s, const char *const *tags, size_t ntags,
                     struct tg_err *err)
{
	struct tg_db_param params[3];
	enum tg_rc rc = TG_OK;

	params[1] = tg_db_str(request_id);
	params[2] = tg_db_str(start_s);
	for (size_t i = 0; i < ntags && rc == TG_OK; i++) {
		params[0] = tg_db_str(tags[i]);
		rc = tg_db_run(
		        db,
		        "INSERT INTO spend_log_tags (tag, request_id,"
		        " start_time) VALUES (?, ?,"
		        " COALESCE(?, UTC_TIMESTAMP(6))) ON DUPLICATE KEY"
		        " UPDATE start_time = VALUES(start_time)",
		        params, 3, NULL, err);
	}
	return rc;
}

/*
 * The hold's tags as its row says them, locked (the caller's answer of the
 * admission was lost): a->r becomes a->held, the caller's hold with them.
 * A hold row that is gone, or a schema without tags (1054), has none.
 */
static enum tg_rc
hold_tags(struct tg_db *db, struct settle_arg *a, struct tg_err *err)
{
	struct tg_db_param param = tg_db_str(a->given->request_id);
	struct tg_db_result res;
	enum tg_rc rc;

	a->held = *a->given;
	a->held.tags_unknown = false;
	a->held.ntags = 0;
	a->r = &a->held;
	rc = tg_db_exec(db,
	                "SELECT tags FROM reservations WHERE request_id = ?"
	                " FOR UPDATE",
	                &param, 1, &res, err);
	if (rc == TG_ERR_DB && tg_db_errno(db) == 1054) {
		tg_err_clear(err);
		return TG_OK;
	}
	if (rc != TG_OK)
		return rc;
	if (res.nrows == 1 &&
	    !tg_ledger_tags_parse(tg_db_cell(&res, 0, 0), &a->held))
		rc = tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                "malformed tags of reservation %s",
		                a->given->request_id);
	tg_db_result_free(&res);
	return rc;
}

static enum tg_rc
settle_txn(struct tg_db *db, void *varg, struct tg_err *err)
{
	struct settle_arg *a = varg;
	const struct tg_ledger_entry *e = a->e;
	struct tg_db_param params[16];
	struct tg_db_result res;
	char start_s[32], end_s[32], now_s[20];
	char *meta = NULL;
	int64_t start_us, end_us;
	tg_money released = 0;
	uint64_t deleted = 0;
	struct existing x;
	time_t now;
	enum tg_rc rc = TG_OK;

	memset(&x, 0, sizeof(x));
	a->replaced = false;
	end_us = e->end_us != 0 ? e->end_us : wall_us();
	start_us = e->start_us != 0 ? e->start_us : end_us;
	now = (time_t)(end_us / 1000000);
	tg_time_sql(now, now_s);
	time_us_sql(start_us, start_s);
	time_us_sql(end_us, end_s);
	a->r = a->given;
	if (a->r != NULL && a->r->held && a->r->tags_unknown &&
	    (rc = hold_tags(db, a, err)) != TG_OK)
		return rc;
	parties(a, now);
	if ((rc = tag_periods(db, a, now, err)) != TG_OK)
		return rc;

	a->charged = e->spend;
	if (a->r != NULL && a->r->held && a->r->lease_id[0] != '\0') {
		/* Against a lease, the room is what the lease had for this
		 * call (r->amount), within every budget it was taken from. */
		if (e->spend > a->r->amount) {
			a->charged = a->r->amount;
			meta = over_hold_metadata(e->metadata, e->spend);
		}
	} else if (a->r != NULL && a->r->held && e->spend > a->r->amount) {
		bool any = false;

		/* Capped by each budget it was held against: the smaller room.
		 */
		for (size_t i = 0; i < a->nparty && rc == TG_OK; i++) {
			bool capped = false;
			tg_money room = 0;

			/* The account's row before its model's: the order
			 * the admission locks them in. */
			if (a->party[i].budgeted) {
				rc = over_hold_room(db, a, &a->party[i], now_s,
				                    &capped, &room, err);
				if (rc != TG_OK)
					break;
				if (capped && room < a->charged)
					a->charged = room;
				any |= capped;
			}
			if (!a->party[i].model)
				continue;
			if (!a->party[i].budgeted)
				rc = lock_account(db, &a->party[i], err);
			if (rc == TG_OK)
				rc = model_room(db, a, &a->party[i], &capped,
				                &room, err);
			if (capped && room < a->charged)
				a->charged = room;
			any |= capped;
		}
		if (rc != TG_OK)
			return rc;
		if (any)
			meta = over_hold_metadata(e->metadata, e->spend);
	}

	row_params(params, e, a->charged, meta != NULL ? meta : e->metadata,
	           start_s, end_s, start_us, end_us);
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
		a->replaced = true;
		a->replaced_spend = x.spend;
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
	rc = tg_ledger_index_tags(db, e->request_id, start_s, e->tags, e->ntags,
	                          err);
	if (rc != TG_OK)
		goto out;

	if (a->r != NULL && a->r->held && a->r->lease_id[0] != '\0') {
		/* The charge comes off the lease's row, which stays for the
		 * process's next calls, as does the rest of this call's
		 * share.  A lease that is gone was charged whole as
		 * unsettled when its deadline passed (its process lost with
		 * its disk), which covers this call: nothing more. */
		rc = tg_ledger_lease_take(db, a->r->lease_id, a->charged,
		                          &deleted, err);
		if (rc != TG_OK)
			goto out;
		if (deleted > 0)
			released = a->charged;
		if (deleted == 0 && !x.replace) {
			a->charged = 0;
			a->already = true;
			rc = TG_ERR_CONFLICT;
			goto out;
		}
	} else if (a->r != NULL && a->r->held) {
		params[0] = tg_db_str(a->r->request_id);
		rc = tg_db_run(db,
		               "DELETE FROM reservations WHERE request_id = ?",
		               params, 1, &deleted, err);
		if (rc != TG_OK)
			goto out;
		/* Only the one who deletes the hold gives its amount back,
		 * to each account it was held from. */
		if (deleted > 0)
			released = a->r->amount;
		/* A new row for a hold that is gone: a settlement and the
		 * reclaim of a hold each delete it with writing the row, so
		 * this one went through before and its row was archived
		 * since (tollgate-archive).  Nothing more to charge. */
		if (deleted == 0 && !x.replace) {
			a->charged = 0;
			a->already = true;
			rc = TG_ERR_CONFLICT;
			goto out;
		}
	}
	for (size_t i = 0; i < a->nparty && rc == TG_OK; i++) {
		struct party *p = &a->party[i];
		struct tg_event_account ev = {p->kind,
		                              p->id,
		                              p->budget_id,
		                              e->api_key_hash,
		                              a->acct->key_alias,
		                              e->call_type};

		/* The key and the tags get the hold back only if it was
		 * taken from them (a tag's party comes from the hold). */
		if (p->kind == TG_ACCOUNT_KEY)
			p->released = a->r != NULL && a->r->key_token[0] != '\0'
			                      ? released
			                      : 0;
		else
			p->released = released;
		if (x.replace)
			rc = correct_account(db, a, p, &x, i, now_s, err);
		else
			rc = tg_ledger_charge_account(
			        db, p->kind, p->id,
			        p->has_next ? p->next_s : NULL, now_s,
			        a->charged, p->released, err);
		if (rc == TG_OK && p->model)
			rc = charge_model(db, a, p, &x, i, err);
		if (rc == TG_OK)
			rc = tg_events_charged(db, a->acct->alerts, &ev,
			                       e->success || a->charged > 0,
			                       a->charged, err);
	}
out:
	free(meta);
	return rc;
}

enum tg_rc
tg_ledger_lease_take(struct tg_db *db, const char *lease_id, tg_money amount,
                     uint64_t *taken, struct tg_err *err)
{
	struct tg_db_param params[3];

	*taken = 0;
	params[0] = tg_db_money(amount);
	params[1] = tg_db_str(lease_id);
	params[2] = tg_db_money(amount);
	return tg_db_run(db,
	                 "UPDATE reservations SET amount = amount -"
	                 " CAST(? AS DECIMAL(20,10)) WHERE request_id = ?"
	                 " AND amount >= CAST(? AS DECIMAL(20,10))",
	                 params, 3, taken, err);
}

/*
 * What the one-round-trip settlement (sql/011's tg_settle_v11) cannot do: cap a
 * charge above its hold (that reads the accounts first) and write events
 * (lib/events.c builds their bodies).  Those settlements take the long way.
 */
static bool
settle_fast_applies(const struct settle_arg *a)
{
	if (a->r != NULL && a->r->held && a->r->lease_id[0] != '\0')
		return false;
	if (a->r != NULL && a->r->held && a->e->spend > a->r->amount)
		return false;
	/* A hold on model_spend rows (a tag's too): the statements charge
	 * them; a hold whose tags are for its row to say: they read it. */
	if (a->r != NULL && a->r->held &&
	    (a->r->model_accounts != 0 || a->r->tags_unknown))
		return false;
	for (size_t i = 0; a->r != NULL && a->r->held && i < a->r->ntags; i++)
		if (a->r->tags[i].flags & TG_HOLD_TAG_MODEL)
			return false;
	return a->nparty == 0 || !tg_events_on(a->acct->alerts);
}

/*
 * The settlement in one CALL of tg_settle_v11.  *dup: the request's row
 * was there already, or a tag's period is due (nothing done; the long way
 * finds out what it is, or starts the period).
 */
static enum tg_rc
settle_call(struct tg_db *db, struct settle_arg *a, bool *dup,
            struct tg_err *err)
{
	const struct tg_ledger_entry *e = a->e;
	const struct party *cust = NULL, *key = NULL;
	struct tg_db_param params[25];
	struct tg_db_result res;
	char start_s[32], end_s[32], now_s[20];
	char *row_tags;
	int64_t start_us, end_us;
	time_t now;
	bool held = a->r != NULL && a->r->held;
	const char *outcome;
	enum tg_rc rc;

	*dup = false;
	end_us = e->end_us != 0 ? e->end_us : wall_us();
	start_us = e->start_us != 0 ? e->start_us : end_us;
	now = (time_t)(end_us / 1000000);
	tg_time_sql(now, now_s);
	time_us_sql(start_us, start_s);
	time_us_sql(end_us, end_s);
	/* The tags are the procedure's to find, from the hold's row. */
	for (size_t i = 0; i < a->nparty; i++) {
		if (a->party[i].kind == TG_ACCOUNT_CUSTOMER)
			cust = &a->party[i];
		else if (a->party[i].kind == TG_ACCOUNT_KEY)
			key = &a->party[i];
	}
	row_params(params, e, e->spend, e->metadata, start_s, end_s, start_us,
	           end_us);
	params[16] = held ? tg_db_str(a->r->request_id) : tg_db_null();
	params[17] = tg_db_money(held ? a->r->amount : 0);
	params[18] = cust != NULL ? tg_db_str(cust->id) : tg_db_null();
	params[19] = cust != NULL && cust->has_next ? tg_db_str(cust->next_s)
	                                            : tg_db_null();
	params[20] = key != NULL ? tg_db_str(key->id) : tg_db_null();
	params[21] = key != NULL && key->has_next ? tg_db_str(key->next_s)
	                                          : tg_db_null();
	/* The key gets the hold back only if the hold was taken from it. */
	params[22] = tg_db_int(held && a->r->key_token[0] != '\0' ? 1 : 0);
	params[23] = tg_db_str(now_s);
	row_tags = tags_json(e->tags, e->ntags);
	params[24] = tg_db_str(row_tags);
	rc = tg_db_call(db,
	                "CALL tg_settle_v11(?, ?, ?, ?, ?, ?, ?,"
	                " CAST(? AS DECIMAL(20,10)), ?, ?, ?, ?, ?, ?, ?, ?,"
	                " ?, CAST(? AS DECIMAL(20,10)), ?, ?, ?, ?, ?, ?, ?)",
	                params, 25, &res, err);
	free(row_tags);
	if (rc != TG_OK)
		return rc;
	outcome = res.nrows == 1 && res.ncols == 1 ? tg_db_cell(&res, 0, 0)
	                                           : NULL;
	/* A row there already, or a tag's period due: the long way. */
	if (outcome != NULL &&
	    (strcmp(outcome, "duplicate") == 0 || strcmp(outcome, "long") == 0))
		*dup = true;
	else if (outcome == NULL || strcmp(outcome, "settled") != 0)
		rc = tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                "malformed answer of tg_settle_v11");
	tg_db_result_free(&res);
	if (rc == TG_OK && !*dup)
		a->charged = e->spend;
	return rc;
}

void
tg_ledger_count_spend(const char *model, tg_money amount)
{
	char labels[TG_METRICS_LABELS_MAX];
	const char *kv[2] = {"model", model};

	if (amount != 0 && tg_metrics_labels(labels, sizeof(labels), 1, kv))
		tg_metrics_add("tollgate_spend_usd_total", labels, amount);
}

/* A settlement committed: its tokens, and what it added to the ledger's
 * spend (SPEC 15). */
static void
count_settled(const struct settle_arg *a)
{
	const struct tg_ledger_entry *e = a->e;
	char labels[TG_METRICS_LABELS_MAX];
	const char *kv[6] = {"route", tg_api_path_of_call_type(e->call_type),
	                     "model", e->model,
	                     "type",  "prompt"};

	if (tg_metrics_labels(labels, sizeof(labels), 3, kv))
		tg_metrics_count("tollgate_tokens_total", labels,
		                 e->prompt_tokens);
	kv[5] = "completion";
	if (tg_metrics_labels(labels, sizeof(labels), 3, kv))
		tg_metrics_count("tollgate_tokens_total", labels,
		                 e->completion_tokens);
	tg_ledger_count_spend(
	        e->model, a->charged - (a->replaced ? a->replaced_spend : 0));
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
	arg.r = arg.given = r;
	parties(&arg,
	        (time_t)((e->end_us != 0 ? e->end_us : wall_us()) / 1000000));
	if (settle_fast_applies(&arg)) {
		bool dup = false;

		rc = settle_call(db, &arg, &dup, err);
		if (rc == TG_OK && !dup) {
			count_settled(&arg);
			if (charged != NULL)
				*charged = arg.charged;
			return TG_OK;
		}
		if (rc != TG_OK && !(rc == TG_ERR_DB && no_procedure(db)))
			return rc;
		tg_err_clear(err);
	}
	rc = tg_db_txn(db, settle_txn, &arg, err);
	if (rc == TG_OK)
		count_settled(&arg);
	if (rc == TG_ERR_CONFLICT && arg.already)
		rc = TG_OK; /* charged by the first commit, as computed here */
	if (rc == TG_OK && charged != NULL)
		*charged = arg.charged;
	return rc;
}

struct batch_arg {
	struct tg_ledger_settlement *s;
	struct settle_arg *arg;
	size_t n;
};

/*
 * Each settlement of the batch behind a savepoint: one the database refuses,
 * or one settled before (its statements rolled back), is left out without
 * undoing the others.  Out of reach, a deadlock: the whole transaction goes
 * (tg_db_txn() retries it, from the first).
 */
static enum tg_rc
batch_txn(struct tg_db *db, void *varg, struct tg_err *err)
{
	struct batch_arg *b = varg;
	enum tg_rc rc;

	for (size_t i = 0; i < b->n; i++) {
		struct settle_arg *a = &b->arg[i];
		struct tg_err one;

		if (a->e == NULL) {
			b->s[i].rc = TG_ERR_INTERNAL; /* left out before */
			continue;
		}
		b->s[i].rc = TG_OK;
		a->already = false;
		rc = tg_db_run(db, "SAVEPOINT tg_settle", NULL, 0, NULL, err);
		if (rc != TG_OK)
			return rc;
		tg_err_clear(&one);
		rc = settle_txn(db, a, &one);
		if (rc == TG_OK)
			continue;
		if (rc == TG_ERR_DB && tg_db_unavailable(db)) {
			*err = one;
			return rc;
		}
		if (rc == TG_ERR_DB &&
		    (tg_db_errno(db) == 1213 || tg_db_errno(db) == 1205)) {
			*err = one; /* the server rolled the whole batch back */
			return rc;
		}
		b->s[i].rc = rc == TG_ERR_CONFLICT && a->already ? TG_OK : rc;
		rc = tg_db_run(db, "ROLLBACK TO SAVEPOINT tg_settle", NULL, 0,
		               NULL, err);
		if (rc != TG_OK)
			return rc;
		if (b->s[i].rc != TG_OK)
			tg_log_error("settlement %s left out of its batch: %s",
			             a->e->request_id ? a->e->request_id : "?",
			             one.message);
	}
	return TG_OK;
}

enum tg_rc
tg_ledger_settle_batch(struct tg_db *db, struct tg_ledger_settlement *s,
                       size_t n, struct tg_err *err)
{
	struct tg_ledger_account none;
	struct batch_arg b;
	enum tg_rc rc;

	if (n == 0)
		return TG_OK;
	memset(&none, 0, sizeof(none));
	b.s = s;
	b.n = n;
	b.arg = tg_xcalloc(n, sizeof(*b.arg));
	for (size_t i = 0; i < n; i++) {
		struct settle_arg *a = &b.arg[i];

		a->acct = s[i].acct != NULL ? s[i].acct : &none;
		a->e = s[i].e;
		a->r = a->given = s[i].r;
		s[i].rc = TG_OK;
		s[i].charged = 0;
		if (s[i].e->spend < 0) {
			/* Never written so: left out, for the operator. */
			a->e = NULL;
			s[i].rc = TG_ERR_INTERNAL;
			continue;
		}
		parties(a, (time_t)((s[i].e->end_us != 0 ? s[i].e->end_us
		                                         : wall_us()) /
		                    1000000));
	}
	rc = tg_db_txn(db, batch_txn, &b, err);
	if (rc == TG_OK)
		for (size_t i = 0; i < n; i++) {
			if (s[i].rc != TG_OK || b.arg[i].e == NULL)
				continue;
			s[i].charged = b.arg[i].charged;
			if (!b.arg[i].already)
				count_settled(&b.arg[i]);
		}
	free(b.arg);
	return rc;
}
