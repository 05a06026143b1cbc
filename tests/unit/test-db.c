/*
 * test-db: lib/db.c against a real MariaDB/MySQL, whose URL is in
 * TG_TEST_DATABASE_URL (tests/e2e/db_unit.py starts a private server and
 * runs this program with it; without the variable it says SKIP).
 *
 * The statement cache is keyed by the SQL text: two texts built one after
 * the other in the same buffer each run their own statement, and one text
 * from two different buffers is prepared once (the server's
 * Com_stmt_prepare counter says how many prepares a session made).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"
#include "db.h"

static struct tg_db *db;

/* The single cell of sql's one-row result, or "(error)". */
static const char *
scalar(const char *sql, const struct tg_db_param *params, size_t nparams,
       char *out, size_t outlen)
{
	struct tg_db_result res;
	struct tg_err err;

	tg_err_clear(&err);
	if (tg_db_exec(db, sql, params, nparams, &res, &err) != TG_OK) {
		diag("%s: %s", sql, err.message);
		snprintf(out, outlen, "(error)");
		return out;
	}
	snprintf(out, outlen, "%s",
	         res.nrows == 1 && res.ncols == 1 && tg_db_cell(&res, 0, 0)
	                 ? tg_db_cell(&res, 0, 0)
	                 : "(no single cell)");
	tg_db_result_free(&res);
	return out;
}

static long
prepares(void)
{
	char buf[64];

	scalar("SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS "
	       "WHERE VARIABLE_NAME = 'COM_STMT_PREPARE'",
	       NULL, 0, buf, sizeof(buf));
	return strtol(buf, NULL, 10);
}

static void
test_same_buffer(void)
{
	char sql[128], got[64];
	struct tg_db_param p = tg_db_str("param");

	snprintf(sql, sizeof(sql), "SELECT 'first'");
	is_string("first", scalar(sql, NULL, 0, got, sizeof(got)),
	          "a text built in a buffer runs");
	snprintf(sql, sizeof(sql), "SELECT 'second'");
	is_string("second", scalar(sql, NULL, 0, got, sizeof(got)),
	          "another text in the same buffer runs its own statement");
	snprintf(sql, sizeof(sql), "SELECT CONCAT(?, '!')");
	is_string("param!", scalar(sql, &p, 1, got, sizeof(got)),
	          "and a third, with a parameter");
	snprintf(sql, sizeof(sql), "SELECT 'first'");
	is_string("first", scalar(sql, NULL, 0, got, sizeof(got)),
	          "the first text again");
}

static void
test_same_text(void)
{
	char a[64], b[64], got[64];
	long before, after;

	snprintf(a, sizeof(a), "SELECT 'shared %d'", 7);
	snprintf(b, sizeof(b), "SELECT 'shared %d'", 7);
	before = prepares();
	for (int i = 0; i < 3; i++) {
		is_string("shared 7", scalar(a, NULL, 0, got, sizeof(got)),
		          "one text from buffer a (%d)", i + 1);
		is_string("shared 7", scalar(b, NULL, 0, got, sizeof(got)),
		          "the same text from buffer b (%d)", i + 1);
		is_string(
		        "shared 7",
		        scalar("SELECT 'shared 7'", NULL, 0, got, sizeof(got)),
		        "and from a literal (%d)", i + 1);
	}
	after = prepares();
	ok(before > 0, "Com_stmt_prepare readable (%ld)", before);
	is_int(1, after - before,
	       "one text from three places, nine runs: prepared once");
}

int
main(void)
{
	const char *url = getenv("TG_TEST_DATABASE_URL");
	struct tg_err err;

	if (url == NULL || url[0] == '\0') {
		printf("1..0 # SKIP TG_TEST_DATABASE_URL is not set (run by "
		       "tests/e2e/db_unit.py)\n");
		return 0;
	}
	tg_err_clear(&err);
	if (tg_db_open(url, &db, &err) != TG_OK) {
		ok(false, "connect: %s", err.message);
		return done_testing();
	}
	test_same_buffer();
	test_same_text();
	tg_db_close(db);
	return done_testing();
}
