/*
 * spendlog: reading the ledger (spend_logs) for reports: /spend/logs and
 * /customer/daily/activity (SPEC 3, 8).
 *
 * Both must stay fast on a ledger of millions of rows, so each filter
 * combination has its own statement whose WHERE an index serves (request_id
 * the primary key, end_user + start_time, api_key + start_time,
 * start_time): a catch-all "(? IS NULL OR col = ?)" would leave the
 * optimizer a full scan (it only narrows the rows such an index found).  Daily
 * activity is grouped in SQL by (day, model, end user); the breakdowns are
 * summed here from those groups, exactly (tg_money, overflow-checked).
 */
#define _POSIX_C_SOURCE 200809L

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fields.h"
#include "jsonx.h"
#include "money.h"
#include "spendlog.h"
#include "util.h"

/* Bounds for an open start or end: the whole DATETIME range. */
#define NO_START "1000-01-01 00:00:00"
#define NO_END   "9999-12-31 23:59:59"

/* Groups a daily-activity query may gather before it is refused. */
#define ACTIVITY_MAX_GROUPS 2000000

bool
tg_spendlog_parse_bound(const char *s, bool end, time_t *out)
{
	char buf[32];
	time_t t;

	if (s == NULL)
		return false;
	if (strlen(s) == 10) {
		/* A day: its midnight, through the ISO 8601 parser. */
		if (s[4] != '-' || s[7] != '-')
			return false;
		memcpy(buf, s, 10);
		memcpy(buf + 10, "T00:00:00Z", 11);
		if (!tg_time_parse_iso8601(buf, &t))
			return false;
		*out = end ? t + 86400 : t;
		return true;
	}
	if (!tg_time_parse_iso8601(s, &t))
		return false;
	*out = end ? t + 1 : t;
	return true;
}

