/*
 * customer: the customer routes (SPEC 8, 8.1) other than new and info, each
 * also under /end_user/: /customer/update, delete, list, block, unblock and
 * daily/activity; and /spend/logs.  /customer/update is
 * lib/customer_routes.c's.  /customer/new and /customer/info have programs
 * of their own (cgi-bin/customer_new.c says why).
 *
 * One program for the rest of the resource rather than one per URL: each
 * FastCGI program holds its own database connection and statements, so one
 * pool serves every other customer route.  /spend/logs is the customers'
 * ledger and shares its reading code with daily/activity: a program of its
 * own would hold another pool of processes and connections for two report
 * routes.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "customer.h"
#include "customer_routes.h"
#include "log.h"
#include "key.h"
#include "spendlog.h"
#include "tag_routes.h"
#include "util.h"

#define NFIELDS(t) (sizeof(t) / sizeof((t)[0]))

static const char *
default_tier(struct tg_req *req)
{
	return tg_req_config(req)->max_end_user_budget_id;
}

/* /customer/delete, /customer/block, /customer/unblock. */
static const struct tg_field ids_fields[] = {
        {"user_ids", TG_FIELD_ID_LIST, TG_FIELD_REQUIRED},
};

static enum tg_rc
handle_delete(struct tg_req *req, struct tg_err *err)
{
	struct json_object *ids = tg_req_field(req, 0)->json;
	struct json_object *o;
	struct tg_db *db;
	size_t deleted = 0;
	char *text, *message;
	size_t len;
	enum tg_rc rc;

	if ((rc = tg_req_db(req, &db, err)) != TG_OK)
		return rc;
	if ((rc = tg_customer_delete(db, ids, &deleted, err)) != TG_OK)
		return rc;
	text = tg_customer_ids_text(ids);
	len = strlen(text) + 64;
	message = tg_xmalloc(len);
	snprintf(message, len, "Successfully deleted customers with ids: %s",
	         text);
	o = json_object_new_object();
	json_object_object_add(o, "deleted_customers",
	                       json_object_new_int64((int64_t)deleted));
	json_object_object_add(o, "message", json_object_new_string(message));
	free(message);
	free(text);
	tg_req_respond_json(req, 200, o);
	return TG_OK;
}

static enum tg_rc
set_blocked(struct tg_req *req, bool blocked, const char *key,
            struct tg_err *err)
{
	struct json_object *ids = tg_req_field(req, 0)->json;
	struct json_object *o;
	struct tg_db *db;
	enum tg_rc rc;

	if ((rc = tg_req_db(req, &db, err)) != TG_OK)
		return rc;
	rc = tg_customer_set_blocked(db, ids, blocked, default_tier(req), err);
	if (rc != TG_OK)
		return rc;
	o = json_object_new_object();
	json_object_object_add(o, key, json_object_get(ids));
	tg_req_respond_json(req, 200, o);
	return TG_OK;
}

static enum tg_rc
handle_block(struct tg_req *req, struct tg_err *err)
{
	return set_blocked(req, true, "blocked_users", err);
}

static enum tg_rc
handle_unblock(struct tg_req *req, struct tg_err *err)
{
	return set_blocked(req, false, "unblocked_users", err);
}

/*
 * GET /customer/list?page=&page_size=&budget_id=&blocked=&search=
 * The answer stays LiteLLM's array; x-total-count says how many customers
 * match on every page, for a client that pages through them.
 */
static const struct tg_field list_fields[] = {
        {"page", TG_FIELD_COUNT, 0},
        {"page_size", TG_FIELD_COUNT, 0},
        {"budget_id", TG_FIELD_ID, 0},
        {"blocked", TG_FIELD_STRING, 0}, /* "true" / "false" in a query */
        {"search", TG_FIELD_ID, 0},
};

