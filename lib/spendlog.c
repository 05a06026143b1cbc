/*
 * spendlog: reading the ledger (spend_logs) for reports: /spend/logs and
 * /customer/daily/activity (SPEC 3, 8).
 *
 * Both must stay fast on a ledger of millions of rows, so each filter
 * combination has its own statement whose WHERE an index serves (request_id
 * the primary key, end_user + start_time, api_key + start_time,
 * start_time, start_day + end_user + model + call_type): a catch-all "(? IS
 * NULL OR col = ?)" would leave the optimizer a full scan (it only narrows the
 * rows such an index found).  Daily activity is grouped in SQL by (day,
 * end user, model, call type); the breakdowns are summed here from those
 * groups, exactly (tg_money, overflow-checked), and its answer, thousands of
 * objects for a busy day, is written as JSON text directly (jsonx's
 * writer) rather than built as json-c objects, which cost more than the
 * query.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
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

/* Groups a daily-activity query may gather, and the bytes of its answer,
 * before it is refused. */
#define ACTIVITY_MAX_GROUPS 2000000
#define ACTIVITY_MAX_TEXT   (256u << 20)

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

/*
 * A cell holding an integer: digits after an optional '-', within int64.
 * By hand: strtoll() costs more than the rest of a row, and would clamp an
 * out-of-range SUM() silently.
 */
static bool
cell_i64(const char *s, int64_t *out)
{
	uint64_t mag = 0, limit;
	bool neg;

	if (s == NULL)
		return false;
	neg = *s == '-';
	if (neg)
		s++;
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9' || mag > (UINT64_MAX - 9) / 10)
			return false;
		mag = mag * 10 + (uint64_t)(*s - '0');
	}
	limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	if (mag > limit)
		return false;
	*out = !neg                             ? (int64_t)mag
	       : mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN
	                                        : -(int64_t)mag;
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

/* The tags row o's metadata says the call named (a new array). */
static struct json_object *
request_tags(struct json_object *o)
{
	struct json_object *meta, *tags, *out = json_object_new_array();

	if (json_object_object_get_ex(o, "metadata", &meta) &&
	    json_object_is_type(meta, json_type_object) &&
	    json_object_object_get_ex(meta, "tags", &tags) &&
	    json_object_is_type(tags, json_type_array))
		for (size_t i = 0; i < json_object_array_length(tags); i++)
			json_object_array_add(
			        out, json_object_get(json_object_array_get_idx(
			                     tags, i)));
	return out;
}

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
	/* LiteLLM's names for the times and the tags, for scripts written
	 * against it. */
	json_object_object_add(o, "startTime",
	                       time_json(tg_db_cell(res, row, 11)));
	json_object_object_add(o, "endTime",
	                       time_json(tg_db_cell(res, row, 12)));
	json_object_object_add(o, "request_tags", request_tags(o));
	*out = o;
	return true;
bad:
	json_object_put(o);
	return false;
}

/* res's rows as /spend/logs answers them (res freed), into *out. */
static enum tg_rc
log_rows(struct tg_db_result *res, struct json_object **out, struct tg_err *err)
{
	struct json_object *arr = json_object_new_array();
	enum tg_rc rc = TG_OK;

	for (size_t i = 0; i < res->nrows; i++) {
		struct json_object *o;
		if (!log_row_json(res, i, &o)) {
			rc = tg_err_set(
			        err, TG_ERR_INTERNAL, NULL,
			        "malformed spend_logs row in the database");
			break;
		}
		json_object_array_add(arr, o);
	}
	tg_db_result_free(res);
	if (rc != TG_OK) {
		json_object_put(arr);
		return rc;
	}
	*out = arr;
	return TG_OK;
}

/*
 * The rows of q naming any of its tags: those spend_log_tags finds by tag
 * and time, then the other filters.  A schema without tags (before
 * sql/011) has none.
 */
static enum tg_rc
list_tagged(struct tg_db *db, const struct tg_spendlog_query *q,
            const char *start_s, const char *end_s, int64_t offset,
            struct json_object **out, struct tg_err *err)
{
	struct tg_db_param params[TG_SPENDLOG_MAX_TAGS + 13];
	struct tg_db_result res;
	char sql[1024 + 3 * TG_SPENDLOG_MAX_TAGS];
	size_t np = 0, len;
	enum tg_rc rc;

	len = (size_t)snprintf(sql, sizeof(sql),
	                       "SELECT " LOG_COLUMNS " FROM spend_logs WHERE"
	                       " request_id IN (SELECT t.request_id FROM"
	                       " spend_log_tags t WHERE t.tag IN (?");
	for (size_t i = 0; i < q->ntags && i < TG_SPENDLOG_MAX_TAGS; i++) {
		params[np++] = tg_db_str(q->tags[i]);
		if (i > 0)
			len += (size_t)snprintf(sql + len, sizeof(sql) - len,
			                        ", ?");
	}
	snprintf(sql + len, sizeof(sql) - len,
	         ") AND t.start_time >= ? AND t.start_time < ?)"
	         " AND start_time >= ? AND start_time < ?"
	         " AND (? IS NULL OR end_user = ?)"
	         " AND (? IS NULL OR api_key = ?)"
	         " AND (? IS NULL OR request_id = ? OR response_id = ?)"
	         " ORDER BY start_time DESC, request_id DESC"
	         " LIMIT ? OFFSET ?");
	params[np++] = tg_db_str(start_s);
	params[np++] = tg_db_str(end_s);
	params[np++] = tg_db_str(start_s);
	params[np++] = tg_db_str(end_s);
	params[np++] = tg_db_str(q->end_user);
	params[np++] = tg_db_str(q->end_user);
	params[np++] = tg_db_str(q->api_key);
	params[np++] = tg_db_str(q->api_key);
	params[np++] = tg_db_str(q->request_id);
	params[np++] = tg_db_str(q->request_id);
	params[np++] = tg_db_str(q->request_id);
	params[np++] = tg_db_int(q->page_size);
	params[np++] = tg_db_int(offset);
	rc = tg_db_exec(db, sql, params, np, &res, err);
	if (rc == TG_ERR_DB && tg_db_errno(db) == 1146) {
		tg_err_clear(err);
		*out = json_object_new_array();
		return TG_OK;
	}
	if (rc != TG_OK)
		return rc;
	return log_rows(&res, out, err);
}

