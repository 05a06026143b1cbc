/*
 * customer: end users keyed by user_id, with their current-period spend,
 * in-flight reservations and effective budget (SPEC 3, 4.2, 6, 8.1).
 *
 * The chat path reads (or creates) the customer in its admission's one
 * round trip (tg_ledger_admit_fast()), and calls tg_customer_upsert() only
 * when that leaves it to the long way, where an existing customer costs
 * one query: the row joined with its effective budget (its
 * own budget_id, else the default tier).  Period resets are lazy (SPEC 6):
 * a conditional UPDATE guarded by spend_reset_at, so that any number of
 * processes racing over the same due reset apply it exactly once.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "account.h"
#include "customer.h"
#include "jsonx.h"
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

/* Row row of res (load_sql's columns) into *out; false if malformed. */
static bool
parse_row(const struct tg_db_result *res, size_t row, struct tg_customer *out)
{
	struct tg_customer c;
	const char *spend = tg_db_cell(res, row, 3);
	const char *reserved = tg_db_cell(res, row, 4);
	const char *reset = tg_db_cell(res, row, 8);

	memset(&c, 0, sizeof(c));
	if (spend == NULL || !tg_money_parse(spend, &c.spend) ||
	    reserved == NULL || !tg_money_parse(reserved, &c.reserved) ||
	    (reset != NULL && !tg_time_parse_sql(reset, &c.spend_reset_at.v)))
		return false;
	c.spend_reset_at.set = reset != NULL;
	c.has_budget =
	        tg_budget_from_row(res, row, CUSTOMER_NCOLUMNS, &c.budget);
	c.user_id = tg_xstrdup(tg_db_cell(res, row, 0));
	c.alias = dup_or_null(tg_db_cell(res, row, 1));
	c.blocked = tg_db_cell(res, row, 2) != NULL &&
	            strcmp(tg_db_cell(res, row, 2), "0") != 0;
	c.budget_id = dup_or_null(tg_db_cell(res, row, 5));
	c.allowed_model_region = dup_or_null(tg_db_cell(res, row, 6));
	c.default_model = dup_or_null(tg_db_cell(res, row, 7));
	*out = c;
	return true;
}

/* Load user_id; *found false (and *out untouched) when there is no row. */
static enum tg_rc
load(struct tg_db *db, const char *user_id, const char *default_budget_id,
     bool *found, struct tg_customer *out, struct tg_err *err)
{
	struct tg_db_param params[2];
	struct tg_db_result res;
	enum tg_rc rc;

	params[0] = tg_db_str(default_budget_id);
	params[1] = tg_db_str(user_id);
	rc = tg_db_exec(db, load_sql, params, 2, &res, err);
	if (rc != TG_OK)
		return rc;
	*found = res.nrows > 0;
	if (*found && !parse_row(&res, 0, out))
		rc = tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                "malformed customer row in the database");
	tg_db_result_free(&res);
	return rc;
}

/* A customer being read by tg_account_load(). */
struct reader {
	const char *user_id;
	const char *default_budget_id;
	struct tg_customer c;
	bool have; /* c holds a row */
};

static enum tg_rc
read_customer(struct tg_db *db, void *varg, bool *found,
              struct tg_account_row *row, struct tg_err *err)
{
	struct reader *r = varg;
	enum tg_rc rc;

	if (r->have)
		tg_customer_free(&r->c);
	r->have = false;
	rc = load(db, r->user_id, r->default_budget_id, found, &r->c, err);
	if (rc != TG_OK || !*found)
		return rc;
	r->have = true;
	row->id = r->c.user_id;
	row->budget = r->c.has_budget ? &r->c.budget : NULL;
	row->spend_reset_at = &r->c.spend_reset_at;
	return TG_OK;
}

/* The customer as it is now (tg_account_load()); NOT_FOUND when absent. */
static enum tg_rc
load_current(struct tg_db *db, const char *user_id,
             const char *default_budget_id, struct tg_customer *out,
             struct tg_err *err)
{
	struct reader r;
	bool found = false;
	enum tg_rc rc;

