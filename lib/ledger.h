/*
 * ledger: holds, admission against a hard budget, settlement, and the
 * reclaim of holds whose process died (SPEC 4.3, 4.4; DESIGN "The ledger").
 *
 * Every request with an account (a customer, a virtual key) that may reach
 * an upstream first takes a hold: a reservations row with its worst-case
 * cost and a deadline, added to the account's reserved.  A request with
 * neither has nobody to charge and takes none; its ledger row is written
 * at settlement (one round trip), and a process that dies during it leaves
 * no row.  With a max_budget (reserve mode) the hold is only
 * granted if spend + reserved + estimate <= max_budget, in one conditional
 * UPDATE, so any number of processes on any number of machines cannot
 * together admit more than the budget allows.  Settlement writes the
 * ledger row, adds the charge and releases the hold in one transaction.
 * The common case of each is one stored procedure CALL (sql/007: one round
 * trip, its own transaction); the rest runs as statements from here.
 *
 * The rule for a hold whose process died (its deadline passed with no
 * settlement): it is charged at its amount, an upper bound of the call's
 * cost, in a spend_logs row with status "unsettled", never silently
 * refunded.  tollgate does not record whether the upstream was contacted
 * (that would cost a database round trip per request, and the window
 * between the admission commit and the upstream send is a few microseconds
 * of local work), so every expired hold is presumed to have reached it.
 * A settlement of the same request that arrives later (from the spool,
 * SPEC 4.4) replaces the unsettled charge with the real one.
 *
 * A budget's model_max_budget caps the spend of one model (the client's
 * model name) in an account of its own: a model_spend row per account and
 * model, with its spend, reserved and period (sql/010).  An account whose
 * budget caps the call's model is admitted only if that row admits the
 * hold too, in the same transaction; the hold row records which accounts
 * did (model_accounts), and whoever deletes it (the settlement, the
 * reclaim) charges and releases those rows as it does the accounts.
 *
 * A call made with a virtual key (SPEC 13) has two accounts, the customer
 * and the key, each with its own spend, reserved and budget, and each tag
 * it names that exists (SPEC 11) is one more.  Its one hold row names them
 * all (user_id, key_token, tags), and every transaction that takes,
 * settles or reclaims it does so for all: admission is granted only if
 * every budget admits it, and whoever deletes the row releases and charges
 * each.  No state exists in which one account holds or was charged for a
 * call and another was not.  Rows of the accounts are always locked
 * customer first, then key, then the tags by name.  A call with tags takes
 * the statements' way (the procedures know customers and keys only).
 */
#ifndef TG_LEDGER_H
#define TG_LEDGER_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "customer.h"
#include "db.h"
#include "err.h"
#include "key.h"
#include "money.h"
#include "tag.h"

/* A tag a hold was taken from (SPEC 11), and what of it: the
 * reservations row's tags column holds {"<name>": flags, ...}. */
struct tg_hold_tag {
	char name[256];
	unsigned flags; /* TG_HOLD_TAG_* */
};
#define TG_HOLD_TAG_BUDGETED 1u /* admitted against its max_budget */
#define TG_HOLD_TAG_MODEL    2u /* held on its model_spend row too */

struct tg_reservation {
	bool held;     /* false: nothing was reserved (admission failed) */
	bool budgeted; /* admitted against the customer's max_budget (reserve
	                  mode): the settlement's charge is capped at it */
	bool key_budgeted; /* the same for the key's max_budget */
	char request_id[37];
	char user_id[256];  /* "" for a request without a customer */
	char key_token[65]; /* "" for a request without a virtual key */
	tg_money amount;    /* held from each account */
	/* The accounts that also held it on their model_spend row for the
	 * call's model (a model_max_budget cap): TG_HOLD_MODEL(kind) bits of
	 * the customer and the key (a tag's say so in its flags). */
	unsigned model_accounts;
	/* The tags it was held from, in the order they are locked (by name). */
	size_t ntags;
	struct tg_hold_tag tags[TG_TAG_MAX];
	/* The admission's answer was lost: which tags it held (if any) is
	 * for its hold row to say (the settlement reads it there). */
	bool tags_unknown;
	/* Admitted in one round trip (tg_admit_v11): the accounts need
	 * nothing of the statements' way (lib/lease.c may lease them). */
	bool fast;
	/* Admitted against a lease (lib/lease.c) rather than a hold of its
	 * own: the reservations row lease_id, from which its charge is
	 * taken; amount is its share (at settlement: what the lease has for
	 * it, where its charge is capped).  "" for a hold of its own. */
	char lease_id[37];
};

/*
 * The tags of r as the reservations row's tags column holds them (JSON
 * text, caller frees; NULL when r has none), and back, ordered by name:
 * false when text is not such an object (r's tags are then none).
 */
char *tg_ledger_tags_text(const struct tg_reservation *r);
bool tg_ledger_tags_parse(const char *text, struct tg_reservation *r);