static enum tg_rc
handle_list(struct tg_req *req, struct tg_err *err)
{
	const struct tg_value *page = tg_req_field(req, 0);
	const struct tg_value *size = tg_req_field(req, 1);
	const struct tg_value *blocked = tg_req_field(req, 3);
	struct tg_customer_filter f = {NULL, -1, NULL, 1, 0};
	struct json_object *arr;
	struct tg_db *db;
	int64_t total;
	char count[24];
	enum tg_rc rc;

	if (page->given && page->num < 1)
		return tg_err_set(err, TG_ERR_UNPROCESSABLE, "page",
		                  "page must be an integer >= 1");
	if (size->given && size->num < 1)
		return tg_err_set(err, TG_ERR_UNPROCESSABLE, "page_size",
		                  "page_size must be an integer >= 1");
	if (blocked->given) {
		if (strcmp(blocked->str, "true") == 0)
			f.blocked = 1;
		else if (strcmp(blocked->str, "false") == 0)
			f.blocked = 0;
		else
			return tg_err_set(err, TG_ERR_UNPROCESSABLE, "blocked",
			                  "blocked must be true or false");
	}
	f.budget_id = tg_req_str(req, 2);
	f.search = tg_req_str(req, 4);
	if (page->given)
		f.page = page->num;
	/* Without page_size every customer, as LiteLLM; a page without a
	 * page_size counts pages of 25. */
	if (size->given)
		f.page_size = size->num;
	else if (page->given)
		f.page_size = 25;
	if ((rc = tg_req_db(req, &db, err)) != TG_OK)
		return rc;
	rc = tg_customer_list(db, &f, default_tier(req), &arr, &total, err);
	if (rc != TG_OK)
		return rc;
	snprintf(count, sizeof(count), "%lld", (long long)total);
	tg_req_add_header(req, "x-total-count", count);
	tg_req_respond_json(req, 200, arr);
	return TG_OK;
}

/* ---- reports: /spend/logs, /customer/daily/activity ---- */

static enum tg_rc
bound(struct tg_req *req, size_t i, const char *name, bool end, bool *has,
      time_t *out, struct tg_err *err)
{
	const struct tg_value *v = tg_req_field(req, i);

	*has = v->given;
	if (v->given && !tg_spendlog_parse_bound(v->str, end, out))
		return tg_err_set(err, TG_ERR_UNPROCESSABLE, name,
		                  "%s must be a date YYYY-MM-DD or an ISO 8601 "
		                  "time. Received: %s",
		                  name, v->str);
	return TG_OK;
}

static enum tg_rc
paging(struct tg_req *req, size_t i_page, size_t i_size, int64_t dflt,
       int64_t *page, int64_t *size, struct tg_err *err)
{
	const struct tg_value *p = tg_req_field(req, i_page);
	const struct tg_value *s = tg_req_field(req, i_size);

	if (p->given && p->num < 1)
		return tg_err_set(err, TG_ERR_UNPROCESSABLE, "page",
		                  "page must be an integer >= 1");
	if (s->given && (s->num < 1 || s->num > TG_SPENDLOG_PAGE_SIZE_MAX))
		return tg_err_set(err, TG_ERR_UNPROCESSABLE, "page_size",
		                  "page_size must be an integer from 1 to %d",
		                  TG_SPENDLOG_PAGE_SIZE_MAX);
	*page = p->given ? p->num : 1;
	*size = s->given ? s->num : dflt;
	return TG_OK;
}

static const struct tg_field logs_fields[] = {
        {"end_user", TG_FIELD_ID, 0},     {"start_date", TG_FIELD_STRING, 0},
        {"end_date", TG_FIELD_STRING, 0}, {"request_id", TG_FIELD_ID, 0},
        {"page", TG_FIELD_COUNT, 0},      {"page_size", TG_FIELD_COUNT, 0},
        {"api_key", TG_FIELD_STRING, 0},  {"tags", TG_FIELD_STRING, 0},
        {"summarize", TG_FIELD_BOOL, 0},
};

