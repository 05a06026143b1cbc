/*
 * budget: budget rows ("pricing tiers") shared by customers (SPEC 3, 8).
 *
 * A budget row holds limits only; the spend lives on the customer, so one
 * tier can serve any number of customers without a hot row.  Rows are read
 * as strings from lib/db and parsed exactly (money through lib/money.h).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "budget.h"
#include "jsonx.h"
#include "period.h"
#include "util.h"

const char *
tg_budget_field_name(enum tg_budget_field f)
{
	switch (f) {
	case TG_BUDGET_F_MAX_BUDGET: return "max_budget";
	case TG_BUDGET_F_SOFT_BUDGET: return "soft_budget";
	case TG_BUDGET_F_TPM_LIMIT: return "tpm_limit";
	case TG_BUDGET_F_RPM_LIMIT: return "rpm_limit";
	case TG_BUDGET_F_MAX_PARALLEL_REQUESTS: return "max_parallel_requests";
	case TG_BUDGET_F_BUDGET_DURATION: return "budget_duration";
	case TG_BUDGET_F_MODEL_MAX_BUDGET: return "model_max_budget";
	case TG_BUDGET_F_BUDGET_RESET_AT: return "budget_reset_at";
	case TG_BUDGET_NFIELDS: break;
	}
	return "";
}

static void
opt_money_from(const struct tg_value *v, struct tg_opt_money *out)
{
	out->set = v->given;
	out->v = v->given ? v->num : 0;
}

static void
opt_i64_from(const struct tg_value *v, struct tg_opt_i64 *out)
{
	out->set = v->given;
	out->v = v->given ? v->num : 0;
}

void
tg_budget_input_from_values(const struct tg_value *v,
                            struct tg_budget_input *out)
{
	const struct tg_value *mmb = &v[TG_BUDGET_F_MODEL_MAX_BUDGET];
	const struct tg_value *reset = &v[TG_BUDGET_F_BUDGET_RESET_AT];
	const struct tg_value *dur = &v[TG_BUDGET_F_BUDGET_DURATION];
	struct tg_budget_input in;

	memset(&in, 0, sizeof(in));
	opt_money_from(&v[TG_BUDGET_F_MAX_BUDGET], &in.max_budget);
	opt_money_from(&v[TG_BUDGET_F_SOFT_BUDGET], &in.soft_budget);
	opt_i64_from(&v[TG_BUDGET_F_TPM_LIMIT], &in.tpm_limit);
	opt_i64_from(&v[TG_BUDGET_F_RPM_LIMIT], &in.rpm_limit);
	opt_i64_from(&v[TG_BUDGET_F_MAX_PARALLEL_REQUESTS],
	             &in.max_parallel_requests);
	in.budget_duration = dur->given ? dur->str : NULL;
	in.model_max_budget =
	        mmb->given ? json_object_to_json_string_ext(
	                             mmb->json, JSON_C_TO_STRING_PLAIN)
	                   : NULL;
	in.budget_reset_at.set = reset->given;
	in.budget_reset_at.v = reset->given ? (time_t)reset->num : 0;
	for (unsigned f = 0; f < TG_BUDGET_NFIELDS; f++)
		if (v[f].null)
			in.cleared |= 1u << f;
	*out = in;
}

enum tg_budget_field
tg_budget_input_first(const struct tg_budget_input *in)
{
	bool set[TG_BUDGET_NFIELDS] = {
	        in->max_budget.set,
	        in->soft_budget.set,
	        in->tpm_limit.set,
	        in->rpm_limit.set,
	        in->max_parallel_requests.set,
	        in->budget_duration != NULL,
	        in->model_max_budget != NULL,
	        in->budget_reset_at.set,
	};

	for (unsigned f = 0; f < TG_BUDGET_NFIELDS; f++)
		if (set[f] || (in->cleared & (1u << f)))
			return (enum tg_budget_field)f;
	return TG_BUDGET_NFIELDS;
}

bool
tg_budget_input_any(const struct tg_budget_input *in)
{
	return in->max_budget.set || in->soft_budget.set ||
	       in->max_parallel_requests.set || in->tpm_limit.set ||
	       in->rpm_limit.set || in->model_max_budget != NULL ||
	       in->budget_duration != NULL || in->budget_reset_at.set;
}

static struct tg_db_param
opt_money_param(struct tg_opt_money m)
{
	return m.set ? tg_db_money(m.v) : tg_db_null();
}

static struct tg_db_param
opt_i64_param(struct tg_opt_i64 v)
{
	return v.set ? tg_db_int(v.v) : tg_db_null();
}

/* The budget_limit of a cap, exact from the number's text. */
static bool
cap_limit(struct json_object *cap, tg_money *out)
{
	struct json_object *v;

	return json_object_object_get_ex(cap, "budget_limit", &v) &&
	       (json_object_is_type(v, json_type_double) ||
	        json_object_is_type(v, json_type_int)) &&
	       tg_money_parse(json_object_get_string(v), out) && *out >= 0;
}

