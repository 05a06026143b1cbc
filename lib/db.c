/*
 * db: the one place that speaks to MySQL/MariaDB (Connector/C, mysql.h).
 *
 * Why it looks like this: a FastCGI process serves requests for hours, so it
 * keeps one connection and its prepared statements, and must survive the
 * server going away and coming back (restart, failover, wait_timeout) without
 * the callers noticing.  Statements are cached in a small open-addressing
 * table keyed by the SQL text (its hash, then the text compared), so the hot
 * path is a hash and execute-only, and SQL built in a reused buffer never
 * runs another text's statement.  When the connection is lost outside a
 * transaction the cache is dropped, the connection is re-made and the
 * statement is tried once more; inside a transaction the loss is reported
 * and tg_db_txn() retries the whole transaction.
 *
 * Everything comes back as strings: DECIMAL columns are parsed exactly by the
 * caller (lib/money.h), never through a double.  Money parameters are bound
 * as exact decimal strings; SQL using them writes CAST(? AS DECIMAL(20,10)),
 * because a string in MySQL arithmetic would become a DOUBLE.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <errmsg.h>
#include <mysql.h>
#include <mysqld_error.h>

#include "db.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

#if defined(MARIADB_PACKAGE_VERSION) || defined(MARIADB_BASE_VERSION)
typedef my_bool db_bool;
#else
typedef bool db_bool;
#endif

#define STMT_SLOTS    128 /* power of two; tollgate has a few dozen statements */
#define STMT_MAX_USED 96  /* beyond this, statements are prepared uncached */
#define MAX_PARAMS    48
#define CELL_BUF_MAX                                                           \
	256 /* first-try buffer per column; longer values re-fetched */
#define TXN_RETRIES          4  /* lock wait timeout, lost connection */
#define TXN_DEADLOCK_RETRIES 50 /* deadlock, Galera certification conflict */
#define CONNECT_TIMEOUT_S    3
#define RW_TIMEOUT_S         30

struct stmt_slot {
	char *sql; /* a copy of the text; NULL: empty */
	size_t len;
	uint64_t hash;
	MYSQL_STMT *stmt;
};

struct tg_db {
	MYSQL *conn; /* NULL while disconnected */
	char *host, *user, *pass, *name, *socket;
	unsigned port;
	bool in_txn;
	bool txn_uncertain; /* tg_db_txn(): a COMMIT's answer was lost */
	unsigned last_errno;
	size_t nslots_used;
	struct stmt_slot slots[STMT_SLOTS];
};

/* ---- URL parsing ---- */