static enum tg_rc
handle_logs(struct tg_req *req, struct tg_err *err)
{
	struct tg_spendlog_query q;
	struct json_object *arr;
	struct tg_db *db;
	char token[65];
	enum tg_rc rc;

	memset(&q, 0, sizeof(q));
	q.end_user = tg_req_str(req, 0);
	q.request_id = tg_req_str(req, 3);
	/* A key ("sk-...") or its token: the ledger holds tokens. */
	if (tg_req_str(req, 6) != NULL) {
		if (!tg_key_token_of(tg_req_str(req, 6), token)) {
			tg_req_respond_json(req, 200, json_object_new_array());
			return TG_OK;
		}
		q.api_key = token;
	}
	if ((rc = bound(req, 1, "start_date", false, &q.has_start, &q.start,
	                err)) != TG_OK ||
	    (rc = bound(req, 2, "end_date", true, &q.has_end, &q.end, err)) !=
	            TG_OK ||
	    (rc = paging(req, 4, 5, TG_SPENDLOG_PAGE_SIZE, &q.page,
	                 &q.page_size, err)) != TG_OK)
		return rc;
	/* Rows naming any of these tags (SPEC 11). */
	if (tg_req_str(req, 7) != NULL &&
	    !tg_spendlog_split_ids(tg_req_str(req, 7), TG_SPENDLOG_MAX_TAGS,
	                           &q.tags, &q.ntags))
		return tg_err_set(
		        err, TG_ERR_UNPROCESSABLE, "tags",
		        "tags must be a comma list of at most %d tags",
		        TG_SPENDLOG_MAX_TAGS);
	/* LiteLLM's sums per day (archived days too), or the rows. */
	if (tg_req_field(req, 8)->given && tg_req_field(req, 8)->num != 0) {
		char *text = NULL;
		size_t len = 0;

		if (q.ntags > 0 || q.request_id != NULL)
			rc = tg_err_set(err, TG_ERR_UNPROCESSABLE, "summarize",
			                "summarize=true takes the end_user and "
			                "api_key filters, not tags or "
			                "request_id");
		else
			rc = tg_req_db(req, &db, err);
		if (rc == TG_OK)
			rc = tg_spendlog_summary(db, &q, &text, &len, err);
		tg_spendlog_ids_free(q.tags, q.ntags);
		if (rc != TG_OK)
			return rc;
		tg_req_respond_raw(req, 200, text, len);
		free(text);
		return TG_OK;
	}
	rc = tg_req_db(req, &db, err);
	if (rc == TG_OK)
		rc = tg_spendlog_list(db, &q, &arr, err);
	tg_spendlog_ids_free(q.tags, q.ntags);
	if (rc != TG_OK)
		return rc;
	tg_req_respond_json(req, 200, arr);
	return TG_OK;
}

static const struct tg_field export_fields[] = {
        {"start_date", TG_FIELD_STRING, TG_FIELD_REQUIRED},
        {"end_date", TG_FIELD_STRING, TG_FIELD_REQUIRED},
        {"group_by", TG_FIELD_STRING, 0},
};

/* A page of the export is ready: the answer is streamed from the first. */
static bool
export_flush(struct tg_buf *out, void *arg)
{
	return tg_req_stream_buf(arg, "text/csv; charset=utf-8", out);
}

/*
 * GET /spend/export?start_date=&end_date=[&group_by=customer|key]: the
 * period's spend per customer (or key) as CSV, to bill from, streamed
 * page by page (lib/spendlog.h).  An error after the first page cuts the
 * answer short: its last line is then not a whole one, and the error log
 * says why.
 */
static enum tg_rc
handle_export(struct tg_req *req, struct tg_err *err)
{
	struct tg_spendlog_query q;
	struct tg_buf out = {NULL, 0};
	const char *by = tg_req_str(req, 2);
	enum tg_export_by how = TG_EXPORT_CUSTOMER;
	char disposition[96], start_day[20], end_day[20];
	struct tg_db *db;
	enum tg_rc rc;

	memset(&q, 0, sizeof(q));
	if (by != NULL && strcmp(by, "key") == 0)
		how = TG_EXPORT_KEY;
	else if (by != NULL && strcmp(by, "customer") != 0)
		return tg_err_set(err, TG_ERR_UNPROCESSABLE, "group_by",
		                  "group_by is customer or key");
	if ((rc = bound(req, 0, "start_date", false, &q.has_start, &q.start,
	                err)) != TG_OK ||
	    (rc = bound(req, 1, "end_date", true, &q.has_end, &q.end, err)) !=
	            TG_OK)
		return rc;
	if (q.end <= q.start)
		return tg_err_set(err, TG_ERR_UNPROCESSABLE, "end_date",
		                  "end_date must not be before start_date");
	if ((rc = tg_req_db(req, &db, err)) != TG_OK)
		return rc;
	tg_time_sql(q.start, start_day);
	tg_time_sql(q.end - 1, end_day);
	snprintf(
	        disposition, sizeof(disposition),
	        "attachment; filename=\"tollgate-spend-by-%s-%.10s-%.10s.csv\"",
	        how == TG_EXPORT_KEY ? "key" : "customer", start_day, end_day);
	tg_req_add_header(req, "Content-Disposition", disposition);
	rc = tg_spendlog_export(db, &q, how, &out, export_flush, req, err);
	if (rc != TG_OK && tg_req_responded(req)) {
		tg_log_error("/spend/export cut short: %s", err->message);
		rc = TG_OK;
	} else if (rc == TG_OK && !tg_req_responded(req)) {
		export_flush(&out, req);
	}
	tg_buf_free(&out);
	return rc;
}