void
tg_spendlog_ids_free(char **ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

bool
tg_spendlog_split_ids(const char *list, size_t max, char ***ids, size_t *n)
{
	char **out = NULL;
	size_t count = 0;
	const char *p = list;

	while (p != NULL && *p != '\0') {
		const char *comma = strchr(p, ',');
		size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
		if (len > 0) {
			if (!tg_id_valid(p, len) || count == max) {
				tg_spendlog_ids_free(out, count);
				return false;
			}
			out = tg_xrealloc(out, (count + 1) * sizeof(*out));
			out[count++] = tg_xstrndup(p, len);
		}
		p = comma != NULL ? comma + 1 : NULL;
	}
	*ids = out;
	*n = count;
	return true;
}

static bool
cell_i64(const char *s, int64_t *out)
{
	char *end;
	long long v;

	if (s == NULL)
		return false;
	v = strtoll(s, &end, 10);
	if (end == s || *end != '\0')
		return false;
	*out = v;
	return true;
}

static struct json_object *
time_json(const char *sql_time)
{
	char buf[21];
	time_t t;

	if (sql_time == NULL || !tg_time_parse_sql(sql_time, &t))
		return NULL;
	tg_time_iso8601(t, buf);
	return json_object_new_string(buf);
}

/* ---- /spend/logs ---- */

#define LOG_COLUMNS                                                            \
	"request_id, end_user, model, model_id, api_key, call_type, status,"   \
	" spend, prompt_tokens, completion_tokens, total_tokens, start_time,"  \
	" end_time, request_duration_ms, api_base, metadata"
#define LOG_NCOLUMNS 16

static bool
log_row_json(const struct tg_db_result *res, size_t row,
             struct json_object **out)
{
	static const char *const names[LOG_NCOLUMNS] = {
	        "request_id",    "end_user",
	        "model",         "model_id",
	        "api_key",       "call_type",
	        "status",        "spend",
	        "prompt_tokens", "completion_tokens",
	        "total_tokens",  "start_time",
	        "end_time",      "request_duration_ms",
	        "api_base",      "metadata"};
	struct json_object *o = json_object_new_object();
	tg_money spend;
	int64_t n;

	for (size_t col = 0; col < LOG_NCOLUMNS; col++) {
		const char *cell = tg_db_cell(res, row, col);
		struct json_object *v;
		switch (col) {
		case 7:
			if (cell == NULL || !tg_money_parse(cell, &spend))
				goto bad;
			v = tg_json_money(spend);
			break;
		case 8:
		case 9:
		case 10:
		case 13:
			if (!cell_i64(cell, &n))
				goto bad;
			v = json_object_new_int64(n);
			break;
		case 11:
		case 12: v = time_json(cell); break;
		case 15:
			/* Stored as JSON text; shown as the object itself. */
			v = cell != NULL ? json_tokener_parse(cell) : NULL;
			break;
		default: v = tg_json_str(cell); break;
		}
		json_object_object_add(o, names[col], v);
	}
	/* LiteLLM's names for the times, for scripts written against it. */
	json_object_object_add(o, "startTime",
	                       time_json(tg_db_cell(res, row, 11)));
	json_object_object_add(o, "endTime",
	                       time_json(tg_db_cell(res, row, 12)));
	*out = o;
	return true;
bad:
	json_object_put(o);
	return false;
}

enum tg_rc
tg_spendlog_list(struct tg_db *db, const struct tg_spendlog_query *q,
                 struct json_object **out, struct tg_err *err)
{
	struct tg_db_param params[8];
	struct tg_db_result res;
	struct json_object *arr;
	char start_s[20], end_s[20];
	int64_t offset;
	size_t np = 0;
	enum tg_rc rc;

	if (q->page < 1 || q->page_size < 1 ||
	    q->page - 1 > INT64_MAX / q->page_size)
		return tg_err_set(err, TG_ERR_UNPROCESSABLE, "page",
		                  "page is out of range");
	offset = (q->page - 1) * q->page_size;
	if (q->has_start)
		tg_time_sql(q->start, start_s);
	if (q->has_end)
		tg_time_sql(q->end, end_s);
	if (q->request_id != NULL)
		params[np++] = tg_db_str(q->request_id);
	else if (q->end_user != NULL)
		params[np++] = tg_db_str(q->end_user);
	else if (q->api_key != NULL)
		params[np++] = tg_db_str(q->api_key);
	params[np++] = tg_db_str(q->has_start ? start_s : NO_START);
	params[np++] = tg_db_str(q->has_end ? end_s : NO_END);
	if (q->request_id != NULL) {
		params[np++] = tg_db_str(q->end_user);
		params[np++] = tg_db_str(q->end_user);
		params[np++] = tg_db_str(q->api_key);
		params[np++] = tg_db_str(q->api_key);
		rc = tg_db_exec(db,
		                "SELECT " LOG_COLUMNS " FROM spend_logs"
		                " WHERE request_id = ? AND start_time >= ?"
		                " AND start_time < ?"
		                " AND (? IS NULL OR end_user = ?)"
		                " AND (? IS NULL OR api_key = ?)",
		                params, np, &res, err);
		if (rc == TG_OK && offset > 0) /* one row at most: page 1 */
			res.nrows = 0;
	} else if (q->end_user != NULL) {
		params[np++] = tg_db_str(q->api_key);
		params[np++] = tg_db_str(q->api_key);
		params[np++] = tg_db_int(q->page_size);
		params[np++] = tg_db_int(offset);
		rc = tg_db_exec(db,
		                "SELECT " LOG_COLUMNS " FROM spend_logs"
		                " WHERE end_user = ? AND start_time >= ?"
		                " AND start_time < ?"
		                " AND (? IS NULL OR api_key = ?) ORDER BY"
		                " start_time DESC, request_id DESC"
		                " LIMIT ? OFFSET ?",
		                params, np, &res, err);
	} else {
		params[np++] = tg_db_int(q->page_size);
		params[np++] = tg_db_int(offset);
		if (q->api_key != NULL)
			rc = tg_db_exec(db,
			                "SELECT " LOG_COLUMNS " FROM spend_logs"
			                " WHERE api_key = ? AND start_time >= ?"
			                " AND start_time < ? ORDER BY"
			                " start_time DESC, request_id DESC"
			                " LIMIT ? OFFSET ?",
			                params, np, &res, err);
		else
			rc = tg_db_exec(db,
			                "SELECT " LOG_COLUMNS " FROM spend_logs"
			                " WHERE start_time >= ?"
			                " AND start_time < ? ORDER BY"
			                " start_time DESC, request_id DESC"
			                " LIMIT ? OFFSET ?",
			                params, np, &res, err);
	}
	if (rc != TG_OK)
		return rc;
	arr = json_object_new_array();
	for (size_t i = 0; i < res.nrows; i++) {
		struct json_object *o;
		if (!log_row_json(&res, i, &o)) {
			rc = tg_err_set(
			        err, TG_ERR_INTERNAL, NULL,
			        "malformed spend_logs row in the database");
			break;
		}
		json_object_array_add(arr, o);
	}
	tg_db_result_free(&res);
	if (rc != TG_OK) {
		json_object_put(arr);
		return rc;
	}
	*out = arr;
	return TG_OK;
}

/* ---- /customer/daily/activity ---- */

struct metrics {
	tg_money spend;
	int64_t prompt, completion, total, requests, succeeded, failed;
};

struct group {
	char day[11];
	char *model;
	char *end_user;
	struct metrics m;
};

struct groups {
	struct group *v;
	size_t n, cap;
};

static bool
metrics_add(struct metrics *acc, const struct metrics *m)
{
	return tg_money_add(acc->spend, m->spend, &acc->spend) &&
	       !__builtin_add_overflow(acc->prompt, m->prompt, &acc->prompt) &&
	       !__builtin_add_overflow(acc->completion, m->completion,
	                               &acc->completion) &&
	       !__builtin_add_overflow(acc->total, m->total, &acc->total) &&
	       !__builtin_add_overflow(acc->requests, m->requests,
	                               &acc->requests) &&
	       !__builtin_add_overflow(acc->succeeded, m->succeeded,
	                               &acc->succeeded) &&
	       !__builtin_add_overflow(acc->failed, m->failed, &acc->failed);
}

static struct json_object *
metrics_json(const struct metrics *m)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "spend", tg_json_money(m->spend));
	json_object_object_add(o, "prompt_tokens",
	                       json_object_new_int64(m->prompt));
	json_object_object_add(o, "completion_tokens",
	                       json_object_new_int64(m->completion));
	json_object_object_add(o, "total_tokens",
	                       json_object_new_int64(m->total));
	json_object_object_add(o, "api_requests",
	                       json_object_new_int64(m->requests));
	json_object_object_add(o, "successful_requests",
	                       json_object_new_int64(m->succeeded));
	json_object_object_add(o, "failed_requests",
	                       json_object_new_int64(m->failed));
	return o;
}