/* Percent-decode s[0..n) into a new string; NULL on a bad escape or NUL. */
static char *
pct_decode(const char *s, size_t n)
{
	char *out = tg_xmalloc(n + 1);
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		if (s[i] == '%') {
			int hi, lo;
			if (i + 2 >= n)
				goto bad;
			hi = tg_hexval((unsigned char)s[i + 1]);
			lo = tg_hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				goto bad;
			out[o++] = (char)(hi * 16 + lo);
			i += 2;
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

static void
db_free_url(struct tg_db *db)
{
	free(db->host);
	free(db->user);
	if (db->pass != NULL) {
		/* Not a secret-erasure guarantee, but do not leave it lying
		 * around. */
		memset(db->pass, 0, strlen(db->pass));
		free(db->pass);
	}
	free(db->name);
	free(db->socket);
	db->host = db->user = db->pass = db->name = db->socket = NULL;
}

/*
 * mysql://user:pass@host[:port]/db[?socket=/path].  The userinfo ends at the
 * last '@' before the query, so an unencoded '@' or '/' in a password still
 * works; percent-escapes are decoded in user, password, db and socket.
 */
static enum tg_rc
parse_url(struct tg_db *db, const char *url, struct tg_err *err)
{
	const char *rest, *query, *end, *at, *hostp, *slash, *hend, *colon;
	enum tg_rc rc = TG_ERR_CONFIG;

	if (url == NULL || *url == '\0')
		return tg_err_set(err, TG_ERR_CONFIG, NULL,
		                  "database_url is not set");
	if (strncmp(url, "mysql://", 8) == 0)
		rest = url + 8;
	else if (strncmp(url, "mariadb://", 10) == 0)
		rest = url + 10;
	else
		return tg_err_set(err, TG_ERR_CONFIG, NULL,
		                  "database_url must start with mysql://");

	query = strchr(rest, '?');
	end = query != NULL ? query : rest + strlen(rest);
	at = NULL;
	for (const char *p = rest; p < end; p++)
		if (*p == '@')
			at = p;
	if (at != NULL) {
		const char *ucolon = memchr(rest, ':', (size_t)(at - rest));
		if (ucolon != NULL) {
			db->user = pct_decode(rest, (size_t)(ucolon - rest));
			db->pass = pct_decode(ucolon + 1,
			                      (size_t)(at - ucolon - 1));
			if (db->pass == NULL)
				goto bad_escape;
		} else {
			db->user = pct_decode(rest, (size_t)(at - rest));
		}
		if (db->user == NULL)
			goto bad_escape;
		hostp = at + 1;
	} else {
		hostp = rest;
	}

	slash = memchr(hostp, '/', (size_t)(end - hostp));
	if (slash == NULL || slash + 1 >= end) {
		tg_err_set(err, TG_ERR_CONFIG, NULL,
		           "database_url has no database name");
		goto out;
	}
	hend = slash;
	/* One server: failover between several is the deployment's (README,
	 * "Several web nodes"), and Connector/C would take a list as one. */
	if (memchr(hostp, ',', (size_t)(hend - hostp)) != NULL) {
		tg_err_set(err, TG_ERR_CONFIG, NULL,
		           "database_url names more than one host: give one "
		           "(a database node, or a proxy in front of them)");
		goto out;
	}
	if (*hostp == '[') { /* [ipv6]:port */
		const char *rb = memchr(hostp, ']', (size_t)(hend - hostp));
		if (rb == NULL) {
			tg_err_set(err, TG_ERR_CONFIG, NULL,
			           "database_url has a bad host");
			goto out;
		}
		db->host = tg_xstrndup(hostp + 1, (size_t)(rb - hostp - 1));
		colon = rb + 1 < hend && rb[1] == ':' ? rb + 1 : NULL;
	} else {
		colon = memchr(hostp, ':', (size_t)(hend - hostp));
		db->host = tg_xstrndup(
		        hostp,
		        (size_t)((colon != NULL ? colon : hend) - hostp));
	}
	if (colon != NULL) {
		char buf[8];
		size_t n = (size_t)(hend - colon - 1);
		char *e;
		long port;
		if (n == 0 || n >= sizeof(buf))
			goto bad_port;
		memcpy(buf, colon + 1, n);
		buf[n] = '\0';
		errno = 0;
		port = strtol(buf, &e, 10);
		if (*e != '\0' || port <= 0 || port > 65535 || errno != 0)
			goto bad_port;
		db->port = (unsigned)port;
	}
	if (db->host[0] == '\0') {
		free(db->host);
		db->host = tg_xstrdup("localhost");
	}
	db->name = pct_decode(slash + 1, (size_t)(end - slash - 1));
	if (db->name == NULL)
		goto bad_escape;
	if (db->name[0] == '\0') {
		tg_err_set(err, TG_ERR_CONFIG, NULL,
		           "database_url has no database name");
		goto out;
	}

	/* Query: socket=/path; other parameters are ignored. */
	if (query != NULL) {
		const char *p = query + 1;
		while (*p != '\0') {
			const char *amp = strchr(p, '&');
			const char *pend = amp != NULL ? amp : p + strlen(p);
			if ((size_t)(pend - p) > 7 &&
			    strncmp(p, "socket=", 7) == 0) {
				free(db->socket);
				db->socket = pct_decode(p + 7,
				                        (size_t)(pend - p - 7));
				if (db->socket == NULL)
					goto bad_escape;
			}
			p = amp != NULL ? amp + 1 : pend;
		}
	}
	rc = TG_OK;
	goto out;

bad_port:
	tg_err_set(err, TG_ERR_CONFIG, NULL, "database_url has a bad port");
	goto out;
bad_escape:
	tg_err_set(err, TG_ERR_CONFIG, NULL,
	           "database_url has a bad percent-escape");
out:
	if (rc != TG_OK)
		db_free_url(db);
	return rc;
}

/* ---- connection ---- */

static bool
is_conn_lost(unsigned e)
{
	/* 4031: MariaDB disconnected an idle client; 1927: connection killed.
	 */
	return e == CR_SERVER_GONE_ERROR || e == CR_SERVER_LOST || e == 4031 ||
	       e == 1927;
}

static void
cache_clear(struct tg_db *db)
{
	for (size_t i = 0; i < STMT_SLOTS; i++) {
		if (db->slots[i].stmt != NULL)
			mysql_stmt_close(db->slots[i].stmt);
		db->slots[i].stmt = NULL;
		free(db->slots[i].sql);
		db->slots[i].sql = NULL;
	}
	db->nslots_used = 0;
}

static void
disconnect(struct tg_db *db)
{
	cache_clear(db);
	if (db->conn != NULL)
		mysql_close(db->conn);
	db->conn = NULL;
}

/*
 * Connect to the server; with_db false connects without selecting the
 * database (tollgate-migrate creates it first).
 */
static enum tg_rc
connect_db(struct tg_db *db, bool with_db, struct tg_err *err)
{
	unsigned timeout = CONNECT_TIMEOUT_S, rw = RW_TIMEOUT_S;
	MYSQL *m = mysql_init(NULL);
	enum tg_rc rc = TG_OK;

	if (m == NULL)
		abort(); /* out of memory */
	mysql_options(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
	mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
	mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &rw);
	mysql_options(m, MYSQL_OPT_WRITE_TIMEOUT, &rw);
	/* Times are UTC; READ COMMITTED avoids gap locks between holds. */
	mysql_options(m, MYSQL_INIT_COMMAND, "SET time_zone = '+00:00'");
	mysql_options(m, MYSQL_INIT_COMMAND,
	              "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED");
	mysql_options(m, MYSQL_INIT_COMMAND,
	              "SET SESSION innodb_lock_wait_timeout = 10");

	/*
	 * CLIENT_FOUND_ROWS: affected rows count matched rows, so a conditional
	 * UPDATE that changes nothing (an estimate of 0) still reads as "done".
	 */
	if (mysql_real_connect(m, db->host, db->user, db->pass,
	                       with_db ? db->name : NULL, db->port, db->socket,
	                       CLIENT_FOUND_ROWS) == NULL) {
		db->last_errno = mysql_errno(m);
		rc = tg_err_set(err, TG_ERR_DB, NULL,
		                "Database unavailable: %s", mysql_error(m));
		mysql_close(m);
		goto out;
	}
	db->conn = m;
	db->in_txn = false;
out:
	return rc;
}

static enum tg_rc
ensure_conn(struct tg_db *db, struct tg_err *err)
{
	if (db->conn != NULL)
		return TG_OK;
	if (db->in_txn) {
		db->last_errno = CR_SERVER_GONE_ERROR;
		return tg_err_set(err, TG_ERR_DB, NULL,
		                  "Database unavailable: connection lost in a "
		                  "transaction");
	}
	return connect_db(db, true, err);
}

enum tg_rc
tg_db_open(const char *url, struct tg_db **out, struct tg_err *err)
{
	struct tg_db *db = tg_xcalloc(1, sizeof(*db));
	enum tg_rc rc;

	rc = parse_url(db, url, err);
	if (rc != TG_OK)
		goto out;
	rc = connect_db(db, true, err);
out:
	if (rc == TG_OK)
		*out = db;
	else
		tg_db_close(db);
	return rc;
}

/* Database names tollgate-migrate will create: no quoting surprises. */
static bool
db_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '$' ||
		      c == '-'))
			return false;
	}
	return true;
}

