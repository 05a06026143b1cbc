/*
 * events: the webhook events a charge raises (SPEC 9), written into the
 * outbox (sql/004_outbox.sql) inside the ledger's own transaction, so that
 * a charge and its events commit together or not at all.  lib/outbox.c
 * delivers them.
 *
 * spend_tracked is written for each settled call of a customer, with the
 * call's cost.  The budget alerts (threshold_crossed at 85% and 95% of
 * max_budget, budget_crossed at 100% or at the first refusal,
 * soft_budget_crossed at soft_budget) are written once per customer and
 * period: the first transaction to insert the alert's mark (alert_marks,
 * keyed by customer, alert and period end) writes the event; every other,
 * in any process, finds the key taken.
 */
#ifndef TG_EVENTS_H
#define TG_EVENTS_H

#include <stdbool.h>

#include "config.h"
#include "db.h"
#include "err.h"
#include "money.h"

/* What one event says (strings not owned; NULL prints as null). */
struct tg_event_info {
	enum tg_event event;
	const char *customer_id;
	const char *token; /* sha256 hex of the key used */
	tg_money spend;    /* the call's cost, or the period's total */
	bool has_max_budget;
	tg_money max_budget;
	int percent;          /* threshold_crossed: 85 or 95 */
	bool refused;         /* budget_crossed raised by a refusal */
	tg_money soft_budget; /* soft_budget_crossed */
};

/* "spend_tracked", "threshold_crossed", ... */
const char *tg_event_name(enum tg_event e);

/* The webhook body of SPEC 9, fields in the seed's order (caller frees). */
char *tg_event_webhook_body(const struct tg_event_info *ev);

/* A Slack incoming-webhook body, {"text": ...} (caller frees). */
char *tg_event_slack_body(const struct tg_event_info *ev);

/*
 * In the transaction of a charge to user_id's account (budget_id: the
 * budget it is on unless it has its own, may be NULL): write spend_tracked when
 * cost_known (cost the call's charge, token the key's hash), and every budget
 * alert the account's spend has reached for the first time in its period.
 * Nothing when a says alerting is off (NULL or no target).
 */
enum tg_rc tg_events_charged(struct tg_db *db, const struct tg_alerting *a,
                             const char *user_id, const char *budget_id,
                             bool cost_known, tg_money cost, const char *token,
                             struct tg_err *err);

/*
 * Admission refused user_id for its budget: budget_crossed, once per
 * period (the same mark as reaching 100%), in a transaction of its own.
 */
enum tg_rc tg_events_refused(struct tg_db *db, const struct tg_alerting *a,
                             const char *user_id, const char *budget_id,
                             const char *token, struct tg_err *err);

#endif
