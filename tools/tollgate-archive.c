/*
 * tollgate-archive: move the ledger rows of closed months into daily
 * summaries (sql/012, docs/OPERATING.md "How the data grows").
 *
 *   tollgate-archive --before YYYY-MM [--config FILE] [--batch N]
 *                    [--pause MS] [--export DIR [--format jsonl|csv]]
 *                    [--dry-run] [--quiet]
 *
 * Every spend_logs row that started before the first second of YYYY-MM
 * (UTC) is added to its day's summary (spend_archive: per customer, key,
 * model and route; spend_archive_tags: per tag and model) and deleted, in
 * batches of --batch rows (500 unless given), one transaction each, with
 * --pause milliseconds (20) between two so that calls are not kept
 * waiting: a batch locks only its own rows, of months that are over.  A
 * row is in its summary or in spend_logs, never both: the reports read
 * both and add up as before.  YYYY-MM can be the current month at most
 * (the months before it are over); a month already archived can be
 * archived again (late rows: a settlement that waited in a spool).
 *
 * --export DIR writes each batch's rows, every column, to
 * DIR/spend_logs-<first month>-<run time>.jsonl (or .csv), synced to disk
 * before the batch commits; a run writes a new file and never overwrites
 * one.  --dry-run says what would move and changes nothing.  SIGTERM or
 * SIGINT ends the run after the batch in flight; running it again goes on
 * where it stopped.  Exit status: 0, 1 when the config, the database or
 * the export failed, 2 for a bad command line.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "config.h"
#include "db.h"
#include "log.h"
#include "money.h"
#include "util.h"

#define BATCH_DEFAULT 500
#define BATCH_MAX     10000
#define PAUSE_DEFAULT 20

/* The columns of spend_logs an export holds, in its order. */
static const char *const columns[] = {
        "request_id",    "end_user",
        "model",         "model_id",
        "api_key",       "call_type",
        "status",        "spend",
        "prompt_tokens", "completion_tokens",
        "total_tokens",  "start_time",
        "end_time",      "request_duration_ms",
        "api_base",      "metadata",
};
#define NCOLUMNS  (sizeof(columns) / sizeof(columns[0]))
#define COL_SPEND 7
#define COL_START 11

static volatile sig_atomic_t stop;

static void
on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: tollgate-archive --before YYYY-MM [--config FILE] "
	           "[--batch N] [--pause MS]\n"
	           "                        [--export DIR [--format "
	           "jsonl|csv]] [--dry-run] [--quiet]\n");
}

/* The integer of option opt, from lo to hi; false (said) when it is not. */
static bool
number_arg(const char *opt, const char *s, int64_t lo, int64_t hi, int64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoll(s, &end, 10);
	if (errno == 0 && end != s && *end == '\0' && *out >= lo && *out <= hi)
		return true;
	fprintf(stderr, "tollgate-archive: %s takes %lld to %lld\n", opt,
	        (long long)lo, (long long)hi);
	return false;
}

/* A month as a count of months since year 0; false if s is not YYYY-MM. */
static bool
parse_month(const char *s, int *out)
{
	int y = 0, m = 0;

	if (strlen(s) != 7 || s[4] != '-')
		return false;
	for (int i = 0; i < 7; i++)
		if (i != 4 && (s[i] < '0' || s[i] > '9'))
			return false;
	y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 +
	    (s[3] - '0');
	m = (s[5] - '0') * 10 + (s[6] - '0');
	if (y < 1970 || m < 1 || m > 12)
		return false;
	*out = y * 12 + (m - 1);
	return true;
}

static void
month_name(int mo, char buf[8])
{
	snprintf(buf, 8, "%04u-%02u", (unsigned)mo / 12 % 10000,
	         (unsigned)mo % 12 + 1);
}

/* Its first second, as SQL's DATETIME text. */
static void
month_start(int mo, char buf[20])
{
	snprintf(buf, 20, "%04u-%02u-01 00:00:00", (unsigned)mo / 12 % 10000,
	         (unsigned)mo % 12 + 1);
}

/* ---- the export file ---- */