enum tg_rc
tg_db_open_create(const char *url, bool *created, struct tg_db **out,
                  struct tg_err *err)
{
	struct tg_db *db = tg_xcalloc(1, sizeof(*db));
	char sql[128];
	bool made;
	enum tg_rc rc;

	rc = parse_url(db, url, err);
	if (rc != TG_OK)
		goto out;
	if (!db_name_ok(db->name)) {
		rc = tg_err_set(
		        err, TG_ERR_CONFIG, NULL,
		        "database name must be 1..64 of [A-Za-z0-9_$-]");
		goto out;
	}
	rc = connect_db(db, false, err);
	if (rc != TG_OK)
		goto out;
	snprintf(sql, sizeof(sql),
	         "CREATE DATABASE IF NOT EXISTS `%s` CHARACTER SET utf8mb4 "
	         "COLLATE utf8mb4_bin",
	         db->name);
	if (mysql_real_query(db->conn, sql, strlen(sql)) != 0)
		goto fail;
	/* CREATE DATABASE IF NOT EXISTS: 1 row when made, 0 if it was there. */
	made = mysql_affected_rows(db->conn) == 1;
	if (mysql_select_db(db->conn, db->name) != 0)
		goto fail;
	if (created != NULL)
		*created = made;
	goto out;
fail:
	db->last_errno = mysql_errno(db->conn);
	rc = tg_err_set(err, TG_ERR_DB, NULL, "Database error: %s",
	                mysql_error(db->conn));
out:
	if (rc == TG_OK)
		*out = db;
	else
		tg_db_close(db);
	return rc;
}

void
tg_db_close(struct tg_db *db)
{
	if (db == NULL)
		return;
	disconnect(db);
	db_free_url(db);
	free(db);
}

unsigned
tg_db_errno(const struct tg_db *db)
{
	return db->last_errno;
}

bool
tg_db_duplicate(const struct tg_db *db)
{
	return tg_db_errno(db) == ER_DUP_ENTRY;
}

bool
tg_db_missing_parent(const struct tg_db *db)
{
	return tg_db_errno(db) == ER_NO_REFERENCED_ROW_2;
}

/* ---- statements ---- */

/* FNV-1a of the text, and its length, in one pass. */
static uint64_t
text_hash(const char *sql, size_t *len)
{
	uint64_t h = 0xcbf29ce484222325ull;
	const char *p;

	for (p = sql; *p != '\0'; p++) {
		h ^= (unsigned char)*p;
		h *= 0x100000001b3ull;
	}
	*len = (size_t)(p - sql);
	return h;
}

/*
 * The prepared statement for sql, from the cache or newly prepared.
 * *cached says whether the cache owns it (else the caller closes it).
 */
static enum tg_rc
get_stmt(struct tg_db *db, const char *sql, MYSQL_STMT **out, bool *cached,
         struct tg_err *err)
{
	size_t len;
	uint64_t hash = text_hash(sql, &len);
	size_t h = (size_t)(hash >> 32) & (STMT_SLOTS - 1);
	MYSQL_STMT *st;

	for (size_t i = 0; i < STMT_SLOTS; i++) {
		struct stmt_slot *s = &db->slots[(h + i) & (STMT_SLOTS - 1)];
		if (s->sql == NULL)
			break;
		if (s->hash == hash && s->len == len &&
		    memcmp(s->sql, sql, len) == 0) {
			*out = s->stmt;
			*cached = true;
			return TG_OK;
		}
	}
	st = mysql_stmt_init(db->conn);
	if (st == NULL)
		abort(); /* out of memory */
	if (mysql_stmt_prepare(st, sql, len) != 0) {
		db->last_errno = mysql_stmt_errno(st);
		tg_err_set(err, TG_ERR_DB, NULL, "%s: %s",
		           is_conn_lost(db->last_errno) ? "Database unavailable"
		                                        : "Database error",
		           mysql_stmt_error(st));
		mysql_stmt_close(st);
		return TG_ERR_DB;
	}
	*out = st;
	*cached = false;
	if (db->nslots_used < STMT_MAX_USED) {
		for (size_t i = 0; i < STMT_SLOTS; i++) {
			struct stmt_slot *s =
			        &db->slots[(h + i) & (STMT_SLOTS - 1)];
			if (s->sql == NULL) {
				s->sql = tg_xstrndup(sql, len);
				s->len = len;
				s->hash = hash;
				s->stmt = st;
				db->nslots_used++;
				*cached = true;
				break;
			}
		}
	}
	return TG_OK;
}

void
tg_db_result_free(struct tg_db_result *res)
{
	if (res == NULL)
		return;
	free(res->cells);
	free(res->text);
	res->cells = NULL;
	res->text = NULL;
	res->nrows = res->ncols = 0;
	res->affected = 0;
}

