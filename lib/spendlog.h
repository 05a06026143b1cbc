/*
 * spendlog: reading the ledger (spend_logs) for reports: /spend/logs and
 * /customer/daily/activity (SPEC 3, 8).
 */
#ifndef TG_SPENDLOG_H
#define TG_SPENDLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <json-c/json.h>

#include "db.h"
#include "err.h"
#include "util.h"

/* Page sizes: the defaults when none is given, and the largest accepted. */
#define TG_SPENDLOG_PAGE_SIZE     100
#define TG_ACTIVITY_PAGE_SIZE     10
#define TG_SPENDLOG_PAGE_SIZE_MAX 1000

/*
 * A date bound of a report: "YYYY-MM-DD" (a whole UTC day) or an ISO 8601
 * time.  As a start (end false) it is the first second it names; as an
 * end (end true) the first second after it: a day's end is the next
 * midnight, so start_date = end_date = D covers D.  False when s is
 * neither.  *out written on success only.
 */
bool tg_spendlog_parse_bound(const char *s, bool end, time_t *out);

/*
 * Split a comma list of ids ("a,b,c") into *ids (malloc'd array of
 * malloc'd strings; free with tg_spendlog_ids_free).  Empty items are
 * skipped; false (nothing allocated) when an item is not a valid id
 * (SPEC 1) or there are more than max items.  An empty list gives n 0.
 */
bool tg_spendlog_split_ids(const char *list, size_t max, char ***ids,
                           size_t *n);
void tg_spendlog_ids_free(char **ids, size_t n);

/* Filters of /spend/logs; NULL / unset = any. */
struct tg_spendlog_query {
	const char *end_user;
	const char
	        *request_id; /* tollgate's id, or the upstream's response id */
	const char *api_key; /* a key's token (sha256 hex) */
	/* Rows naming any of these tags (metadata.tags; SPEC 11); n 0:
	 * any row. */
	char **tags;
	size_t ntags;
	bool has_start, has_end;
	time_t start, end; /* [start, end) on start_time */
	int64_t page;      /* from 1 */
	int64_t page_size; /* 1..TG_SPENDLOG_PAGE_SIZE_MAX */
};

/*
 * Ledger rows matching q, newest first (start_time, then request_id,
 * descending), as a JSON array (new reference in *out) of objects with the
 * SPEC 3 fields (money exact, times ISO 8601 UTC, metadata as JSON) plus
 * LiteLLM's startTime, endTime and request_tags (the tags the call named,
 * [] for none).  Each filter is served by an index (tags: spend_log_tags;
 * at most TG_SPENDLOG_MAX_TAGS).
 */
#define TG_SPENDLOG_MAX_TAGS 16
enum tg_rc tg_spendlog_list(struct tg_db *db, const struct tg_spendlog_query *q,
                            struct json_object **out, struct tg_err *err);

/*
 * LiteLLM's /spend/logs?summarize=true over q's range (start and end both
 * given; at most 3660 days) and its end_user and api_key filters: a JSON
 * array (text as tg_spendlog_daily_activity() gives it) with one object
 * per UTC day of the range, oldest first, days without calls too:
 * {"startTime": "YYYY-MM-DD", "spend": ..., "users": {id: spend},
 * "models": {model: spend}, "api_keys": {token: spend}} (LiteLLM writes
 * each key's spend beside "spend"; tollgate keeps them in "api_keys").
 * Archived days (sql/012) are counted, whole.  TG_ERR_UNPROCESSABLE for a
 * range that is missing or too long.
 */
enum tg_rc tg_spendlog_summary(struct tg_db *db,
                               const struct tg_spendlog_query *q, char **text,
                               size_t *len, struct tg_err *err);

/* What a row of tg_spendlog_export() stands for. */
enum tg_export_by {
	TG_EXPORT_CUSTOMER, /* end_user, with the customer's alias */
	TG_EXPORT_KEY,      /* api_key (a key's token), with its key_alias */
};

/*
 * A period's spend per customer (or per key), for billing: CSV with a
 * header line and one line per account that had calls in [q->start,
 * q->end) (both given), in the order of its id as bytes: id, alias,
 * requests, successful_requests, prompt_tokens, completion_tokens,
 * total_tokens, spend_usd (exact).  Rows and archived days (whole) are
 * added up.  The calls of no customer (no key) come first, with an empty
 * id and the alias "(no customer)" ("(no key)").  An id or alias that a
 * spreadsheet would take for a formula (=, +, -, @, tab, CR first) gets a
 * leading '.  Read in pages of 5,000 accounts; flush(out, arg) is called
 * after each (it empties out; false stops), so the whole answer is never
 * in memory.  TG_ERR_UNPROCESSABLE without both dates.
 */
enum tg_rc tg_spendlog_export(struct tg_db *db,
                              const struct tg_spendlog_query *q,
                              enum tg_export_by by, struct tg_buf *out,
                              bool (*flush)(struct tg_buf *out, void *arg),
                              void *arg, struct tg_err *err);

/* Where an upstream's answer came from, as its ledger row says. */
struct tg_spendlog_origin {
	char *model;    /* the client's model name */
	char *model_id; /* the deployment's litellm_params.model */
	char *api_base; /* the base it was called at */
	char *api_key;  /* sha256 hex of the key that made the call */
};

/*
 * The ledger row of the successful call whose upstream answer had id
 * response_id (spend_logs.response_id, sql/008): TG_ERR_NOT_FOUND when
 * there is none.  Free *out with tg_spendlog_origin_free().
 */
enum tg_rc tg_spendlog_origin(struct tg_db *db, const char *response_id,
                              struct tg_spendlog_origin *out,
                              struct tg_err *err);
void tg_spendlog_origin_free(struct tg_spendlog_origin *o);

/* Filters of /customer/daily/activity. */
struct tg_activity_query {
	char **end_users; /* NULL or n ids */
	size_t n_end_users;
	const char *model; /* NULL: any */
	bool has_start, has_end;
	time_t start, end;
	int64_t page, page_size;
};

/*
 * LiteLLM's SpendAnalyticsPaginatedResponse over the ledger, as JSON text
 * (*text malloc'd and NUL-terminated, free() it; *len its length; both
 * written on success only): one result per UTC day with activity, oldest
 * first, each with its metrics and their breakdown by model and by end user
 * (keys sorted as strcmp() orders them); metadata holds the totals of every
 * day matched and the paging (page_size days a page).  TG_ERR_UNPROCESSABLE
 * when the range holds too much to answer at once (param start_date).
 */
enum tg_rc tg_spendlog_daily_activity(struct tg_db *db,
                                      const struct tg_activity_query *q,
                                      char **text, size_t *len,
                                      struct tg_err *err);

#endif