/* {"metrics": {...}}, the shape of one breakdown entry. */
static struct json_object *
entry_json(const struct metrics *m)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "metrics", metrics_json(m));
	return o;
}

static void
groups_free(struct groups *g)
{
	for (size_t i = 0; i < g->n; i++) {
		free(g->v[i].model);
		free(g->v[i].end_user);
	}
	free(g->v);
	memset(g, 0, sizeof(*g));
}

/* Append the rows of res (day, model, end_user, sums...) to g. */
static enum tg_rc
groups_add(struct groups *g, const struct tg_db_result *res, struct tg_err *err)
{
	for (size_t i = 0; i < res->nrows; i++) {
		struct group x;
		const char *day = tg_db_cell(res, i, 0);
		const char *spend = tg_db_cell(res, i, 3);
		int64_t requests = 0;

		memset(&x, 0, sizeof(x));
		if (day == NULL || strlen(day) != 10 || spend == NULL ||
		    !tg_money_parse(spend, &x.m.spend) ||
		    !cell_i64(tg_db_cell(res, i, 4), &x.m.prompt) ||
		    !cell_i64(tg_db_cell(res, i, 5), &x.m.completion) ||
		    !cell_i64(tg_db_cell(res, i, 6), &x.m.total) ||
		    !cell_i64(tg_db_cell(res, i, 7), &requests) ||
		    !cell_i64(tg_db_cell(res, i, 8), &x.m.succeeded))
			return tg_err_set(err, TG_ERR_INTERNAL, NULL,
			                  "malformed spend_logs group");
		if (g->n == ACTIVITY_MAX_GROUPS)
			return tg_err_set(
			        err, TG_ERR_UNPROCESSABLE, "start_date",
			        "The range holds too much activity to "
			        "report at once; narrow start_date and "
			        "end_date.");
		x.m.requests = requests;
		x.m.failed = requests - x.m.succeeded;
		memcpy(x.day, day, 11);
		x.model = tg_xstrdup(tg_db_cell(res, i, 1) != NULL
		                             ? tg_db_cell(res, i, 1)
		                             : "");
		x.end_user = tg_xstrdup(tg_db_cell(res, i, 2) != NULL
		                                ? tg_db_cell(res, i, 2)
		                                : "");
		if (g->n == g->cap) {
			g->cap = g->cap ? 2 * g->cap : 64;
			g->v = tg_xrealloc(g->v, g->cap * sizeof(*g->v));
		}
		g->v[g->n++] = x;
	}
	return TG_OK;
}