/* The time_period of a cap: true with *out (NULL: none) when valid. */
static bool
cap_period(struct json_object *cap, const char **out)
{
	struct json_object *v;
	struct tg_period p;

	*out = NULL;
	if (!json_object_object_get_ex(cap, "time_period", &v) || v == NULL)
		return true;
	if (!json_object_is_type(v, json_type_string) ||
	    !tg_period_parse(json_object_get_string(v), &p))
		return false;
	*out = json_object_get_string(v);
	return true;
}

enum tg_rc
tg_budget_check_model_max_budget(const char *text, struct tg_err *err)
{
	struct json_object *o;
	enum tg_rc rc = TG_OK;

	if (text == NULL)
		return TG_OK;
	o = json_tokener_parse(text);
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return tg_err_set(err, TG_ERR_UNPROCESSABLE, "model_max_budget",
		                  "model_max_budget must be an object of "
		                  "{\"<model>\": {\"budget_limit\": <USD>, "
		                  "\"time_period\": \"<duration>\"}}");
	}
	json_object_object_foreach(o, model, cap)
	{
		tg_money limit;
		const char *period;

		if (!json_object_is_type(cap, json_type_object) ||
		    !cap_limit(cap, &limit)) {
			rc = tg_err_set(
			        err, TG_ERR_UNPROCESSABLE, "model_max_budget",
			        "model_max_budget for model=%.200s: "
			        "budget_limit must be a number >= 0 with "
			        "at most 10 decimals",
			        model);
			break;
		}
		if (!cap_period(cap, &period)) {
			rc = tg_err_set(
			        err, TG_ERR_UNPROCESSABLE, "model_max_budget",
			        "model_max_budget for model=%.200s: "
			        "invalid time_period (a duration such as "
			        "\"1d\", \"30d\", \"1mo\")",
			        model);
			break;
		}
	}
	json_object_put(o);
	return rc;
}

bool
tg_budget_model_cap(const struct tg_budget *b, const char *model,
                    tg_money *limit, char *period, size_t period_len)
{
	struct json_object *o, *cap;
	const char *p = NULL;
	bool found = false;

	if (b == NULL || b->model_max_budget == NULL || model == NULL)
		return false;
	o = json_tokener_parse(b->model_max_budget);
	if (json_object_is_type(o, json_type_object) &&
	    json_object_object_get_ex(o, model, &cap) &&
	    json_object_is_type(cap, json_type_object) &&
	    cap_limit(cap, limit) && cap_period(cap, &p)) {
		tg_strlcpy(period, period_len, p);
		found = true;
	}
	json_object_put(o);
	return found;
}

enum tg_rc
tg_budget_insert(struct tg_db *db, const char *budget_id,
                 const struct tg_budget_input *in, const char *created_by,
                 enum tg_account_kind owner_kind, const char *owner,
                 struct tg_err *err)
{
	char reset_at[20];
	struct tg_db_param params[13];
	bool have_reset = false;
	time_t reset = 0;
	enum tg_rc rc;

	if ((rc = tg_budget_check_model_max_budget(in->model_max_budget,
	                                           err)) != TG_OK)
		return rc;
	if (in->budget_reset_at.set) {
		reset = in->budget_reset_at.v;
		have_reset = true;
	} else if (in->budget_duration != NULL) {
		struct tg_period p;
		if (!tg_period_parse(in->budget_duration, &p))
			return tg_err_set(err, TG_ERR_UNPROCESSABLE,
			                  "budget_duration",
			                  "Invalid budget_duration: %s",
			                  in->budget_duration);
		reset = tg_period_next(&p, time(NULL));
		have_reset = true;
	}
	if (have_reset)
		tg_time_sql(reset, reset_at);