enum tg_rc
tg_spendlog_list(struct tg_db *db, const struct tg_spendlog_query *q,
                 struct json_object **out, struct tg_err *err)
{
	struct tg_db_param params[10];
	struct tg_db_result res;
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
	if (q->ntags > 0)
		return list_tagged(db, q, q->has_start ? start_s : NO_START,
		                   q->has_end ? end_s : NO_END, offset, out,
		                   err);
	if (q->request_id != NULL) {
		params[np++] = tg_db_str(q->request_id);
		params[np++] = tg_db_str(q->request_id);
	} else if (q->end_user != NULL)
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
		params[np++] = tg_db_int(q->page_size);
		params[np++] = tg_db_int(offset);
		/* tollgate's id, or the upstream's id of its answer
		 * (chatcmpl-..., resp_...: what a client has to look its
		 * call up by), each served by its index. */
		rc = tg_db_exec(db,
		                "SELECT " LOG_COLUMNS " FROM spend_logs"
		                " WHERE (request_id = ? OR response_id = ?)"
		                " AND start_time >= ? AND start_time < ?"
		                " AND (? IS NULL OR end_user = ?)"
		                " AND (? IS NULL OR api_key = ?) ORDER BY"
		                " start_time DESC, request_id DESC"
		                " LIMIT ? OFFSET ?",
		                params, np, &res, err);
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
	return log_rows(&res, out, err);
}

/* ---- /customer/daily/activity ---- */

struct metrics {
	tg_money spend;
	int64_t prompt, completion, total, requests, succeeded, failed;
};

/*
 * One row of the grouped query: a (day, end user, model, call type) and its
 * sums.  The strings are borrowed from the result the row was fetched into.
 */
struct group {
	const char *day; /* "YYYY-MM-DD" */
	const char *end_user;
	const char *model;     /* "" for NULL */
	const char *call_type; /* "" for NULL */
	const char *api_key;   /* "" for NULL, or not asked for */
	struct metrics m;
};

/* The groups of every query of one report, and the results holding them. */
struct groups {
	struct group *v;
	size_t n, cap;
	struct tg_db_result *results;
	size_t nresults;
};

/* A day of the report: its groups g->v[first..first+n) and their sums. */
struct day {
	size_t first, n;
	struct metrics m;
};

/*
 * The models (or call types) of one day and their sums, found by name in an
 * open-addressing table: a day holds thousands of groups but few models,
 * and they are printed sorted by name.
 */
struct name_sum {
	const char *name;
	struct metrics m;
};

struct name_sums {
	struct name_sum *v;
	size_t n, cap;
	size_t *slots; /* index + 1 into v; 0 is empty */
	size_t nslots; /* a power of two, above 2n */
};

static enum tg_rc
too_much(struct tg_err *err)
{
	return tg_err_set(err, TG_ERR_UNPROCESSABLE, "start_date",
	                  "The range holds too much activity to report at "
	                  "once; narrow start_date and end_date.");
}

static enum tg_rc
overflow(struct tg_err *err)
{
	return tg_err_set(err, TG_ERR_INTERNAL, NULL,
	                  "activity totals overflow");
}

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

static void
metrics_text(struct tg_json_text *t, const struct metrics *m)
{
	tg_json_text_begin_object(t);
	tg_json_text_key_literal(t, "spend");
	tg_json_text_money(t, m->spend);
	tg_json_text_key_literal(t, "prompt_tokens");
	tg_json_text_int(t, m->prompt);
	tg_json_text_key_literal(t, "completion_tokens");
	tg_json_text_int(t, m->completion);
	tg_json_text_key_literal(t, "total_tokens");
	tg_json_text_int(t, m->total);
	tg_json_text_key_literal(t, "api_requests");
	tg_json_text_int(t, m->requests);
	tg_json_text_key_literal(t, "successful_requests");
	tg_json_text_int(t, m->succeeded);
	tg_json_text_key_literal(t, "failed_requests");
	tg_json_text_int(t, m->failed);
	tg_json_text_end_object(t);
}

/* "<key>":{"metrics":{...}}, one entry of a breakdown. */
static void
entry_text(struct tg_json_text *t, const char *key, const struct metrics *m)
{
	tg_json_text_key(t, key);
	tg_json_text_begin_object(t);
	tg_json_text_key_literal(t, "metrics");
	metrics_text(t, m);
	tg_json_text_end_object(t);
}

static void
groups_free(struct groups *g)
{
	for (size_t i = 0; i < g->nresults; i++)
		tg_db_result_free(&g->results[i]);
	free(g->results);
	free(g->v);
	memset(g, 0, sizeof(*g));
}

/*
 * Append the rows of res (day, end_user, model, call_type, the six sums,
 * and an api_key when there is an eleventh column) to g, which takes
 * res over (its strings stay where they were fetched: no copy).
 */
