/*
 * db: the one place that speaks to MySQL/MariaDB.
 *
 * A process keeps one connection and its prepared statements (cached by the
 * SQL text).  Every query is a prepared statement with bound parameters;
 * results come back as strings (DECIMAL columns are parsed exactly by the
 * caller).  A lost connection is re-established transparently before the
 * next statement.
 */
#ifndef TG_DB_H
#define TG_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "money.h"

struct tg_db; /* opaque */

enum tg_db_type { TG_DB_NULL, TG_DB_STR, TG_DB_INT, TG_DB_MONEY };

/* A bound parameter.  Build with the helpers below. */
struct tg_db_param {
	enum tg_db_type type;
	const char *str; /* TG_DB_STR: not NUL-terminated necessarily */
	size_t len;
	int64_t i; /* TG_DB_INT, TG_DB_MONEY (bound as an exact decimal string)
	            */
};

static inline struct tg_db_param tg_db_str(const char *s);
static inline struct tg_db_param tg_db_strn(const char *s, size_t n);
static inline struct tg_db_param tg_db_int(int64_t v);
static inline struct tg_db_param tg_db_money(tg_money v);
static inline struct tg_db_param tg_db_null(void);

/* A fetched result: rows x cols strings, NULL for SQL NULL. */
struct tg_db_result {
	size_t nrows, ncols;
	char **cells;      /* nrows * ncols, row-major, pointing into text */
	char *text;        /* every cell's bytes, each NUL-terminated */
	uint64_t affected; /* rows changed, for INSERT/UPDATE/DELETE */
};

static inline const char *
tg_db_cell(const struct tg_db_result *r, size_t row, size_t col)
{
	return r->cells[row * r->ncols + col];
}

/*
 * Connect to url: mysql://user:pass@host[:port]/db[?socket=/path].  Returns
 * TG_ERR_CONFIG on a malformed url, TG_ERR_DB when the server cannot be
 * reached (err says why, never the password).
 */
enum tg_rc tg_db_open(const char *url, struct tg_db **out, struct tg_err *err);
void tg_db_close(struct tg_db *db);

/*
 * Run sql with params; its text keys the statement cache (SQL built at run
 * time works, but each distinct text takes a slot while there is one).  If
 * res is not NULL the result set (if any) is fetched into it and must be
 * released with tg_db_result_free().  TG_ERR_DB on failure, with
 * tg_db_errno() telling the server's error number.  Reconnects once when
 * the connection was lost outside a transaction.
 */
enum tg_rc tg_db_exec(struct tg_db *db, const char *sql,
                      const struct tg_db_param *params, size_t nparams,
                      struct tg_db_result *res, struct tg_err *err);
void tg_db_result_free(struct tg_db_result *res);

/*
 * The "execute, check, free" sequence of a statement whose rows are not
 * read (INSERT, UPDATE, DELETE): tg_db_exec() with the result freed here.
 * *affected (may be NULL) is written on success only: the rows an UPDATE
 * matched, changed or not (the connection asks for CLIENT_FOUND_ROWS), so
 * that a conditional UPDATE that changes nothing, such as a hold of 0,
 * still tells that its condition held (lib/ledger.c relies on it;
 * tests/unit/test-db.c checks it).  A
 * duplicate key is TG_ERR_CONFLICT (message "duplicate key": callers that
 * answer it to a client set their own); any other failure as tg_db_exec(),
 * so tg_db_missing_parent() and tg_db_errno() still tell why.
 */
enum tg_rc tg_db_run(struct tg_db *db, const char *sql,
                     const struct tg_db_param *params, size_t nparams,
                     uint64_t *affected, struct tg_err *err);

/* The server error number of the last failure (1062 duplicate key, ...). */
unsigned tg_db_errno(const struct tg_db *db);

/*
 * Whether the last failure was a duplicate key: for an INSERT keyed by a
 * request id, the retry of a transaction whose first commit went through.
 */
bool tg_db_duplicate(const struct tg_db *db);
/* Whether the last failure was a foreign key naming a missing row. */
bool tg_db_missing_parent(const struct tg_db *db);
/*
 * Whether the last failure was the server being out of reach or unable to
 * take writes for now (down, gone, not answering in time, read-only, not
 * in a Galera primary component, locked after every retry) rather than a
 * statement it refused: what is worth trying again later.
 */
