/*
 * test-ledger: one table of ledger scenarios (lib/ledger.c), run against the
 * database of TG_TEST_DATABASE_URL.  tests/e2e/ledger_diff.py runs it twice,
 * on a schema with the procedures (sql/011's tg_admit_v11, tg_settle_v11)
 * and on one without them, and compares the rows the two runs leave
 * (customers, api_keys, tags, reservations, spend_logs and more) row for
 * row: the ledger decides which way a
 * transaction runs, and both ways must do the same thing.  Without the
 * variable it says SKIP.
 *
 * Every id, amount and time the rows hold comes from here (request ids,
 * the calls' start and end, the clock of resets: a whole day), so that two
 * runs write the same rows.  Each step also checks its outcome, so a run on
 * its own is a test of the ledger too.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../tap.h"
#include "customer.h"
#include "db.h"
#include "key.h"
#include "ledger.h"
#include "util.h"

static struct tg_db *db;

/* A key's secret and its token (sha256 hex), as /key/generate stores it. */
#define KEY_SECRET "sk-ledger-diff-key"

/* The start and end of every call (2026-01-15 12:00:00 UTC, plus 1 s). */
#define START_US 1768478400000000LL
#define END_US   1768478401000000LL

static void
sql(const char *text)
{
	struct tg_err err;

	tg_err_clear(&err);
	if (tg_db_run(db, text, NULL, 0, NULL, &err) != TG_OK)
		diag("%s: %s", text, err.message);
}

static tg_money
money(const char *s)
{
	tg_money m = 0;

	if (!tg_money_parse(s, &m))
		abort();
	return m;
}

/* What a gate does in a scenario: nothing, or delete a budget (a budget
 * deleted while the call is being admitted). */
struct gate_arg {
	const char *delete_budget;
	int calls;
};

static enum tg_rc
gate(void *varg, const struct tg_customer *c, struct tg_admission *a,
     struct tg_err *err)
{
	struct gate_arg *g = varg;
	char text[256];

	(void)c;
	(void)a;
	(void)err;
	g->calls++;
	if (g->delete_budget != NULL) {
		snprintf(text, sizeof(text),
		         "DELETE FROM budgets WHERE budget_id = '%s'",
		         g->delete_budget);
		sql(text);
	}
	return TG_OK;
}

/* The call being admitted and settled. */
struct call {
	const char *request_id;
	const char *user_id; /* NULL: none */
	bool with_key;
	const char *tags[4]; /* the tags it names, NULL-ended */
	struct tg_tag loaded[TG_TAG_MAX];
	size_t nloaded;
	struct tg_customer cust;
	bool has_customer;
	struct tg_key key;
	struct tg_reservation resv;
};

static enum tg_rc
admit(struct call *c, const char *estimate, const char *default_budget,
      struct gate_arg *g)
{
	struct tg_admission a;
	struct tg_err err;
	struct gate_arg none = {NULL, 0};
	enum tg_rc rc;

	memset(&a, 0, sizeof(a));
	a.user_id = c->user_id;
	a.default_budget_id = default_budget;
	a.key = c->with_key ? &c->key : NULL;
	while (a.ntag_names < 4 && c->tags[a.ntag_names] != NULL)
		a.ntag_names++;
	a.tag_names = c->tags;
	a.tags = c->loaded;
	a.mode = TG_ENFORCE_RESERVE;
	a.estimate = money(estimate);
	a.estimate_known = true;
	a.hold.request_id = c->request_id;
	a.hold.model = "m";
	a.hold.api_key_hash = c->with_key ? c->key.token : "master-hash";
	a.hold.start_us = START_US;
	a.hold.hold_seconds = 600;
	tg_err_clear(&err);
	rc = tg_ledger_admit(db, &a, gate, g != NULL ? g : &none, &c->cust,
	                     &c->has_customer, &c->resv, &err);
	c->nloaded = a.ntags;
	if (rc != TG_OK && rc != TG_ERR_BUDGET)
		diag("admit %s: %s", c->request_id, err.message);
	return rc;
}

