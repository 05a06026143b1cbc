/*
 * test-db: lib/db.c against a real MariaDB/MySQL, whose URL is in
 * TG_TEST_DATABASE_URL (tests/e2e/db_unit.py starts a private server and
 * runs this program with it; without the variable it says SKIP).
 *
 * The statement cache is keyed by the SQL text: two texts built one after
 * the other in the same buffer each run their own statement, and one text
 * from two different buffers is prepared once (the server's
 * Com_stmt_prepare counter says how many prepares a session made).
 *
 * Stored procedures: a migration script creates them between DELIMITER
 * lines, and tg_db_call() runs them: the first result set comes back, the
 * rest (and the final status) is drained so that the next statement runs,
 * an error raised in the procedure is reported, and a deadlock it reports
 * (as Galera does at COMMIT) is retried.
 */
#include <stdint.h>
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

static const char procs_script[] =
        "-- procedures for test-db\n"
        "CREATE TABLE IF NOT EXISTS t_calls (id INT PRIMARY KEY, n INT)"
        " ENGINE=InnoDB;\n"
        "INSERT INTO t_calls VALUES (1, 0);\n"
        "DROP PROCEDURE IF EXISTS t_two;\n"
        "DELIMITER //\n"
        "CREATE PROCEDURE t_two(IN a INT)\n"
        "BEGIN\n"
        "\tSELECT a + 1, 'first';\n"
        "\tSELECT 'second';\n"
        "END //\n"
        "DELIMITER ;\n"
        "DROP PROCEDURE IF EXISTS t_none;\n"
        "delimiter $$\n"
        "CREATE PROCEDURE t_none()\n"
        "BEGIN\n"
        "\tUPDATE t_calls SET n = n WHERE id = 1;\n"
        "END $$\n"
        "DELIMITER ;\n"
        "DROP PROCEDURE IF EXISTS t_fail;\n"
        "DELIMITER //\n"
        "CREATE PROCEDURE t_fail()\n"
        "BEGIN\n"
        "\tSIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused';\n"
        "END //\n"
        "DELIMITER ;\n"
        "DROP PROCEDURE IF EXISTS t_flaky;\n"
        "DELIMITER //\n"
        "-- a deadlock on every odd call, as a Galera conflict at COMMIT\n"
        "CREATE PROCEDURE t_flaky()\n"
        "BEGIN\n"
        "\tDECLARE v INT;\n"
        "\tUPDATE t_calls SET n = n + 1 WHERE id = 1;\n"
        "\tSELECT n INTO v FROM t_calls WHERE id = 1;\n"
        "\tIF v % 2 = 1 THEN\n"
        "\t\tSIGNAL SQLSTATE '40001' SET MYSQL_ERRNO = 1213,\n"
        "\t\t\tMESSAGE_TEXT = 'Deadlock found';\n"
        "\tEND IF;\n"
        "\tSELECT v;\n"
        "END //\n"
        "DELIMITER ;\n"
        "DROP PROCEDURE IF EXISTS t_late;\n"
        "DELIMITER //\n"
        "-- an error after its own COMMIT\n"
        "CREATE PROCEDURE t_late()\n"
        "BEGIN\n"
        "\tSTART TRANSACTION;\n"
        "\tUPDATE t_calls SET n = 100 WHERE id = 1;\n"
        "\tCOMMIT;\n"
        "\tSIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'late';\n"
        "END //\n"
        "DELIMITER ;\n";