static enum tg_rc
stmt_fail(struct tg_db *db, MYSQL_STMT *st, struct tg_err *err)
{
	db->last_errno = mysql_stmt_errno(st);
	return tg_err_set(err, TG_ERR_DB, NULL, "%s: %s",
	                  is_conn_lost(db->last_errno) ? "Database unavailable"
	                                               : "Database error",
	                  mysql_stmt_error(st));
}

/* Room for n more bytes in the cell text *text (*len used of *cap). */
static void
text_reserve(char **text, size_t *len, size_t *cap, size_t n)
{
	size_t want = *len + n;

	if (want <= *cap)
		return;
	if (*cap == 0)
		*cap = 1024;
	while (*cap < want)
		*cap *= 2;
	*text = tg_xrealloc(*text, *cap);
}

/*
 * Fetch every row of st's result set into res as strings.  The cells'
 * bytes go into one buffer (res->text), each NUL-terminated, rather than
 * one allocation per cell: a report fetches 100,000 cells, and their
 * malloc and free cost more than reading them.
 */
static enum tg_rc
fetch_all(struct tg_db *db, MYSQL_STMT *st, MYSQL_RES *meta,
          struct tg_db_result *res, struct tg_err *err)
{
	size_t ncols = mysql_num_fields(meta);
	MYSQL_FIELD *fields = mysql_fetch_fields(meta);
	MYSQL_BIND *binds = tg_xcalloc(ncols ? ncols : 1, sizeof(*binds));
	char **bufs = tg_xcalloc(ncols ? ncols : 1, sizeof(*bufs));
	unsigned long *lens = tg_xcalloc(ncols ? ncols : 1, sizeof(*lens));
	db_bool *nulls = tg_xcalloc(ncols ? ncols : 1, sizeof(*nulls));
	size_t *caps = tg_xcalloc(ncols ? ncols : 1, sizeof(*caps));
	/* Each cell's offset in text while text may still move; SIZE_MAX
	 * for NULL.  Made pointers once every row is in. */
	size_t *offs = NULL;
	char *text = NULL;
	size_t text_len = 0, text_cap = 0;
	size_t nrows = 0, cap_rows = 0;
	enum tg_rc rc = TG_OK;

	for (size_t c = 0; c < ncols; c++) {
		size_t want = fields[c].length;
		caps[c] = (want > 0 && want < CELL_BUF_MAX ? want
		                                           : CELL_BUF_MAX) +
		          1;
		bufs[c] = tg_xmalloc(caps[c]);
		binds[c].buffer_type = MYSQL_TYPE_STRING;
		binds[c].buffer = bufs[c];
		binds[c].buffer_length = caps[c];
		binds[c].length = &lens[c];
		binds[c].is_null = &nulls[c];
	}
	if (mysql_stmt_bind_result(st, binds) != 0) {
		rc = stmt_fail(db, st, err);
		goto out;
	}
	for (;;) {
		int f = mysql_stmt_fetch(st);
		if (f == MYSQL_NO_DATA)
			break;
		if (f == 1) {
			rc = stmt_fail(db, st, err);
			goto out;
		}
		if (nrows == cap_rows) {
			cap_rows = cap_rows ? cap_rows * 2 : 4;
			offs = tg_xrealloc(offs, cap_rows *
			                                 (ncols ? ncols : 1) *
			                                 sizeof(*offs));
		}
		for (size_t c = 0; c < ncols; c++) {
			size_t *off = &offs[nrows * ncols + c];
			size_t n = (size_t)lens[c];
			if (nulls[c]) {
				*off = SIZE_MAX;
				continue;
			}
			text_reserve(&text, &text_len, &text_cap, n + 1);
			if (n < caps[c]) {
				memcpy(text + text_len, bufs[c], n);
			} else {
				/* Truncated (f == MYSQL_DATA_TRUNCATED):
				 * re-fetch whole, into its place. */
				MYSQL_BIND b;
				unsigned long len = 0;
				memset(&b, 0, sizeof(b));
				b.buffer_type = MYSQL_TYPE_STRING;
				b.buffer = text + text_len;
				b.buffer_length = lens[c] + 1;
				b.length = &len;
				if (mysql_stmt_fetch_column(st, &b, (unsigned)c,
				                            0) != 0) {
					rc = stmt_fail(db, st, err);
					goto out;
				}
				if (len < n)
					n = len;
			}
			text[text_len + n] = '\0';
			*off = text_len;
			text_len += n + 1;
		}
		nrows++;
	}
	res->cells = NULL;
	if (nrows > 0 && ncols > 0) {
		res->cells = tg_xmalloc(nrows * ncols * sizeof(*res->cells));
		for (size_t i = 0; i < nrows * ncols; i++)
			res->cells[i] =
			        offs[i] == SIZE_MAX ? NULL : text + offs[i];
	}
	res->text = text;
	res->nrows = nrows;
	res->ncols = ncols;
	text = NULL;
out:
	free(text);
	free(offs);
	for (size_t c = 0; c < ncols; c++)
		free(bufs[c]);
	free(bufs);
	free(binds);
	free(lens);
	free(nulls);
	free(caps);
	return rc;
}

/*
 * The results after the first of a CALL (a procedure's further result sets
 * and its final status), read and dropped, so that the connection is ready
 * for the next statement.  An error the procedure raised after its first
 * result set is reported here.  A statement with one result has no more:
 * mysql_stmt_next_result() sees that without asking the server.
 */