struct export
{
	int fd; /* -1: no export */
	bool csv;
	char path[4096];
	struct tg_buf buf; /* the batch's text, written before the commit */
};

/* The batch's text on disk, synced; false (err set) when it is not. */
static bool
export_flush(struct export *x, struct tg_err *err)
{
	size_t off = 0;

	while (off < x->buf.len) {
		ssize_t n = write(x->fd, x->buf.p + off, x->buf.len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			tg_err_set(err, TG_ERR_INTERNAL, NULL,
			           "--export: writing %s: %s", x->path,
			           n < 0 ? strerror(errno) : "short write");
			return false;
		}
		off += (size_t)n;
	}
	x->buf.len = 0;
	if (fsync(x->fd) != 0) {
		tg_err_set(err, TG_ERR_INTERNAL, NULL,
		           "--export: syncing %s: %s", x->path,
		           strerror(errno));
		return false;
	}
	return true;
}

static bool
export_open(struct export *x, const char *dir, const char *first_month,
            struct tg_err *err)
{
	char stamp[17];
	time_t now = time(NULL);
	struct tm tm;
	int dfd;

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	if ((size_t)snprintf(x->path, sizeof(x->path), "%s/spend_logs-%s-%s.%s",
	                     dir, first_month, stamp,
	                     x->csv ? "csv" : "jsonl") >= sizeof(x->path)) {
		tg_err_set(err, TG_ERR_CONFIG, NULL, "--export: path too long");
		return false;
	}
	/* The ledger's rows: for the operator only. */
	x->fd = open(x->path,
	             O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
	if (x->fd < 0) {
		tg_err_set(err, TG_ERR_CONFIG, NULL, "--export: %s: %s",
		           x->path, strerror(errno));
		return false;
	}
	/* The new name itself durable, before a row depends on it. */
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	if (x->csv) {
		for (size_t c = 0; c < NCOLUMNS; c++) {
			if (c > 0)
				tg_buf_add(&x->buf, ",", 1);
			tg_buf_add(&x->buf, columns[c], strlen(columns[c]));
		}
		tg_buf_add(&x->buf, "\r\n", 2);
		if (!export_flush(x, err))
			return false;
	}
	return true;
}

static void
export_row(struct export *x, const struct tg_db_result *res, size_t row)
{
	struct json_object *o, *v;
	const char *s;

	if (x->csv) {
		for (size_t c = 0; c < NCOLUMNS; c++) {
			if (c > 0)
				tg_buf_add(&x->buf, ",", 1);
			tg_csv_field(&x->buf, tg_db_cell(res, row, c));
		}
		tg_buf_add(&x->buf, "\r\n", 2);
		return;
	}
	o = json_object_new_object();
	for (size_t c = 0; c < NCOLUMNS; c++) {
		const char *cell = tg_db_cell(res, row, c);

		if (cell == NULL)
			v = NULL;
		else if (strcmp(columns[c], "metadata") == 0 &&
		         (v = json_tokener_parse(cell)) != NULL)
			; /* the metadata as the JSON it is */
		else if (strstr(columns[c], "tokens") != NULL ||
		         strcmp(columns[c], "request_duration_ms") == 0)
			v = json_object_new_int64(strtoll(cell, NULL, 10));
		else
			v = json_object_new_string(cell); /* money exact */
		json_object_object_add(o, columns[c], v);
	}
	s = json_object_to_json_string_ext(
	        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	tg_buf_add(&x->buf, s, strlen(s));
	tg_buf_add(&x->buf, "\n", 1);
	json_object_put(o);
}

/* ---- one batch ---- */

struct batch {
	const char *from, *to; /* [from, to): the month's first seconds */
	const char *month;     /* its name, for archived_months */
	int64_t size;
	struct export *x;
	off_t export_len; /* the file's length before this batch */
	/* Out: */
	size_t moved;
	tg_money spend;
};

/* A summary that is there already gets the batch's sums added. */
#define ADD_SUMS                                                               \
	" ON DUPLICATE KEY UPDATE spend = spend + VALUES(spend),"              \
	" prompt_tokens = prompt_tokens + VALUES(prompt_tokens),"              \
	" completion_tokens = completion_tokens + VALUES(completion_tokens),"  \
	" total_tokens = total_tokens + VALUES(total_tokens),"                 \
	" requests = requests + VALUES(requests),"                             \
	" successful_requests = successful_requests +"                         \
	" VALUES(successful_requests)"

/* The rows of the batch: those of the month up to its last (start_time,
 * request_id), in the order they were locked in. */
#define IN_BATCH                                                               \
	" l.start_time >= ? AND (l.start_time < ? OR"                          \
	" (l.start_time = ? AND l.request_id <= ?))"

static enum tg_rc
batch_txn(struct tg_db *db, void *varg, struct tg_err *err)
{
	struct batch *b = varg;
	struct tg_db_param p[4];
	struct tg_db_result res;
	const char *last_t, *last_id;
	uint64_t n = 0;
	enum tg_rc rc;

	b->moved = 0;
	b->spend = 0;
	/* A retry starts the file where this batch started it. */
	if (b->x->fd >= 0) {
		b->x->buf.len = 0;
		if (ftruncate(b->x->fd, b->export_len) != 0)
			return tg_err_set(err, TG_ERR_INTERNAL, NULL,
			                  "--export: %s: %s", b->x->path,
			                  strerror(errno));
	}
	p[0] = tg_db_str(b->from);
	p[1] = tg_db_str(b->to);
	p[2] = tg_db_int(b->size);
	/* Locked in index order: a settlement of one of these rows waits
	 * for the batch, and no row can come in between them. */
	rc = tg_db_exec(db,
	                "SELECT request_id, end_user, model, model_id,"
	                " api_key, call_type, status, spend, prompt_tokens,"
	                " completion_tokens, total_tokens,"
	                " CAST(start_time AS CHAR), CAST(end_time AS CHAR),"
	                " request_duration_ms, api_base, metadata"
	                " FROM spend_logs WHERE start_time >= ? AND"
	                " start_time < ? ORDER BY start_time, request_id"
	                " LIMIT ? FOR UPDATE",
	                p, 3, &res, err);
	if (rc != TG_OK)
		return rc;
	if (res.nrows == 0) {
		tg_db_result_free(&res);
		return TG_OK;
	}
	for (size_t i = 0; i < res.nrows; i++) {
		tg_money m;

		if (tg_db_cell(&res, i, COL_SPEND) == NULL ||
		    !tg_money_parse(tg_db_cell(&res, i, COL_SPEND), &m) ||
		    !tg_money_add(b->spend, m, &b->spend)) {
			tg_db_result_free(&res);
			return tg_err_set(err, TG_ERR_INTERNAL, NULL,
			                  "a spend that is not money, or a sum "
			                  "too large: use a smaller --batch");
		}
		if (b->x->fd >= 0)
			export_row(b->x, &res, i);
	}
	b->moved = res.nrows;
	last_t = tg_db_cell(&res, res.nrows - 1, COL_START);
	last_id = tg_db_cell(&res, res.nrows - 1, 0);
	p[0] = tg_db_str(b->from);
	p[1] = tg_db_str(last_t);
	p[2] = tg_db_str(last_t);
	p[3] = tg_db_str(last_id);

	rc = tg_db_run(
	        db,
	        "INSERT INTO spend_archive (day, end_user, api_key,"
	        " model, call_type, spend, prompt_tokens,"
	        " completion_tokens, total_tokens, requests,"
	        " successful_requests)"
	        " SELECT DATE(l.start_time), l.end_user,"
	        " COALESCE(l.api_key, ''), COALESCE(l.model, ''),"
	        " COALESCE(l.call_type, ''), SUM(l.spend),"
	        " SUM(l.prompt_tokens), SUM(l.completion_tokens),"
	        " SUM(l.total_tokens), COUNT(*),"
	        " SUM(l.status = 'success') FROM spend_logs l WHERE" IN_BATCH
	        " GROUP BY DATE(l.start_time), l.end_user,"
	        " COALESCE(l.api_key, ''), COALESCE(l.model, ''),"
	        " COALESCE(l.call_type, '')" ADD_SUMS,
	        p, 4, NULL, err);
	if (rc == TG_OK)
		rc = tg_db_run(
		        db,
		        "INSERT INTO spend_archive_tags (day, tag, model, "
		        "spend,"
		        " prompt_tokens, completion_tokens, total_tokens,"
		        " requests, successful_requests)"
		        " SELECT DATE(l.start_time), t.tag,"
		        " COALESCE(l.model, ''), SUM(l.spend),"
		        " SUM(l.prompt_tokens), SUM(l.completion_tokens),"
		        " SUM(l.total_tokens), COUNT(*),"
		        " SUM(l.status = 'success') FROM spend_log_tags t"
		        " JOIN spend_logs l ON l.request_id = t.request_id"
		        " WHERE" IN_BATCH " GROUP BY DATE(l.start_time), t.tag,"
		        " COALESCE(l.model, '')" ADD_SUMS,
		        p, 4, NULL, err);
	if (rc == TG_OK)
		rc = tg_db_run(
		        db,
		        "DELETE t FROM spend_log_tags t JOIN spend_logs l"
		        " ON l.request_id = t.request_id WHERE" IN_BATCH,
		        p, 4, NULL, err);
	if (rc == TG_OK)
		rc = tg_db_run(db, "DELETE l FROM spend_logs l WHERE" IN_BATCH,
		               p, 4, &n, err);
	/* The rows locked are the rows moved: nothing came in between. */
	if (rc == TG_OK && n != res.nrows)
		rc = tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                "batch of %zu rows deleted %llu", res.nrows,
		                (unsigned long long)n);
	if (rc == TG_OK) {
		p[0] = tg_db_str(b->month);
		p[1] = tg_db_int((int64_t)res.nrows);
		p[2] = tg_db_money(b->spend);
		rc = tg_db_run(db,
		               "INSERT INTO archived_months (month,"
		               " rows_archived, spend, first_at, last_at)"
		               " VALUES (?, ?, CAST(? AS DECIMAL(30,10)),"
		               " UTC_TIMESTAMP(), UTC_TIMESTAMP())"
		               " ON DUPLICATE KEY UPDATE"
		               " rows_archived = rows_archived +"
		               " VALUES(rows_archived),"
		               " spend = spend + VALUES(spend),"
		               " last_at = VALUES(last_at)",
		               p, 3, NULL, err);
	}
	tg_db_result_free(&res);
	/* The rows on disk before they leave the database. */
	if (rc == TG_OK && b->x->fd >= 0 && !export_flush(b->x, err))
		rc = TG_ERR_INTERNAL;
	return rc;
}

/* ---- the run ---- */

struct totals {
	uint64_t rows;
	tg_money spend;
};

static enum tg_rc
archive_month(struct tg_db *db, int mo, int64_t size, int64_t pause_ms,
              struct export *x, bool quiet, struct totals *t,
              struct tg_err *err)
{
	char from[20], to[20], name[8];
	struct batch b;
	struct totals m = {0, 0};
	struct timespec ts = {pause_ms / 1000, (pause_ms % 1000) * 1000000L};
	enum tg_rc rc = TG_OK;