bool tg_db_unavailable(const struct tg_db *db);
/*
 * After a tg_db_txn() that failed: whether one of its COMMITs was sent and
 * its answer lost, so that the transaction may have gone through.
 */
bool tg_db_txn_uncertain(const struct tg_db *db);

/*
 * Run fn(db, arg, err) inside a transaction: BEGIN, fn, COMMIT.  When fn or
 * the commit fails with a deadlock (1213; on Galera also a conflict with a
 * commit on another node), a lock wait timeout (1205) or a lost
 * connection, everything is rolled back and retried: deadlocks up to 50
 * times after short random pauses, the others up to 4 times after 10 to
 * 80 ms.  A transaction that needed retries logs one line saying how many
 * and why.  Any other failure is rolled back and returned.
 */
typedef enum tg_rc (*tg_db_txn_fn)(struct tg_db *db, void *arg,
                                   struct tg_err *err);
enum tg_rc tg_db_txn(struct tg_db *db, tg_db_txn_fn fn, void *arg,
                     struct tg_err *err);

/*
 * Run a CALL of a stored procedure that makes its own transaction (START
 * TRANSACTION ... COMMIT inside it), so that the whole transaction is one
 * round trip.  The procedure's first result set (if any) goes into res
 * (may be NULL), the rest is read and dropped.  Retried as tg_db_txn()
 * retries (deadlock, lock wait timeout, lost connection): the procedure
 * must roll back what it began before it fails (an EXIT HANDLER), and must
 * find out by itself that an earlier attempt whose answer was lost went
 * through.  tg_db_txn_uncertain() tells that it may have committed: the
 * answer was lost, or another error came once it ran (after its COMMIT,
 * perhaps), other than one saying it did not run (no such procedure, no
 * EXECUTE).
 */
enum tg_rc tg_db_call(struct tg_db *db, const char *sql,
                      const struct tg_db_param *params, size_t nparams,
                      struct tg_db_result *res, struct tg_err *err);

/*
 * Whether the server takes statements, for /health/readiness: SELECT 1,
 * and on a Galera node that it is ready (wsrep_ready ON; a node out of the
 * primary component answers SELECT 1 but nothing on a table).  TG_ERR_DB
 * otherwise, err saying why.
 */
enum tg_rc tg_db_ping(struct tg_db *db, struct tg_err *err);

/*
 * For tools/tollgate-migrate: like tg_db_open(), but first creates the url's
 * database (utf8mb4) when it is missing; *created (may be NULL) says whether
 * it did.  The name must be 1..64 of [A-Za-z0-9_$-] (TG_ERR_CONFIG).
 */
enum tg_rc tg_db_open_create(const char *url, bool *created, struct tg_db **out,
                             struct tg_err *err);

/*
 * Run a trusted SQL script (a migration file): statements end with ";" at
 * the end of a line, lines starting with "--" are comments.  A line
 * "DELIMITER <token>" (as in the mysql client) makes statements end with
 * the token instead, for procedure bodies holding ";".  No parameters:
 * never for request data.  Stops at the first failure, err saying
 * "line <n>: <server message>".
 */
enum tg_rc tg_db_exec_script(struct tg_db *db, const char *script,
                             struct tg_err *err);

static inline struct tg_db_param
tg_db_strn(const char *s, size_t n)
{
	struct tg_db_param p = {TG_DB_STR, s, n, 0};
	return p;
}

static inline struct tg_db_param
tg_db_str(const char *s)
{
	size_t n = 0;
	if (s == NULL) {
		struct tg_db_param p = {TG_DB_NULL, NULL, 0, 0};
		return p;
	}
	while (s[n] != '\0')
		n++;
	return tg_db_strn(s, n);
}

static inline struct tg_db_param
tg_db_int(int64_t v)
{
	struct tg_db_param p = {TG_DB_INT, NULL, 0, v};
	return p;
}

static inline struct tg_db_param
tg_db_money(tg_money v)
{
	struct tg_db_param p = {TG_DB_MONEY, NULL, 0, v};
	return p;
}

static inline struct tg_db_param
tg_db_null(void)
{
	struct tg_db_param p = {TG_DB_NULL, NULL, 0, 0};
	return p;
}

#endif