/* The bit of an account kind in tg_reservation.model_accounts (and the
 * reservations column of the same name). */
#define TG_HOLD_MODEL(kind) (1u << (kind))

/* What a hold records of its request, for an unsettled row. */
struct tg_hold_request {
	const char *request_id;
	const char *model;        /* the client's model name */
	const char *api_key_hash; /* sha256 hex of the key used, or NULL */
	int64_t start_us;         /* Unix epoch microseconds */
	long hold_seconds;        /* the deadline, from now */
	const struct tg_alerting *alerts; /* a refusal's budget_crossed event
	                                     (NULL: none) */
};

/* What the admission of a call needs to know (lib/meter.c fills it). */
struct tg_admission {
	const char *user_id;           /* the customer's id; NULL: none */
	const char *default_budget_id; /* the tier of customers without one */
	const struct tg_key *key;      /* the virtual key; NULL: none */
	/* The tags the call names (tg_tag_names()), and where those of them
	 * that exist are loaded (the caller's array of TG_TAG_MAX, freed by
	 * it) when the admission takes the statements' way: ntags of them,
	 * ordered by name; the others are no accounts. */
	const char *const *tag_names;
	size_t ntag_names;
	struct tg_tag *tags;
	size_t ntags;
	/* On the statements' way, before the gate: the call's accounts (its
	 * customer, key and tags, in the order they are locked). */
	struct tg_account accounts[2 + TG_TAG_MAX];
	size_t naccounts;
	enum tg_enforcement mode;
	/* The worst-case cost over every deployment that may serve the call
	 * for a customer without limits on them; estimate_known false when it
	 * depends on the customer (the model is its default_model). */
	tg_money estimate;
	bool estimate_known;
	struct tg_hold_request hold;
};

/*
 * What the caller checks of the call's customer before anything is held
 * (SPEC 4.2 steps 4 to 7: the default model, blocked, the region, the rate
 * limits), with the customer as loaded (NULL: the call has none).  It sets
 * a->estimate to the worst case over the deployments that may serve this
 * customer, and a->hold to what the hold says of the call (its model, how
 * long it lasts), or refuses the call with an error, which the admission
 * returns.
 */
typedef enum tg_rc (*tg_ledger_gate_fn)(void *arg, const struct tg_customer *c,
                                        struct tg_admission *a,
                                        struct tg_err *err);

/*
 * The admission of a call: load the customer a->user_id (creating it when
 * new: tg_customer_upsert()), and take the hold of the call's worst-case
 * cost from it, from the virtual key a->key and from each tag of
 * a->tag_names that exists, in one transaction: held from all or from
 * none.  For each account with a max_budget, reserve mode grants it only
 * if spend + reserved + estimate <= max_budget, atomically; post mode
 * admits while spend < max_budget.  A call with neither a customer, a key
 * nor a tag that exists has no account to hold from: only gate runs
 * (ledger.h's rule for such calls), and *out is not held.
 *
 * The ledger alone decides how: the common call (its estimate known,
 * reserve mode, a key without rate limits, a customer and tags that are
 * neither blocked, limited to a region or models, rate-limited, capped per
 * model nor due a period reset) in one round trip, the procedure
 * tg_admit_v11 of sql/011, which needs no gate for it; every other call,
 * or a database without the procedure, with statements: the tags and the
 * customer loaded, gate(gate_arg, customer, a, err), then the hold of
 * a->estimate.
 *
 * Refusal: TG_ERR_BUDGET "ExceededBudget: End User=<id> over budget.
 * Spend=<spend>, Budget=<max_budget>" for the customer's budget, "Budget
 * has been exceeded! Current cost: <spend>, Max budget: <max_budget>"
 * (LiteLLM's) for the key's, "ExceededBudget: Tag=<name> over budget. ..."
 * for a tag's, and hold.alerts' budget_crossed event the first time in
 * that account's period.  On TG_OK *out is the hold, to be
 * given to tg_ledger_settle().  Whatever the outcome, *has_customer tells
 * that *cust holds the customer as loaded (the caller frees it with
 * tg_customer_free()): all of it on the statements' way, and what a
 * settlement needs (user_id, spend, and of its effective budget
 * (has_budget) budget_id, max_budget and budget_duration) after the
 * procedure.
 */
enum tg_rc tg_ledger_admit(struct tg_db *db, struct tg_admission *a,
                           tg_ledger_gate_fn gate, void *gate_arg,
                           struct tg_customer *cust, bool *has_customer,
                           struct tg_reservation *out, struct tg_err *err);