static enum tg_rc
settle(struct call *c, const char *spend, bool success)
{
	struct tg_ledger_account acct =
	        tg_ledger_account_of(c->has_customer ? &c->cust : NULL,
	                             c->with_key ? &c->key : NULL);
	struct tg_ledger_entry e;
	struct tg_err err;
	enum tg_rc rc;

	memset(&e, 0, sizeof(e));
	e.request_id = c->request_id;
	e.end_user = c->user_id != NULL ? c->user_id : "";
	e.model = "m";
	e.model_id = "openai/m";
	e.api_key_hash = c->with_key ? c->key.token : "master-hash";
	e.call_type = "acompletion";
	e.api_base = "http://upstream/v1";
	e.success = success;
	e.spend = money(spend);
	e.prompt_tokens = 10;
	e.completion_tokens = 20;
	e.total_tokens = 30;
	e.start_us = START_US;
	e.end_us = END_US;
	e.metadata = "{\"model_group\":\"m\"}";
	e.tags = c->tags;
	while (e.ntags < 4 && c->tags[e.ntags] != NULL)
		e.ntags++;
	tg_err_clear(&err);
	rc = tg_ledger_settle(db, &acct, &e, &c->resv, NULL, &err);
	if (rc != TG_OK)
		diag("settle %s: %s", c->request_id, err.message);
	return rc;
}

static void
call_done(struct call *c)
{
	if (c->has_customer)
		tg_customer_free(&c->cust);
	if (c->with_key)
		tg_key_free(&c->key);
	for (size_t i = 0; i < c->nloaded; i++)
		tg_tag_free(&c->loaded[i]);
	memset(c, 0, sizeof(*c));
}

static void
load_key(struct call *c)
{
	struct tg_err err;

	tg_err_clear(&err);
	c->with_key =
	        tg_key_authenticate(db, KEY_SECRET, &c->key, &err) == TG_OK;
	ok(c->with_key, "the key loads (%s)", err.message);
}

/* ---- the scenarios ---- */

static void
new_customer(void)
{
	struct call c = {.request_id = "r-new-1", .user_id = "new-1"};

	is_int(TG_OK, admit(&c, "0.5", NULL, NULL), "new customer: held");
	ok(c.has_customer && c.resv.held, "new customer: created and held");
	is_int(TG_OK, settle(&c, "0.2", true), "new customer: settled");
	call_done(&c);
}

static void
tier(void)
{
	struct call a = {.request_id = "r-tier-1", .user_id = "tier-1"};
	struct call b = {.request_id = "r-tier-2", .user_id = "tier-1"};

	sql("INSERT INTO budgets (budget_id, max_budget) VALUES ('tier', 1)");
	is_int(TG_OK, admit(&a, "0.4", "tier", NULL),
	       "tier: a new customer gets the default tier and is held");
	is_int(TG_ERR_BUDGET, admit(&b, "0.7", "tier", NULL),
	       "tier: 0.4 + 0.7 > 1 is refused");
	is_int(TG_OK, settle(&a, "0.3", true), "tier: settled");
	call_done(&a);
	call_done(&b);
}

static void
key_and_customer(void)
{
	struct call c = {.request_id = "r-key-1", .user_id = "kc-1"};
	struct call d = {.request_id = "r-key-2", .user_id = "kc-2"};

	load_key(&c);
	is_int(TG_OK, admit(&c, "1.5", NULL, NULL), "key + customer: held");
	load_key(&d);
	is_int(TG_ERR_BUDGET, admit(&d, "0.6", NULL, NULL),
	       "key + customer: the key's budget (2) refuses 1.5 + 0.6");
	is_int(TG_OK, settle(&c, "1.25", true), "key + customer: settled");
	call_done(&c);
	call_done(&d);
	d.request_id = "r-key-3";
	d.user_id = "kc-2";
	load_key(&d);
	is_int(TG_OK, admit(&d, "0.75", NULL, NULL),
	       "key: 1.25 + 0.75 = 2 is exactly the key's budget: held");
	is_int(TG_OK, settle(&d, "0.75", true), "key: settled to its limit");
	call_done(&d);
}

