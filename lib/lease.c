/*
 * lease: slices of a busy account's budget held by one process (SPEC 4.6).
 * See lease.h for the contract.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "account.h"
#include "journal.h"
#include "lease.h"
#include "ledger_priv.h"
#include "log.h"
#include "spool.h"
#include "util.h"

/* Accounts watched or leased at once: the busy ones of one process. */
#define SLOTS 64
/* A lease is at most this part of what a budget has left. */
#define SHARE 16

struct slot {
	bool used;
	char user_id[256];  /* "" none */
	char key_token[65]; /* "" none */
	int64_t last_us;    /* its last call here */
	int calls;          /* of them within lease_idle_ms of each other */
	bool want;          /* take a lease after this answer */
	int64_t no_lease_until_us;
	/* What the last admission in the database said, for the lease's
	 * calls (their settlements, the customer as the meter wants it). */
	tg_money estimate;
	long hold_s;
	char model[256];
	bool has_budget, max_set, budgeted, key_budgeted;
	tg_money max_budget;
	char budget_id[256];
	char budget_duration[32];
	/* The lease, when leased. */
	bool leased;
	char id[37];
	tg_money amount;  /* taken */
	tg_money charged; /* charged against it here (moved or not) */
	bool inflight;
	char *inflight_rec; /* its "A" record, written again if the
	                       journal is emptied while it is in flight */
	int64_t taken_us, deadline_us;
	int64_t retry_us; /* a return that failed: not again before */
	/* A lease whose taking failed, perhaps after its commit (its
	 * answer lost): its row, if any, is deleted before the journal
	 * forgets it. */
	char stale_id[37];
	/* A settlement against the lease is not in the database nor in the
	 * journal (spooled, refused): the lease is never given back, and is
	 * charged whole as unsettled at its deadline, which covers it. */
	bool tainted;
};

static struct slot slots[SLOTS];
static char lease_dir[4096];

static struct slot *
find(const char *user_id, const char *key_token)
{
	for (int i = 0; i < SLOTS; i++)
		if (slots[i].used &&
		    strcmp(slots[i].user_id, user_id ? user_id : "") == 0 &&
		    strcmp(slots[i].key_token, key_token ? key_token : "") == 0)
			return &slots[i];
	return NULL;
}

bool
tg_lease_admit(const struct tg_config *cfg, const char *user_id,
               const struct tg_key *k, tg_money estimate,
               const struct tg_hold_request *hr, struct tg_reservation *out,
               struct tg_customer *cust, bool *has_customer)
{
	struct slot *s;
	struct json_object *o;
	int64_t now;
	bool ok;