static int
by_day_model(const void *a, const void *b)
{
	const struct group *x = a, *y = b;
	int c = strcmp(x->day, y->day);
	return c != 0 ? c : strcmp(x->model, y->model);
}

static int
by_day_user(const void *a, const void *b)
{
	const struct group *x = a, *y = b;
	int c = strcmp(x->day, y->day);
	return c != 0 ? c : strcmp(x->end_user, y->end_user);
}

/* The model name of g, or the end user's id (key selects which). */
static const char *
key_of(const struct group *g, bool by_model)
{
	return by_model ? g->model : g->end_user;
}

/*
 * One pass over g sorted by (day, key): day k's breakdown by that key
 * goes into objs[k]; when totals is not NULL, day k's metrics too.
 */
static bool
breakdown(const struct groups *g, bool by_model, struct json_object **objs,
          struct metrics *totals)
{
	size_t day = 0;

	for (size_t i = 0; i < g->n;) {
		size_t j = i;
		struct metrics sum;
		memset(&sum, 0, sizeof(sum));
		while (j < g->n && strcmp(g->v[j].day, g->v[i].day) == 0 &&
		       strcmp(key_of(&g->v[j], by_model),
		              key_of(&g->v[i], by_model)) == 0) {
			if (!metrics_add(&sum, &g->v[j].m))
				return false;
			j++;
		}
		if (totals != NULL && !metrics_add(&totals[day], &sum))
			return false;
		json_object_object_add(objs[day], key_of(&g->v[i], by_model),
		                       entry_json(&sum));
		if (j < g->n && strcmp(g->v[j].day, g->v[i].day) != 0)
			day++;
		i = j;
	}
	return true;
}

static enum tg_rc
activity_query(struct tg_db *db, const struct tg_activity_query *q,
               const char *end_user, struct groups *g, struct tg_err *err)
{
	struct tg_db_param params[5];
	struct tg_db_result res;
	char start_s[20], end_s[20];
	size_t np = 0;
	enum tg_rc rc;

	if (q->has_start)
		tg_time_sql(q->start, start_s);
	if (q->has_end)
		tg_time_sql(q->end, end_s);
	if (end_user != NULL)
		params[np++] = tg_db_str(end_user);
	params[np++] = tg_db_str(q->has_start ? start_s : NO_START);
	params[np++] = tg_db_str(q->has_end ? end_s : NO_END);
	params[np++] = tg_db_str(q->model);
	params[np++] = tg_db_str(q->model);
#define ACTIVITY_SELECT                                                        \
	"SELECT DATE_FORMAT(start_time, '%Y-%m-%d'), model, end_user,"         \
	" SUM(spend), SUM(prompt_tokens), SUM(completion_tokens),"             \
	" SUM(total_tokens), COUNT(*), SUM(status = 'success')"                \
	" FROM spend_logs WHERE "
#define ACTIVITY_REST                                                          \
	"start_time >= ? AND start_time < ?"                                   \
	" AND (? IS NULL OR model = ?) GROUP BY 1, 2, 3"
	if (end_user != NULL)
		rc = tg_db_exec(
		        db, ACTIVITY_SELECT "end_user = ? AND " ACTIVITY_REST,
		        params, np, &res, err);
	else
		rc = tg_db_exec(db, ACTIVITY_SELECT ACTIVITY_REST, params, np,
		                &res, err);
#undef ACTIVITY_SELECT
#undef ACTIVITY_REST
	if (rc != TG_OK)
		return rc;
	rc = groups_add(g, &res, err);
	tg_db_result_free(&res);
	return rc;
}

enum tg_rc
tg_spendlog_daily_activity(struct tg_db *db, const struct tg_activity_query *q,
                           struct json_object **out, struct tg_err *err)
{
	struct groups g = {NULL, 0, 0};
	struct json_object **models = NULL, **entities = NULL;
	struct json_object *results, *meta, *o;
	struct metrics *days = NULL, total;
	char(*daynames)[11] = NULL;
	size_t ndays = 0, first, last;
	int64_t total_pages;
	enum tg_rc rc = TG_OK;