static void
boundary(void)
{
	struct call a = {.request_id = "r-b-1", .user_id = "edge"};
	struct call b = {.request_id = "r-b-2", .user_id = "edge"};
	struct call z = {.request_id = "r-b-3", .user_id = "edge"};
	struct call y = {.request_id = "r-b-4", .user_id = "edge"};

	sql("INSERT INTO budgets (budget_id, max_budget) VALUES ('edge', 1)");
	sql("INSERT INTO customers (user_id, budget_id, spend, created_at,"
	    " updated_at) VALUES ('edge', 'edge', 0.6, '2026-01-01',"
	    " '2026-01-01')");
	is_int(TG_OK, admit(&a, "0.4", NULL, NULL),
	       "boundary: 0.6 + 0.4 = 1 exactly: held");
	is_int(TG_ERR_BUDGET, admit(&b, "0.0000000001", NULL, NULL),
	       "boundary: 1e-10 more is refused");
	/* A hold of 0 changes no row: admitted all the same, on any
	 * connection (sql/008). */
	is_int(TG_OK, admit(&z, "0", NULL, NULL),
	       "boundary: a hold of 0 at the limit is held");
	is_int(TG_OK, settle(&a, "0.4", true), "boundary: settled");
	is_int(TG_OK, settle(&z, "0", false), "boundary: the 0 one settled");
	is_int(TG_ERR_BUDGET, admit(&y, "0.0000000001", NULL, NULL),
	       "boundary: spent to the limit, 1e-10 is refused");
	call_done(&a);
	call_done(&b);
	call_done(&z);
	call_done(&y);
}

static void
due_reset(void)
{
	struct call c = {.request_id = "r-reset-1", .user_id = "reset-1"};

	sql("INSERT INTO budgets (budget_id, max_budget, budget_duration)"
	    " VALUES ('daily', 1, '1d')");
	sql("INSERT INTO customers (user_id, budget_id, spend, spend_reset_at,"
	    " created_at, updated_at) VALUES ('reset-1', 'daily', 5,"
	    " '2020-01-01 00:00:00', '2020-01-01', '2020-01-01')");
	is_int(TG_OK, admit(&c, "0.5", NULL, NULL),
	       "due reset: the period passed, spend 5 > 1 reads as 0: held");
	is_int(TG_OK, settle(&c, "0.25", true), "due reset: settled");
	call_done(&c);
}

static void
duplicate(void)
{
	struct call a = {.request_id = "r-dup-1", .user_id = "dup-1"};
	struct call b = {.request_id = "r-dup-1", .user_id = "dup-1"};

	is_int(TG_OK, admit(&a, "0.5", NULL, NULL), "duplicate: held");
	is_int(TG_OK, admit(&b, "0.5", NULL, NULL),
	       "duplicate: the same request again finds its hold");
	is_int(TG_OK, settle(&a, "0.1", true), "duplicate: settled");
	is_int(TG_OK, settle(&b, "0.1", true),
	       "duplicate: settled again is the first settlement");
	call_done(&a);
	call_done(&b);
}

static void
unsettled_replaced(void)
{
	struct call c = {.request_id = "r-uns-1", .user_id = "uns-1"};
	struct tg_err err;
	int n = 0;

	is_int(TG_OK, admit(&c, "0.5", NULL, NULL), "unsettled: held");
	/* Its process died: the hold's deadline passed. */
	sql("UPDATE reservations SET expires_at = '2020-01-01'"
	    " WHERE request_id = 'r-uns-1'");
	tg_err_clear(&err);
	is_int(TG_OK, tg_ledger_reclaim(db, "uns-1", NULL, NULL, 10, &n, &err),
	       "unsettled: reclaimed (%s)", err.message);
	is_int(1, n, "unsettled: one hold charged as unsettled");
	is_int(TG_OK, settle(&c, "0.125", true),
	       "unsettled: its settlement (from a spool) replaces the charge");
	call_done(&c);
}