	memset(&r, 0, sizeof(r));
	r.user_id = user_id;
	r.default_budget_id = default_budget_id;
	rc = tg_account_load(db, TG_ACCOUNT_CUSTOMER, read_customer, &r, true,
	                     &found, err);
	if (rc == TG_OK && !found)
		rc = tg_err_set(err, TG_ERR_NOT_FOUND, "end_user_id",
		                "End User Id=%s does not exist in db", user_id);
	if (rc != TG_OK) {
		if (r.have)
			tg_customer_free(&r.c);
		return rc;
	}
	*out = r.c;
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
	const char *default_budget_id;
	const char *created_by;
	char private_budget[37]; /* "" when none */
};

static enum tg_rc
create_txn(struct tg_db *db, void *varg, struct tg_err *err)
{
	struct create_arg *a = varg;
	const struct tg_customer_input *in = a->in;
	const char *budget_id = in->budget_id;
	struct tg_db_param params[7];
	enum tg_rc rc;

	if (a->private_budget[0] != '\0') {
		rc = tg_budget_insert(db, a->private_budget, &in->budget,
		                      a->created_by, TG_ACCOUNT_CUSTOMER,
		                      in->user_id, err);
		if (rc != TG_OK)
			return rc;
		budget_id = a->private_budget;
	}
	params[0] = tg_db_str(in->user_id);
	params[1] = tg_db_str(in->alias);
	params[2] = tg_db_int(in->blocked_set && in->blocked ? 1 : 0);
	params[3] = tg_db_str(budget_id);
	/* Neither a tier nor budget fields: the default tier, if it exists. */
	params[4] = tg_db_str(budget_id == NULL ? a->default_budget_id : NULL);
	params[5] = tg_db_str(in->allowed_model_region);
	params[6] = tg_db_str(in->default_model);
	rc = tg_db_run(db,
	               "INSERT INTO customers (user_id, alias, blocked,"
	               " budget_id, allowed_model_region, default_model,"
	               " created_at, updated_at) VALUES (?, ?, ?,"
	               " COALESCE(?, (SELECT budget_id FROM budgets"
	               " WHERE budget_id = ?)), ?, ?,"
	               " UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
	               params, 7, NULL, err);
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
                   const char *default_budget_id, const char *created_by,
                   struct tg_customer *out, struct tg_err *err)
{
	struct create_arg arg;
	enum tg_rc rc;

	if (in->budget_id != NULL && tg_budget_input_any(&in->budget))
		return both_error(&in->budget, err);
	memset(&arg, 0, sizeof(arg));
	arg.in = in;
	arg.default_budget_id = default_budget_id;
	arg.created_by = created_by;
	if (tg_budget_input_any(&in->budget))
		tg_uuid_new(arg.private_budget);
	rc = tg_db_txn(db, create_txn, &arg, err);
	if (rc != TG_OK)
		return rc;
	return load_current(db, in->user_id, default_budget_id, out, err);
}

/* ---- update ---- */

struct update_arg {
	const struct tg_customer_update *in;
	const char *default_budget_id;
	const char *updated_by;
};

static struct tg_db_param
opt_str_value(struct tg_opt_str o)
{
	return o.set ? tg_db_str(o.v) : tg_db_null();
}

/*
 * Give user_id a private budget copied from source_id (NULL or a missing
 * row: an empty one), put the customer on it, and write its id to out.
 */
static enum tg_rc
private_copy(struct tg_db *db, const char *user_id, const char *source_id,
             const char *by, char out[37], struct tg_err *err)
{
	struct tg_db_param params[2];
	enum tg_rc rc;

	rc = tg_budget_copy(db, source_id, by, TG_ACCOUNT_CUSTOMER, user_id,
	                    out, err);
	if (rc != TG_OK)
		return rc;
	params[0] = tg_db_str(out);
	params[1] = tg_db_str(user_id);
	return tg_db_run(db,
	                 "UPDATE customers SET budget_id = ?,"
	                 " updated_at = UTC_TIMESTAMP(6) WHERE user_id = ?",
	                 params, 2, NULL, err);
}