	params[0] = tg_db_str(budget_id);
	params[1] = opt_money_param(in->max_budget);
	params[2] = opt_money_param(in->soft_budget);
	params[3] = opt_i64_param(in->max_parallel_requests);
	params[4] = opt_i64_param(in->tpm_limit);
	params[5] = opt_i64_param(in->rpm_limit);
	params[6] = tg_db_str(in->model_max_budget);
	params[7] = tg_db_str(in->budget_duration);
	params[8] = have_reset ? tg_db_str(reset_at) : tg_db_null();
	params[9] = tg_db_str(owner_kind == TG_ACCOUNT_CUSTOMER ? owner : NULL);
	params[10] = tg_db_str(owner_kind == TG_ACCOUNT_KEY ? owner : NULL);
	params[11] = tg_db_str(created_by);
	params[12] = tg_db_str(created_by);
	rc = tg_db_run(
	        db,
	        "INSERT INTO budgets (budget_id, max_budget, soft_budget,"
	        " max_parallel_requests, tpm_limit, rpm_limit,"
	        " model_max_budget, budget_duration, budget_reset_at,"
	        " private_for, private_for_key, created_at, created_by,"
	        " updated_at, updated_by) VALUES (?, CAST(? AS DECIMAL(20,10)),"
	        " CAST(? AS DECIMAL(20,10)), ?, ?, ?, ?, ?, ?, ?, ?,"
	        " UTC_TIMESTAMP(6), ?, UTC_TIMESTAMP(6), ?)",
	        params, 13, NULL, err);
	if (rc == TG_ERR_CONFLICT)
		rc = tg_err_set(err, TG_ERR_CONFLICT, "budget_id",
		                "Budget with id '%s' already exists.",
		                budget_id);
	return rc;
}

enum tg_rc
tg_budget_copy(struct tg_db *db, const char *source_id, const char *by,
               enum tg_account_kind owner_kind, const char *owner, char out[37],
               struct tg_err *err)
{
	struct tg_db_param params[5];
	struct tg_budget_input empty;
	uint64_t copied = 0;
	enum tg_rc rc;

	tg_uuid_new(out);
	if (source_id != NULL) {
		params[0] = tg_db_str(out);
		params[1] = tg_db_str(owner_kind == TG_ACCOUNT_CUSTOMER ? owner
		                                                        : NULL);
		params[2] = tg_db_str(by);
		params[3] = tg_db_str(by);
		params[4] = tg_db_str(source_id);
		rc = tg_db_run(
		        db,
		        "INSERT INTO budgets (budget_id, max_budget,"
		        " soft_budget, max_parallel_requests, tpm_limit,"
		        " rpm_limit, model_max_budget, budget_duration,"
		        " budget_reset_at, private_for, created_at, created_by,"
		        " updated_at, updated_by) SELECT ?, max_budget,"
		        " soft_budget, max_parallel_requests, tpm_limit,"
		        " rpm_limit, model_max_budget, budget_duration,"
		        " budget_reset_at, ?, UTC_TIMESTAMP(6), ?,"
		        " UTC_TIMESTAMP(6), ? FROM budgets WHERE budget_id = ?",
		        params, 5, &copied, err);
		if (rc != TG_OK)
			return rc;
	}
	if (copied > 0)
		return TG_OK;
	memset(&empty, 0, sizeof(empty));
	return tg_budget_insert(db, out, &empty, by, owner_kind, owner, err);
}

enum tg_rc
tg_budget_create(struct tg_db *db, const char *budget_id,
                 const struct tg_budget_input *in, const char *created_by,
                 struct tg_budget *out, struct tg_err *err)
{
	char uuid[37];
	enum tg_rc rc;

	if (budget_id == NULL) {
		tg_uuid_new(uuid);
		budget_id = uuid;
	}
	rc = tg_budget_insert(db, budget_id, in, created_by,
	                      TG_ACCOUNT_CUSTOMER, NULL, err);
	if (rc != TG_OK)
		goto out;
	rc = tg_budget_get(db, budget_id, out, err);
out:
	return rc;
}

static bool
parse_opt_money(const char *s, struct tg_opt_money *out)
{
	out->set = false;
	out->v = 0;
	if (s == NULL)
		return true;
	if (!tg_money_parse(s, &out->v))
		return false;
	out->set = true;
	return true;
}

static bool
parse_opt_i64(const char *s, struct tg_opt_i64 *out)
{
	char *end;
	long long v;

	out->set = false;
	out->v = 0;
	if (s == NULL)
		return true;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0')
		return false;
	out->v = v;
	out->set = true;
	return true;
}

static bool
parse_opt_time(const char *s, struct tg_opt_time *out)
{
	out->set = false;
	out->v = 0;
	if (s == NULL)
		return true;
	if (!tg_time_parse_sql(s, &out->v))
		return false;
	out->set = true;
	return true;
}

static char *
dup_or_null(const char *s)
{
	return s != NULL ? tg_xstrdup(s) : NULL;
}

bool
tg_budget_from_row(const struct tg_db_result *res, size_t row, size_t col0,
                   struct tg_budget *out)
{
	struct tg_budget b;
	struct tg_opt_time created, updated;
	const char *cell[TG_BUDGET_NCOLUMNS];