static enum tg_rc
groups_add(struct groups *g, struct tg_db_result *res, struct tg_err *err)
{
	struct tg_db_result *kept;

	g->results = tg_xrealloc(g->results,
	                         (g->nresults + 1) * sizeof(*g->results));
	kept = &g->results[g->nresults++];
	*kept = *res;
	memset(res, 0, sizeof(*res));
	if (kept->nrows > ACTIVITY_MAX_GROUPS - g->n)
		return too_much(err);
	if (g->n + kept->nrows > g->cap) {
		while (g->n + kept->nrows > g->cap)
			g->cap = g->cap ? 2 * g->cap : 64;
		g->v = tg_xrealloc(g->v, g->cap * sizeof(*g->v));
	}
	for (size_t i = 0; i < kept->nrows; i++) {
		struct group *x = &g->v[g->n];
		const char *day = tg_db_cell(kept, i, 0);
		const char *end_user = tg_db_cell(kept, i, 1);
		const char *model = tg_db_cell(kept, i, 2);
		const char *call_type = tg_db_cell(kept, i, 3);
		const char *spend = tg_db_cell(kept, i, 4);
		int64_t requests = 0;

		memset(x, 0, sizeof(*x));
		if (day == NULL || strlen(day) != 10 || spend == NULL ||
		    !tg_money_parse(spend, &x->m.spend) ||
		    !cell_i64(tg_db_cell(kept, i, 5), &x->m.prompt) ||
		    !cell_i64(tg_db_cell(kept, i, 6), &x->m.completion) ||
		    !cell_i64(tg_db_cell(kept, i, 7), &x->m.total) ||
		    !cell_i64(tg_db_cell(kept, i, 8), &requests) ||
		    !cell_i64(tg_db_cell(kept, i, 9), &x->m.succeeded))
			return tg_err_set(err, TG_ERR_INTERNAL, NULL,
			                  "malformed spend_logs group");
		x->m.requests = requests;
		x->m.failed = requests - x->m.succeeded;
		x->day = day;
		x->end_user = end_user != NULL ? end_user : "";
		x->model = model != NULL ? model : "";
		x->call_type = call_type != NULL ? call_type : "";
		x->api_key = kept->ncols > 10 && tg_db_cell(kept, i, 10) != NULL
		                     ? tg_db_cell(kept, i, 10)
		                     : "";
		g->n++;
	}
	return TG_OK;
}

static int
by_day_user(const void *a, const void *b)
{
	const struct group *x = a, *y = b;
	int c = strcmp(x->day, y->day);
	return c != 0 ? c : strcmp(x->end_user, y->end_user);
}

/*
 * Order g by (day, end user), as strcmp() orders them.  The query of every
 * end user returns them so (its index is read in that order), and then
 * this is one pass; the rows of several queries are sorted.
 */
static void
groups_order(struct groups *g)
{
	for (size_t i = 1; i < g->n; i++)
		if (by_day_user(&g->v[i - 1], &g->v[i]) > 0) {
			qsort(g->v, g->n, sizeof(*g->v), by_day_user);
			return;
		}
}

static void
name_sums_free(struct name_sums *ms)
{
	free(ms->v);
	free(ms->slots);
	memset(ms, 0, sizeof(*ms));
}

/* FNV-1a: the table only needs the few names of a day spread out. */
static size_t
name_hash(const char *s)
{
	uint64_t h = 14695981039346656037ULL;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return (size_t)h;
}

/* The slot of name in the table: where it is, or the empty one for it. */
static size_t *
name_slot(struct name_sums *ms, const char *name)
{
	size_t mask = ms->nslots - 1;
	size_t i = name_hash(name) & mask;

	while (ms->slots[i] != 0 &&
	       strcmp(ms->v[ms->slots[i] - 1].name, name) != 0)
		i = (i + 1) & mask;
	return &ms->slots[i];
}

/* Add m to name's sums; false on overflow. */
static bool
name_sums_add(struct name_sums *ms, const char *name, const struct metrics *m)
{
	size_t *slot;

	if (2 * (ms->n + 1) > ms->nslots) {
		/* Grow and place every model again. */
		ms->nslots = ms->nslots ? 2 * ms->nslots : 16;
		free(ms->slots);
		ms->slots = tg_xcalloc(ms->nslots, sizeof(*ms->slots));
		for (size_t k = 0; k < ms->n; k++)
			*name_slot(ms, ms->v[k].name) = k + 1;
	}
	slot = name_slot(ms, name);
	if (*slot == 0) {
		if (ms->n == ms->cap) {
			ms->cap = ms->cap ? 2 * ms->cap : 8;
			ms->v = tg_xrealloc(ms->v, ms->cap * sizeof(*ms->v));
		}
		memset(&ms->v[ms->n], 0, sizeof(ms->v[ms->n]));
		ms->v[ms->n].name = name;
		*slot = ++ms->n;
	}
	return metrics_add(&ms->v[*slot - 1].m, m);
}

static void
name_sums_clear(struct name_sums *ms)
{
	if (ms->slots != NULL)
		memset(ms->slots, 0, ms->nslots * sizeof(*ms->slots));
	ms->n = 0;
}

static int
by_name(const void *a, const void *b)
{
	const struct name_sum *x = a, *y = b;
	return strcmp(x->name, y->name);
}

/* The sums of the groups v[0..n) by the name name_of reads of each, into
 * ms, sorted by name; false on overflow. */
static bool
name_sums_of(struct name_sums *ms, const struct group *v, size_t n,
             const char *(*name_of)(const struct group *))
{
	name_sums_clear(ms);
	for (size_t i = 0; i < n; i++)
		if (!name_sums_add(ms, name_of(&v[i]), &v[i].m))
			return false;
	if (ms->n > 1)
		qsort(ms->v, ms->n, sizeof(*ms->v), by_name);
	return true;
}

/* "<key>":{<name>:{"metrics":...},...}: the sums of d's groups by the name
 * name_of reads of each, sorted by name; false on overflow. */
static bool
sums_text(struct tg_json_text *t, const char *key, const struct groups *g,
          const struct day *d, struct name_sums *ms,
          const char *(*name_of)(const struct group *))
{
	if (!name_sums_of(ms, g->v + d->first, d->n, name_of))
		return false;
	tg_json_text_key(t, key);
	tg_json_text_begin_object(t);
	for (size_t k = 0; k < ms->n; k++)
		entry_text(t, ms->v[k].name, &ms->v[k].m);
	tg_json_text_end_object(t);
	return true;
}

static const char *
model_of(const struct group *x)
{
	return x->model;
}

static const char *
call_type_of(const struct group *x)
{
	return x->call_type;
}

/*
 * Day d's "breakdown": its models sorted by name, its end users (in the
 * order of g), and (tollgate's, beside LiteLLM's) its call types sorted by
 * name, which tell the LLM routes apart; false on overflow.
 */
