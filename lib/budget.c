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

enum tg_rc
tg_budget_insert(struct tg_db *db, const char *budget_id,
                 const struct tg_budget_input *in, const char *created_by,
                 const char *private_for, struct tg_err *err)
{
	char reset_at[20];
	struct tg_db_param params[12];
	bool have_reset = false;
	time_t reset = 0;
	enum tg_rc rc;

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
	params[9] = tg_db_str(private_for);
	params[10] = tg_db_str(created_by);
	params[11] = tg_db_str(created_by);
	rc = tg_db_run(
	        db,
	        "INSERT INTO budgets (budget_id, max_budget, soft_budget,"
	        " max_parallel_requests, tpm_limit, rpm_limit,"
	        " model_max_budget, budget_duration, budget_reset_at,"
	        " private_for, created_at, created_by, updated_at,"
	        " updated_by) VALUES (?, CAST(? AS DECIMAL(20,10)),"
	        " CAST(? AS DECIMAL(20,10)), ?, ?, ?, ?, ?, ?, ?,"
	        " UTC_TIMESTAMP(6), ?, UTC_TIMESTAMP(6), ?)",
	        params, 12, NULL, err);
	if (rc == TG_ERR_CONFLICT)
		rc = tg_err_set(err, TG_ERR_CONFLICT, "budget_id",
		                "Budget with id '%s' already exists.",
		                budget_id);
	return rc;
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
	rc = tg_budget_insert(db, budget_id, in, created_by, NULL, err);
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
	tg_db_result_free(&res);
	return rc;
}

/* Money as the shortest exact decimal, keeping that text in the JSON. */
static struct json_object *
money_json(tg_money v)
{
	char buf[TG_MONEY_STRLEN];

	tg_money_format(v, buf, sizeof(buf));
	return json_object_new_double_s(strtod(buf, NULL), buf);
}

static struct json_object *
opt_money_json(struct tg_opt_money m)
{
	return m.set ? money_json(m.v) : NULL;
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

static struct json_object *
str_json(const char *s)
{
	return s != NULL ? json_object_new_string(s) : NULL;
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
	json_object_object_add(o, "budget_id", str_json(b->budget_id));
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
	                       str_json(b->budget_duration));
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
	json_object_object_add(o, "created_by", str_json(b->created_by));
	json_object_object_add(o, "updated_at", time_json(b->updated_at));
	json_object_object_add(o, "updated_by", str_json(b->updated_by));
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