static void
budget_deleted(void)
{
	struct call c = {.request_id = "r-del-1", .user_id = "del-1"};
	struct gate_arg g = {"gone", 0};

	sql("INSERT INTO budgets (budget_id, max_budget) VALUES ('gone', 1)");
	sql("INSERT INTO customers (user_id, budget_id, created_at, updated_at)"
	    " VALUES ('del-1', 'gone', '2026-01-01', '2026-01-01')");
	is_int(TG_OK, admit(&c, "0.5", NULL, &g),
	       "budget deleted mid-call: held");
	/* The procedure took the hold without the gate: the budget goes
	 * right after it, as the statements' way had it go before. */
	if (g.calls == 0)
		sql("DELETE FROM budgets WHERE budget_id = 'gone'");
	is_int(TG_OK, settle(&c, "2", true),
	       "budget deleted mid-call: settled without a cap (no budget)");
	call_done(&c);
}

/* A budget's model_max_budget on the call's model "m": a cap of 1 on the
 * model_spend row beside the account, held, refused at the boundary,
 * charged, and an unsettled charge replaced (the row corrected). */
static void
model_cap(void)
{
	struct call a = {.request_id = "r-cap-1", .user_id = "cap-1"};
	struct call b = {.request_id = "r-cap-2", .user_id = "cap-1"};
	struct call c = {.request_id = "r-cap-3", .user_id = "cap-1"};
	struct call d = {.request_id = "r-cap-4", .user_id = "cap-1"};
	struct tg_err err;
	int n = 0;

	sql("INSERT INTO budgets (budget_id, max_budget, model_max_budget)"
	    " VALUES ('capped', 100, '{\"m\": {\"budget_limit\": 1}}')");
	sql("INSERT INTO customers (user_id, budget_id, created_at, updated_at)"
	    " VALUES ('cap-1', 'capped', '2026-01-01', '2026-01-01')");
	is_int(TG_OK, admit(&a, "0.6", NULL, NULL), "model cap: held");
	is_int(TG_ERR_BUDGET, admit(&b, "0.5", NULL, NULL),
	       "model cap: 0.6 + 0.5 > 1 on the model is refused");
	is_int(TG_OK, settle(&a, "0.5", true), "model cap: settled");
	is_int(TG_OK, admit(&c, "0.5", NULL, NULL),
	       "model cap: 0.5 + 0.5 = 1 exactly: held");
	is_int(TG_OK, settle(&c, "0.25", true), "model cap: settled below");
	is_int(TG_OK, admit(&d, "0.2", NULL, NULL), "model cap: held again");
	sql("UPDATE reservations SET expires_at = '2020-01-01'"
	    " WHERE request_id = 'r-cap-4'");
	tg_err_clear(&err);
	is_int(TG_OK, tg_ledger_reclaim(db, "cap-1", NULL, NULL, 10, &n, &err),
	       "model cap: reclaimed (%s)", err.message);
	is_int(1, n, "model cap: one hold charged as unsettled");
	is_int(TG_OK, settle(&d, "0.125", true),
	       "model cap: the late settlement replaces the charge");
	call_done(&a);
	call_done(&b);
	call_done(&c);
	call_done(&d);
}

/*
 * Tags (SPEC 11): t-a with a max_budget of 1, t-b without a budget, t-x
 * never made.  Held with a customer and the key, refused at the boundary
 * for t-a alone, held exactly to it, an unsettled charge replaced (each
 * tag corrected), and a call naming only the unknown tag (nothing held).
 */