static enum tg_rc
drain_results(struct tg_db *db, MYSQL_STMT *st, struct tg_err *err)
{
	int more;

	while ((more = mysql_stmt_next_result(st)) == 0) {
		if (mysql_stmt_field_count(st) > 0 &&
		    mysql_stmt_store_result(st) != 0)
			return stmt_fail(db, st, err);
		mysql_stmt_free_result(st);
	}
	if (more > 0)
		return stmt_fail(db, st, err);
	return TG_OK;
}

/*
 * One attempt: prepare (or reuse), bind, execute, fetch.  *executed (may
 * be NULL) tells whether the statement was sent to be executed, so that a
 * lost connection may have run it.
 */
static enum tg_rc
exec_once(struct tg_db *db, const char *sql, const struct tg_db_param *params,
          size_t nparams, struct tg_db_result *res, bool *executed,
          struct tg_err *err)
{
	MYSQL_BIND binds[MAX_PARAMS];
	char money[MAX_PARAMS][TG_MONEY_STRLEN];
	long long ints[MAX_PARAMS];
	MYSQL_STMT *st = NULL;
	MYSQL_RES *meta = NULL;
	bool cached = false, drop = false;
	int64_t sent_us = 0;
	enum tg_rc rc;

	if (nparams > MAX_PARAMS)
		return tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                  "too many SQL parameters");
	rc = ensure_conn(db, err);
	if (rc != TG_OK)
		goto out;
	rc = get_stmt(db, sql, &st, &cached, err);
	if (rc != TG_OK)
		goto out;
	if (mysql_stmt_param_count(st) != nparams) {
		rc = tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                "SQL parameter count mismatch (%lu != %zu)",
		                mysql_stmt_param_count(st), nparams);
		goto out;
	}
	memset(binds, 0, sizeof(binds));
	for (size_t i = 0; i < nparams; i++) {
		const struct tg_db_param *p = &params[i];
		switch (p->type) {
		case TG_DB_NULL: binds[i].buffer_type = MYSQL_TYPE_NULL; break;
		case TG_DB_STR:
			binds[i].buffer_type = MYSQL_TYPE_STRING;
			binds[i].buffer =
			        (void *)(p->str != NULL ? p->str : "");
			binds[i].buffer_length = (unsigned long)p->len;
			break;
		case TG_DB_INT:
			ints[i] = p->i;
			binds[i].buffer_type = MYSQL_TYPE_LONGLONG;
			binds[i].buffer = &ints[i];
			break;
		case TG_DB_MONEY:
			if (tg_money_format(p->i, money[i], sizeof(money[i])) ==
			    0) {
				rc = tg_err_set(
				        err, TG_ERR_INTERNAL, NULL,
				        "money parameter does not format");
				goto out;
			}
			binds[i].buffer_type = MYSQL_TYPE_STRING;
			binds[i].buffer = money[i];
			binds[i].buffer_length =
			        (unsigned long)strlen(money[i]);
			break;
		}
	}
	if (nparams > 0 && mysql_stmt_bind_param(st, binds) != 0) {
		rc = stmt_fail(db, st, err);
		goto out;
	}
	if (executed != NULL)
		*executed = true;
	sent_us = tg_now_us();
	if (mysql_stmt_execute(st) != 0) {
		rc = stmt_fail(db, st, err);
		goto out;
	}
	meta = mysql_stmt_result_metadata(st);
	if (meta != NULL) {
		if (res != NULL) {
			rc = fetch_all(db, st, meta, res, err);
		} else if (mysql_stmt_store_result(st) != 0) {
			rc = stmt_fail(db, st, err);
		}
		if (rc != TG_OK) {
			/* A CALL's further results, unread, would leave the
			 * connection out of sync: drop it (after the
			 * statement is let go) and start afresh next time. */
			drop = db->conn != NULL && mysql_more_results(db->conn);
			goto out;
		}
		if (res != NULL)
			res->affected = (uint64_t)res->nrows;
	} else if (res != NULL) {
		memset(res, 0, sizeof(*res));
		res->affected = (uint64_t)mysql_stmt_affected_rows(st);
	}
	rc = drain_results(db, st, err);
	if (rc != TG_OK && res != NULL)
		tg_db_result_free(res);
	/* The round trip, to its last row (SPEC 15), but the metrics' own. */
	if (!tg_metrics_flushing())
		tg_metrics_observe(TG_METRICS_DB, "", tg_now_us() - sent_us);
out:
	if (meta != NULL)
		mysql_free_result(meta);
	if (st != NULL) {
		mysql_stmt_free_result(st);
		if (!cached)
			mysql_stmt_close(st);
	}
	if (drop)
		disconnect(db);
	return rc;
}

enum tg_rc
tg_db_exec(struct tg_db *db, const char *sql, const struct tg_db_param *params,
           size_t nparams, struct tg_db_result *res, struct tg_err *err)
{
	enum tg_rc rc;

	if (res != NULL)
		memset(res, 0, sizeof(*res));
	rc = exec_once(db, sql, params, nparams, res, NULL, err);
	if (rc == TG_ERR_DB && is_conn_lost(db->last_errno)) {
		bool was_in_txn = db->in_txn;
		/* The statements died with the connection; start over. */
		disconnect(db);
		if (was_in_txn) {
			db->in_txn = true; /* tg_db_txn ends it and retries */
			goto out;
		}
		rc = exec_once(db, sql, params, nparams, res, NULL, err);
		if (rc == TG_ERR_DB && is_conn_lost(db->last_errno))
			disconnect(db);
	}
out:
	return rc;
}