	if (res->ncols < col0 + TG_BUDGET_NCOLUMNS || row >= res->nrows)
		return false;
	for (size_t i = 0; i < TG_BUDGET_NCOLUMNS; i++)
		cell[i] = tg_db_cell(res, row, col0 + i);
	if (cell[0] == NULL)
		return false;
	memset(&b, 0, sizeof(b));
	if (!parse_opt_money(cell[1], &b.max_budget) ||
	    !parse_opt_money(cell[2], &b.soft_budget) ||
	    !parse_opt_i64(cell[3], &b.max_parallel_requests) ||
	    !parse_opt_i64(cell[4], &b.tpm_limit) ||
	    !parse_opt_i64(cell[5], &b.rpm_limit) ||
	    !parse_opt_time(cell[8], &b.budget_reset_at) ||
	    !parse_opt_time(cell[9], &created) ||
	    !parse_opt_time(cell[11], &updated))
		return false;
	b.created_at = created.v;
	b.updated_at = updated.v;
	b.budget_id = tg_xstrdup(cell[0]);
	b.model_max_budget = dup_or_null(cell[6]);
	b.budget_duration = dup_or_null(cell[7]);
	b.created_by = dup_or_null(cell[10]);
	b.updated_by = dup_or_null(cell[12]);
	*out = b;
	return true;
}

enum tg_rc
tg_budget_get(struct tg_db *db, const char *budget_id, struct tg_budget *out,
              struct tg_err *err)
{
	struct tg_db_param param = tg_db_str(budget_id);
	struct tg_db_result res;
	enum tg_rc rc;

	rc = tg_db_exec(db,
	                "SELECT " TG_BUDGET_COLUMNS
	                " FROM budgets b WHERE b.budget_id = ?",
	                &param, 1, &res, err);
	if (rc != TG_OK)
		return rc;
	if (res.nrows == 0)
		rc = tg_err_set(err, TG_ERR_NOT_FOUND, "budget_id",
		                "Budget id=%s does not exist in db", budget_id);
	else if (!tg_budget_from_row(&res, 0, 0, out))
		rc = tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                "malformed budget row in the database");
	else if ((rc = tg_budget_advance(db, out, err)) != TG_OK)
		tg_budget_free(out);
	tg_db_result_free(&res);
	return rc;
}

static struct json_object *
opt_money_json(struct tg_opt_money m)
{
	return m.set ? tg_json_money(m.v) : NULL;
}

static struct json_object *
opt_i64_json(struct tg_opt_i64 v)
{
	return v.set ? json_object_new_int64(v.v) : NULL;
}

static struct json_object *
time_json(time_t t)
{
	char buf[21];

	tg_time_iso8601(t, buf);
	return json_object_new_string(buf);
}

static struct json_object *
opt_time_json(struct tg_opt_time t)
{
	return t.set ? time_json(t.v) : NULL;
}

/* model_max_budget is stored as JSON text; shown as the object itself. */
static struct json_object *
model_max_budget_json(const char *text)
{
	if (text == NULL)
		return NULL;
	return json_tokener_parse(text); /* NULL (shown as null) if bad */
}

/* The keys the two shapes share, in SPEC 8.1's order. */
static void
add_table_keys(struct json_object *o, const struct tg_budget *b)
{
	json_object_object_add(o, "budget_id", tg_json_str(b->budget_id));
	json_object_object_add(o, "max_budget", opt_money_json(b->max_budget));
	json_object_object_add(o, "soft_budget",
	                       opt_money_json(b->soft_budget));
	json_object_object_add(o, "max_parallel_requests",
	                       opt_i64_json(b->max_parallel_requests));
	json_object_object_add(o, "tpm_limit", opt_i64_json(b->tpm_limit));
	json_object_object_add(o, "rpm_limit", opt_i64_json(b->rpm_limit));
	json_object_object_add(o, "model_max_budget",
	                       model_max_budget_json(b->model_max_budget));
	json_object_object_add(o, "budget_duration",
	                       tg_json_str(b->budget_duration));
	json_object_object_add(o, "budget_reset_at",
	                       opt_time_json(b->budget_reset_at));
}

struct json_object *
tg_budget_table_json(const struct tg_budget *b)
{
	struct json_object *o = json_object_new_object();

	add_table_keys(o, b);
	return o;
}