static enum tg_rc
update_txn(struct tg_db *db, void *varg, struct tg_err *err)
{
	struct update_arg *a = varg;
	const struct tg_customer_update *in = a->in;
	struct tg_db_param params[9];
	struct tg_db_result res;
	char *budget_id = NULL; /* as stored */
	bool private_budget;
	char copy_id[37];
	enum tg_rc rc;

	params[0] = tg_db_str(in->user_id);
	rc = tg_db_exec(db,
	                "SELECT c.budget_id, b.private_for = c.user_id"
	                " FROM customers c LEFT JOIN budgets b"
	                " ON b.budget_id = c.budget_id"
	                " WHERE c.user_id = ? FOR UPDATE",
	                params, 1, &res, err);
	if (rc != TG_OK)
		return rc;
	if (res.nrows == 0) {
		tg_db_result_free(&res);
		return tg_err_set(err, TG_ERR_NOT_FOUND, "user_id",
		                  "End User Id=%s does not exist in db",
		                  in->user_id);
	}
	budget_id = dup_or_null(tg_db_cell(&res, 0, 0));
	private_budget = tg_db_cell(&res, 0, 1) != NULL &&
	                 strcmp(tg_db_cell(&res, 0, 1), "1") == 0;
	tg_db_result_free(&res);

	if (in->budget_id.set) {
		/* A new tier starts a new period (spend_reset_at NULL). */
		params[0] = tg_db_str(in->budget_id.v);
		params[1] = tg_db_str(in->user_id);
		rc = tg_db_run(db,
		               "UPDATE customers SET budget_id = ?,"
		               " spend_reset_at = NULL,"
		               " updated_at = UTC_TIMESTAMP(6)"
		               " WHERE user_id = ?",
		               params, 2, NULL, err);
		if (rc == TG_ERR_DB && tg_db_missing_parent(db)) {
			rc = tg_err_set(err, TG_ERR_BAD_REQUEST, "budget_id",
			                "Budget id=%s does not exist in db",
			                in->budget_id.v);
			goto out;
		}
		if (rc != TG_OK)
			goto out;
		if (private_budget &&
		    (in->budget_id.v == NULL ||
		     strcmp(in->budget_id.v, budget_id) != 0)) {
			params[0] = tg_db_str(budget_id);
			params[1] = tg_db_str(in->user_id);
			rc = tg_db_run(db,
			               "DELETE FROM budgets WHERE budget_id = ?"
			               " AND private_for = ?",
			               params, 2, NULL, err);
			if (rc != TG_OK)
				goto out;
		}
		free(budget_id);
		budget_id = dup_or_null(in->budget_id.v);
		private_budget = false;
	}
	if (tg_budget_input_first(&in->budget) != TG_BUDGET_NFIELDS) {
		if (!private_budget) {
			/* Off a tier by budget_id null: nothing to copy. */
			const char *source =
			        in->budget_id.set
			                ? NULL
			                : (budget_id != NULL
			                           ? budget_id
			                           : a->default_budget_id);
			rc = private_copy(db, in->user_id, source,
			                  a->updated_by, copy_id, err);
			if (rc != TG_OK)
				goto out;
			free(budget_id);
			budget_id = tg_xstrdup(copy_id);
		}
		rc = tg_budget_apply(db, budget_id, &in->budget, a->updated_by,
		                     NULL, err);
		if (rc != TG_OK)
			goto out;
	}
	params[0] = tg_db_int(in->alias.set);
	params[1] = opt_str_value(in->alias);
	params[2] = tg_db_int(in->blocked_set);
	params[3] = tg_db_int(in->blocked_set && in->blocked);
	params[4] = tg_db_int(in->allowed_model_region.set);
	params[5] = opt_str_value(in->allowed_model_region);
	params[6] = tg_db_int(in->default_model.set);
	params[7] = opt_str_value(in->default_model);
	params[8] = tg_db_str(in->user_id);
	rc = tg_db_run(db,
	               "UPDATE customers SET alias = IF(?, ?, alias),"
	               " blocked = IF(?, ?, blocked),"
	               " allowed_model_region = IF(?, ?,"
	               " allowed_model_region),"
	               " default_model = IF(?, ?, default_model),"
	               " updated_at = UTC_TIMESTAMP(6) WHERE user_id = ?",
	               params, 9, NULL, err);
out:
	free(budget_id);
	return rc;
}

enum tg_rc
tg_customer_update(struct tg_db *db, const struct tg_customer_update *in,
                   const char *default_budget_id, const char *updated_by,
                   struct tg_customer *out, struct tg_err *err)
{
	struct update_arg arg = {in, default_budget_id, updated_by};
	enum tg_rc rc;