	if (!cfg->budget_leases)
		return false;
	s = find(user_id, k != NULL ? k->token : NULL);
	if (s == NULL || !s->leased || s->inflight)
		return false;
	now = tg_now_us();
	if (now - s->taken_us >= (int64_t)cfg->lease_seconds * 1000000 ||
	    now + (int64_t)hr->hold_seconds * 1000000 > s->deadline_us ||
	    s->amount - s->charged < estimate)
		return false;
	/* Written before the call goes anywhere: if this process dies, the
	 * call is charged as unsettled (tg_lease_recover()). */
	o = json_object_new_object();
	json_object_object_add(o, "request_id",
	                       json_object_new_string(hr->request_id));
	json_object_object_add(o, "lease_id", json_object_new_string(s->id));
	json_object_object_add(o, "amount", json_object_new_int64(estimate));
	json_object_object_add(o, "user_id",
	                       json_object_new_string(s->user_id));
	json_object_object_add(o, "key_token",
	                       json_object_new_string(s->key_token));
	json_object_object_add(
	        o, "model",
	        json_object_new_string(hr->model != NULL ? hr->model : ""));
	if (hr->api_key_hash != NULL)
		json_object_object_add(
		        o, "api_key", json_object_new_string(hr->api_key_hash));
	json_object_object_add(o, "start_us",
	                       json_object_new_int64(hr->start_us));
	free(s->inflight_rec);
	s->inflight_rec = tg_xstrdup(
	        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	ok = tg_journal_note(lease_dir, 'A', s->inflight_rec);
	if (!ok) {
		free(s->inflight_rec);
		s->inflight_rec = NULL;
		return false;
	}
	s->inflight = true;
	s->last_us = now;
	memset(out, 0, sizeof(*out));
	out->held = true;
	out->budgeted = s->budgeted;
	out->key_budgeted = s->key_budgeted;
	tg_strlcpy(out->request_id, sizeof(out->request_id), hr->request_id);
	tg_strlcpy(out->lease_id, sizeof(out->lease_id), s->id);
	tg_strlcpy(out->user_id, sizeof(out->user_id), s->user_id);
	tg_strlcpy(out->key_token, sizeof(out->key_token), s->key_token);
	out->amount = estimate;
	*has_customer = false;
	if (s->user_id[0] != '\0') {
		memset(cust, 0, sizeof(*cust));
		cust->user_id = tg_xstrdup(s->user_id);
		cust->has_budget = s->has_budget;
		cust->budget.max_budget.set = s->max_set;
		cust->budget.max_budget.v = s->max_budget;
		if (s->has_budget)
			cust->budget.budget_id = tg_xstrdup(s->budget_id);
		if (s->budget_duration[0] != '\0')
			cust->budget.budget_duration =
			        tg_xstrdup(s->budget_duration);
		*has_customer = true;
	}
	return true;
}

void
tg_lease_note(const struct tg_config *cfg, const struct tg_reservation *r,
              const struct tg_customer *c, const struct tg_key *k,
              const char *model, tg_money estimate, long hold_seconds)
{
	struct slot *s, *oldest = NULL;
	int64_t now = tg_now_us();

	if (!cfg->budget_leases || !r->held || !r->fast || r->ntags > 0 ||
	    cfg->lease_calls == 0)
		return;
	tg_strlcpy(lease_dir, sizeof(lease_dir), tg_spool_dir(cfg));
	s = find(r->user_id, r->key_token);
	if (s == NULL) {
		for (int i = 0; i < SLOTS && s == NULL; i++) {
			if (!slots[i].used)
				s = &slots[i];
			else if (!slots[i].leased &&
			         slots[i].stale_id[0] == '\0' &&
			         (oldest == NULL ||
			          slots[i].last_us < oldest->last_us))
				oldest = &slots[i];
		}
		if (s == NULL)
			s = oldest;
		if (s == NULL)
			return; /* every slot leased */
		memset(s, 0, sizeof(*s));
		s->used = true;
		tg_strlcpy(s->user_id, sizeof(s->user_id), r->user_id);
		tg_strlcpy(s->key_token, sizeof(s->key_token), r->key_token);
	}
	if (now - s->last_us <= cfg->lease_idle_ms * 1000)
		s->calls++;
	else
		s->calls = 1;
	s->last_us = now;
	s->estimate = estimate;
	s->hold_s = hold_seconds;
	tg_strlcpy(s->model, sizeof(s->model), model);
	s->budgeted = r->budgeted;
	s->key_budgeted = r->key_budgeted;
	s->has_budget = c != NULL && c->has_budget;
	s->max_set = c != NULL && c->budget.max_budget.set;
	s->max_budget = c != NULL ? c->budget.max_budget.v : 0;
	tg_strlcpy(s->budget_id, sizeof(s->budget_id),
	           s->has_budget ? c->budget.budget_id : NULL);
	tg_strlcpy(s->budget_duration, sizeof(s->budget_duration),
	           c != NULL && c->has_budget ? c->budget.budget_duration
	                                      : NULL);
	(void)k;
	if (!s->leased && s->calls >= cfg->lease_after_calls &&
	    now >= s->no_lease_until_us)
		s->want = true;
}

void
tg_lease_settling(struct tg_reservation *r)
{
	struct slot *s = find(r->user_id, r->key_token);

	/* The lease's room for this call: its own share and what the lease
	 * has not yet given to others. */
	if (s != NULL && s->leased && strcmp(s->id, r->lease_id) == 0)
		r->amount = s->amount - s->charged;
}

void
tg_lease_settled(const struct tg_reservation *r, tg_money charged)
{
	struct slot *s = find(r->user_id, r->key_token);

	if (s == NULL || !s->leased || strcmp(s->id, r->lease_id) != 0)
		return;
	s->charged += charged;
	s->inflight = false;
	free(s->inflight_rec);
	s->inflight_rec = NULL;
	s->last_us = tg_now_us();
}

/* ---- the database's side ---- */

struct take_arg {
	struct slot *s;
	const struct tg_config *cfg;
	tg_money amount;
	bool small;
};

/* What a lease may take of account id (of kind): *amount lowered to 1/SHARE
 * of its budget's room, the row locked. */
static enum tg_rc
room_of(struct tg_db *db, enum tg_account_kind kind, const char *id,
        const char *default_budget, tg_money *amount, struct tg_err *err)
{
	struct tg_db_param params[4];
	struct tg_db_result res;
	tg_money spend, reserved, max;
	char now_s[20];
	enum tg_rc rc;

	tg_time_sql(time(NULL), now_s);
	params[0] = tg_db_null();
	params[1] = tg_db_str(now_s);
	params[2] = tg_db_str(default_budget);
	params[3] = tg_db_str(id);
	rc = tg_db_exec(db, tg_account_kind(kind)->sql.room, params, 4, &res,
	                err);
	if (rc != TG_OK)
		return rc;
	if (res.nrows != 1) {
		*amount = 0; /* gone: no lease */
	} else if (tg_db_cell(&res, 0, 2) != NULL &&
	           tg_money_parse(tg_db_cell(&res, 0, 0), &spend) &&
	           tg_money_parse(tg_db_cell(&res, 0, 1), &reserved) &&
	           tg_money_parse(tg_db_cell(&res, 0, 2), &max)) {
		tg_money room = max - spend - reserved;

		if (room / SHARE < *amount)
			*amount = room > 0 ? room / SHARE : 0;
	}
	tg_db_result_free(&res);
	return TG_OK;
}

static enum tg_rc
take_txn(struct tg_db *db, void *varg, struct tg_err *err)
{
	struct take_arg *a = varg;
	struct slot *s = a->s;
	struct tg_db_param params[8];
	char start_s[20];
	long seconds = a->cfg->lease_seconds + s->hold_s;
	enum tg_rc rc;

	a->small = false;
	a->amount = s->estimate * a->cfg->lease_calls;
	if (s->user_id[0] != '\0' &&
	    (rc = room_of(db, TG_ACCOUNT_CUSTOMER, s->user_id,
	                  a->cfg->max_end_user_budget_id, &a->amount, err)) !=
	            TG_OK)
		return rc;
	if (s->key_token[0] != '\0' &&
	    (rc = room_of(db, TG_ACCOUNT_KEY, s->key_token, NULL, &a->amount,
	                  err)) != TG_OK)
		return rc;
	if (a->amount < 2 * s->estimate || a->amount <= 0) {
		a->small = true;
		return TG_OK; /* nothing written: the commit is a no-op */
	}
	params[0] = tg_db_money(a->amount);
	if (s->user_id[0] != '\0') {
		params[1] = tg_db_str(s->user_id);
		if ((rc = tg_db_run(
		             db,
		             tg_account_kind(TG_ACCOUNT_CUSTOMER)->sql.reserve,
		             params, 2, NULL, err)) != TG_OK)
			return rc;
	}
	if (s->key_token[0] != '\0') {
		params[1] = tg_db_str(s->key_token);
		if ((rc = tg_db_run(
		             db, tg_account_kind(TG_ACCOUNT_KEY)->sql.reserve,
		             params, 2, NULL, err)) != TG_OK)
			return rc;
	}
	tg_time_sql(time(NULL), start_s);
	params[0] = tg_db_str(s->id);
	params[1] = tg_db_str(s->user_id);
	params[2] = tg_db_money(a->amount);
	params[3] = tg_db_int(seconds);
	params[4] = tg_db_str(s->model);
	params[5] = tg_db_str(start_s);
	params[6] = s->key_token[0] != '\0' ? tg_db_str(s->key_token)
	                                    : tg_db_null();
	return tg_db_run(db,
	                 "INSERT INTO reservations (request_id, user_id,"
	                 " amount, expires_at, created_at, model, start_time,"
	                 " key_token) VALUES (?, ?, CAST(? AS DECIMAL(20,10)),"
	                 " UTC_TIMESTAMP(6) + INTERVAL ? SECOND,"
	                 " UTC_TIMESTAMP(6), ?, ?, ?)",
	                 params, 7, NULL, err);
}

/* Return lease id: its row deleted, what is left of it released. */
static enum tg_rc
release_lease(struct tg_db *db, const char *id, struct tg_err *err)
{
	struct tg_db_param params[1];
	struct tg_db_result res;
	char now_s[20], *user = NULL, *key = NULL;
	tg_money left = 0;
	bool found = false;
	enum tg_rc rc;

	params[0] = tg_db_str(id);
	rc = tg_db_exec(db,
	                "SELECT user_id, key_token, amount FROM reservations"
	                " WHERE request_id = ? FOR UPDATE",
	                params, 1, &res, err);
	if (rc != TG_OK)
		return rc;
	if (res.nrows == 1 && tg_db_cell(&res, 0, 2) != NULL &&
	    tg_money_parse(tg_db_cell(&res, 0, 2), &left)) {
		found = true;
		user = tg_xstrdup(tg_db_cell(&res, 0, 0));
		if (tg_db_cell(&res, 0, 1) != NULL)
			key = tg_xstrdup(tg_db_cell(&res, 0, 1));
	}
	tg_db_result_free(&res);
	if (!found)
		return TG_OK; /* reclaimed: charged whole as unsettled */
	tg_time_sql(time(NULL), now_s);
	rc = tg_db_run(db, "DELETE FROM reservations WHERE request_id = ?",
	               params, 1, NULL, err);
	if (rc == TG_OK && user != NULL && user[0] != '\0')
		rc = tg_ledger_charge_account(db, TG_ACCOUNT_CUSTOMER, user,
		                              NULL, now_s, 0, left, err);
	if (rc == TG_OK && key != NULL && key[0] != '\0')
		rc = tg_ledger_charge_account(db, TG_ACCOUNT_KEY, key, NULL,
		                              now_s, 0, left, err);
	free(user);
	free(key);
	return rc;
}

static enum tg_rc
release_txn(struct tg_db *db, void *varg, struct tg_err *err)
{
	return release_lease(db, varg, err);
}

/* A call's share of lease lease_id made a hold of its own that has
 * expired, for the reclaim to charge as unsettled. */
static enum tg_rc
orphan(struct tg_db *db, const char *lease_id, const char *request_id,
       tg_money amount, const char *user_id, const char *key_token,
       const char *model, const char *api_key, int64_t start_us,
       struct tg_err *err)
{
	struct tg_db_param params[8];
	struct tg_db_result res;
	char start_s[20];
	uint64_t n = 0;
	bool seen;
	enum tg_rc rc;