enum tg_rc
tg_db_run(struct tg_db *db, const char *sql, const struct tg_db_param *params,
          size_t nparams, uint64_t *affected, struct tg_err *err)
{
	struct tg_db_result res;
	enum tg_rc rc;

	rc = tg_db_exec(db, sql, params, nparams, &res, err);
	if (rc == TG_ERR_DB && tg_db_duplicate(db))
		return tg_err_set(err, TG_ERR_CONFLICT, NULL, "duplicate key");
	if (rc != TG_OK)
		return rc;
	if (affected != NULL)
		*affected = res.affected;
	tg_db_result_free(&res);
	return TG_OK;
}

/* A plain (unprepared) statement without parameters: BEGIN, COMMIT, ... */
static enum tg_rc
simple_query(struct tg_db *db, const char *sql, struct tg_err *err)
{
	int64_t sent_us;

	if (db->conn == NULL) {
		db->last_errno = CR_SERVER_GONE_ERROR;
		return tg_err_set(err, TG_ERR_DB, NULL,
		                  "Database unavailable: not connected");
	}
	sent_us = tg_now_us();
	if (mysql_real_query(db->conn, sql, strlen(sql)) != 0) {
		db->last_errno = mysql_errno(db->conn);
		tg_err_set(err, TG_ERR_DB, NULL, "%s: %s",
		           is_conn_lost(db->last_errno) ? "Database unavailable"
		                                        : "Database error",
		           mysql_error(db->conn));
		if (is_conn_lost(db->last_errno))
			disconnect(db);
		return TG_ERR_DB;
	}
	if (!tg_metrics_flushing())
		tg_metrics_observe(TG_METRICS_DB, "", tg_now_us() - sent_us);
	return TG_OK;
}

static bool
txn_retryable(unsigned e)
{
	return e == ER_LOCK_DEADLOCK || e == ER_LOCK_WAIT_TIMEOUT ||
	       is_conn_lost(e);
}

/* What made tg_db_txn() try again, counted per transaction for its log
 * line. */
struct txn_retries {
	int deadlock, lock_wait, conn_lost;
};

/*
 * Before another attempt after error e: whether one is left, and if so the
 * pause before it.  A deadlock (1213, also how Galera reports a conflict
 * with a transaction another node committed first) is retried up to
 * TXN_DEADLOCK_RETRIES times, after a random pause of up to 2 ms per retry
 * so far (50 ms at most): the winner has committed already, so waiting
 * long gains nothing, and pauses drawn at random keep the losers from
 * colliding again in step.  On Galera, one customer's row written from
 * three nodes at once costs a few retries per transaction and now and
 * then more than ten (tests/e2e/galera.py prints them).  A lock wait
 * timeout or a lost connection is retried TXN_RETRIES times after 10, 20,
 * 40, 80 ms plus jitter: a server coming back needs time, not luck.
 */
static bool
retry_pause(struct txn_retries *r, unsigned e)
{
	struct timespec ts;
	long us;

	if (e == ER_LOCK_DEADLOCK) {
		long cap;
		if (r->deadlock >= TXN_DEADLOCK_RETRIES)
			return false;
		r->deadlock++;
		cap = 2000L * r->deadlock < 50000L ? 2000L * r->deadlock
		                                   : 50000L;
		us = (long)(tg_now_us() % cap);
	} else {
		int others = r->lock_wait + r->conn_lost;
		if (others >= TXN_RETRIES)
			return false;
		if (e == ER_LOCK_WAIT_TIMEOUT)
			r->lock_wait++;
		else
			r->conn_lost++;
		us = ((10L << others) + (long)(tg_now_us() % 10)) * 1000L;
	}
	ts.tv_sec = us / 1000000L;
	ts.tv_nsec = (us % 1000000L) * 1000L;
	nanosleep(&ts, NULL);
	return true;
}

/*
 * One line per transaction that was retried, with why, so that operators
 * (and the Galera tests, which add the counts up) see what conflicts and
 * lost connections cost.  A transaction that needed no retry logs nothing.
 * gave_up: the last attempt failed as the others had; otherwise it
 * committed, failed otherwise (err), or fn refused and it was rolled back
 * (rc says why).  The caller says what it does about a failure.
 */
static void
log_retries(const struct txn_retries *r, enum tg_rc rc, bool gave_up,
            const struct tg_err *err)
{
	int n = r->deadlock + r->lock_wait + r->conn_lost;

	if (n == 0)
		return;
	if (gave_up)
		tg_log_warn("transaction given up after %d retries (deadlock "
		            "%d, lock wait timeout %d, connection lost %d): %s",
		            n, r->deadlock, r->lock_wait, r->conn_lost,
		            err->message);
	else if (rc == TG_OK)
		tg_log_info(
		        "transaction retried %d times (deadlock %d, lock "
		        "wait timeout %d, connection lost %d), then committed",
		        n, r->deadlock, r->lock_wait, r->conn_lost);
	else if (rc == TG_ERR_DB)
		tg_log_warn(
		        "transaction retried %d times (deadlock %d, lock "
		        "wait timeout %d, connection lost %d), then failed: "
		        "%s",
		        n, r->deadlock, r->lock_wait, r->conn_lost,
		        err->message);
	else
		tg_log_info("transaction retried %d times (deadlock %d, lock "
		            "wait timeout %d, connection lost %d), then rolled "
		            "back (%s)",
		            n, r->deadlock, r->lock_wait, r->conn_lost,
		            tg_rc_str(rc));
}