static bool
breakdown_text(struct tg_json_text *t, const struct groups *g,
               const struct day *d, struct name_sums *ms)
{
	const struct group *v = g->v + d->first;

	tg_json_text_begin_object(t);
	if (!sums_text(t, "models", g, d, ms, model_of))
		return false;
	tg_json_text_key_literal(t, "entities");
	tg_json_text_begin_object(t);
	for (size_t i = 0; i < d->n;) {
		struct metrics sum = v[i].m;
		size_t j = i + 1;
		for (; j < d->n && strcmp(v[j].end_user, v[i].end_user) == 0;
		     j++)
			if (!metrics_add(&sum, &v[j].m))
				return false;
		entry_text(t, v[i].end_user, &sum);
		i = j;
	}
	tg_json_text_end_object(t);
	if (!sums_text(t, "call_types", g, d, ms, call_type_of))
		return false;
	tg_json_text_end_object(t);
	return true;
}

/*
 * The grouped rows of q (of end_user only when not NULL) into g.  Every end
 * user: the index on (start_day, end_user, model, call_type, ...) holds
 * each summed column, so the rows are read from it alone, in group order, and
 * summed as they stream (no temporary table, no sort); start_day bounds the
 * range for that index, start_time keeps the exact one.  One end user: the
 * index on (end_user, start_time).
 */
static enum tg_rc
activity_query(struct tg_db *db, const struct tg_activity_query *q,
               const char *end_user, bool archive, struct groups *g,
               struct tg_err *err)
{
	struct tg_db_param params[7];
	struct tg_db_result res;
	char start_s[20], end_s[20], last_s[20];
	size_t np = 0;
	enum tg_rc rc;

	if (q->has_start)
		tg_time_sql(q->start, start_s);
	if (q->has_end) {
		tg_time_sql(q->end, end_s);
		/* The end is exclusive and whole seconds: the last day is
		 * that of the second before it. */
		tg_time_sql(q->end - 1, last_s);
	}
	if (end_user != NULL) {
		params[np++] = tg_db_str(end_user);
	} else {
		params[np++] =
		        tg_db_strn(q->has_start ? start_s : NO_START, 10);
		params[np++] = tg_db_strn(q->has_end ? last_s : NO_END, 10);
	}
	params[np++] = tg_db_str(q->has_start ? start_s : NO_START);
	params[np++] = tg_db_str(q->has_end ? end_s : NO_END);
	params[np++] = tg_db_str(q->model);
	params[np++] = tg_db_str(q->model);
#define ACTIVITY_SELECT                                                        \
	"SELECT CAST(start_day AS CHAR), end_user, model, call_type,"          \
	" SUM(spend),"                                                         \
	" SUM(prompt_tokens), SUM(completion_tokens), SUM(total_tokens),"      \
	" COUNT(*), SUM(status = 'success') FROM spend_logs WHERE "
#define ACTIVITY_REST                                                          \
	"start_time >= ? AND start_time < ? AND (? IS NULL OR model = ?)"      \
	" GROUP BY start_day, end_user, model, call_type"                      \
	" ORDER BY start_day, end_user"
	if (end_user != NULL)
		rc = tg_db_exec(
		        db, ACTIVITY_SELECT "end_user = ? AND " ACTIVITY_REST,
		        params, np, &res, err);
	else
		rc = tg_db_exec(db,
		                ACTIVITY_SELECT
		                "start_day >= ? AND start_day <= ?"
		                " AND " ACTIVITY_REST,
		                params, np, &res, err);
#undef ACTIVITY_SELECT
#undef ACTIVITY_REST
	if (rc == TG_OK)
		rc = groups_add(g, &res, err);
	if (rc != TG_OK || !archive)
		return rc;

	/* The archived days of the range (sql/012), whole days: their rows
	 * are summed per day, customer, key, model and route. */
	np = 0;
	if (end_user != NULL)
		params[np++] = tg_db_str(end_user);
	params[np++] = tg_db_strn(q->has_start ? start_s : NO_START, 10);
	params[np++] = tg_db_strn(q->has_end ? last_s : NO_END, 10);
	params[np++] = tg_db_str(q->model);
	params[np++] = tg_db_str(q->model);
#define ARCHIVE_SELECT                                                         \
	"SELECT CAST(day AS CHAR), end_user, model, call_type, SUM(spend),"    \
	" SUM(prompt_tokens), SUM(completion_tokens), SUM(total_tokens),"      \
	" SUM(requests), SUM(successful_requests) FROM spend_archive WHERE "
#define ARCHIVE_REST                                                           \
	"day >= ? AND day <= ? AND (? IS NULL OR model = ?)"                   \
	" GROUP BY day, end_user, model, call_type ORDER BY day, end_user"
	rc = tg_db_exec(db,
	                end_user != NULL ? ARCHIVE_SELECT
	                        "end_user = ? AND " ARCHIVE_REST
	                                 : ARCHIVE_SELECT ARCHIVE_REST,
	                params, np, &res, err);
#undef ARCHIVE_SELECT
#undef ARCHIVE_REST
	if (rc != TG_OK)
		return rc;
	return groups_add(g, &res, err);
}

/*
 * Whether the archive (sql/012) holds a day of q's range: its first and
 * last day are two reads of its primary key, and a report of recent days
 * then reads nothing more of it.  False before sql/012.
 */
static enum tg_rc
archive_in_range(struct tg_db *db, const struct tg_activity_query *q, bool *in,
                 struct tg_err *err)
{
	struct tg_db_result res;
	char first[20], last[20];
	const char *lo, *hi;
	enum tg_rc rc;

