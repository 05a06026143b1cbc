/*
 * events: the webhook events a charge raises, written into the outbox in
 * the charge's transaction (SPEC 9).  See events.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "events.h"
#include "jsonx.h"
#include "outbox.h"
#include "util.h"

const char *
tg_event_name(enum tg_event e)
{
	switch (e) {
	case TG_EVENT_SPEND_TRACKED: return "spend_tracked";
	case TG_EVENT_THRESHOLD_CROSSED: return "threshold_crossed";
	case TG_EVENT_BUDGET_CROSSED: return "budget_crossed";
	case TG_EVENT_SOFT_BUDGET_CROSSED: return "soft_budget_crossed";
	}
	return "unknown";
}

/* The sentence of event_message (and of the Slack text) into buf. */
static void
event_message(const struct tg_event_info *ev, char *buf, size_t cap)
{
	char spend[TG_MONEY_STRLEN], limit[TG_MONEY_STRLEN];
	bool key = ev->group == TG_ACCOUNT_KEY;
	bool tag = ev->group == TG_ACCOUNT_TAG;
	/* "Customer=<id>", "Key=<alias>" (its token when it has none), or
	 * "Tag=<name>". */
	const char *who = key ? "Key" : tag ? "Tag" : "Customer";
	const char *id =
	        key   ? (ev->key_alias != NULL ? ev->key_alias : ev->token)
	        : tag ? ev->tag
	              : ev->customer_id;

	if (id == NULL)
		id = "";
	tg_money_format(ev->spend, spend, sizeof(spend));
	tg_money_format(ev->max_budget, limit, sizeof(limit));
	switch (ev->event) {
	case TG_EVENT_SPEND_TRACKED:
		snprintf(buf, cap, "%s spend tracked. %s=%s, spend=%s", who,
		         who, id, spend);
		return;
	case TG_EVENT_THRESHOLD_CROSSED:
		snprintf(buf, cap,
		         "%s spend reached %d%% of max_budget. "
		         "%s=%s, spend=%s, max_budget=%s",
		         who, ev->percent, who, id, spend, limit);
		return;
	case TG_EVENT_BUDGET_CROSSED:
		snprintf(buf, cap,
		         "%s budget crossed%s. %s=%s, spend=%s, "
		         "max_budget=%s",
		         who,
		         ev->refused ? ": a request was refused for its budget"
		                     : "",
		         who, id, spend, limit);
		return;
	case TG_EVENT_SOFT_BUDGET_CROSSED:
		tg_money_format(ev->soft_budget, limit, sizeof(limit));
		snprintf(buf, cap,
		         "%s soft budget crossed. %s=%s, spend=%s, "
		         "soft_budget=%s",
		         who, who, id, spend, limit);
		return;
	}
	buf[0] = '\0';
}

/* The text of o (freed with it) into a new string. */
static char *
take_text(struct json_object *o)
{
	char *s = tg_xstrdup(
	        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));

	json_object_put(o);
	return s;
}

char *
tg_event_webhook_body(const struct tg_event_info *ev)
{
	struct json_object *o = json_object_new_object();
	char msg[1024];

	/* The seed's fields, in its order (json-c keeps insertion order). */
	json_object_object_add(o, "spend", tg_json_money(ev->spend));
	json_object_object_add(
	        o, "max_budget",
	        ev->has_max_budget ? tg_json_money(ev->max_budget) : NULL);
	json_object_object_add(o, "token", tg_json_str(ev->token));
	json_object_object_add(o, "customer_id",
	                       tg_json_str(ev->group == TG_ACCOUNT_CUSTOMER
	                                           ? ev->customer_id
	                                           : NULL));
	json_object_object_add(o, "user_id", NULL);
	json_object_object_add(o, "team_id", NULL);
	json_object_object_add(o, "user_email", NULL);
	json_object_object_add(o, "key_alias", tg_json_str(ev->key_alias));
	json_object_object_add(o, "projected_exceeded_date", NULL);
	json_object_object_add(o, "projected_spend", NULL);
	json_object_object_add(
	        o, "event", json_object_new_string(tg_event_name(ev->event)));
	json_object_object_add(
	        o, "event_group",
	        json_object_new_string(tg_account_kind_name(ev->group)));
	event_message(ev, msg, sizeof(msg));
	json_object_object_add(o, "event_message", json_object_new_string(msg));
	/* Beside the seed's: the tag of a tag's event, and which API the
	 * charged call was of. */
	if (ev->group == TG_ACCOUNT_TAG)
		json_object_object_add(o, "tag", tg_json_str(ev->tag));
	if (ev->event == TG_EVENT_SPEND_TRACKED && ev->call_type != NULL)
		json_object_object_add(o, "call_type",
		                       json_object_new_string(ev->call_type));
	return take_text(o);
}