	month_start(mo, from);
	month_start(mo + 1, to);
	month_name(mo, name);
	memset(&b, 0, sizeof(b));
	b.from = from;
	b.to = to;
	b.month = name;
	b.size = size;
	b.x = x;
	while (!stop) {
		struct stat st;

		b.export_len = 0;
		if (x->fd >= 0 && fstat(x->fd, &st) == 0)
			b.export_len = st.st_size;
		rc = tg_db_txn(db, batch_txn, &b, err);
		if (rc != TG_OK) {
			/* What a failed batch wrote is not in the file. */
			if (x->fd >= 0 && ftruncate(x->fd, b.export_len) != 0)
				fprintf(stderr,
				        "tollgate-archive: %s keeps the rows "
				        "of a batch that did not commit\n",
				        x->path);
			break;
		}
		m.rows += b.moved;
		(void)tg_money_add(m.spend, b.spend, &m.spend);
		if ((int64_t)b.moved < size)
			break;
		while (pause_ms > 0 && !stop && nanosleep(&ts, &ts) != 0 &&
		       errno == EINTR)
			;
		ts.tv_sec = pause_ms / 1000;
		ts.tv_nsec = (pause_ms % 1000) * 1000000L;
	}
	if (m.rows > 0 && !quiet) {
		char s[TG_MONEY_STRLEN];

		tg_money_format(m.spend, s, sizeof(s));
		printf("%s: %llu rows moved, spend %s%s\n", name,
		       (unsigned long long)m.rows, s,
		       rc != TG_OK || stop ? " (not finished)" : "");
		fflush(stdout);
	}
	t->rows += m.rows;
	(void)tg_money_add(t->spend, m.spend, &t->spend);
	return rc;
}

/* What would move, month by month. */
static enum tg_rc
dry_run(struct tg_db *db, const char *before, struct tg_err *err)
{
	struct tg_db_param p = tg_db_str(before);
	struct tg_db_result res;
	enum tg_rc rc;

	rc = tg_db_exec(db,
	                "SELECT DATE_FORMAT(start_time, '%Y-%m'), COUNT(*),"
	                " CAST(SUM(spend) AS CHAR) FROM spend_logs"
	                " WHERE start_time < ? GROUP BY 1 ORDER BY 1",
	                &p, 1, &res, err);
	if (rc != TG_OK)
		return rc;
	for (size_t i = 0; i < res.nrows; i++)
		printf("%s: %s rows would move, spend %s\n",
		       tg_db_cell(&res, i, 0), tg_db_cell(&res, i, 1),
		       tg_db_cell(&res, i, 2));
	if (res.nrows == 0)
		printf("nothing to archive before %.7s\n", before);
	tg_db_result_free(&res);
	return TG_OK;
}

int
main(int argc, char **argv)
{
	const char *config_path = NULL;
	const char *before_s = NULL, *export_dir = NULL;
	struct tg_config *cfg = NULL;
	struct tg_db *db = NULL;
	struct tg_db_result res;
	struct tg_err err;
	struct export x;
	struct totals t = {0, 0};
	struct sigaction sa;
	char fallback[512], before[20], first_name[8];
	bool dry = false, quiet = false;
	int before_mo = 0, now_mo, first_mo;
	int64_t size = BATCH_DEFAULT, pause_ms = PAUSE_DEFAULT;
	time_t now = time(NULL);
	struct tm tm;
	int64_t started = tg_now_us();
	int status = 1;

	memset(&x, 0, sizeof(x));
	x.fd = -1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--dry-run") == 0) {
			dry = true;
		} else if (strcmp(a, "--quiet") == 0) {
			quiet = true;
		} else if (strcmp(a, "--config") == 0 && i + 1 < argc) {
			config_path = argv[++i];
		} else if (strcmp(a, "--before") == 0 && i + 1 < argc) {
			before_s = argv[++i];
		} else if (strcmp(a, "--export") == 0 && i + 1 < argc) {
			export_dir = argv[++i];
		} else if (strcmp(a, "--format") == 0 && i + 1 < argc) {
			const char *f = argv[++i];

			if (strcmp(f, "csv") != 0 && strcmp(f, "jsonl") != 0) {
				fprintf(stderr, "tollgate-archive: --format "
				                "is jsonl or csv\n");
				return 2;
			}
			x.csv = strcmp(f, "csv") == 0;
		} else if (strcmp(a, "--batch") == 0 && i + 1 < argc) {
			if (!number_arg(a, argv[++i], 1, BATCH_MAX, &size))
				return 2;
		} else if (strcmp(a, "--pause") == 0 && i + 1 < argc) {
			if (!number_arg(a, argv[++i], 0, 60000, &pause_ms))
				return 2;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	gmtime_r(&now, &tm);
	now_mo = (tm.tm_year + 1900) * 12 + tm.tm_mon;
	if (before_s == NULL || !parse_month(before_s, &before_mo)) {
		fprintf(stderr, "tollgate-archive: --before YYYY-MM is "
		                "required (the first month kept)\n");
		usage(stderr);
		return 2;
	}
	if (before_mo > now_mo) {
		char cur[8];

		month_name(now_mo, cur);
		fprintf(stderr,
		        "tollgate-archive: --before %s: only months that are "
		        "over move; the latest --before is %s (UTC)\n",
		        before_s, cur);
		return 2;
	}
	month_start(before_mo, before);
	tg_log_init("tollgate-archive");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	config_path = tg_config_path(config_path, fallback, sizeof(fallback));
	tg_err_clear(&err);
	if (tg_config_load(config_path, tg_config_default_prices(), &cfg,
	                   &err) != TG_OK) {
		fprintf(stderr, "tollgate-archive: %s\n", err.message);
		return 1;
	}
	if (cfg->database_url == NULL) {
		fprintf(stderr,
		        "tollgate-archive: no database_url in %s nor "
		        "DATABASE_URL\n",
		        config_path);
		goto out;
	}
	if (tg_db_open(cfg->database_url, &db, &err) != TG_OK) {
		fprintf(stderr, "tollgate-archive: %s\n", err.message);
		goto out;
	}
	/* The summaries' tables: a schema before sql/012 has none. */
	if (tg_db_exec(db, "SELECT 1 FROM archived_months LIMIT 0", NULL, 0,
	               &res, &err) != TG_OK) {
		if (tg_db_errno(db) == 1146)
			fprintf(stderr, "tollgate-archive: the schema has no "
			                "archive yet: run tollgate-migrate "
			                "(sql/012) first\n");
		else
			fprintf(stderr, "tollgate-archive: %s\n", err.message);
		goto out;
	}
	tg_db_result_free(&res);
	if (dry) {
		status = dry_run(db, before, &err) == TG_OK ? 0 : 1;
		if (status != 0)
			fprintf(stderr, "tollgate-archive: %s\n", err.message);
		goto out;
	}

	/* From the month of the oldest row. */
	{
		struct tg_db_param p = tg_db_str(before);

		if (tg_db_exec(db,
		               "SELECT CAST(MIN(start_time) AS CHAR) FROM"
		               " spend_logs WHERE start_time < ?",
		               &p, 1, &res, &err) != TG_OK) {
			fprintf(stderr, "tollgate-archive: %s\n", err.message);
			goto out;
		}
	}
	if (res.nrows == 0 || tg_db_cell(&res, 0, 0) == NULL) {
		tg_db_result_free(&res);
		if (!quiet)
			printf("nothing to archive before %s\n", before_s);
		status = 0;
		goto out;
	}
	first_name[0] = '\0';
	tg_strlcpy(first_name, sizeof(first_name), tg_db_cell(&res, 0, 0));
	tg_db_result_free(&res);
	if (!parse_month(first_name, &first_mo)) {
		fprintf(stderr, "tollgate-archive: a row starts at %s\n",
		        first_name);
		goto out;
	}
	if (export_dir != NULL &&
	    !export_open(&x, export_dir, first_name, &err)) {
		fprintf(stderr, "tollgate-archive: %s\n", err.message);
		goto out;
	}

	status = 0;
	for (int mo = first_mo; mo < before_mo && !stop; mo++) {
		tg_err_clear(&err);
		if (archive_month(db, mo, size, pause_ms, &x, quiet, &t,
		                  &err) != TG_OK) {
			fprintf(stderr, "tollgate-archive: %s\n", err.message);
			status = 1;
			break;
		}
	}
	if (x.fd >= 0 && x.buf.len > 0 && !export_flush(&x, &err)) {
		fprintf(stderr, "tollgate-archive: %s\n", err.message);
		status = 1;
	}
	if (!quiet) {
		char s[TG_MONEY_STRLEN];

		tg_money_format(t.spend, s, sizeof(s));
		printf("archived %llu rows before %s, spend %s, in %.1f s%s\n",
		       (unsigned long long)t.rows, before_s, s,
		       (double)(tg_now_us() - started) / 1e6,
		       stop ? " (stopped)" : "");
		if (x.fd >= 0)
			printf("exported to %s\n", x.path);
	}
out:
	if (x.fd >= 0)
		close(x.fd);
	tg_buf_free(&x.buf);
	if (db != NULL)
		tg_db_close(db);
	tg_config_free(cfg);
	return status;
}