struct json_object *
tg_budget_to_json(const struct tg_budget *b)
{
	struct json_object *o = json_object_new_object();

	add_table_keys(o, b);
	json_object_object_add(o, "created_at", time_json(b->created_at));
	json_object_object_add(o, "created_by", tg_json_str(b->created_by));
	json_object_object_add(o, "updated_at", time_json(b->updated_at));
	json_object_object_add(o, "updated_by", tg_json_str(b->updated_by));
	return o;
}

void
tg_budget_free(struct tg_budget *b)
{
	if (b == NULL)
		return;
	free(b->budget_id);
	free(b->model_max_budget);
	free(b->budget_duration);
	free(b->created_by);
	free(b->updated_by);
	memset(b, 0, sizeof(*b));
}

/* ---- updates ---- */

/* A flag and a value for "col = IF(flag, value, col)". */
static void
set_param(bool change, struct tg_db_param value, struct tg_db_param *flag,
          struct tg_db_param *val)
{
	*flag = tg_db_int(change ? 1 : 0);
	*val = change ? value : tg_db_null();
}

static bool
changes(const struct tg_budget_input *in, enum tg_budget_field f, bool set)
{
	return set || (in->cleared & (1u << f)) != 0;
}

struct apply_arg {
	const char *budget_id;
	const struct tg_budget_input *in;
	const char *updated_by;
	const char *default_budget_id;
};

enum tg_rc
tg_budget_apply(struct tg_db *db, const char *budget_id,
                const struct tg_budget_input *in, const char *updated_by,
                const char *default_budget_id, struct tg_err *err)
{
	struct tg_db_param params[18];
	struct tg_db_result res;
	const char *old_duration;
	char reset_s[20];
	bool duration_changed, reset_change, have_reset = false;
	time_t reset = 0;
	enum tg_rc rc;

	if ((rc = tg_budget_check_model_max_budget(in->model_max_budget,
	                                           err)) != TG_OK)
		return rc;
	params[0] = tg_db_str(budget_id);
	rc = tg_db_exec(db,
	                "SELECT budget_duration FROM budgets"
	                " WHERE budget_id = ? FOR UPDATE",
	                params, 1, &res, err);
	if (rc != TG_OK)
		return rc;
	if (res.nrows == 0) {
		tg_db_result_free(&res);
		return tg_err_set(err, TG_ERR_NOT_FOUND, "budget_id",
		                  "Budget id=%s does not exist in db",
		                  budget_id);
	}
	old_duration = tg_db_cell(&res, 0, 0);
	if (in->budget_duration != NULL)
		duration_changed =
		        old_duration == NULL ||
		        strcmp(old_duration, in->budget_duration) != 0;
	else
		duration_changed =
		        old_duration != NULL &&
		        (in->cleared & (1u << TG_BUDGET_F_BUDGET_DURATION));
	tg_db_result_free(&res);

	/* The new budget_reset_at: given, cleared, or the new period's. */
	reset_change = changes(in, TG_BUDGET_F_BUDGET_RESET_AT,
	                       in->budget_reset_at.set);
	if (in->budget_reset_at.set) {
		reset = in->budget_reset_at.v;
		have_reset = true;
	} else if (!reset_change && duration_changed) {
		struct tg_period p;
		reset_change = true;
		if (in->budget_duration != NULL &&
		    tg_period_parse(in->budget_duration, &p)) {
			reset = tg_period_next(&p, time(NULL));
			have_reset = true;
		}
	}
	if (have_reset)
		tg_time_sql(reset, reset_s);

	set_param(changes(in, TG_BUDGET_F_MAX_BUDGET, in->max_budget.set),
	          opt_money_param(in->max_budget), &params[0], &params[1]);
	set_param(changes(in, TG_BUDGET_F_SOFT_BUDGET, in->soft_budget.set),
	          opt_money_param(in->soft_budget), &params[2], &params[3]);
	set_param(changes(in, TG_BUDGET_F_MAX_PARALLEL_REQUESTS,
	                  in->max_parallel_requests.set),
	          opt_i64_param(in->max_parallel_requests), &params[4],
	          &params[5]);
	set_param(changes(in, TG_BUDGET_F_TPM_LIMIT, in->tpm_limit.set),
	          opt_i64_param(in->tpm_limit), &params[6], &params[7]);
	set_param(changes(in, TG_BUDGET_F_RPM_LIMIT, in->rpm_limit.set),
	          opt_i64_param(in->rpm_limit), &params[8], &params[9]);
	set_param(changes(in, TG_BUDGET_F_MODEL_MAX_BUDGET,
	                  in->model_max_budget != NULL),
	          tg_db_str(in->model_max_budget), &params[10], &params[11]);
	set_param(changes(in, TG_BUDGET_F_BUDGET_DURATION,
	                  in->budget_duration != NULL),
	          tg_db_str(in->budget_duration), &params[12], &params[13]);
	set_param(reset_change, have_reset ? tg_db_str(reset_s) : tg_db_null(),
	          &params[14], &params[15]);
	params[16] = tg_db_str(updated_by);
	params[17] = tg_db_str(budget_id);
	rc = tg_db_run(
	        db,
	        "UPDATE budgets SET"
	        " max_budget = IF(?, CAST(? AS DECIMAL(20,10)), max_budget),"
	        " soft_budget = IF(?, CAST(? AS DECIMAL(20,10)), soft_budget),"
	        " max_parallel_requests = IF(?, ?, max_parallel_requests),"
	        " tpm_limit = IF(?, ?, tpm_limit),"
	        " rpm_limit = IF(?, ?, rpm_limit),"
	        " model_max_budget = IF(?, ?, model_max_budget),"
	        " budget_duration = IF(?, ?, budget_duration),"
	        " budget_reset_at = IF(?, ?, budget_reset_at),"
	        " updated_at = UTC_TIMESTAMP(6), updated_by = ?"
	        " WHERE budget_id = ?",
	        params, 18, NULL, err);
	if (rc != TG_OK || !duration_changed)
		return rc;
	/*
	 * A new period length: the current periods of the accounts on it
	 * (customers, keys, tags) end where the budget's new one does (never
	 * when the duration was cleared).
	 */
	params[0] = have_reset ? tg_db_str(reset_s) : tg_db_null();
	params[1] = tg_db_str(budget_id);
	rc = tg_db_run(db,
	               "UPDATE customers SET spend_reset_at = ?,"
	               " updated_at = UTC_TIMESTAMP(6) WHERE budget_id = ?",
	               params, 2, NULL, err);
	if (rc == TG_OK)
		rc = tg_db_run(db,
		               "UPDATE api_keys SET spend_reset_at = ?,"
		               " updated_at = UTC_TIMESTAMP(6)"
		               " WHERE budget_id = ?",
		               params, 2, NULL, err);
	if (rc == TG_OK) {
		rc = tg_db_run(db,
		               "UPDATE tags SET spend_reset_at = ?,"
		               " updated_at = UTC_TIMESTAMP(6)"
		               " WHERE budget_id = ?",
		               params, 2, NULL, err);
		/* 1146: no tags before sql/011. */
		if (rc == TG_ERR_DB && tg_db_errno(db) == 1146) {
			tg_err_clear(err);
			rc = TG_OK;
		}
	}
	if (rc != TG_OK || default_budget_id == NULL ||
	    strcmp(default_budget_id, budget_id) != 0)
		return rc;
	return tg_db_run(db,
	                 "UPDATE customers SET spend_reset_at = ?,"
	                 " updated_at = UTC_TIMESTAMP(6)"
	                 " WHERE budget_id IS NULL",
	                 params, 1, NULL, err);
}