	/* Settled, or made a hold of its own, before (a retried
	 * transaction, a journal read twice): nothing to do. */
	params[0] = tg_db_str(request_id);
	params[1] = tg_db_str(request_id);
	rc = tg_db_exec(db,
	                "SELECT (SELECT COUNT(*) FROM spend_logs WHERE"
	                " request_id = ?) + (SELECT COUNT(*) FROM reservations"
	                " WHERE request_id = ?)",
	                params, 2, &res, err);
	if (rc != TG_OK)
		return rc;
	seen = res.nrows == 1 && tg_db_cell(&res, 0, 0) != NULL &&
	       strcmp(tg_db_cell(&res, 0, 0), "0") != 0;
	tg_db_result_free(&res);
	if (seen)
		return TG_OK;
	rc = tg_ledger_lease_take(db, lease_id, amount, &n, err);
	if (rc != TG_OK || n == 0)
		return rc; /* the lease is gone: charged whole already */
	tg_time_sql((time_t)(start_us / 1000000), start_s);
	params[0] = tg_db_str(request_id);
	params[1] = tg_db_str(user_id);
	params[2] = tg_db_money(amount);
	params[3] = tg_db_str(model);
	params[4] = tg_db_str(api_key);
	params[5] = tg_db_str(start_s);
	params[6] = key_token != NULL && key_token[0] != '\0'
	                    ? tg_db_str(key_token)
	                    : tg_db_null();
	return tg_db_run(
	        db,
	        "INSERT INTO reservations (request_id, user_id, amount,"
	        " expires_at, created_at, model, api_key, start_time,"
	        " key_token) VALUES (?, ?, CAST(? AS DECIMAL(20,10)),"
	        " UTC_TIMESTAMP(6) - INTERVAL 1 SECOND,"
	        " UTC_TIMESTAMP(6), ?, ?, ?, ?)",
	        params, 7, NULL, err);
}

struct abandon_arg {
	const struct tg_reservation *r;
	int64_t start_us;
};

static enum tg_rc
abandon_txn(struct tg_db *db, void *varg, struct tg_err *err)
{
	struct abandon_arg *a = varg;

	return orphan(db, a->r->lease_id, a->r->request_id, a->r->amount,
	              a->r->user_id, a->r->key_token, NULL, NULL, a->start_us,
	              err);
}

void
tg_lease_abandon(struct tg_db *db, const struct tg_reservation *r)
{
	struct slot *s = find(r->user_id, r->key_token);
	struct abandon_arg a = {r, tg_now_us()};
	struct tg_err err;
	char text[128];

	if (s == NULL || !s->leased || strcmp(s->id, r->lease_id) != 0)
		return;
	s->inflight = false;
	free(s->inflight_rec);
	s->inflight_rec = NULL;
	s->charged += r->amount; /* no longer the lease's to give */
	tg_err_clear(&err);
	if (db == NULL || tg_db_txn(db, abandon_txn, &a, &err) != TG_OK) {
		tg_log_error(
		        "a call admitted against lease %s ended without "
		        "a settlement, and its share could not be made a "
		        "hold of its own (%s): the lease is kept until its "
		        "deadline, then charged whole as unsettled",
		        s->id, err.message);
		s->tainted = true;
		return;
	}
	tg_log_warn("a call admitted against lease %s ended without a "
	            "settlement: its share is charged as unsettled",
	            s->id);
	/* Its "A" record is answered, as a settlement answers one. */
	snprintf(text, sizeof(text), "{\"request_id\":\"%s\"}", r->request_id);
	(void)tg_journal_note(lease_dir, 'X', text);
}

static bool
note_lease(char type, const char *id)
{
	char text[64];

	snprintf(text, sizeof(text), "{\"lease_id\":\"%s\"}", id);
	if (tg_journal_note(lease_dir, type, text))
		return true;
	tg_log_warn("journal: cannot note lease %s", id);
	return false;
}

void
tg_lease_keep(void *arg)
{
	(void)arg;
	for (int i = 0; i < SLOTS; i++) {
		if (slots[i].used && slots[i].stale_id[0] != '\0')
			(void)note_lease('L', slots[i].stale_id);
		if (!slots[i].used || !slots[i].leased)
			continue;
		(void)note_lease('L', slots[i].id);
		/* A call in flight (a stream that moved the journal before
		 * it went upstream): still to be recovered should this
		 * process die. */
		if (slots[i].inflight && slots[i].inflight_rec != NULL &&
		    !tg_journal_note(lease_dir, 'A', slots[i].inflight_rec))
			tg_log_warn("journal: cannot note a call in flight");
	}
}

static void
take(struct tg_db *db, const struct tg_config *cfg, struct slot *s)
{
	struct take_arg a = {s, cfg, 0, false};
	struct tg_err err;

	s->want = false;
	if (s->stale_id[0] != '\0')
		return; /* the last one's row first */
	tg_uuid_new(s->id);
	/* Written first: should this process die just after the commit, the
	 * host's next recovery returns it. */
	if (!note_lease('L', s->id)) {
		s->no_lease_until_us =
		        tg_now_us() + cfg->lease_seconds * 1000000;
		return;
	}
	tg_err_clear(&err);
	if (tg_db_txn(db, take_txn, &a, &err) != TG_OK) {
		tg_log_warn("taking a lease failed: %s", err.message);
		s->no_lease_until_us =
		        tg_now_us() + cfg->lease_seconds * 1000000;
		tg_strlcpy(s->stale_id, sizeof(s->stale_id), s->id);
		s->retry_us = tg_now_us() + 1000000;
		return;
	}
	if (a.small) {
		/* The budget is near its end: a hold per call, for a while. */
		s->no_lease_until_us =
		        tg_now_us() + cfg->lease_seconds * 1000000;
		(void)note_lease('R', s->id);
		tg_journal_compact();
		return;
	}
	s->leased = true;
	s->amount = a.amount;
	s->charged = 0;
	s->inflight = false;
	s->taken_us = tg_now_us();
	s->deadline_us = s->taken_us +
	                 ((int64_t)cfg->lease_seconds + s->hold_s) * 1000000;
}

/* Give lease s back; false when the database could not take it now. */
static bool
give_back(struct tg_db *db, const struct tg_config *cfg, struct slot *s)
{
	struct tg_err err;

	if (s->inflight)
		return false;
	if (s->tainted) {
		/* Left to its deadline (see struct slot). */
		tg_log_warn(
		        "lease %s is left to be charged as unsettled at its "
		        "deadline: a settlement against it is elsewhere",
		        s->id);
		s->leased = false;
		s->tainted = false;
		(void)note_lease('R', s->id);
		tg_journal_compact();
		return true;
	}
	/* Every charge against it in the database first: then what its row
	 * has left is what no call of it will charge. */
	tg_err_clear(&err);
	if (tg_journal_move(db, &cfg->alerting, NULL, &err) != TG_OK ||
	    tg_db_txn(db, release_txn, s->id, &err) != TG_OK) {
		tg_log_warn("returning lease %s failed (tried again later): %s",
		            s->id, err.message);
		s->retry_us = tg_now_us() + 1000000;
		return false;
	}
	s->leased = false;
	(void)note_lease('R', s->id);
	tg_journal_compact();
	return true;
}

/* The row of a lease whose taking failed, deleted if it is there. */
static void
forget_stale(struct tg_db *db, struct slot *s)
{
	struct tg_err err;

	tg_err_clear(&err);
	if (tg_db_txn(db, release_txn, s->stale_id, &err) != TG_OK) {
		s->retry_us = tg_now_us() + 1000000;
		return;
	}
	(void)note_lease('R', s->stale_id);
	s->stale_id[0] = '\0';
	tg_journal_compact();
}

void
tg_lease_work(struct tg_db *db, const struct tg_config *cfg, bool all)
{
	int64_t now = tg_now_us();

	if (db == NULL || cfg == NULL)
		return;
	for (int i = 0; i < SLOTS; i++) {
		struct slot *s = &slots[i];
		bool quiet;

		if (!s->used)
			continue;
		if (s->stale_id[0] != '\0' && (all || now >= s->retry_us))
			forget_stale(db, s);
		quiet = now - s->last_us >= cfg->lease_idle_ms * 1000;
		if (s->leased && (all || now >= s->retry_us) &&
		    (all || quiet ||
		     now - s->taken_us >=
		             (int64_t)cfg->lease_seconds * 1000000 ||
		     s->amount - s->charged < s->estimate) &&
		    give_back(db, cfg, s)) {
			/* Spent or old while the account is busy: the next
			 * one at once; quiet: none until it is busy again. */
			s->want = !all && !quiet;
			if (quiet)
				s->calls = 0;
		}
		if (!all && !s->leased && s->want &&
		    now >= s->no_lease_until_us)
			take(db, cfg, s);
	}
}

int64_t
tg_lease_due_us(const struct tg_config *cfg)
{
	int64_t due = 0;

	if (cfg == NULL || !cfg->budget_leases)
		return 0;
	for (int i = 0; i < SLOTS; i++) {
		const struct slot *s = &slots[i];
		int64_t at;

		if (s->used && s->stale_id[0] != '\0' &&
		    (due == 0 || s->retry_us < due))
			due = s->retry_us;
		if (!s->used || !s->leased)
			continue;
		at = s->last_us + cfg->lease_idle_ms * 1000;
		if (s->taken_us + (int64_t)cfg->lease_seconds * 1000000 < at)
			at = s->taken_us +
			     (int64_t)cfg->lease_seconds * 1000000;
		if (at < s->retry_us)
			at = s->retry_us;
		if (due == 0 || at < due)
			due = at;
	}
	return due;
}

int
tg_lease_count(void)
{
	int n = 0;

	for (int i = 0; i < SLOTS; i++)
		n += slots[i].used &&
		     (slots[i].leased || slots[i].stale_id[0] != '\0');
	return n;
}

/* ---- a dead process's leases ---- */

struct recover_arg {
	struct json_object **rec; /* parsed records, NULL: not ours */
	const char *const *line;
	size_t n;
	int inflight;
};

static const char *
str_of(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) &&
	                       json_object_is_type(v, json_type_string)
	               ? json_object_get_string(v)
	               : NULL;
}