char *
tg_event_slack_body(const struct tg_event_info *ev)
{
	struct json_object *o = json_object_new_object();
	char msg[1024], text[1100];

	event_message(ev, msg, sizeof(msg));
	snprintf(text, sizeof(text), "tollgate budget alert: %s", msg);
	json_object_object_add(o, "text", json_object_new_string(text));
	return take_text(o);
}

/* One outbox row of ev for target ("webhook" or "slack"), body given. */
static enum tg_rc
insert_row(struct tg_db *db, const char *event_id, const char *target,
           const struct tg_event_info *ev, const char *body, struct tg_err *err)
{
	struct tg_db_param p[5];

	p[0] = tg_db_str(event_id);
	p[1] = tg_db_str(target);
	p[2] = tg_db_str(tg_event_name(ev->event));
	p[3] = tg_db_str(ev->customer_id);
	p[4] = tg_db_str(body);
	return tg_db_run(db,
	                 "INSERT INTO webhook_outbox (event_id, target, event,"
	                 " customer_id, body, created_at, retry_since,"
	                 " next_attempt_at) VALUES (?, ?, ?, ?, ?,"
	                 " UTC_TIMESTAMP(6), UTC_TIMESTAMP(6),"
	                 " UTC_TIMESTAMP(6))",
	                 p, 5, NULL, err);
}

/* Write ev for every target that wants it (one event id for all). */
static enum tg_rc
write_event(struct tg_db *db, const struct tg_alerting *a,
            const struct tg_event_info *ev, struct tg_err *err)
{
	char id[37];
	char *body;
	enum tg_rc rc = TG_OK;

	if (!tg_alerting_wants(a, ev->event))
		return TG_OK;
	tg_uuid_new(id);
	if (a->webhook_url != NULL) {
		body = tg_event_webhook_body(ev);
		rc = insert_row(db, id, "webhook", ev, body, err);
		free(body);
	}
	if (rc == TG_OK && a->slack_url != NULL &&
	    (ev->event & TG_EVENT_BUDGET_ALERTS) != 0) {
		body = tg_event_slack_body(ev);
		rc = insert_row(db, id, "slack", ev, body, err);
		free(body);
	}
	if (rc == TG_OK)
		tg_outbox_hint();
	return rc;
}

/*
 * Take the mark of alert for acct's period: *first is true for the one
 * transaction that inserts it.
 */
static enum tg_rc
take_mark(struct tg_db *db, const struct tg_event_account *acct,
          const char *alert, const char *period, bool *first,
          struct tg_err *err)
{
	struct tg_db_param p[4];
	enum tg_rc rc;

	*first = false;
	p[0] = tg_db_str(tg_account_kind_name(acct->kind));
	p[1] = tg_db_str(acct->id);
	p[2] = tg_db_str(alert);
	p[3] = tg_db_str(period);
	rc = tg_db_run(db,
	               "INSERT INTO alert_marks (kind, user_id, alert, period,"
	               " created_at) VALUES (?, ?, ?, ?, UTC_TIMESTAMP(6))",
	               p, 4, NULL, err);
	if (rc == TG_ERR_CONFLICT) {
		tg_err_clear(err);
		return TG_OK; /* raised already in this period */
	}
	if (rc == TG_OK)
		*first = true;
	return rc;
}

/* An account as the alerts see it. */
struct account_state {
	bool found;
	tg_money spend;
	char period[32]; /* spend_reset_at, "" without periods */
	bool has_max, has_soft;
	tg_money max_budget, soft_budget;
};

/* acct's spend, period and limits, as this transaction sees them after
 * its charge. */