/* Whose spend a settlement changes.  Strings not owned; all may be NULL. */
struct tg_ledger_account {
	const char *user_id;         /* NULL: no customer */
	const char *budget_id;       /* the effective budget (own or tier) */
	const char *budget_duration; /* its period, for a due reset */
	/* The virtual key the call used (SPEC 13); key_token NULL: none. */
	const char *key_token;
	const char *key_alias;
	const char *key_budget_duration;
	/* The webhook events its charges raise (lib/events.h); NULL: none. */
	const struct tg_alerting *alerts;
};

/* The accounts of customer c and virtual key k (either may be NULL). */
struct tg_ledger_account tg_ledger_account_of(const struct tg_customer *c,
                                              const struct tg_key *k);

/* One spend_logs row.  Strings may be NULL (stored as NULL or ""). */
struct tg_ledger_entry {
	const char *request_id;
	const char *end_user;     /* "" when the request had no customer */
	const char *model;        /* the client's model name */
	const char *model_id;     /* the deployment: litellm_params.model */
	const char *api_key_hash; /* sha256 hex of the key used */
	const char *call_type;    /* "acompletion" */
	const char *api_base;
	bool success;
	tg_money spend; /* the cost of the usage reported (or bounded) */
	int64_t prompt_tokens, completion_tokens, total_tokens;
	int64_t start_us, end_us; /* Unix epoch microseconds */
	const char *metadata;     /* JSON object text or NULL */
	/* The tags the call named (every one; SPEC 11), for the row's index
	 * by tag (spend_log_tags).  The accounts charged are the hold's. */
	const char *const *tags;
	size_t ntags;
};

/*
 * In one transaction (retried on deadlock / lost connection): insert the
 * ledger row, add its charge to the accounts (the customer and the key,
 * each applying a due reset first) and release r's hold from both if it is
 * still held (a reclaimed hold is not released twice).  The charge is
 * e->spend, except that a budgeted hold whose cost exceeds it is capped so
 * that spend does not pass max_budget, the smaller room of the two when
 * both are budgeted; the row's metadata then has "over_hold": true and
 * "uncapped_cost".  A row already written for the request (a commit whose
 * answer was lost) makes this a no-op; an "unsettled" one is replaced by
 * this settlement and each account corrected by the difference.  The
 * events of acct->alerts are written in the same transaction:
 * spend_tracked for a call of a customer that succeeded or was charged
 * above 0 (a stream cut short is charged what it relayed), and the budget
 * alerts its charge reaches for either account.  *charged (may be NULL) gets
 * what was charged.  TG_ERR_DB when it cannot be written; then nothing of it
 * remains, and tg_db_unavailable() tells whether the database was out of
 * reach (the caller spools it).
 */
enum tg_rc tg_ledger_settle(struct tg_db *db,
                            const struct tg_ledger_account *acct,
                            const struct tg_ledger_entry *e,
                            const struct tg_reservation *r, tg_money *charged,
                            struct tg_err *err);

/* One settlement of a batch (tg_ledger_settle_batch()). */
struct tg_ledger_settlement {
	const struct tg_ledger_account *acct;
	const struct tg_ledger_entry *e;
	const struct tg_reservation *r;
	/* Out: TG_OK settled (or settled before), TG_ERR_DB and others: the
	 * database refused this one (it is not part of the batch). */
	enum tg_rc rc;
	tg_money charged;
};

/*
 * Settle s[0..n) as tg_ledger_settle() settles each, in one transaction:
 * one commit for them all (the spool's group commit, SPEC 4.4).  A
 * settlement the database refuses (not for being out of reach) is left
 * out of the batch, with its rc and the reason in s[i]; the others commit.
 * TG_ERR_DB when the database could not take the batch: none of it
 * remains (tg_db_unavailable() tells whether it was out of reach).
 * A settlement against a lease (r->lease_id; tg_ledger_settle() too)
 * takes its charge off the lease's row rather than deleting a hold of its
 * own; a lease that is gone was charged whole as unsettled, which covers
 * it: nothing more is charged.
 */
enum tg_rc tg_ledger_settle_batch(struct tg_db *db,
                                  struct tg_ledger_settlement *s, size_t n,
                                  struct tg_err *err);

/*
 * Charge the holds whose deadline passed (their process died) as
 * "unsettled" rows, at most limit of them (of user_id's only, unless it is
 * NULL), to the customer and the virtual key they were held for, applying
 * a due period reset as a settlement would (default_budget_id, may be
 * NULL: the tier of customers without one).  The row's metadata has
 * "reason" and "period_end" (the end of the customer's period the charge
 * went into; "key_period_end" the key's).  The budget alerts of alerts (may be
 * NULL) that a charge reaches are written with it (no spend_tracked: the amount
 * is a bound, and the settlement that may replace it later sends the real
 * cost).  *reclaimed (may be NULL) gets the count.
 */
enum tg_rc tg_ledger_reclaim(struct tg_db *db, const char *user_id,
                             const char *default_budget_id,
                             const struct tg_alerting *alerts, int limit,
                             int *reclaimed, struct tg_err *err);

#endif
