/*
 * events: the webhook events a charge raises (SPEC 9), written into the
 * outbox (sql/004_outbox.sql) inside the ledger's own transaction, so that
 * a charge and its events commit together or not at all.  lib/outbox.c
 * delivers them.
 *
 * spend_tracked is written for each settled call of a customer, with the
 * call's cost.  The budget alerts (threshold_crossed at 85% and 95% of
 * max_budget, budget_crossed at 100% or at the first refusal,
 * soft_budget_crossed at soft_budget) are written once per account and
 * period, for customers (event_group "customer") and for virtual keys
 * (event_group "key", SPEC 13): the first transaction to insert the
 * alert's mark (alert_marks, keyed by the account's kind and id, alert and
 * period end) writes the event; every other, in any process, finds the key
 * taken.
 */
#ifndef TG_EVENTS_H
#define TG_EVENTS_H

#include <stdbool.h>

#include "account.h"
#include "config.h"
#include "db.h"
#include "err.h"
#include "money.h"

/* What one event says (strings not owned; NULL prints as null). */
struct tg_event_info {
	enum tg_event event;
	enum tg_account_kind group; /* whose: event_group */
	const char *customer_id;    /* NULL for a key's event */
	const char *tag;            /* a tag's event: its name; else NULL */
	const char *token;          /* sha256 hex of the key used */
	const char *key_alias;      /* that virtual key's alias */
	tg_money spend;             /* the call's cost, or the period's total */
	bool has_max_budget;
	tg_money max_budget;
	int percent;           /* threshold_crossed: 85 or 95 */
	bool refused;          /* budget_crossed raised by a refusal */
	tg_money soft_budget;  /* soft_budget_crossed */
	const char *call_type; /* spend_tracked: the call's, or NULL */
};

/* "spend_tracked", "threshold_crossed", ... */
const char *tg_event_name(enum tg_event e);

/* The webhook body of SPEC 9, fields in the seed's order (caller frees). */
char *tg_event_webhook_body(const struct tg_event_info *ev);

/* A Slack incoming-webhook body, {"text": ...} (caller frees). */
char *tg_event_slack_body(const struct tg_event_info *ev);

/* The account a charge or a refusal concerns.  Strings not owned. */
struct tg_event_account {
	enum tg_account_kind kind;
	const char *id; /* the customer's user_id, the key's token, the tag */
	const char *budget_id; /* a customer's tier when it has no budget of
	                          its own (may be NULL); unused for keys */
	const char *token;     /* sha256 hex of the key the call used */
	const char *key_alias; /* that key's alias, if a virtual key's */
	/* A charge's call type (LiteLLM's: acompletion, anthropic_messages,
	 * ...), in its spend_tracked event; NULL: none. */
	const char *call_type;
};

/*
 * Whether a charge can raise any event: false when a says alerting is off
 * (NULL, no event, or no target), so that tg_events_charged() would write
 * nothing and read nothing.
 */
bool tg_events_on(const struct tg_alerting *a);

/*
 * In the transaction of a charge to acct: write spend_tracked when
 * cost_known and acct is a customer (cost the call's charge), and every
 * budget alert the account's spend has reached for the first time in its
 * period.  Nothing when a says alerting is off (NULL or no target).
 */
enum tg_rc tg_events_charged(struct tg_db *db, const struct tg_alerting *a,
                             const struct tg_event_account *acct,
                             bool cost_known, tg_money cost,
                             struct tg_err *err);

/*
 * Admission refused acct for its budget: budget_crossed, once per period
 * (the same mark as reaching 100%), in a transaction of its own.
 */
enum tg_rc tg_events_refused(struct tg_db *db, const struct tg_alerting *a,
                             const struct tg_event_account *acct,
                             struct tg_err *err);

#endif