static enum tg_rc
account_state(struct tg_db *db, const struct tg_event_account *acct,
              struct account_state *st, struct tg_err *err)
{
	struct tg_db_param p[2];
	struct tg_db_result res;
	const char *v;
	enum tg_rc rc;

	memset(st, 0, sizeof(*st));
	p[0] = tg_db_str(acct->kind == TG_ACCOUNT_CUSTOMER ? acct->budget_id
	                                                   : NULL);
	p[1] = tg_db_str(acct->id);
	rc = tg_db_exec(db, tg_account_kind(acct->kind)->sql.state, p, 2, &res,
	                err);
	if (rc != TG_OK)
		return rc;
	if (res.nrows == 1 && tg_db_cell(&res, 0, 0) != NULL &&
	    tg_money_parse(tg_db_cell(&res, 0, 0), &st->spend)) {
		st->found = true;
		tg_strlcpy(st->period, sizeof(st->period),
		           tg_db_cell(&res, 0, 1));
		v = tg_db_cell(&res, 0, 2);
		st->has_max = v != NULL && tg_money_parse(v, &st->max_budget);
		v = tg_db_cell(&res, 0, 3);
		st->has_soft = v != NULL && tg_money_parse(v, &st->soft_budget);
	}
	tg_db_result_free(&res);
	return TG_OK;
}

/* spend >= percent% of limit, exactly. */
static bool
reached(tg_money spend, tg_money limit, int percent)
{
	return (__int128)spend * 100 >= (__int128)limit * percent;
}

/* A budget alert st has reached: its event and the mark that keeps it to
 * once per period and limit. */
struct reached_alert {
	struct tg_event_info ev;
	char mark[64]; /* "<alert>:<limit>" */
};

/* The marks acct's period already has, as one "\n"-joined text. */
static enum tg_rc
marks_taken(struct tg_db *db, const struct tg_event_account *acct,
            const char *period, char **out, struct tg_err *err)
{
	struct tg_db_param p[3];
	struct tg_db_result res;
	size_t len = 1;
	enum tg_rc rc;

	*out = NULL;
	p[0] = tg_db_str(tg_account_kind_name(acct->kind));
	p[1] = tg_db_str(acct->id);
	p[2] = tg_db_str(period);
	rc = tg_db_exec(db,
	                "SELECT alert FROM alert_marks WHERE kind = ? AND"
	                " user_id = ? AND period = ?",
	                p, 3, &res, err);
	if (rc != TG_OK)
		return rc;
	for (size_t i = 0; i < res.nrows; i++)
		len += strlen(tg_db_cell(&res, i, 0)) + 2;
	*out = tg_xmalloc(len + 1);
	strcpy(*out, "\n");
	for (size_t i = 0; i < res.nrows; i++) {
		strcat(*out, tg_db_cell(&res, i, 0));
		strcat(*out, "\n");
	}
	tg_db_result_free(&res);
	return TG_OK;
}

/* The fields every event of acct carries. */
static void
event_of(const struct tg_event_account *acct, struct tg_event_info *ev)
{
	memset(ev, 0, sizeof(*ev));
	ev->group = acct->kind;
	ev->customer_id = acct->kind == TG_ACCOUNT_CUSTOMER ? acct->id : NULL;
	ev->tag = acct->kind == TG_ACCOUNT_TAG ? acct->id : NULL;
	ev->token = acct->token;
	ev->key_alias = acct->key_alias;
	ev->call_type = acct->call_type;
}

/*
 * Every budget alert st has reached (refused: budget_crossed regardless),
 * each written by the one transaction that takes its mark.  The marks
 * already taken are read first, so that an account past a threshold does
 * not try (and fail) to take it again on every charge.
 */
