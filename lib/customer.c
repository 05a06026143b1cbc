/*
 * customer: end users keyed by user_id, with their current-period spend,
 * in-flight reservations and effective budget (SPEC 3, 4.2, 6, 8.1).
 *
 * The chat path calls tg_customer_upsert() on every request, so an existing
 * customer costs one query: the row joined with its effective budget (its
 * own budget_id, else the default tier).  Period resets are lazy (SPEC 6):
 * a conditional UPDATE guarded by spend_reset_at, so that any number of
 * processes racing over the same due reset apply it exactly once.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "customer.h"
#include "period.h"
#include "util.h"

#define CUSTOMER_NCOLUMNS 9

/* Effective budget: COALESCE(own, default tier). */
static const char load_sql[] =
        "SELECT c.user_id, c.alias, c.blocked, c.spend, c.reserved,"
        " c.budget_id, c.allowed_model_region, c.default_model,"
        " c.spend_reset_at, " TG_BUDGET_COLUMNS
        " FROM customers c LEFT JOIN budgets b"
        " ON b.budget_id = COALESCE(c.budget_id, ?)"
        " WHERE c.user_id = ?";

static char *
dup_or_null(const char *s)
{
	return s != NULL ? tg_xstrdup(s) : NULL;
}

/* Load user_id; *found false (and *out untouched) when there is no row. */
static enum tg_rc
load(struct tg_db *db, const char *user_id, const char *default_budget_id,
     bool *found, struct tg_customer *out, struct tg_err *err)
{
	struct tg_db_param params[2];
	struct tg_db_result res;
	struct tg_customer c;
	const char *spend, *reserved, *reset;
	enum tg_rc rc;

	params[0] = tg_db_str(default_budget_id);
	params[1] = tg_db_str(user_id);
	rc = tg_db_exec(db, load_sql, params, 2, &res, err);
	if (rc != TG_OK)
		return rc;
	if (res.nrows == 0) {
		*found = false;
		goto out;
	}
	memset(&c, 0, sizeof(c));
	spend = tg_db_cell(&res, 0, 3);
	reserved = tg_db_cell(&res, 0, 4);
	reset = tg_db_cell(&res, 0, 8);
	if (spend == NULL || !tg_money_parse(spend, &c.spend) ||
	    reserved == NULL || !tg_money_parse(reserved, &c.reserved) ||
	    (reset != NULL && !tg_time_parse_sql(reset, &c.spend_reset_at.v))) {
		rc = tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                "malformed customer row in the database");
		goto out;
	}
	c.spend_reset_at.set = reset != NULL;
	c.has_budget =
	        tg_budget_from_row(&res, 0, CUSTOMER_NCOLUMNS, &c.budget);
	c.user_id = tg_xstrdup(tg_db_cell(&res, 0, 0));
	c.alias = dup_or_null(tg_db_cell(&res, 0, 1));
	c.blocked = tg_db_cell(&res, 0, 2) != NULL &&
	            strcmp(tg_db_cell(&res, 0, 2), "0") != 0;
	c.budget_id = dup_or_null(tg_db_cell(&res, 0, 5));
	c.allowed_model_region = dup_or_null(tg_db_cell(&res, 0, 6));
	c.default_model = dup_or_null(tg_db_cell(&res, 0, 7));
	*found = true;
	*out = c;
out:
	tg_db_result_free(&res);
	return rc;
}

/*
 * When the effective budget has a budget_duration and the period ended (or
 * never started), start the next one.  Returns whether c must be reloaded.
 */
static enum tg_rc
apply_reset(struct tg_db *db, const struct tg_customer *c, bool *changed,
            struct tg_err *err)
{
	struct tg_period period;
	struct tg_db_param params[3];
	char next_s[20], now_s[20];
	time_t now = time(NULL);
	enum tg_rc rc;