	*in = false;
	rc = tg_db_exec(db,
	                "SELECT CAST(MIN(day) AS CHAR), CAST(MAX(day) AS CHAR)"
	                " FROM spend_archive",
	                NULL, 0, &res, err);
	if (rc == TG_ERR_DB && tg_db_errno(db) == 1146) {
		tg_err_clear(err);
		return TG_OK;
	}
	if (rc != TG_OK)
		return rc;
	lo = res.nrows == 1 ? tg_db_cell(&res, 0, 0) : NULL;
	hi = res.nrows == 1 ? tg_db_cell(&res, 0, 1) : NULL;
	if (lo != NULL && hi != NULL) {
		if (q->has_start)
			tg_time_sql(q->start, first);
		if (q->has_end)
			tg_time_sql(q->end - 1, last);
		*in = (!q->has_start || strncmp(hi, first, 10) >= 0) &&
		      (!q->has_end || strncmp(lo, last, 10) <= 0);
	}
	tg_db_result_free(&res);
	return TG_OK;
}

enum tg_rc
tg_spendlog_daily_activity(struct tg_db *db, const struct tg_activity_query *q,
                           char **text, size_t *len, struct tg_err *err)
{
	struct groups g;
	struct name_sums ms;
	struct tg_json_text t;
	struct day *days = NULL;
	struct metrics total;
	size_t ndays = 0, first, last;
	int64_t total_pages;
	bool archive = false;
	enum tg_rc rc = TG_OK;

	if (q->page < 1 || q->page_size < 1)
		return tg_err_set(err, TG_ERR_UNPROCESSABLE, "page",
		                  "page is out of range");
	memset(&g, 0, sizeof(g));
	memset(&ms, 0, sizeof(ms));
	memset(&total, 0, sizeof(total));
	tg_json_text_init(&t, ACTIVITY_MAX_TEXT);
	rc = archive_in_range(db, q, &archive, err);
	if (rc == TG_OK && q->end_users == NULL)
		rc = activity_query(db, q, NULL, archive, &g, err);
	for (size_t i = 0;
	     q->end_users != NULL && rc == TG_OK && i < q->n_end_users; i++) {
		/* An id listed twice would count twice. */
		bool seen = false;
		for (size_t k = 0; k < i && !seen; k++)
			seen = strcmp(q->end_users[k], q->end_users[i]) == 0;
		if (!seen)
			rc = activity_query(db, q, q->end_users[i], archive, &g,
			                    err);
	}
	if (rc != TG_OK)
		goto out;
	groups_order(&g);

	/* The days, and the sums of each and of all (the metadata counts
	 * every day matched, not only the page's). */
	days = tg_xcalloc(g.n ? g.n : 1, sizeof(*days));
	for (size_t i = 0; i < g.n; i++) {
		if (i == 0 || strcmp(g.v[i].day, g.v[i - 1].day) != 0) {
			days[ndays].first = i;
			ndays++;
		}
		days[ndays - 1].n++;
		if (!metrics_add(&days[ndays - 1].m, &g.v[i].m)) {
			rc = overflow(err);
			goto out;
		}
	}
	for (size_t k = 0; k < ndays; k++)
		if (!metrics_add(&total, &days[k].m)) {
			rc = overflow(err);
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

	tg_json_text_begin_object(&t);
	tg_json_text_key_literal(&t, "results");
	tg_json_text_begin_array(&t);
	for (size_t k = first; k < last; k++) {
		tg_json_text_begin_object(&t);
		tg_json_text_key_literal(&t, "date");
		tg_json_text_str(&t, g.v[days[k].first].day);
		tg_json_text_key_literal(&t, "metrics");
		metrics_text(&t, &days[k].m);
		tg_json_text_key_literal(&t, "breakdown");
		if (!breakdown_text(&t, &g, &days[k], &ms)) {
			rc = overflow(err);
			goto out;
		}
		tg_json_text_end_object(&t);
	}
	tg_json_text_end_array(&t);
	tg_json_text_key_literal(&t, "metadata");
	tg_json_text_begin_object(&t);
	tg_json_text_key_literal(&t, "total_spend");
	tg_json_text_money(&t, total.spend);
	tg_json_text_key_literal(&t, "total_prompt_tokens");
	tg_json_text_int(&t, total.prompt);
	tg_json_text_key_literal(&t, "total_completion_tokens");
	tg_json_text_int(&t, total.completion);
	tg_json_text_key_literal(&t, "total_tokens");
	tg_json_text_int(&t, total.total);
	tg_json_text_key_literal(&t, "total_api_requests");
	tg_json_text_int(&t, total.requests);
	tg_json_text_key_literal(&t, "total_successful_requests");
	tg_json_text_int(&t, total.succeeded);
	tg_json_text_key_literal(&t, "total_failed_requests");
	tg_json_text_int(&t, total.failed);
	tg_json_text_key_literal(&t, "page");
	tg_json_text_int(&t, q->page);
	tg_json_text_key_literal(&t, "total_pages");
	tg_json_text_int(&t, total_pages);
	tg_json_text_key_literal(&t, "has_more");
	tg_json_text_bool(&t, q->page < total_pages);
	tg_json_text_end_object(&t);
	tg_json_text_end_object(&t);
	if (!tg_json_text_finish(&t, text, len))
		rc = too_much(err);
out:
	tg_json_text_free(&t);
	name_sums_free(&ms);
	free(days);
	groups_free(&g);
	return rc;
}

/* ---- /spend/logs?summarize=true ---- */

/* The longest range a summary fills day by day. */
#define SUMMARY_MAX_DAYS 3660

static const char *
end_user_of(const struct group *x)
{
	return x->end_user;
}

static const char *
api_key_of(const struct group *x)
{
	return x->api_key;
}

/* "<key>":{<name>:spend,...}: d's spend by name_of, sorted by name. */
static bool
spend_by(struct tg_json_text *t, const char *key, const struct group *v,
         size_t n, struct name_sums *ms,
         const char *(*name_of)(const struct group *))
{
	if (!name_sums_of(ms, v, n, name_of))
		return false;
	tg_json_text_key(t, key);
	tg_json_text_begin_object(t);
	for (size_t k = 0; k < ms->n; k++) {
		tg_json_text_key(t, ms->v[k].name);
		tg_json_text_money(t, ms->v[k].m.spend);
	}
	tg_json_text_end_object(t);
	return true;
}

/*
 * The grouped rows of [start, end) (of q's end user and key, when given)
 * from spend_logs and, whole days, from the archive, into g.
 */
static enum tg_rc
summary_query(struct tg_db *db, const struct tg_spendlog_query *q,
              struct groups *g, struct tg_err *err)
{
	struct tg_db_param params[8];
	struct tg_db_result res;
	char start_s[20], end_s[20], last_s[20];
	enum tg_rc rc;

	tg_time_sql(q->start, start_s);
	tg_time_sql(q->end, end_s);
	tg_time_sql(q->end - 1, last_s);
	params[0] = tg_db_strn(start_s, 10);
	params[1] = tg_db_strn(last_s, 10);
	params[2] = tg_db_str(start_s);
	params[3] = tg_db_str(end_s);
	params[4] = tg_db_str(q->end_user);
	params[5] = tg_db_str(q->end_user);
	params[6] = tg_db_str(q->api_key);
	params[7] = tg_db_str(q->api_key);
	rc = tg_db_exec(db,
	                "SELECT CAST(start_day AS CHAR), end_user, model,"
	                " call_type, SUM(spend), SUM(prompt_tokens),"
	                " SUM(completion_tokens), SUM(total_tokens), COUNT(*),"
	                " SUM(status = 'success'), COALESCE(api_key, '')"
	                " FROM spend_logs WHERE start_day >= ? AND"
	                " start_day <= ? AND start_time >= ? AND"
	                " start_time < ? AND (? IS NULL OR end_user = ?)"
	                " AND (? IS NULL OR api_key = ?)"
	                " GROUP BY start_day, end_user, model, call_type,"
	                " api_key",
	                params, 8, &res, err);
	if (rc == TG_OK)
		rc = groups_add(g, &res, err);
	if (rc != TG_OK)
		return rc;
	params[2] = params[4];
	params[3] = params[5];
	params[4] = params[6];
	params[5] = params[7];
	rc = tg_db_exec(db,
	                "SELECT CAST(day AS CHAR), end_user, model, call_type,"
	                " SUM(spend), SUM(prompt_tokens),"
	                " SUM(completion_tokens), SUM(total_tokens),"
	                " SUM(requests), SUM(successful_requests), api_key"
	                " FROM spend_archive WHERE day >= ? AND day <= ?"
	                " AND (? IS NULL OR end_user = ?)"
	                " AND (? IS NULL OR api_key = ?)"
	                " GROUP BY day, end_user, model, call_type, api_key",
	                params, 6, &res, err);
	if (rc == TG_ERR_DB && tg_db_errno(db) == 1146) {
		tg_err_clear(err);
		return TG_OK;
	}
	if (rc != TG_OK)
		return rc;
	return groups_add(g, &res, err);
}

enum tg_rc
tg_spendlog_summary(struct tg_db *db, const struct tg_spendlog_query *q,
                    char **text, size_t *len, struct tg_err *err)
{
	struct groups g;
	struct name_sums ms;
	struct tg_json_text t;
	size_t i = 0;
	enum tg_rc rc;

	if (!q->has_start || !q->has_end || q->end <= q->start)
		return tg_err_set(err, TG_ERR_UNPROCESSABLE, "start_date",
		                  "summarize=true needs start_date and "
		                  "end_date, start_date first");
	if ((q->end - q->start) / 86400 > SUMMARY_MAX_DAYS)
		return tg_err_set(err, TG_ERR_UNPROCESSABLE, "end_date",
		                  "summarize=true covers at most %d days",
		                  SUMMARY_MAX_DAYS);
	memset(&g, 0, sizeof(g));
	memset(&ms, 0, sizeof(ms));
	tg_json_text_init(&t, ACTIVITY_MAX_TEXT);
	rc = summary_query(db, q, &g, err);
	if (rc != TG_OK)
		goto out;
	if (g.n > 1)
		qsort(g.v, g.n, sizeof(*g.v), by_day_user);

	/* Every day of the range, oldest first, those without calls too. */
	tg_json_text_begin_array(&t);
	for (time_t d = q->start - q->start % 86400; d < q->end; d += 86400) {
		char day[20];
		struct metrics sum;
		size_t first = i;

		tg_time_sql(d, day);
		day[10] = '\0';
		memset(&sum, 0, sizeof(sum));
		for (; i < g.n && strcmp(g.v[i].day, day) == 0; i++)
			if (!metrics_add(&sum, &g.v[i].m)) {
				rc = overflow(err);
				goto out;
			}
		tg_json_text_begin_object(&t);
		tg_json_text_key_literal(&t, "startTime");
		tg_json_text_str(&t, day);
		tg_json_text_key_literal(&t, "spend");
		tg_json_text_money(&t, sum.spend);
		if (!spend_by(&t, "users", g.v + first, i - first, &ms,
		              end_user_of) ||
		    !spend_by(&t, "models", g.v + first, i - first, &ms,
		              model_of) ||
		    !spend_by(&t, "api_keys", g.v + first, i - first, &ms,
		              api_key_of)) {
			rc = overflow(err);
			goto out;
		}
		tg_json_text_end_object(&t);
	}
	tg_json_text_end_array(&t);
	if (!tg_json_text_finish(&t, text, len))
		rc = too_much(err);
out:
	tg_json_text_free(&t);
	name_sums_free(&ms);
	groups_free(&g);
	return rc;
}

/* ---- /spend/export: a period's spend per account, as CSV ---- */

/* Accounts read by one query of an export. */
#define EXPORT_PAGE 5000

/* One account's sums in an export. */
struct export_row {
	const char *id, *alias; /* borrowed from a result */
	int64_t requests, succeeded, prompt, completion, total;
	tg_money spend;
};

/* The grouped queries of an export: [by][archive][first]; first: the
 * calls of no account (end_user '', api_key NULL), else a page after an
 * id.  Columns: id, alias, requests, successful, prompt, completion,
 * total, spend. */
#define EXPORT_LIVE(id, where, alias_join)                                     \
	"SELECT g.id, " alias_join ", g.n, g.ok, g.p, g.c, g.t,"               \
	" CAST(g.s AS CHAR) FROM (SELECT " id " AS id, COUNT(*) AS n,"         \
	" SUM(status = 'success') AS ok, SUM(prompt_tokens) AS p,"             \
	" SUM(completion_tokens) AS c, SUM(total_tokens) AS t,"                \
	" SUM(spend) AS s FROM spend_logs WHERE " where                        \
	" start_time >= ? AND start_time < ? GROUP BY " id " ORDER BY " id     \
	" LIMIT ?) g"
#define EXPORT_ARCHIVE(id, where, alias_join)                                  \
	"SELECT g.id, " alias_join ", g.n, g.ok, g.p, g.c, g.t,"               \
	" CAST(g.s AS CHAR) FROM (SELECT " id " AS id, SUM(requests) AS n,"    \
	" SUM(successful_requests) AS ok, SUM(prompt_tokens) AS p,"            \
	" SUM(completion_tokens) AS c, SUM(total_tokens) AS t,"                \
	" SUM(spend) AS s FROM spend_archive WHERE " where                     \
	" day >= ? AND day <= ? GROUP BY " id " ORDER BY " id " LIMIT ?) g"
#define CUSTOMER_ALIAS                                                         \
	"(SELECT c.alias FROM customers c WHERE c.user_id = g.id)"
#define KEY_ALIAS "(SELECT k.key_alias FROM api_keys k WHERE k.token = g.id)"
static const char *const export_sql[2][2][2] = {
        [TG_EXPORT_CUSTOMER] =
                {{EXPORT_LIVE("end_user", "end_user > ? AND", CUSTOMER_ALIAS),
                  EXPORT_LIVE("end_user", "end_user = '' AND ? IS NOT NULL AND",
                              "NULL")},
                 {EXPORT_ARCHIVE("end_user", "end_user > ? AND",
                                 CUSTOMER_ALIAS),
                  EXPORT_ARCHIVE("end_user",
                                 "end_user = '' AND ? IS NOT NULL AND",
                                 "NULL")}},
        [TG_EXPORT_KEY] =
                {{EXPORT_LIVE("api_key", "api_key > ? AND", KEY_ALIAS),
                  EXPORT_LIVE("''", "api_key IS NULL AND ? IS NOT NULL AND",
                              "NULL")},
                 {EXPORT_ARCHIVE("api_key", "api_key > ? AND", KEY_ALIAS),
                  EXPORT_ARCHIVE("api_key",
                                 "api_key = '' AND ? IS NOT NULL AND",
                                 "NULL")}},
};
#undef EXPORT_LIVE
#undef EXPORT_ARCHIVE
#undef CUSTOMER_ALIAS
#undef KEY_ALIAS

/* Rows of one query into v (n of them); false when one is malformed. */
static bool
export_rows(const struct tg_db_result *res, struct export_row *v, size_t *n)
{
	*n = 0;
	for (size_t i = 0; i < res->nrows; i++) {
		struct export_row *r = &v[*n];
		const char *spend = tg_db_cell(res, i, 7);

		memset(r, 0, sizeof(*r));
		r->id = tg_db_cell(res, i, 0);
		r->alias = tg_db_cell(res, i, 1);
		if (!cell_i64(tg_db_cell(res, i, 2), &r->requests))
			return false;
		if (r->requests == 0) /* the first group, empty */
			continue;
		if (r->id == NULL || spend == NULL ||
		    !tg_money_parse(spend, &r->spend) ||
		    !cell_i64(tg_db_cell(res, i, 3), &r->succeeded) ||
		    !cell_i64(tg_db_cell(res, i, 4), &r->prompt) ||
		    !cell_i64(tg_db_cell(res, i, 5), &r->completion) ||
		    !cell_i64(tg_db_cell(res, i, 6), &r->total))
			return false;
		(*n)++;
	}
	return true;
}

/* An id or alias a spreadsheet would take for a formula gets a ' first. */
static void
export_text(struct tg_buf *out, const char *s)
{
	char *safe;

	if (s == NULL || strchr("=+-@\t\r", s[0]) == NULL || s[0] == '\0') {
		tg_csv_field(out, s);
		return;
	}
	safe = tg_xmalloc(strlen(s) + 2);
	safe[0] = '\'';
	strcpy(safe + 1, s);
	tg_csv_field(out, safe);
	free(safe);
}

static void
export_line(struct tg_buf *out, const struct export_row *r, const char *alias)
{
	char num[TG_MONEY_STRLEN + 24];
	int n;

	export_text(out, r->id);
	tg_buf_add(out, ",", 1);
	export_text(out, alias);
	n = snprintf(num, sizeof(num), ",%lld,%lld,%lld,%lld,%lld,",
	             (long long)r->requests, (long long)r->succeeded,
	             (long long)r->prompt, (long long)r->completion,
	             (long long)r->total);
	tg_buf_add(out, num, (size_t)n);
	tg_buf_add(out, num, tg_money_format(r->spend, num, sizeof(num)));
	tg_buf_add(out, "\r\n", 2);
}

/* a += b; false on overflow. */
static bool
export_add(struct export_row *a, const struct export_row *b)
{
	return tg_money_add(a->spend, b->spend, &a->spend) &&
	       !__builtin_add_overflow(a->requests, b->requests,
	                               &a->requests) &&
	       !__builtin_add_overflow(a->succeeded, b->succeeded,
	                               &a->succeeded) &&
	       !__builtin_add_overflow(a->prompt, b->prompt, &a->prompt) &&
	       !__builtin_add_overflow(a->completion, b->completion,
	                               &a->completion) &&
	       !__builtin_add_overflow(a->total, b->total, &a->total);
}

enum tg_rc
tg_spendlog_export(struct tg_db *db, const struct tg_spendlog_query *q,
                   enum tg_export_by by, struct tg_buf *out,
                   bool (*flush)(struct tg_buf *out, void *arg), void *arg,
                   struct tg_err *err)
{
	struct tg_db_result live, arch;
	struct export_row *lv, *av;
	char start_s[20], end_s[20], last_s[20];
	char *after = tg_xstrdup("");
	bool first = true, more = true;
	enum tg_rc rc = TG_OK;

	if (!q->has_start || !q->has_end || q->end <= q->start)
		return tg_err_set(err, TG_ERR_UNPROCESSABLE, "start_date",
		                  "an export needs start_date and end_date, "
		                  "start_date first");
	tg_time_sql(q->start, start_s);
	tg_time_sql(q->end, end_s);
	tg_time_sql(q->end - 1, last_s);
	lv = tg_xcalloc(EXPORT_PAGE, sizeof(*lv));
	av = tg_xcalloc(EXPORT_PAGE, sizeof(*av));
	{
		static const char sums[] =
		        ",requests,successful_requests,prompt_tokens,"
		        "completion_tokens,total_tokens,spend_usd\r\n";
		const char *ids = by == TG_EXPORT_CUSTOMER
		                          ? "customer_id,alias"
		                          : "key_token,key_alias";

		tg_buf_add(out, ids, strlen(ids));
		tg_buf_add(out, sums, sizeof(sums) - 1);
	}
	memset(&live, 0, sizeof(live));
	memset(&arch, 0, sizeof(arch));
	while (more && rc == TG_OK) {
		struct tg_db_param p[4];
		size_t nl = 0, na = 0, i = 0, k = 0;
		const char *bound = NULL;

		/* Both sources from after: a page of each, merged by id up
		 * to the smaller last id of a full page. */
		p[0] = tg_db_str(after);
		p[1] = tg_db_str(start_s);
		p[2] = tg_db_str(end_s);
		p[3] = tg_db_int(EXPORT_PAGE);
		rc = tg_db_exec(db, export_sql[by][0][first], p, 4, &live, err);
		if (rc != TG_OK)
			break;
		p[1] = tg_db_strn(start_s, 10);
		p[2] = tg_db_strn(last_s, 10);
		rc = tg_db_exec(db, export_sql[by][1][first], p, 4, &arch, err);
		if (rc == TG_ERR_DB && tg_db_errno(db) == 1146) {
			tg_err_clear(err); /* a schema before sql/012 */
			memset(&arch, 0, sizeof(arch));
			rc = TG_OK;
		}
		if (rc != TG_OK)
			break;
		if (!export_rows(&live, lv, &nl) ||
		    !export_rows(&arch, av, &na)) {
			rc = tg_err_set(err, TG_ERR_INTERNAL, NULL,
			                "malformed spend group");
			break;
		}
		if (first)
			bound = NULL;
		else if (live.nrows == EXPORT_PAGE &&
		         (arch.nrows < EXPORT_PAGE ||
		          strcmp(lv[nl - 1].id, av[na - 1].id) < 0))
			bound = lv[nl - 1].id;
		else if (arch.nrows == EXPORT_PAGE)
			bound = av[na - 1].id;
		while (i < nl || k < na) {
			struct export_row r;
			int c = i >= nl   ? 1
			        : k >= na ? -1
			                  : strcmp(lv[i].id, av[k].id);

			if (c <= 0 ? bound != NULL &&
			                     strcmp(lv[i].id, bound) > 0
			           : bound != NULL &&
			                     strcmp(av[k].id, bound) > 0)
				break;
			r = c <= 0 ? lv[i] : av[k];
			if (c == 0 && !export_add(&r, &av[k])) {
				rc = overflow(err);
				break;
			}
			if (first)
				r.alias = by == TG_EXPORT_CUSTOMER
				                  ? "(no customer)"
				                  : "(no key)";
			else if (r.alias == NULL && c == 0)
				r.alias = av[k].alias;
			export_line(out, &r, r.alias);
			i += c <= 0;
			k += c >= 0;
		}
		/* Done once neither page was full (after the first). */
		more = first || bound != NULL;
		if (bound != NULL) {
			free(after);
			after = tg_xstrdup(bound);
		}
		first = false;
		tg_db_result_free(&live);
		tg_db_result_free(&arch);
		if (rc == TG_OK && flush != NULL && !flush(out, arg))
			break;
	}
	tg_db_result_free(&live);
	tg_db_result_free(&arch);
	free(lv);
	free(av);
	free(after);
	return rc;
}

static char *
dup_cell(const struct tg_db_result *res, size_t col)
{
	const char *v = tg_db_cell(res, 0, col);

	return v != NULL ? tg_xstrdup(v) : NULL;
}

enum tg_rc
tg_spendlog_origin(struct tg_db *db, const char *response_id,
                   struct tg_spendlog_origin *out, struct tg_err *err)
{
	struct tg_db_param params[1];
	struct tg_db_result res;
	enum tg_rc rc;

	params[0] = tg_db_str(response_id);
	rc = tg_db_exec(db,
	                "SELECT model, model_id, api_base, api_key FROM"
	                " spend_logs WHERE response_id = ? AND status ="
	                " 'success' ORDER BY start_time DESC LIMIT 1",
	                params, 1, &res, err);
	if (rc != TG_OK)
		return rc;
	if (res.nrows == 0) {
		tg_db_result_free(&res);
		return tg_err_set(err, TG_ERR_NOT_FOUND, NULL,
		                  "Response with id '%s' not found.",
		                  response_id);
	}
	out->model = dup_cell(&res, 0);
	out->model_id = dup_cell(&res, 1);
	out->api_base = dup_cell(&res, 2);
	out->api_key = dup_cell(&res, 3);
	tg_db_result_free(&res);
	return TG_OK;
}

void
tg_spendlog_origin_free(struct tg_spendlog_origin *o)
{
	free(o->model);
	free(o->model_id);
	free(o->api_base);
	free(o->api_key);
	memset(o, 0, sizeof(*o));
}