static enum tg_rc
apply_txn(struct tg_db *db, void *varg, struct tg_err *err)
{
	struct apply_arg *a = varg;
	struct tg_db_param param = tg_db_str(a->budget_id);
	struct tg_db_result res;
	bool of_key = false;
	enum tg_rc rc;

	/* A virtual key's budget changes through /key/update only. */
	rc = tg_db_exec(db,
	                "SELECT 1 FROM budgets WHERE budget_id = ?"
	                " AND private_for_key IS NOT NULL",
	                &param, 1, &res, err);
	if (rc != TG_OK)
		return rc;
	of_key = res.nrows > 0;
	tg_db_result_free(&res);
	if (of_key)
		return tg_err_set(err, TG_ERR_NOT_FOUND, "budget_id",
		                  "Budget id=%s does not exist in db",
		                  a->budget_id);
	return tg_budget_apply(db, a->budget_id, a->in, a->updated_by,
	                       a->default_budget_id, err);
}

enum tg_rc
tg_budget_update(struct tg_db *db, const char *budget_id,
                 const struct tg_budget_input *in, const char *updated_by,
                 const char *default_budget_id, struct tg_budget *out,
                 struct tg_err *err)
{
	struct apply_arg arg = {budget_id, in, updated_by, default_budget_id};
	enum tg_rc rc;

	rc = tg_db_txn(db, apply_txn, &arg, err);
	if (rc != TG_OK)
		return rc;
	return tg_budget_get(db, budget_id, out, err);
}