static void
test_procedures(void)
{
	struct tg_db_result res;
	struct tg_db_param p = tg_db_int(41);
	struct tg_err err;
	char got[64];
	enum tg_rc rc;

	tg_err_clear(&err);
	rc = tg_db_exec_script(db, procs_script, &err);
	is_int(TG_OK, rc, "a script with DELIMITER blocks runs (%s)",
	       err.message);
	for (int i = 0; i < 3; i++) {
		tg_err_clear(&err);
		rc = tg_db_call(db, "CALL t_two(?)", &p, 1, &res, &err);
		is_int(TG_OK, rc, "CALL t_two (%d): %s", i + 1, err.message);
		if (rc != TG_OK)
			continue;
		ok(res.nrows == 1 && res.ncols == 2 &&
		           strcmp(tg_db_cell(&res, 0, 0), "42") == 0 &&
		           strcmp(tg_db_cell(&res, 0, 1), "first") == 0,
		   "the first result set comes back (%d)", i + 1);
		tg_db_result_free(&res);
		is_string("next",
		          scalar("SELECT 'next'", NULL, 0, got, sizeof(got)),
		          "the rest was drained: the next statement runs (%d)",
		          i + 1);
	}
	tg_err_clear(&err);
	is_int(TG_OK, tg_db_call(db, "CALL t_none()", NULL, 0, &res, &err),
	       "a procedure without a result set: %s", err.message);
	is_int(0, (long)res.nrows, "no rows");
	tg_db_result_free(&res);
	is_int(TG_OK, tg_db_call(db, "CALL t_none()", NULL, 0, NULL, &err),
	       "and without asking for one");
	tg_err_clear(&err);
	is_int(TG_ERR_DB, tg_db_call(db, "CALL t_fail()", NULL, 0, &res, &err),
	       "an error raised in a procedure fails the call");
	ok(strstr(err.message, "refused") != NULL, "with its message (%s)",
	   err.message);
	is_int(1644, tg_db_errno(db), "and its number");
	is_string("after", scalar("SELECT 'after'", NULL, 0, got, sizeof(got)),
	          "the connection is usable after it");
	ok(tg_db_txn_uncertain(db),
	   "an error once the procedure ran leaves it uncertain");

	tg_err_clear(&err);
	rc = tg_db_call(db, "CALL t_flaky()", NULL, 0, &res, &err);
	is_int(TG_OK, rc, "a deadlock reported by a procedure is retried (%s)",
	       err.message);
	if (rc == TG_OK) {
		is_string("2", res.nrows == 1 ? tg_db_cell(&res, 0, 0) : "",
		          "the second attempt's answer");
		tg_db_result_free(&res);
	}
	ok(!tg_db_txn_uncertain(db), "a retried call that succeeded is "
	                             "certain");
	tg_err_clear(&err);
	is_int(TG_ERR_DB, tg_db_call(db, "CALL t_late()", NULL, 0, &res, &err),
	       "an error after the procedure's COMMIT fails the call");
	ok(tg_db_txn_uncertain(db), "uncertain: it may have committed");
	is_string("100",
	          scalar("SELECT n FROM t_calls WHERE id = 1", NULL, 0, got,
	                 sizeof(got)),
	          "as it did");
	tg_err_clear(&err);
	is_int(TG_ERR_DB,
	       tg_db_call(db, "CALL t_no_such_procedure()", NULL, 0, &res,
	                  &err),
	       "a procedure that does not exist fails the call");
	ok(!tg_db_txn_uncertain(db), "certain: it never ran (%u)",
	   tg_db_errno(db));
	tg_err_clear(&err);
	is_int(TG_ERR_CONFIG,
	       tg_db_exec_script(db, "DELIMITER //\nSELECT 1;\n", &err),
	       "a statement without the final delimiter is an error");
	ok(strstr(err.message, "'//'") != NULL, "that names it (%s)",
	   err.message);
}

/*
 * tg_db_run()'s *affected counts the rows an UPDATE matched, changed or
 * not: lib/ledger.c's conditional holds read a hold of 0 that fits as held
 * by it (db.h).
 */
static void
test_affected_matched(void)
{
	struct tg_db_param p[1];
	struct tg_err err;
	uint64_t affected = 99;

	tg_err_clear(&err);
	tg_db_run(db,
	          "CREATE TABLE IF NOT EXISTS t_found (id INT PRIMARY KEY,"
	          " n INT)",
	          NULL, 0, NULL, &err);
	tg_db_run(db, "REPLACE INTO t_found VALUES (1, 5)", NULL, 0, NULL,
	          &err);
	p[0] = tg_db_int(0);
	is_int(TG_OK,
	       tg_db_run(db, "UPDATE t_found SET n = n + ? WHERE id = 1", p, 1,
	                 &affected, &err),
	       "an UPDATE that changes nothing (%s)", err.message);
	is_int(1, (long)affected, "counts the row it matched");
	affected = 99;
	is_int(TG_OK,
	       tg_db_run(db, "UPDATE t_found SET n = n + ? WHERE id = 2", p, 1,
	                 &affected, &err),
	       "an UPDATE that matches nothing");
	is_int(0, (long)affected, "counts none");
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
	test_procedures();
	test_affected_matched();
	tg_db_close(db);
	return done_testing();
}