	if (in->budget_id.set && in->budget_id.v != NULL &&
	    tg_budget_input_first(&in->budget) != TG_BUDGET_NFIELDS)
		return both_error(&in->budget, err);
	rc = tg_db_txn(db, update_txn, &arg, err);
	if (rc != TG_OK)
		return rc;
	return load_current(db, in->user_id, default_budget_id, out, err);
}

/* ---- delete, block, unblock ---- */

static struct tg_db_param
id_param(struct json_object *ids, size_t i)
{
	struct json_object *e = json_object_array_get_idx(ids, i);

	return tg_db_strn(json_object_get_string(e),
	                  (size_t)json_object_get_string_len(e));
}

char *
tg_customer_ids_text(struct json_object *ids)
{
	size_t n = json_object_array_length(ids), cap = 3, len = 0;
	char *buf;

	for (size_t i = 0; i < n; i++)
		cap += 2 * (size_t)json_object_get_string_len(
		                   json_object_array_get_idx(ids, i)) +
		       4;
	buf = tg_xmalloc(cap);
	buf[len++] = '[';
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(ids, i);
		const char *id = json_object_get_string(e);
		size_t idlen = (size_t)json_object_get_string_len(e);
		if (i > 0) {
			buf[len++] = ',';
			buf[len++] = ' ';
		}
		buf[len++] = '\'';
		for (size_t k = 0; k < idlen; k++) {
			if (id[k] == '\'' || id[k] == '\\')
				buf[len++] = '\\';
			buf[len++] = id[k];
		}
		buf[len++] = '\'';
	}
	buf[len++] = ']';
	buf[len] = '\0';
	return buf;
}

struct ids_arg {
	struct json_object *ids;
	bool blocked;
	const char *default_budget_id;
	size_t done;
};

static enum tg_rc
delete_txn(struct tg_db *db, void *varg, struct tg_err *err)
{
	struct ids_arg *a = varg;
	size_t n = json_object_array_length(a->ids);
	struct json_object *missing = json_object_new_array();
	struct tg_db_param params[2];
	struct tg_db_result res;
	enum tg_rc rc = TG_OK;

	a->done = 0;
	for (size_t i = 0; i < n && rc == TG_OK; i++) {
		params[0] = id_param(a->ids, i);
		rc = tg_db_exec(db,
		                "SELECT 1 FROM customers WHERE user_id = ?"
		                " FOR UPDATE",
		                params, 1, &res, err);
		if (rc != TG_OK)
			break;
		if (res.nrows == 0)
			json_object_array_add(
			        missing,
			        json_object_get(
			                json_object_array_get_idx(a->ids, i)));
		tg_db_result_free(&res);
	}
	if (rc == TG_OK && json_object_array_length(missing) > 0) {
		char *text = tg_customer_ids_text(missing);
		rc = tg_err_set(err, TG_ERR_NOT_FOUND, "user_ids",
		                "End User Id(s)=%s do not exist in db", text);
		free(text);
	}
	json_object_put(missing);
	for (size_t i = 0; i < n && rc == TG_OK; i++) {
		uint64_t affected = 0;
		params[0] = id_param(a->ids, i);
		rc = tg_db_run(db, "DELETE FROM customers WHERE user_id = ?",
		               params, 1, &affected, err);
		if (rc != TG_OK)
			break;
		a->done +=
		        (size_t)affected; /* an id listed twice counts once */
		/* Its private budget has no other user; the ledger stays. */
		rc = tg_db_run(db, "DELETE FROM budgets WHERE private_for = ?",
		               params, 1, NULL, err);
		if (rc == TG_OK)
			rc = tg_account_forget(db, TG_ACCOUNT_CUSTOMER,
			                       params[0].str, params[0].len,
			                       err);
	}
	return rc;
}

enum tg_rc
tg_customer_delete(struct tg_db *db, struct json_object *user_ids,
                   size_t *deleted, struct tg_err *err)
{
	struct ids_arg arg = {user_ids, false, NULL, 0};
	enum tg_rc rc;

	rc = tg_db_txn(db, delete_txn, &arg, err);
	if (rc == TG_OK)
		*deleted = arg.done;
	return rc;
}