enum tg_rc
tg_budget_advance(struct tg_db *db, struct tg_budget *b, struct tg_err *err)
{
	struct tg_period p;
	struct tg_db_param params[3];
	char next_s[20], old_s[20];
	time_t now = time(NULL), next;
	enum tg_rc rc;

	if (b->budget_duration == NULL ||
	    !tg_period_parse(b->budget_duration, &p))
		return TG_OK;
	if (b->budget_reset_at.set && b->budget_reset_at.v > now)
		return TG_OK;
	next = tg_period_next(&p, now);
	tg_time_sql(next, next_s);
	params[0] = tg_db_str(next_s);
	params[1] = tg_db_str(b->budget_id);
	if (b->budget_reset_at.set) {
		tg_time_sql(b->budget_reset_at.v, old_s);
		params[2] = tg_db_str(old_s);
		rc = tg_db_run(db,
		               "UPDATE budgets SET budget_reset_at = ?"
		               " WHERE budget_id = ? AND budget_reset_at = ?",
		               params, 3, NULL, err);
	} else {
		rc = tg_db_run(
		        db,
		        "UPDATE budgets SET budget_reset_at = ?"
		        " WHERE budget_id = ? AND budget_reset_at IS NULL",
		        params, 2, NULL, err);
	}
	if (rc != TG_OK)
		return rc;
	b->budget_reset_at.set = true;
	b->budget_reset_at.v = next;
	return TG_OK;
}

/*
 * What /budget/list adds to the budget's columns: the customer a private
 * budget was made for, and how many customers are on the budget (those
 * without a budget_id count for the default tier, as they are on it).
 * Each count is a range of the index customers_budget_id.
 */
#define LIST_COLUMNS                                                           \
	TG_BUDGET_COLUMNS ", b.private_for,"                                   \
	                  " (SELECT COUNT(*) FROM customers c"                 \
	                  " WHERE c.budget_id = b.budget_id)"                  \
	                  " + IF(b.budget_id = ?, (SELECT COUNT(*)"            \
	                  " FROM customers c WHERE c.budget_id IS NULL), 0)"

/*
 * Append the rows of res to arr, advanced: budget columns from 0, and
 * with listed, LIST_COLUMNS' two more as "private_for" and
 * "customer_count".
 */
static enum tg_rc
append_rows(struct tg_db *db, const struct tg_db_result *res, bool listed,
            struct json_object *arr, struct tg_err *err)
{
	enum tg_rc rc = TG_OK;

	for (size_t i = 0; i < res->nrows && rc == TG_OK; i++) {
		const char *owner = NULL, *count = NULL;
		struct json_object *o;
		struct tg_budget b;
		char *end = NULL;
		long long n = 0;

		if (listed) {
			owner = tg_db_cell(res, i, TG_BUDGET_NCOLUMNS);
			count = tg_db_cell(res, i, TG_BUDGET_NCOLUMNS + 1);
			errno = 0;
			n = count != NULL ? strtoll(count, &end, 10) : -1;
			if (count == NULL || errno != 0 || end == count ||
			    *end != '\0' || n < 0)
				return tg_err_set(
				        err, TG_ERR_INTERNAL, NULL,
				        "malformed budget count from the "
				        "database");
		}
		if (!tg_budget_from_row(res, i, 0, &b))
			return tg_err_set(
			        err, TG_ERR_INTERNAL, NULL,
			        "malformed budget row in the database");
		rc = tg_budget_advance(db, &b, err);
		if (rc == TG_OK) {
			o = tg_budget_to_json(&b);
			if (listed) {
				json_object_object_add(o, "private_for",
				                       tg_json_str(owner));
				json_object_object_add(
				        o, "customer_count",
				        json_object_new_int64(n));
			}
			json_object_array_add(arr, o);
		}
		tg_budget_free(&b);
	}
	return rc;
}

/*
 * The tags on each listed budget of arr: "tag_count", and
 * "private_for_tag", the tag a budget was made for (null for a shared
 * one).  One grouped read of the tags that have a budget; none before
 * sql/011.
 */