	if (q->page < 1 || q->page_size < 1)
		return tg_err_set(err, TG_ERR_UNPROCESSABLE, "page",
		                  "page is out of range");
	if (q->end_users == NULL)
		rc = activity_query(db, q, NULL, &g, err);
	for (size_t i = 0;
	     q->end_users != NULL && rc == TG_OK && i < q->n_end_users; i++) {
		/* An id listed twice would count twice. */
		bool seen = false;
		for (size_t k = 0; k < i && !seen; k++)
			seen = strcmp(q->end_users[k], q->end_users[i]) == 0;
		if (!seen)
			rc = activity_query(db, q, q->end_users[i], &g, err);
	}
	if (rc != TG_OK)
		goto out;

	/* qsort's base may not be NULL, even for no element. */
	if (g.n > 0)
		qsort(g.v, g.n, sizeof(*g.v), by_day_model);
	for (size_t i = 0; i < g.n; i++)
		if (i == 0 || strcmp(g.v[i].day, g.v[i - 1].day) != 0)
			ndays++;
	daynames = tg_xcalloc(ndays ? ndays : 1, sizeof(*daynames));
	for (size_t i = 0, k = 0; i < g.n; i++)
		if (i == 0 || strcmp(g.v[i].day, g.v[i - 1].day) != 0)
			memcpy(daynames[k++], g.v[i].day, 11);
	days = tg_xcalloc(ndays ? ndays : 1, sizeof(*days));
	models = tg_xcalloc(ndays ? ndays : 1, sizeof(*models));
	entities = tg_xcalloc(ndays ? ndays : 1, sizeof(*entities));
	for (size_t k = 0; k < ndays; k++) {
		models[k] = json_object_new_object();
		entities[k] = json_object_new_object();
	}
	if (!breakdown(&g, true, models, days)) {
		rc = tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                "activity totals overflow");
		goto out;
	}
	/* Day k is the same in both orders: the day is the first key. */
	if (g.n > 0)
		qsort(g.v, g.n, sizeof(*g.v), by_day_user);
	if (!breakdown(&g, false, entities, NULL)) {
		rc = tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                "activity totals overflow");
		goto out;
	}

	memset(&total, 0, sizeof(total));
	for (size_t k = 0; k < ndays; k++)
		if (!metrics_add(&total, &days[k])) {
			rc = tg_err_set(err, TG_ERR_INTERNAL, NULL,
			                "activity totals overflow");
			goto out;
		}
	total_pages = (int64_t)((ndays + (size_t)q->page_size - 1) /
	                        (size_t)q->page_size);
	first = q->page - 1 < total_pages
	                ? (size_t)((q->page - 1) * q->page_size)
	                : ndays;
	last = first + (size_t)q->page_size < ndays
	               ? first + (size_t)q->page_size
	               : ndays;

	results = json_object_new_array();
	for (size_t k = first; k < last; k++) {
		struct json_object *day, *bd;
		day = json_object_new_object();
		json_object_object_add(day, "date",
		                       json_object_new_string(daynames[k]));
		json_object_object_add(day, "metrics", metrics_json(&days[k]));
		bd = json_object_new_object();
		json_object_object_add(bd, "models",
		                       json_object_get(models[k]));
		json_object_object_add(bd, "entities",
		                       json_object_get(entities[k]));
		json_object_object_add(day, "breakdown", bd);
		json_object_array_add(results, day);
	}
	meta = json_object_new_object();
	json_object_object_add(meta, "total_spend", tg_json_money(total.spend));
	json_object_object_add(meta, "total_prompt_tokens",
	                       json_object_new_int64(total.prompt));
	json_object_object_add(meta, "total_completion_tokens",
	                       json_object_new_int64(total.completion));
	json_object_object_add(meta, "total_tokens",
	                       json_object_new_int64(total.total));
	json_object_object_add(meta, "total_api_requests",
	                       json_object_new_int64(total.requests));
	json_object_object_add(meta, "total_successful_requests",
	                       json_object_new_int64(total.succeeded));
	json_object_object_add(meta, "total_failed_requests",
	                       json_object_new_int64(total.failed));
	json_object_object_add(meta, "page", json_object_new_int64(q->page));
	json_object_object_add(meta, "total_pages",
	                       json_object_new_int64(total_pages));
	json_object_object_add(meta, "has_more",
	                       json_object_new_boolean(q->page < total_pages));
	o = json_object_new_object();
	json_object_object_add(o, "results", results);
	json_object_object_add(o, "metadata", meta);
	*out = o;
out:
	for (size_t k = 0; k < ndays && models != NULL; k++) {
		json_object_put(models[k]);
		json_object_put(entities[k]);
	}
	free(models);
	free(entities);
	free(days);
	free(daynames);
	groups_free(&g);
	return rc;
}