	*changed = false;
	if (!c->has_budget || c->budget.budget_duration == NULL ||
	    !tg_period_parse(c->budget.budget_duration, &period))
		return TG_OK;
	if (c->spend_reset_at.set && c->spend_reset_at.v > now)
		return TG_OK;
	tg_time_sql(tg_period_next(&period, now), next_s);
	tg_time_sql(now, now_s);
	params[0] = tg_db_str(next_s);
	params[1] = tg_db_str(c->user_id);
	params[2] = tg_db_str(now_s);
	/*
	 * spend is assigned before spend_reset_at, so it sees the old value:
	 * a first period start keeps the spend, a due reset zeroes it.  The
	 * WHERE makes a concurrent second application match nothing.
	 */
	rc = tg_db_exec(db,
	                "UPDATE customers SET"
	                " spend = IF(spend_reset_at IS NULL, spend, 0),"
	                " spend_reset_at = ?, updated_at = UTC_TIMESTAMP(6)"
	                " WHERE user_id = ? AND (spend_reset_at IS NULL"
	                " OR spend_reset_at <= ?)",
	                params, 3, NULL, err);
	if (rc != TG_OK)
		return rc;
	/* Reload even when another process won the race: its values count. */
	*changed = true;
	return TG_OK;
}

/* load + due reset; NOT_FOUND when absent. */
static enum tg_rc
load_current(struct tg_db *db, const char *user_id,
             const char *default_budget_id, struct tg_customer *out,
             struct tg_err *err)
{
	struct tg_customer c;
	bool found = false, changed = false;
	enum tg_rc rc;

	rc = load(db, user_id, default_budget_id, &found, &c, err);
	if (rc != TG_OK)
		return rc;
	if (!found)
		return tg_err_set(err, TG_ERR_NOT_FOUND, "end_user_id",
		                  "End User Id=%s does not exist in db",
		                  user_id);
	rc = apply_reset(db, &c, &changed, err);
	if (rc == TG_OK && changed) {
		tg_customer_free(&c);
		rc = load(db, user_id, default_budget_id, &found, &c, err);
		if (rc != TG_OK)
			return rc;
		if (!found)
			return tg_err_set(err, TG_ERR_NOT_FOUND, "end_user_id",
			                  "End User Id=%s does not exist in db",
			                  user_id);
	}
	if (rc != TG_OK) {
		tg_customer_free(&c);
		return rc;
	}
	*out = c;
	return TG_OK;
}

enum tg_rc
tg_customer_get(struct tg_db *db, const char *user_id,
                const char *default_budget_id, struct tg_customer *out,
                struct tg_err *err)
{
	return load_current(db, user_id, default_budget_id, out, err);
}

enum tg_rc
tg_customer_upsert(struct tg_db *db, const char *user_id,
                   const char *default_budget_id, struct tg_customer *out,
                   struct tg_err *err)
{
	struct tg_db_param params[2];
	enum tg_rc rc;

	rc = load_current(db, user_id, default_budget_id, out, err);
	if (rc != TG_ERR_NOT_FOUND)
		return rc;
	/*
	 * The default tier is looked up inside the INSERT itself, so a tier
	 * that exists is attached atomically with the row; IGNORE makes the
	 * loser of a concurrent first request a no-op.
	 */
	params[0] = tg_db_str(user_id);
	params[1] = tg_db_str(default_budget_id);
	rc = tg_db_run(db,
	               "INSERT IGNORE INTO customers (user_id, budget_id,"
	               " created_at, updated_at) VALUES (?, (SELECT"
	               " budget_id FROM budgets WHERE budget_id = ?),"
	               " UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
	               params, 2, NULL, err);
	if (rc != TG_OK)
		return rc;
	return load_current(db, user_id, default_budget_id, out, err);
}

/*
 * The one place of the rule that a customer is either on a tier
 * (budget_id) or has budget fields of its own, not both: LiteLLM's message,
 * whichever budget field was given (param says which).
 */
static enum tg_rc
both_error(const struct tg_budget_input *b, struct tg_err *err)
{
	return tg_err_set(err, TG_ERR_UNPROCESSABLE,
	                  tg_budget_field_name(tg_budget_input_first(b)),
	                  "Set either 'max_budget' or 'budget_id', not both.");
}

struct create_arg {
	const struct tg_customer_input *in;
	const char *created_by;
	char private_budget[37]; /* "" when none */
};

