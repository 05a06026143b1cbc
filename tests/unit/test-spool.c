/*
 * test-spool: the settlement spool's files (lib/spool.c), without a
 * database: what a spooled settlement holds, that it is durable under its
 * final name only, the counts readiness shows, the cheap "maybe pending"
 * check, and that a file that cannot be settled is set aside, not lost.
 * Replaying into a real database is tests/e2e/faults.py and holds.py.
 */
#define _DEFAULT_SOURCE
#define _POSIX_C_SOURCE 200809L

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../tap.h"
#include "spool.h"
#include "util.h"

static char dir[256];

static struct json_object *
read_json(const char *name)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return json_object_from_file(path);
}

static const char *
field(struct json_object *o, const char *a, const char *b)
{
	struct json_object *x, *y;

	if (!json_object_object_get_ex(o, a, &x) ||
	    !json_object_object_get_ex(x, b, &y))
		return NULL;
	return json_object_get_string(y);
}

static bool
exists(const char *name)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return access(path, F_OK) == 0;
}

int
main(void)
{
	const char *rid = "0f8fad5b-d9cb-469f-a165-70867728950e";
	const char *token = "2c5549fa148401b85e6ae73612bd7322a4b3d839019f0d0e"
	                    "724b78adee47a2bc";
	struct tg_ledger_account acct = {"cust \"1\"",  "tier", "30d", token,
	                                 "app \"one\"", "1d",   NULL};
	struct tg_ledger_entry e;
	struct tg_reservation r;
	struct tg_err err;
	struct json_object *o;
	long pending, failed;
	char name[128], path[512];
	int replayed = -1;
	FILE *f;

	snprintf(dir, sizeof(dir), "/tmp/tg-test-spool-%ld/a/b",
	         (long)getpid());

	memset(&e, 0, sizeof(e));
	e.request_id = rid;
	e.end_user = acct.user_id;
	e.model = "gpt-4o";
	e.model_id = "openai/gpt-4o";
	e.api_key_hash = "ab12";
	e.call_type = "acompletion";
	e.success = true;
	e.spend = 1413; /* 0.0000001413 */
	e.prompt_tokens = 10;
	e.completion_tokens = 20;
	e.total_tokens = 30;
	e.start_us = 1796155474000001;
	e.end_us = 1796155475000002;
	e.metadata = "{\"model_group\":\"gpt-4o\"}";
	memset(&r, 0, sizeof(r));
	r.held = true;
	r.budgeted = true;
	r.amount = 99999;
	tg_strlcpy(r.request_id, sizeof(r.request_id), rid);
	tg_strlcpy(r.user_id, sizeof(r.user_id), acct.user_id);
	tg_strlcpy(r.key_token, sizeof(r.key_token), token);
	r.key_budgeted = true;

	ok(!tg_spool_maybe_pending(dir), "a missing spool has nothing");
	ok(tg_spool_count(dir, &pending, &failed) && pending == 0,
	   "a missing spool counts as empty");

	tg_err_clear(&err);
	is_int(TG_OK, tg_spool_write(dir, &acct, &e, &r, &err),
	       "write (directories made): %s", err.message);
	snprintf(name, sizeof(name), "%s.json", rid);
	ok(exists(name), "the settlement is under its request id");
	snprintf(path, sizeof(path), ".tmp-%s", rid);
	ok(!exists(path), "no temporary file is left");
	ok(tg_spool_count(dir, &pending, &failed) && pending == 1 &&
	           failed == 0,
	   "one pending");
	ok(tg_spool_maybe_pending(dir), "maybe pending after a write");

	o = read_json(name);
	ok(o != NULL, "the file is JSON");
	is_string("cust \"1\"", field(o, "account", "user_id"), "account id");
	is_string("30d", field(o, "account", "budget_duration"),
	          "account period");
	is_string("0.0000001413", field(o, "entry", "spend"),
	          "spend as an exact decimal");
	is_string("1796155474000001", field(o, "entry", "start_us"),
	          "start time");
	is_string("{\"model_group\":\"gpt-4o\"}", field(o, "entry", "metadata"),
	          "metadata text as is");
	is_string("0.0000099999", field(o, "hold", "amount"), "hold amount");
	is_string("true", field(o, "hold", "budgeted"), "hold budgeted");
	/* A settlement of a virtual key's call charges the key too. */
	is_string(token, field(o, "account", "key_token"), "the key's token");
	is_string("app \"one\"", field(o, "account", "key_alias"),
	          "the key's alias");
	is_string("1d", field(o, "account", "key_budget_duration"),
	          "the key's period");
	is_string(token, field(o, "hold", "key_token"), "hold of the key");
	is_string("true", field(o, "hold", "key_budgeted"),
	          "hold budgeted for the key");
	json_object_put(o);

	tg_err_clear(&err);
	e.request_id = "../../etc/passwd";
	ok(tg_spool_write(dir, &acct, &e, &r, &err) != TG_OK,
	   "a request id that is not a plain name is refused");
	e.request_id = rid;
	ok(tg_spool_write("", &acct, &e, &r, &err) != TG_OK,
	   "no directory: an error, not a file in the working directory");

	/* A file that cannot be settled (no database is needed to find
	 * out) is set aside for the operator, and the rest is not blocked. */
	snprintf(path, sizeof(path), "%s/%s.json", dir,
	         "11111111-2222-3333-4444-555555555555");
	f = fopen(path, "w");
	fputs("{\"account\": {}, \"entry\": {\"request_id\": 5}}\n", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/%s.json", dir,
	         "66666666-2222-3333-4444-555555555555");
	f = fopen(path, "w");
	fputs("{not json", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/%s.json", dir, rid);
	unlink(path); /* only the bad ones are left */
	tg_err_clear(&err);
	is_int(TG_OK,
	       tg_spool_replay(NULL, dir, NULL, 1000000, &replayed, &err),
	       "replay with only bad files: %s", err.message);
	is_int(0, replayed, "nothing replayed");
	ok(exists("11111111-2222-3333-4444-555555555555.json.failed") &&
	           exists("66666666-2222-3333-4444-555555555555.json.failed"),
	   "the bad files are kept as .failed");
	ok(tg_spool_count(dir, &pending, &failed) && pending == 0 &&
	           failed == 2,
	   "readiness counts: 0 pending, 2 failed");
	ok(tg_spool_maybe_pending(dir),
	   "a spool changed just now is not taken for empty yet");
	{
		/* As if the directory had been quiet for a minute. */
		struct timespec past[2];

		clock_gettime(CLOCK_REALTIME, &past[0]);
		past[0].tv_sec -= 60;
		past[1] = past[0];
		utimensat(AT_FDCWD, dir, past, 0);
	}
	tg_err_clear(&err);
	is_int(TG_OK,
	       tg_spool_replay(NULL, dir, NULL, 1000000, &replayed, &err),
	       "replay again: %s", err.message);
	ok(!tg_spool_maybe_pending(dir), "a quiet empty spool is remembered");
	tg_err_clear(&err);
	is_int(TG_OK, tg_spool_write(dir, &acct, &e, &r, &err), "write again");
	ok(tg_spool_maybe_pending(dir), "a new file is noticed");

	{
		/* One subdirectory per database under the configured one. */
		struct tg_config a, b;
		char first[512];

		memset(&a, 0, sizeof(a));
		memset(&b, 0, sizeof(b));
		a.spool_dir = b.spool_dir = (char *)"/var/spool/tg";
		a.database_url = (char *)"mysql://u:p@db1/tollgate";
		b.database_url = (char *)"mysql://u:p@db2/tollgate";
		tg_strlcpy(first, sizeof(first), tg_spool_dir(&a));
		ok(strncmp(first, "/var/spool/tg/db-", 17) == 0 &&
		           strlen(first) == 17 + 16,
		   "spool dir is <spool_dir>/db-<16 hex>: %s", first);
		ok(strcmp(first, tg_spool_dir(&b)) != 0,
		   "another database, another directory");
		ok(strstr(first, "u:p") == NULL, "no credentials in the path");
	}
	snprintf(path, sizeof(path), "rm -rf /tmp/tg-test-spool-%ld",
	         (long)getpid());
	if (system(path) != 0)
		diag("could not remove the test directory");
	return done_testing();
}