static int64_t
int_of(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v)
	                                             : 0;
}

/* The request id of an "S" record. */
static const char *
settled_id(struct json_object *o)
{
	struct json_object *e;

	return json_object_object_get_ex(o, "entry", &e)
	               ? str_of(e, "request_id")
	               : NULL;
}

static bool
later(struct recover_arg *a, size_t i, char type, const char *key,
      const char *id)
{
	for (size_t j = i + 1; j < a->n; j++) {
		char t = a->line[j][0];
		const char *other;

		/* An "X" answers an "A" as an "S" does (tg_lease_abandon()). */
		if (a->rec[j] == NULL ||
		    (t != type && !(type == 'S' && t == 'X')))
			continue;
		if (t == 'S')
			other = settled_id(a->rec[j]);
		else if (t == 'X')
			other = str_of(a->rec[j], "request_id");
		else
			other = str_of(a->rec[j], key);
		if (other != NULL && strcmp(other, id) == 0)
			return true;
	}
	return false;
}

static enum tg_rc
recover_txn(struct tg_db *db, void *varg, struct tg_err *err)
{
	struct recover_arg *a = varg;
	enum tg_rc rc = TG_OK;

	a->inflight = 0;
	/* Calls admitted and not settled, then the leases not returned. */
	for (size_t i = 0; i < a->n && rc == TG_OK; i++) {
		struct json_object *o = a->rec[i];
		const char *rid;

		if (o == NULL || a->line[i][0] != 'A' ||
		    (rid = str_of(o, "request_id")) == NULL ||
		    str_of(o, "lease_id") == NULL ||
		    later(a, i, 'S', NULL, rid))
			continue;
		rc = orphan(db, str_of(o, "lease_id"), rid, int_of(o, "amount"),
		            str_of(o, "user_id"), str_of(o, "key_token"),
		            str_of(o, "model"), str_of(o, "api_key"),
		            int_of(o, "start_us"), err);
		a->inflight++;
	}
	for (size_t i = 0; i < a->n && rc == TG_OK; i++) {
		struct json_object *o = a->rec[i];
		const char *id;

		if (o == NULL || a->line[i][0] != 'L' ||
		    (id = str_of(o, "lease_id")) == NULL ||
		    later(a, i, 'R', "lease_id", id))
			continue;
		rc = release_lease(db, id, err);
	}
	return rc;
}