enum tg_rc
tg_db_txn(struct tg_db *db, tg_db_txn_fn fn, void *arg, struct tg_err *err)
{
	struct txn_retries retries = {0, 0, 0};
	enum tg_rc rc = TG_ERR_DB;

	db->txn_uncertain = false;
	for (;;) {
		db->in_txn = false;
		rc = ensure_conn(db, err);
		if (rc != TG_OK) {
			if (is_conn_lost(db->last_errno) &&
			    retry_pause(&retries, db->last_errno))
				continue;
			break;
		}
		rc = simple_query(db, "START TRANSACTION", err);
		if (rc != TG_OK) {
			if (txn_retryable(db->last_errno) &&
			    retry_pause(&retries, db->last_errno))
				continue;
			break;
		}
		db->in_txn = true;
		rc = fn(db, arg, err);
		if (rc == TG_OK && db->conn != NULL) {
			if (mysql_commit(db->conn) != 0) {
				db->last_errno = mysql_errno(db->conn);
				/* Sent, but did it commit?  A later attempt
				 * finds out (fn sees its own row) or not. */
				if (is_conn_lost(db->last_errno))
					db->txn_uncertain = true;
				rc = tg_err_set(err, TG_ERR_DB, NULL, "%s: %s",
				                is_conn_lost(db->last_errno)
				                        ? "Database unavailable"
				                        : "Database error",
				                mysql_error(db->conn));
				if (is_conn_lost(db->last_errno))
					disconnect(db);
			}
		} else if (rc == TG_OK) {
			db->last_errno = CR_SERVER_GONE_ERROR;
			rc = tg_err_set(
			        err, TG_ERR_DB, NULL,
			        "Database unavailable: connection lost");
		}
		if (rc != TG_OK && db->conn != NULL) {
			unsigned keep = db->last_errno;
			if (mysql_rollback(db->conn) != 0 &&
			    is_conn_lost(mysql_errno(db->conn)))
				disconnect(db);
			db->last_errno = keep;
		}
		db->in_txn = false;
		if (rc == TG_OK) {
			db->txn_uncertain = false;
			break;
		}
		if (rc != TG_ERR_DB || !txn_retryable(db->last_errno) ||
		    !retry_pause(&retries, db->last_errno))
			break;
	}
	db->in_txn = false;
	log_retries(&retries, rc,
	            rc == TG_ERR_DB && txn_retryable(db->last_errno), err);
	return rc;
}

/*
 * Errors that say a CALL did not run at all: no such procedure (1305: a
 * schema older than the programs), no EXECUTE (1370), a wrong number of
 * arguments (1318).
 */
static bool
call_never_ran(unsigned e)
{
	return e == 1305 || e == 1370 || e == 1318;
}

enum tg_rc
tg_db_call(struct tg_db *db, const char *sql, const struct tg_db_param *params,
           size_t nparams, struct tg_db_result *res, struct tg_err *err)
{
	struct txn_retries retries = {0, 0, 0};
	struct tg_db_result ignored;
	enum tg_rc rc = TG_ERR_DB;

	db->txn_uncertain = false;
	for (;;) {
		bool executed = false;

		db->in_txn = false;
		memset(&ignored, 0, sizeof(ignored));
		if (res != NULL)
			memset(res, 0, sizeof(*res));
		rc = exec_once(db, sql, params, nparams,
		               res != NULL ? res : &ignored, &executed, err);
		if (rc == TG_OK) {
			if (res == NULL)
				tg_db_result_free(&ignored);
			db->txn_uncertain = false;
			break;
		}
		if (rc == TG_ERR_DB && is_conn_lost(db->last_errno)) {
			/* Sent and lost: the procedure may have committed.
			 * It is written so that running it again finds out. */
			if (executed)
				db->txn_uncertain = true;
			disconnect(db);
		} else if (rc == TG_ERR_DB && db->conn != NULL &&
		           txn_retryable(db->last_errno)) {
			/* The procedures roll back what they began before
			 * they fail; this is for one that did not. */
			unsigned keep = db->last_errno;
			if (mysql_rollback(db->conn) != 0 &&
			    is_conn_lost(mysql_errno(db->conn)))
				disconnect(db);
			db->last_errno = keep;
		} else if (rc == TG_ERR_DB && executed &&
		           !call_never_ran(db->last_errno)) {
			/* Any other error of a CALL that ran (a killed
			 * query, a statement time limit) may come after the
			 * procedure's COMMIT, in what it answers. */
			db->txn_uncertain = true;
		}
		if (rc != TG_ERR_DB || !txn_retryable(db->last_errno) ||
		    !retry_pause(&retries, db->last_errno))
			break;
	}
	log_retries(&retries, rc,
	            rc == TG_ERR_DB && txn_retryable(db->last_errno), err);
	return rc;
}

/*
 * The Value of the one row a SHOW ... LIKE statement gives, into out ("" for
 * no row).  A plain query: MySQL cannot prepare SHOW STATUS.
 */
static enum tg_rc
show_value(struct tg_db *db, const char *sql, char *out, size_t outlen,
           struct tg_err *err)
{
	MYSQL_RES *r;
	MYSQL_ROW row;

	out[0] = '\0';
	if (db->conn == NULL ||
	    mysql_real_query(db->conn, sql, strlen(sql)) != 0 ||
	    (r = mysql_store_result(db->conn)) == NULL) {
		db->last_errno = db->conn != NULL ? mysql_errno(db->conn)
		                                  : CR_SERVER_GONE_ERROR;
		tg_err_set(err, TG_ERR_DB, NULL, "%s: %s",
		           is_conn_lost(db->last_errno) ? "Database unavailable"
		                                        : "Database error",
		           db->conn != NULL ? mysql_error(db->conn)
		                            : "not connected");
		if (is_conn_lost(db->last_errno))
			disconnect(db);
		return TG_ERR_DB;
	}
	row = mysql_fetch_row(r);
	if (row != NULL && mysql_num_fields(r) >= 2 && row[1] != NULL)
		tg_strlcpy(out, outlen, row[1]);
	mysql_free_result(r);
	return TG_OK;
}

