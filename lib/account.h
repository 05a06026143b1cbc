/*
 * account: what customers (SPEC 3), virtual keys (SPEC 13) and tags (SPEC
 * 11) share as the accounts a call is charged to.  Each holds spend (the
 * current period's), reserved (the holds of its calls in flight) and
 * spend_reset_at, and points at a budget row for its limits; a call with a
 * virtual key, a customer id and tags is admitted, limited, charged and
 * alerted on for each.
 *
 * The modules that do so (ledger, reclaim, ratelimit, events) run one
 * statement text per kind, from the kind's row below, so that each kind's
 * table is read through its own primary key; the rows they share
 * (rate_windows, in_flight, alert_marks) carry the kind's name, since a
 * customer id may be any text, a key's token included.
 */
#ifndef TG_ACCOUNT_H
#define TG_ACCOUNT_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "db.h"
#include "err.h"

#include "money.h"

struct tg_budget;   /* budget.h */
struct tg_opt_time; /* budget.h */

enum tg_account_kind {
	TG_ACCOUNT_CUSTOMER, /* customers, by user_id */
	TG_ACCOUNT_KEY,      /* api_keys, by token (sha256 hex of the key) */
	TG_ACCOUNT_TAG,      /* tags, by tag_name (SPEC 11) */
};

/*
 * An account as the ledger's admission and the rate limits see it,
 * whatever its kind: a view into a customer, a key or a tag as loaded
 * (tg_customer_account(), tg_key_account(), tg_tag_account()), valid while
 * that lives.  A call's accounts are its customer, its key and its tags
 * that exist, in that order (tags by name): the order every transaction
 * locks them in.
 */
struct tg_account {
	enum tg_account_kind kind;
	const char *id; /* user_id, the key's token, the tag's name */
	/* Its effective budget (NULL: none), and that budget's id as the
	 * kind's statements take it (their "default budget" parameter: a
	 * customer's own or its tier's; NULL for the other kinds, whose own
	 * row names it). */
	const struct tg_budget *budget;
	const char *budget_id;
	tg_money spend;        /* as loaded, in its current period */
	const char *key_alias; /* a key's alias (its events), else NULL */
};

/*
 * What tollgate knows of each kind of account, in one table (as the
 * provider table is for upstreams): its name, its table and the column
 * that identifies a row, and the statements the ledger, the reclaim, the
 * rate limits, the alerts and the period resets run on an account of that
 * kind, each made from those.  A kind is a row of lib/account.c; the
 * modules never name an account's table themselves.
 *
 * Every statement reads the account's budget as budgets.budget_id =
 * COALESCE(a.budget_id, ?): a customer without a budget of its own falls
 * back to the default tier (the parameter); a key's is passed NULL.
 */
struct tg_account_kind_info {
	enum tg_account_kind kind;
	/* "customer", "key" or "tag": the kind column of the shared tables,
	 * and the webhook event_group (SPEC 9). */
	const char *name;
	const char *table;     /* "customers", "api_keys", "tags" */
	const char *id_column; /* "user_id", "token", "tag_name" */
	struct {
		/* tg_account_apply_reset(): (next, id, now). */
		const char *reset;
		/* The row locked, with the server's clock (the rate limits'
		 * admissions of one account one at a time): (id). */
		const char *lock;
		/* reserved += amount: (amount, id). */
		const char *reserve;
		/* reserved += amount if spend + reserved + amount <=
		 * max_budget or no max_budget: (default budget, amount, id,
		 * amount). */
		const char *reserve_if;
		/* spend, max_budget: (default budget, id). */
		const char *spend;
		/* A charge and a release, after a due reset: (next, now,
		 * charge, next, now, next, release, id); next NULL without
		 * periods. */
		const char *charge;
		/* spend as the charge would see it, reserved, max_budget,
		 * locked: (next, now, default budget, id). */
		const char *room;
		/* The correction of an unsettled charge in the period it
		 * went into: (next, now, period_end, charge, unsettled, id). */
		const char *correct;
		/* The reclaim's view, locked: spend_reset_at, budget_duration,
		 * a reset due, the server's clock, the key's alias (NULL for
		 * a customer): (default budget, id). */
		const char *period;
		/* The alerts' view: spend, spend_reset_at, max_budget,
		 * soft_budget: (default budget, id). */
		const char *state;
	} sql;
};

/* The row of kind (never NULL). */
const struct tg_account_kind_info *tg_account_kind(enum tg_account_kind kind);

/* tg_account_kind(kind)->name. */
const char *tg_account_kind_name(enum tg_account_kind kind);

/*
 * What tollgate keeps of account id (id_len bytes: a customer id may hold
 * any byte) of kind beside its own row, deleted
 * with it: its rate-limit windows, its budget alert marks (an account
 * created again under the id is new: its alerts are raised again,
 * lib/events.h) and its per-model spend (model_spend; a schema before
 * sql/010 has none).  Its ledger rows stay.
 */
enum tg_rc tg_account_forget(struct tg_db *db, enum tg_account_kind kind,
                             const char *id, size_t id_len, struct tg_err *err);

/*
 * The spend of account id (of kind) on each model its budget caps
 * (model_max_budget), in the current period of each, as LiteLLM's
 * model_spend: {"<model>": <USD>}, into *out (the caller's).  A schema
 * before sql/010 has none: {}.
 */
enum tg_rc tg_account_model_spend(struct tg_db *db, enum tg_account_kind kind,
                                  const char *id, struct json_object **out,
                                  struct tg_err *err);

/*
 * What a kind's reader says of the account it has just read, for
 * tg_account_load(): its id, its budget (NULL: none; advanced in place)
 * and its spend_reset_at, each pointing into the kind's own row.
 */
struct tg_account_row {
	const char *id;
	struct tg_budget *budget;
	const struct tg_opt_time *spend_reset_at;
};

/*
 * A kind's reader: read the account's row (again: it replaces what it read
 * before) into the place arg names; *found false when there is none (then
 * nothing is held), else *row says where its account's parts are.
 */
typedef enum tg_rc (*tg_account_read_fn)(struct tg_db *db, void *arg,
                                         bool *found,
                                         struct tg_account_row *row,
                                         struct tg_err *err);

/*
 * The load of an account of any kind as it is now (SPEC 6), the one
 * sequence every kind's reading goes through: read it, start its next
 * period if one is due (tg_account_apply_reset()) and, when that changed
 * the row (or another process did), read it again; then, with advance,
 * move its budget's own budget_reset_at on (tg_budget_advance()).
 * *found as read_row's.  On an error the reader may hold a row, which the
 * caller frees as it would on success.
 */
enum tg_rc tg_account_load(struct tg_db *db, enum tg_account_kind kind,
                           tg_account_read_fn read_row, void *arg, bool advance,
                           bool *found, struct tg_err *err);

/*
 * Budget periods pass lazily (SPEC 6): when budget has a budget_duration
 * and the account's period ended (spend_reset_at, unset: never started),
 * start the next one: spend 0 (kept when the first period starts) and
 * spend_reset_at the end of the period that holds now, in one UPDATE
 * guarded by the old spend_reset_at, so that processes racing over the
 * same due reset apply it once.  *changed tells that the account must be
 * read again (also when another process won the race).  budget NULL: no
 * budget, nothing to do.
 */
enum tg_rc tg_account_apply_reset(struct tg_db *db, enum tg_account_kind kind,
                                  const char *id,
                                  const struct tg_budget *budget,
                                  const struct tg_opt_time *spend_reset_at,
                                  bool *changed, struct tg_err *err);

#endif