static enum tg_rc
budget_alerts(struct tg_db *db, const struct tg_alerting *a,
              const struct tg_event_account *acct,
              const struct account_state *st, bool refused, struct tg_err *err)
{
	static const int percents[] = {85, 95};
	struct reached_alert r[4];
	char limit[TG_MONEY_STRLEN], key[70];
	char *taken = NULL;
	size_t n = 0;
	enum tg_rc rc = TG_OK;

	for (size_t i = 0; i < 4; i++) {
		event_of(acct, &r[i].ev);
		r[i].mark[0] = '\0';
		r[i].ev.spend = st->spend;
		r[i].ev.has_max_budget = st->has_max;
		r[i].ev.max_budget = st->max_budget;
	}
	tg_money_format(st->max_budget, limit, sizeof(limit));
	for (size_t i = 0; st->has_max && i < 2; i++) {
		if (!reached(st->spend, st->max_budget, percents[i]))
			continue;
		r[n].ev.event = TG_EVENT_THRESHOLD_CROSSED;
		r[n].ev.percent = percents[i];
		snprintf(r[n].mark, sizeof(r[n].mark), "threshold_%d:%s",
		         percents[i], limit);
		n++;
	}
	if (refused || (st->has_max && st->spend >= st->max_budget)) {
		r[n].ev.event = TG_EVENT_BUDGET_CROSSED;
		r[n].ev.refused = refused &&
		                  !(st->has_max && st->spend >= st->max_budget);
		snprintf(r[n].mark, sizeof(r[n].mark), "budget_crossed:%s",
		         limit);
		n++;
	}
	if (st->has_soft && st->spend >= st->soft_budget) {
		r[n].ev.event = TG_EVENT_SOFT_BUDGET_CROSSED;
		r[n].ev.soft_budget = st->soft_budget;
		tg_money_format(st->soft_budget, limit, sizeof(limit));
		snprintf(r[n].mark, sizeof(r[n].mark), "soft_budget_crossed:%s",
		         limit);
		n++;
	}
	if (n == 0)
		return TG_OK;
	rc = marks_taken(db, acct, st->period, &taken, err);
	for (size_t i = 0; rc == TG_OK && i < n; i++) {
		bool first;

		snprintf(key, sizeof(key), "\n%s\n", r[i].mark);
		if (!tg_alerting_wants(a, r[i].ev.event) ||
		    strstr(taken, key) != NULL)
			continue;
		rc = take_mark(db, acct, r[i].mark, st->period, &first, err);
		if (rc == TG_OK && first)
			rc = write_event(db, a, &r[i].ev, err);
	}
	free(taken);
	return rc;
}

bool
tg_events_on(const struct tg_alerting *a)
{
	return a != NULL && a->events != 0 &&
	       (a->webhook_url != NULL || a->slack_url != NULL);
}

enum tg_rc
tg_events_charged(struct tg_db *db, const struct tg_alerting *a,
                  const struct tg_event_account *acct, bool cost_known,
                  tg_money cost, struct tg_err *err)
{
	struct account_state st;
	struct tg_event_info ev;
	enum tg_rc rc;

	if (!tg_events_on(a) || acct->id == NULL || acct->id[0] == '\0')
		return TG_OK;
	rc = account_state(db, acct, &st, err);
	if (rc != TG_OK || !st.found)
		return rc;
	if (cost_known && acct->kind == TG_ACCOUNT_CUSTOMER) {
		event_of(acct, &ev);
		ev.event = TG_EVENT_SPEND_TRACKED;
		ev.spend = cost;
		ev.has_max_budget = st.has_max;
		ev.max_budget = st.max_budget;
		rc = write_event(db, a, &ev, err);
		if (rc != TG_OK)
			return rc;
	}
	return budget_alerts(db, a, acct, &st, false, err);
}

struct refused_arg {
	const struct tg_alerting *a;
	const struct tg_event_account *acct;
};

static enum tg_rc
refused_txn(struct tg_db *db, void *varg, struct tg_err *err)
{
	const struct refused_arg *r = varg;
	struct account_state st;
	enum tg_rc rc;

	rc = account_state(db, r->acct, &st, err);
	if (rc != TG_OK || !st.found)
		return rc;
	return budget_alerts(db, r->a, r->acct, &st, true, err);
}

enum tg_rc
tg_events_refused(struct tg_db *db, const struct tg_alerting *a,
                  const struct tg_event_account *acct, struct tg_err *err)
{
	struct refused_arg r = {a, acct};

	if (!tg_events_on(a) ||
	    !tg_alerting_wants(a, TG_EVENT_BUDGET_CROSSED) ||
	    acct->id == NULL || acct->id[0] == '\0')
		return TG_OK;
	return tg_db_txn(db, refused_txn, &r, err);
}