enum tg_rc
tg_db_ping(struct tg_db *db, struct tg_err *err)
{
	struct tg_db_result res;
	char value[16];
	enum tg_rc rc = tg_db_exec(db, "SELECT 1", NULL, 0, &res, err);

	if (rc != TG_OK)
		return rc;
	tg_db_result_free(&res);
	/*
	 * A Galera node cut off from the primary component still answers
	 * SELECT 1 but refuses every statement on a table (1047): on a node
	 * with wsrep_on, ready only when wsrep_ready says ON.  (MariaDB
	 * without Galera has both too, OFF; MySQL has neither.)
	 */
	if (show_value(db, "SHOW GLOBAL VARIABLES LIKE 'wsrep_on'", value,
	               sizeof(value), err) != TG_OK)
		return TG_ERR_DB;
	if (strcmp(value, "ON") != 0)
		return TG_OK;
	if (show_value(db, "SHOW GLOBAL STATUS LIKE 'wsrep_ready'", value,
	               sizeof(value), err) != TG_OK)
		return TG_ERR_DB;
	if (strcmp(value, "ON") != 0) {
		/* ER_UNKNOWN_COM_ERROR, as Galera answers there. */
		db->last_errno = 1047;
		rc = tg_err_set(err, TG_ERR_DB, NULL,
		                "Database unavailable: the Galera node is not "
		                "ready (wsrep_ready OFF: not in the primary "
		                "component)");
	}
	return rc;
}

/* ---- scripts (migrations) ---- */

enum tg_rc
tg_db_exec_script(struct tg_db *db, const char *script, struct tg_err *err)
{
	size_t cap = 256, len = 0;
	char *stmt = tg_xmalloc(cap);
	char delim[16] = ";";
	size_t dlen = 1;
	const char *line = script;
	unsigned lineno = 0, start_line = 0;
	enum tg_rc rc = TG_OK;

	rc = ensure_conn(db, err);
	if (rc != TG_OK)
		goto out;
	while (*line != '\0') {
		const char *nl = strchr(line, '\n');
		size_t n = nl != NULL ? (size_t)(nl - line) : strlen(line);
		const char *p = line;
		size_t t = n;

		lineno++;
		while (t > 0 && (line[t - 1] == ' ' || line[t - 1] == '\t' ||
		                 line[t - 1] == '\r'))
			t--;
		while (p < line + t && (*p == ' ' || *p == '\t'))
			p++;
		if (len == 0 && (size_t)(line + t - p) > 10 &&
		    strncasecmp(p, "DELIMITER ", 10) == 0) {
			/* As the mysql client: statements now end with the
			 * given token (a procedure's body holds ";"). */
			const char *d = p + 10;
			while (*d == ' ' || *d == '\t')
				d++;
			dlen = (size_t)(line + t - d);
			if (dlen == 0 || dlen >= sizeof(delim)) {
				rc = tg_err_set(err, TG_ERR_CONFIG, NULL,
				                "line %u: bad DELIMITER",
				                lineno);
				goto out;
			}
			memcpy(delim, d, dlen);
			delim[dlen] = '\0';
		} else if (!(p + 1 < line + t && p[0] == '-' && p[1] == '-') &&
		           p < line + t) {
			if (len == 0)
				start_line = lineno;
			while (len + t + 2 > cap) {
				cap *= 2;
				stmt = tg_xrealloc(stmt, cap);
			}
			memcpy(stmt + len, line, t);
			len += t;
			stmt[len++] = '\n';
			if (t >= dlen &&
			    memcmp(line + t - dlen, delim, dlen) == 0) {
				len -= dlen + 1; /* drop the delimiter, "\n" */
				if (mysql_real_query(db->conn, stmt, len) !=
				    0) {
					db->last_errno = mysql_errno(db->conn);
					rc = tg_err_set(err, TG_ERR_DB, NULL,
					                "line %u: %s",
					                start_line,
					                mysql_error(db->conn));
					goto out;
				}
				/* Drain a result set, should a statement make
				 * one. */
				MYSQL_RES *r = mysql_store_result(db->conn);
				if (r != NULL)
					mysql_free_result(r);
				len = 0;
			}
		}
		line = nl != NULL ? nl + 1 : line + n;
	}
	if (len > 0)
		rc = tg_err_set(err, TG_ERR_CONFIG, NULL,
		                "line %u: statement without a final '%s'",
		                start_line, delim);
out:
	free(stmt);
	return rc;
}

bool
tg_db_unavailable(const struct tg_db *db)
{
	switch (db->last_errno) {
	/* The client library's: cannot connect, server gone or not
	 * answering in time, lost at reading. */
	case 2001:
	case 2002:
	case 2003:
	case 2004:
	case 2005:
	case 2006:
	case 2012:
	case 2013:
	case 2026:
	case 2055:
	/* The server's: shutting down, too many connections, a Galera node
	 * out of the primary component, read-only during a failover, still
	 * locked or deadlocked after every retry. */
	case 1040:
	case 1053:
	case 1203:
	case 1205:
	case 1213:
	case 1047:
	case 1290:
	case 1836:
	case 1927:
	case 4031: return true;
	default: return db->conn == NULL;
	}
}

bool
tg_db_txn_uncertain(const struct tg_db *db)
{
	return db->txn_uncertain;
}