enum tg_rc
tg_lease_recover(struct tg_db *db, const char *const *line, size_t n,
                 int *inflight, struct tg_err *err)
{
	struct recover_arg a;
	bool any = false;
	enum tg_rc rc = TG_OK;

	a.line = line;
	a.n = n;
	a.inflight = 0;
	a.rec = tg_xcalloc(n > 0 ? n : 1, sizeof(*a.rec));
	for (size_t i = 0; i < n; i++) {
		char type = line[i][0];

		if (type != 'A' && type != 'L' && type != 'R' && type != 'S' &&
		    type != 'X')
			continue;
		a.rec[i] = json_tokener_parse(line[i] + 2);
		any |= type != 'S' && type != 'X' && a.rec[i] != NULL;
	}
	if (any)
		rc = tg_db_txn(db, recover_txn, &a, err);
	if (rc == TG_OK && inflight != NULL)
		*inflight += a.inflight;
	if (a.inflight > 0)
		tg_log_warn("%d calls of a process that is gone were admitted "
		            "against its leases and never settled: charged as "
		            "unsettled",
		            a.inflight);
	for (size_t i = 0; i < n; i++)
		json_object_put(a.rec[i]);
	free(a.rec);
	return rc;
}

void
tg_lease_taint(const char *lease_id)
{
	for (int i = 0; i < SLOTS; i++)
		if (slots[i].used && slots[i].leased &&
		    strcmp(slots[i].id, lease_id) == 0)
			slots[i].tainted = true;
}

void
tg_lease_forget(void)
{
	for (int i = 0; i < SLOTS; i++)
		free(slots[i].inflight_rec);
	memset(slots, 0, sizeof(slots));
	lease_dir[0] = '\0';
}