static enum tg_rc
blocked_txn(struct tg_db *db, void *varg, struct tg_err *err)
{
	struct ids_arg *a = varg;
	size_t n = json_object_array_length(a->ids);
	struct tg_db_param params[2];
	enum tg_rc rc = TG_OK;

	for (size_t i = 0; i < n && rc == TG_OK; i++) {
		params[0] = id_param(a->ids, i);
		params[1] = tg_db_str(a->default_budget_id);
		if (a->blocked)
			rc = tg_db_run(db,
			               "INSERT INTO customers (user_id,"
			               " blocked, budget_id, created_at,"
			               " updated_at) VALUES (?, 1, (SELECT"
			               " budget_id FROM budgets WHERE"
			               " budget_id = ?), UTC_TIMESTAMP(6),"
			               " UTC_TIMESTAMP(6)) ON DUPLICATE KEY"
			               " UPDATE blocked = 1,"
			               " updated_at = UTC_TIMESTAMP(6)",
			               params, 2, NULL, err);
		else
			rc = tg_db_run(db,
			               "UPDATE customers SET blocked = 0,"
			               " updated_at = UTC_TIMESTAMP(6)"
			               " WHERE user_id = ?",
			               params, 1, NULL, err);
	}
	return rc;
}

enum tg_rc
tg_customer_set_blocked(struct tg_db *db, struct json_object *user_ids,
                        bool blocked, const char *default_budget_id,
                        struct tg_err *err)
{
	struct ids_arg arg = {user_ids, blocked, default_budget_id, 0};

	return tg_db_txn(db, blocked_txn, &arg, err);
}

/* ---- list ---- */

/*
 * The filters of tg_customer_list(), shared by its count and its page.
 * search is a substring of the id or the alias, in any case: the ids are
 * valid UTF-8 (SPEC 1), so reading them as utf8mb4 is exact, and the
 * explicit case-insensitive collation of the needle decides LOCATE's
 * comparison.  It reads every row (no index serves a substring), which is
 * milliseconds for tens of thousands of customers; the page stops early,
 * as rows come in user_id order.
 */
#define LIST_WHERE                                                             \
	" WHERE (? IS NULL OR c.budget_id = ?)"                                \
	" AND (? < 0 OR c.blocked = ?)"                                        \
	" AND (? IS NULL"                                                      \
	" OR LOCATE(CONVERT(? USING utf8mb4) COLLATE utf8mb4_general_ci,"      \
	" CONVERT(c.user_id USING utf8mb4)) > 0"                               \
	" OR LOCATE(CONVERT(? USING utf8mb4) COLLATE utf8mb4_general_ci,"      \
	" c.alias) > 0)"
#define LIST_NPARAMS 7

static void
list_params(const struct tg_customer_filter *f, struct tg_db_param *params)
{
	params[0] = tg_db_str(f->budget_id);
	params[1] = tg_db_str(f->budget_id);
	params[2] = tg_db_int(f->blocked);
	params[3] = tg_db_int(f->blocked);
	params[4] = tg_db_str(f->search);
	params[5] = tg_db_str(f->search);
	params[6] = tg_db_str(f->search);
}

/* How many customers match f's filters, into *total. */
static enum tg_rc
list_count(struct tg_db *db, const struct tg_customer_filter *f, int64_t *total,
           struct tg_err *err)
{
	struct tg_db_param params[LIST_NPARAMS];
	struct tg_db_result res;
	const char *cell;
	char *end = NULL;
	enum tg_rc rc;

	list_params(f, params);
	rc = tg_db_exec(db, "SELECT COUNT(*) FROM customers c" LIST_WHERE,
	                params, LIST_NPARAMS, &res, err);
	if (rc != TG_OK)
		return rc;
	cell = res.nrows == 1 ? tg_db_cell(&res, 0, 0) : NULL;
	errno = 0;
	if (cell != NULL)
		*total = strtoll(cell, &end, 10);
	if (cell == NULL || errno != 0 || end == cell || *end != '\0')
		rc = tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                "malformed customer count from the database");
	tg_db_result_free(&res);
	return rc;
}