static const struct tg_field activity_fields[] = {
        {"end_user_ids", TG_FIELD_STRING, 0},
        {"start_date", TG_FIELD_STRING, 0},
        {"end_date", TG_FIELD_STRING, 0},
        {"model", TG_FIELD_STRING, 0},
        {"page", TG_FIELD_COUNT, 0},
        {"page_size", TG_FIELD_COUNT, 0},
};

/* The ids one daily-activity query may name (each is one indexed read). */
#define ACTIVITY_MAX_IDS 1000

static enum tg_rc
handle_activity(struct tg_req *req, struct tg_err *err)
{
	struct tg_activity_query q;
	struct tg_db *db;
	const char *ids = tg_req_str(req, 0);
	char *text = NULL;
	size_t len = 0;
	enum tg_rc rc;

	memset(&q, 0, sizeof(q));
	q.model = tg_req_str(req, 3);
	if ((rc = bound(req, 1, "start_date", false, &q.has_start, &q.start,
	                err)) != TG_OK ||
	    (rc = bound(req, 2, "end_date", true, &q.has_end, &q.end, err)) !=
	            TG_OK ||
	    (rc = paging(req, 4, 5, TG_ACTIVITY_PAGE_SIZE, &q.page,
	                 &q.page_size, err)) != TG_OK)
		return rc;
	if (ids != NULL && !tg_spendlog_split_ids(ids, ACTIVITY_MAX_IDS,
	                                          &q.end_users, &q.n_end_users))
		return tg_err_set(
		        err, TG_ERR_UNPROCESSABLE, "end_user_ids",
		        "end_user_ids must be a comma list of at most "
		        "%d ids",
		        ACTIVITY_MAX_IDS);
	/* "end_user_ids=" names nobody: every end user, as when absent. */
	if (q.n_end_users == 0) {
		tg_spendlog_ids_free(q.end_users, 0);
		q.end_users = NULL;
	}
	rc = tg_req_db(req, &db, err);
	if (rc == TG_OK)
		rc = tg_spendlog_daily_activity(db, &q, &text, &len, err);
	tg_spendlog_ids_free(q.end_users, q.n_end_users);
	if (rc != TG_OK)
		return rc;
	tg_req_respond_raw(req, 200, text, len);
	free(text);
	return TG_OK;
}

#define ROUTES(path, method, body, fields, handler)                            \
	{"/customer/" path, method, TG_AUTH_MASTER, body, fields,              \
	 NFIELDS(fields),   handler},                                          \
	{                                                                      \
		"/end_user/" path, method, TG_AUTH_MASTER, body, fields,       \
		        NFIELDS(fields), handler                               \
	}

static const struct tg_route routes[] = {
        ROUTES("update", "POST", TG_BODY_MGMT, tg_customer_routes_fields,
               tg_customer_routes_update),
        ROUTES("delete", "POST", TG_BODY_MGMT, ids_fields, handle_delete),
        ROUTES("block", "POST", TG_BODY_MGMT, ids_fields, handle_block),
        ROUTES("unblock", "POST", TG_BODY_MGMT, ids_fields, handle_unblock),
        ROUTES("list", "GET", TG_BODY_NONE, list_fields, handle_list),
        ROUTES("daily/activity", "GET", TG_BODY_NONE, activity_fields,
               handle_activity),
        {"/spend/logs", "GET", TG_AUTH_MASTER, TG_BODY_NONE, logs_fields,
         NFIELDS(logs_fields), handle_logs},
        {"/spend/export", "GET", TG_AUTH_MASTER, TG_BODY_NONE, export_fields,
         NFIELDS(export_fields), handle_export},
        {"/tag/new", "POST", TG_AUTH_MASTER, TG_BODY_MGMT, tg_tag_routes_fields,
         TG_TAG_ROUTES_NFIELDS, tg_tag_routes_new},
        {"/tag/update", "POST", TG_AUTH_MASTER, TG_BODY_MGMT,
         tg_tag_routes_fields, TG_TAG_ROUTES_NFIELDS, tg_tag_routes_update},
        {"/tag/info", "POST", TG_AUTH_MASTER, TG_BODY_MGMT,
         tg_tag_routes_info_fields, 1, tg_tag_routes_info},
        {"/tag/delete", "POST", TG_AUTH_MASTER, TG_BODY_MGMT,
         tg_tag_routes_delete_fields, 1, tg_tag_routes_delete},
        {"/tag/list", "GET", TG_AUTH_MASTER, TG_BODY_NONE, NULL, 0,
         tg_tag_routes_list},
};

static const struct tg_program program = {
        .name = "customer", .routes = routes, .nroutes = NFIELDS(routes)};

int
main(void)
{
	return tg_app_main(&program);
}