static enum tg_rc
add_tags(struct tg_db *db, struct json_object *arr, struct tg_err *err)
{
	struct tg_db_result res;
	enum tg_rc rc;

	memset(&res, 0, sizeof(res));
	rc = tg_db_exec(db,
	                "SELECT budget_id, MAX(IF(budget_private, tag_name,"
	                " NULL)), COUNT(*) FROM tags WHERE budget_id IS NOT"
	                " NULL GROUP BY budget_id",
	                NULL, 0, &res, err);
	if (rc == TG_ERR_DB && tg_db_errno(db) == 1146) {
		tg_err_clear(err);
		return TG_OK;
	}
	if (rc != TG_OK)
		return rc;
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		struct json_object *o = json_object_array_get_idx(arr, i);
		struct json_object *id;
		const char *owner = NULL;
		long long n = 0;

		if (!json_object_object_get_ex(o, "budget_id", &id))
			continue;
		for (size_t r = 0; r < res.nrows; r++)
			if (tg_db_cell(&res, r, 0) != NULL &&
			    tg_db_cell(&res, r, 2) != NULL &&
			    strcmp(tg_db_cell(&res, r, 0),
			           json_object_get_string(id)) == 0) {
				owner = tg_db_cell(&res, r, 1);
				n = strtoll(tg_db_cell(&res, r, 2), NULL, 10);
			}
		json_object_object_add(o, "private_for_tag",
		                       tg_json_str(owner));
		json_object_object_add(o, "tag_count",
		                       json_object_new_int64(n));
	}
	tg_db_result_free(&res);
	return TG_OK;
}

enum tg_rc
tg_budget_list(struct tg_db *db, struct json_object *ids,
               const char *default_budget_id, struct json_object **out,
               struct tg_err *err)
{
	struct json_object *arr = json_object_new_array();
	struct tg_db_result res;
	struct tg_db_param param;
	enum tg_rc rc = TG_OK;

	if (ids == NULL) {
		param = tg_db_str(default_budget_id);
		rc = tg_db_exec(
		        db,
		        "SELECT " LIST_COLUMNS
		        " FROM budgets b WHERE b.private_for_key IS NULL"
		        " ORDER BY b.budget_id",
		        &param, 1, &res, err);
		if (rc == TG_OK) {
			rc = append_rows(db, &res, true, arr, err);
			tg_db_result_free(&res);
		}
		if (rc == TG_OK)
			rc = add_tags(db, arr, err);
	}
	/* One keyed read per id: the statement stays one cached text. */
	for (size_t i = 0;
	     ids != NULL && rc == TG_OK && i < json_object_array_length(ids);
	     i++) {
		struct json_object *e = json_object_array_get_idx(ids, i);
		param = tg_db_strn(json_object_get_string(e),
		                   (size_t)json_object_get_string_len(e));
		rc = tg_db_exec(db,
		                "SELECT " TG_BUDGET_COLUMNS
		                " FROM budgets b WHERE b.budget_id = ?"
		                " AND b.private_for_key IS NULL",
		                &param, 1, &res, err);
		if (rc == TG_OK) {
			rc = append_rows(db, &res, false, arr, err);
			tg_db_result_free(&res);
		}
	}
	if (rc != TG_OK) {
		json_object_put(arr);
		return rc;
	}
	*out = arr;
	return TG_OK;
}

struct delete_arg {
	const char *budget_id;
	struct tg_budget row;
	bool loaded;
};

static enum tg_rc
delete_txn(struct tg_db *db, void *varg, struct tg_err *err)
{
	struct delete_arg *a = varg;
	struct tg_db_param param = tg_db_str(a->budget_id);
	struct tg_db_result res;
	enum tg_rc rc;

	if (a->loaded) { /* a retried transaction */
		tg_budget_free(&a->row);
		a->loaded = false;
	}
	/* A virtual key's budget is its own: not there for /budget/delete. */
	rc = tg_db_exec(db,
	                "SELECT " TG_BUDGET_COLUMNS
	                " FROM budgets b WHERE b.budget_id = ?"
	                " AND b.private_for_key IS NULL FOR UPDATE",
	                &param, 1, &res, err);
	if (rc != TG_OK)
		return rc;
	if (res.nrows == 0)
		rc = tg_err_set(err, TG_ERR_NOT_FOUND, "id",
		                "Budget id=%s does not exist in db",
		                a->budget_id);
	else if (!tg_budget_from_row(&res, 0, 0, &a->row))
		rc = tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                "malformed budget row in the database");
	else
		a->loaded = true;
	tg_db_result_free(&res);
	if (rc != TG_OK)
		return rc;
	/* The customers' budget_id becomes NULL by the foreign key. */
	return tg_db_run(db, "DELETE FROM budgets WHERE budget_id = ?", &param,
	                 1, NULL, err);
}

enum tg_rc
tg_budget_delete(struct tg_db *db, const char *budget_id, struct tg_budget *out,
                 struct tg_err *err)
{
	struct delete_arg arg;
	enum tg_rc rc;

	memset(&arg, 0, sizeof(arg));
	arg.budget_id = budget_id;
	rc = tg_db_txn(db, delete_txn, &arg, err);
	if (rc != TG_OK) {
		if (arg.loaded)
			tg_budget_free(&arg.row);
		return rc;
	}
	*out = arg.row;
	return TG_OK;
}