enum tg_rc
tg_customer_list(struct tg_db *db, const struct tg_customer_filter *f,
                 const char *default_budget_id, struct json_object **out,
                 int64_t *total, struct tg_err *err)
{
	struct tg_db_param params[1 + LIST_NPARAMS + 2];
	struct tg_db_result res;
	struct json_object *arr;
	int64_t limit = f->page_size > 0 ? f->page_size : INT64_MAX;
	int64_t offset = 0, count = 0;
	time_t now = time(NULL);
	enum tg_rc rc;

	if (f->page_size > 0 && f->page > 1) {
		if (f->page - 1 > INT64_MAX / f->page_size)
			return tg_err_set(err, TG_ERR_UNPROCESSABLE, "page",
			                  "page is out of range");
		offset = (f->page - 1) * f->page_size;
	}
	/* A page needs its own count; every customer is counted as listed. */
	if (f->page_size > 0 && (rc = list_count(db, f, &count, err)) != TG_OK)
		return rc;
	params[0] = tg_db_str(default_budget_id);
	list_params(f, params + 1);
	params[1 + LIST_NPARAMS] = tg_db_int(limit);
	params[2 + LIST_NPARAMS] = tg_db_int(offset);
	rc = tg_db_exec(db,
	                "SELECT c.user_id, c.alias, c.blocked, c.spend,"
	                " c.reserved, c.budget_id, c.allowed_model_region,"
	                " c.default_model, c.spend_reset_at, " TG_BUDGET_COLUMNS
	                " FROM customers c LEFT JOIN budgets b"
	                " ON b.budget_id = COALESCE(c.budget_id, ?)" LIST_WHERE
	                " ORDER BY c.user_id LIMIT ? OFFSET ?",
	                params, 1 + LIST_NPARAMS + 2, &res, err);
	if (rc != TG_OK)
		return rc;
	arr = json_object_new_array();
	for (size_t i = 0; i < res.nrows && rc == TG_OK; i++) {
		struct tg_customer c;
		if (!parse_row(&res, i, &c)) {
			rc = tg_err_set(
			        err, TG_ERR_INTERNAL, NULL,
			        "malformed customer row in the database");
			break;
		}
		/* An ended period reads as 0 (the reset is applied lazily by
		 * the customer's next request). */
		if (c.has_budget && c.budget.budget_duration != NULL &&
		    c.spend_reset_at.set && c.spend_reset_at.v <= now)
			c.spend = 0;
		if (c.has_budget)
			rc = tg_budget_advance(db, &c.budget, err);
		if (rc == TG_OK)
			json_object_array_add(arr, tg_customer_to_json(&c));
		tg_customer_free(&c);
	}
	if (f->page_size == 0)
		count = (int64_t)res.nrows;
	tg_db_result_free(&res);
	if (rc != TG_OK) {
		json_object_put(arr);
		return rc;
	}
	*out = arr;
	*total = count;
	return TG_OK;
}

struct json_object *
tg_customer_to_json(const struct tg_customer *c)
{
	struct json_object *o = json_object_new_object();
	char when[21];

	json_object_object_add(o, "user_id", tg_json_str(c->user_id));
	json_object_object_add(o, "blocked",
	                       json_object_new_boolean(c->blocked));
	json_object_object_add(o, "alias", tg_json_str(c->alias));
	json_object_object_add(o, "spend", tg_json_money(c->spend));
	json_object_object_add(o, "allowed_model_region",
	                       tg_json_str(c->allowed_model_region));
	json_object_object_add(o, "default_model",
	                       tg_json_str(c->default_model));
	json_object_object_add(o, "budget_id", tg_json_str(c->budget_id));
	json_object_object_add(o, "litellm_budget_table",
	                       c->has_budget ? tg_budget_table_json(&c->budget)
	                                     : NULL);
	json_object_object_add(o, "reserved", tg_json_money(c->reserved));
	if (c->spend_reset_at.set) {
		tg_time_iso8601(c->spend_reset_at.v, when);
		json_object_object_add(o, "spend_reset_at",
		                       json_object_new_string(when));
	} else {
		json_object_object_add(o, "spend_reset_at", NULL);
	}
	return o;
}

struct tg_account
tg_customer_account(const struct tg_customer *c)
{
	struct tg_account a = {
	        TG_ACCOUNT_CUSTOMER, c->user_id, NULL, NULL, c->spend, NULL};

	if (c->has_budget) {
		a.budget = &c->budget;
		a.budget_id = c->budget.budget_id;
	}
	return a;
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