static void
tags(void)
{
	struct call a = {.request_id = "r-tag-1",
	                 .user_id = "tag-1",
	                 .with_key = true,
	                 .tags = {"t-b", "t-a", "t-x", NULL}};
	struct call b = {.request_id = "r-tag-2", .tags = {"t-a", NULL}};
	struct call c = {.request_id = "r-tag-3", .tags = {"t-a", NULL}};
	struct call d = {.request_id = "r-tag-4", .tags = {"t-a", "t-b", NULL}};
	struct call e = {.request_id = "r-tag-5", .tags = {"t-x", NULL}};
	struct tg_err err;
	int n = 0;

	sql("INSERT INTO budgets (budget_id, max_budget) VALUES ('t-a-own', "
	    "1)");
	sql("INSERT INTO tags (tag_name, budget_id, budget_private, created_at,"
	    " updated_at) VALUES ('t-a', 't-a-own', 1, '2026-01-01',"
	    " '2026-01-01'), ('t-b', NULL, 0, '2026-01-01', '2026-01-01')");
	load_key(&a);
	is_int(TG_OK, admit(&a, "0.6", NULL, NULL),
	       "tags: held from the customer, the key and two tags");
	is_int(2, (int)a.resv.ntags, "tags: the hold names t-a and t-b");
	ok(a.resv.ntags == 2 && strcmp(a.resv.tags[0].name, "t-a") == 0 &&
	           a.resv.tags[0].flags == TG_HOLD_TAG_BUDGETED &&
	           strcmp(a.resv.tags[1].name, "t-b") == 0 &&
	           a.resv.tags[1].flags == 0,
	   "tags: by name, t-a against its max_budget");
	is_int(TG_OK, settle(&a, "0.5", true), "tags: settled");
	is_int(TG_ERR_BUDGET, admit(&b, "0.6", NULL, NULL),
	       "tags: 0.5 + 0.6 > 1 on t-a is refused (no customer, no key)");
	is_int(TG_OK, admit(&c, "0.5", NULL, NULL),
	       "tags: 0.5 + 0.5 = 1 exactly: held");
	is_int(TG_OK, settle(&c, "0.25", true), "tags: settled below");
	is_int(TG_OK, admit(&d, "0.2", NULL, NULL), "tags: held again");
	sql("UPDATE reservations SET expires_at = '2020-01-01'"
	    " WHERE request_id = 'r-tag-4'");
	tg_err_clear(&err);
	is_int(TG_OK, tg_ledger_reclaim(db, NULL, NULL, NULL, 10, &n, &err),
	       "tags: reclaimed (%s)", err.message);
	is_int(1, n, "tags: one hold charged as unsettled");
	is_int(TG_OK, settle(&d, "0.125", true),
	       "tags: the late settlement replaces the charge");
	is_int(TG_OK, admit(&e, "0.1", NULL, NULL),
	       "tags: an unknown tag alone is admitted");
	ok(!e.resv.held, "tags: ... with nothing held (no account)");
	is_int(TG_OK, settle(&e, "0.1", true), "tags: its row written");
	call_done(&a);
	call_done(&b);
	call_done(&c);
	call_done(&d);
	call_done(&e);
}

static void
no_customer_key_only(void)
{
	struct call c = {.request_id = "r-ko-1", .user_id = NULL};

	load_key(&c);
	is_int(TG_ERR_BUDGET, admit(&c, "0.01", NULL, NULL),
	       "a key spent to its limit refuses a call without a customer");
	call_done(&c);
}

static void
in_flight(void)
{
	struct call c = {.request_id = "r-fly-1", .user_id = "fly-1"};

	load_key(&c);
	sql("UPDATE api_keys SET spend = 0");
	is_int(TG_OK, admit(&c, "0.3", "tier", NULL),
	       "in flight: held from the customer and the key, not settled");
	call_done(&c);
}

int
main(void)
{
	const char *url = getenv("TG_TEST_DATABASE_URL");
	char token[65], text[512];
	struct tg_err err;

	if (url == NULL || url[0] == '\0') {
		printf("1..0 # SKIP TG_TEST_DATABASE_URL is not set (run by "
		       "tests/e2e/ledger_diff.py)\n");
		return 0;
	}
	tg_err_clear(&err);
	if (tg_db_open(url, &db, &err) != TG_OK) {
		ok(false, "connect: %s", err.message);
		return done_testing();
	}
	tg_sha256_hex(KEY_SECRET, strlen(KEY_SECRET), token);
	sql("INSERT INTO budgets (budget_id, max_budget, private_for_key)"
	    " VALUES ('key-budget', 2, NULL)");
	snprintf(text, sizeof(text),
	         "INSERT INTO api_keys (token, key_name, models, budget_id,"
	         " created_at, updated_at) VALUES ('%s', 'sk-...-key', '[]',"
	         " 'key-budget', '2026-01-01', '2026-01-01')",
	         token);
	sql(text);
	new_customer();
	tier();
	key_and_customer();
	boundary();
	due_reset();
	duplicate();
	unsettled_replaced();
	budget_deleted();
	model_cap();
	no_customer_key_only();
	in_flight();
	tags();
	tg_db_close(db);
	return done_testing();
}