static enum tg_rc
create_txn(struct tg_db *db, void *varg, struct tg_err *err)
{
	struct create_arg *a = varg;
	const struct tg_customer_input *in = a->in;
	const char *budget_id = in->budget_id;
	struct tg_db_param params[6];
	enum tg_rc rc;

	if (a->private_budget[0] != '\0') {
		rc = tg_budget_insert(db, a->private_budget, &in->budget,
		                      a->created_by, in->user_id, err);
		if (rc != TG_OK)
			return rc;
		budget_id = a->private_budget;
	}
	params[0] = tg_db_str(in->user_id);
	params[1] = tg_db_str(in->alias);
	params[2] = tg_db_int(in->blocked_set && in->blocked ? 1 : 0);
	params[3] = tg_db_str(budget_id);
	params[4] = tg_db_str(in->allowed_model_region);
	params[5] = tg_db_str(in->default_model);
	rc = tg_db_run(db,
	               "INSERT INTO customers (user_id, alias, blocked,"
	               " budget_id, allowed_model_region, default_model,"
	               " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?,"
	               " UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
	               params, 6, NULL, err);
	if (rc == TG_ERR_CONFLICT)
		return tg_err_set(err, TG_ERR_CONFLICT, "user_id",
		                  "Customer already exists, passed user_id=%s. "
		                  "Please pass a new user_id.",
		                  in->user_id);
	/* The foreign key found no such budget (no racy pre-check). */
	if (rc == TG_ERR_DB && tg_db_missing_parent(db))
		return tg_err_set(err, TG_ERR_BAD_REQUEST, "budget_id",
		                  "Budget id=%s does not exist in db",
		                  in->budget_id != NULL ? in->budget_id : "");
	return rc;
}

enum tg_rc
tg_customer_create(struct tg_db *db, const struct tg_customer_input *in,
                   const char *created_by, struct tg_customer *out,
                   struct tg_err *err)
{
	struct create_arg arg;
	enum tg_rc rc;

	if (in->budget_id != NULL && tg_budget_input_any(&in->budget))
		return both_error(&in->budget, err);
	memset(&arg, 0, sizeof(arg));
	arg.in = in;
	arg.created_by = created_by;
	if (tg_budget_input_any(&in->budget))
		tg_uuid_new(arg.private_budget);
	rc = tg_db_txn(db, create_txn, &arg, err);
	if (rc != TG_OK)
		return rc;
	return load_current(db, in->user_id, NULL, out, err);
}

static struct json_object *
str_json(const char *s)
{
	return s != NULL ? json_object_new_string(s) : NULL;
}

/* Money as the shortest exact decimal, keeping that text in the JSON. */
static struct json_object *
money_json(tg_money v)
{
	char buf[TG_MONEY_STRLEN];

	tg_money_format(v, buf, sizeof(buf));
	return json_object_new_double_s(strtod(buf, NULL), buf);
}

struct json_object *
tg_customer_to_json(const struct tg_customer *c)
{
	struct json_object *o = json_object_new_object();
	char when[21];

	json_object_object_add(o, "user_id", str_json(c->user_id));
	json_object_object_add(o, "blocked",
	                       json_object_new_boolean(c->blocked));
	json_object_object_add(o, "alias", str_json(c->alias));
	json_object_object_add(o, "spend", money_json(c->spend));
	json_object_object_add(o, "allowed_model_region",
	                       str_json(c->allowed_model_region));
	json_object_object_add(o, "default_model", str_json(c->default_model));
	json_object_object_add(o, "budget_id", str_json(c->budget_id));
	json_object_object_add(o, "litellm_budget_table",
	                       c->has_budget ? tg_budget_table_json(&c->budget)
	                                     : NULL);
	json_object_object_add(o, "reserved", money_json(c->reserved));
	if (c->spend_reset_at.set) {
		tg_time_iso8601(c->spend_reset_at.v, when);
		json_object_object_add(o, "spend_reset_at",
		                       json_object_new_string(when));
	} else {
		json_object_object_add(o, "spend_reset_at", NULL);
	}
	return o;
}

void
tg_customer_free(struct tg_customer *c)
{
	if (c == NULL)
		return;
	free(c->user_id);
	free(c->alias);
	free(c->budget_id);
	free(c->allowed_model_region);
	free(c->default_model);
	tg_budget_free(&c->budget);
	memset(c, 0, sizeof(*c));
}
