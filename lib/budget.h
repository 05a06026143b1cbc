/*
 * budget: budget rows ("pricing tiers"), shared by customers (SPEC 3, 8).
 */
#ifndef TG_BUDGET_H
#define TG_BUDGET_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <json-c/json.h>

#include "account.h"
#include "db.h"
#include "err.h"
#include "fields.h"
#include "money.h"

struct tg_opt_money {
	bool set;
	tg_money v;
};
struct tg_opt_i64 {
	bool set;
	int64_t v;
};
struct tg_opt_time {
	bool set;
	time_t v;
};
/* A field an update sets (v), clears (set, v NULL) or leaves (!set). */
struct tg_opt_str {
	bool set;
	const char *v;
};

/* A budget row.  Strings are owned (freed by tg_budget_free). */
struct tg_budget {
	char *budget_id;
	struct tg_opt_money max_budget;
	struct tg_opt_money soft_budget;
	struct tg_opt_i64 max_parallel_requests;
	struct tg_opt_i64 tpm_limit;
	struct tg_opt_i64 rpm_limit;
	char *model_max_budget; /* JSON object text, or NULL */
	char *budget_duration;  /* "30d", or NULL */
	struct tg_opt_time budget_reset_at;
	time_t created_at, updated_at;
	char *created_by, *updated_by;
};

/*
 * The budget fields every endpoint that takes them declares (/customer/new,
 * /customer/update, /budget/new, /budget/update), in this order: a
 * program's field table holds TG_BUDGET_FIELDS as a run of rows, and
 * tg_budget_input_from_values() reads them back from the first one's value.
 */
enum tg_budget_field {
	TG_BUDGET_F_MAX_BUDGET,
	TG_BUDGET_F_SOFT_BUDGET,
	TG_BUDGET_F_TPM_LIMIT,
	TG_BUDGET_F_RPM_LIMIT,
	TG_BUDGET_F_MAX_PARALLEL_REQUESTS,
	TG_BUDGET_F_BUDGET_DURATION,
	TG_BUDGET_F_MODEL_MAX_BUDGET,
	TG_BUDGET_F_BUDGET_RESET_AT,
	TG_BUDGET_NFIELDS
};
#define TG_BUDGET_FIELDS                                                       \
	{"max_budget", TG_FIELD_MONEY, 0}, {"soft_budget", TG_FIELD_MONEY, 0}, \
	        {"tpm_limit", TG_FIELD_COUNT, 0},                              \
	        {"rpm_limit", TG_FIELD_COUNT, 0},                              \
	        {"max_parallel_requests", TG_FIELD_COUNT, 0},                  \
	        {"budget_duration", TG_FIELD_DURATION, 0},                     \
	        {"model_max_budget", TG_FIELD_OBJECT, 0},                      \
	{                                                                      \
		"budget_reset_at", TG_FIELD_TIME, 0                            \
	}

/* The name of budget field f ("max_budget"). */
const char *tg_budget_field_name(enum tg_budget_field f);

/* Budget fields as given in a request; unset = not given.  Not owned. */
struct tg_budget_input {
	struct tg_opt_money max_budget;
	struct tg_opt_money soft_budget;
	struct tg_opt_i64 max_parallel_requests;
	struct tg_opt_i64 tpm_limit;
	struct tg_opt_i64 rpm_limit;
	const char *model_max_budget; /* JSON object text or NULL */
	const char *budget_duration;  /* already validated, or NULL */
	struct tg_opt_time budget_reset_at;
	/* Fields given as JSON null, bit (1u << enum tg_budget_field): on an
	 * update they clear the column; on create null is "not given". */
	unsigned cleared;
};

/*
 * Fill *out from the TG_BUDGET_NFIELDS validated values starting at v (a
 * route's values, from its TG_BUDGET_FIELDS run).  Strings borrow from v;
 * model_max_budget borrows json-c's text of the object, valid while the
 * request's body lives.
 */
void tg_budget_input_from_values(const struct tg_value *v,
                                 struct tg_budget_input *out);

/* Whether any budget field is set in in (given, not null). */
bool tg_budget_input_any(const struct tg_budget_input *in);
/* The first budget field set or cleared in in, or TG_BUDGET_NFIELDS. */
enum tg_budget_field tg_budget_input_first(const struct tg_budget_input *in);

/*
 * model_max_budget (LiteLLM's shape: {"<model name>": {"budget_limit":
 * <USD>, "time_period": "<duration>"}}, time_period optional: no reset):
 * TG_ERR_UNPROCESSABLE, naming the model and the field, unless text (NULL:
 * none) is an object of such caps, each budget_limit a number >= 0 in
 * whole 1e-10 USD and each time_period a budget_duration.
 */
enum tg_rc tg_budget_check_model_max_budget(const char *text,
                                            struct tg_err *err);

/*
 * The cap b's model_max_budget sets on model (the client's model name):
 * true with *limit and period (its time_period, "" for none), false when
 * it caps no such model.
 */
bool tg_budget_model_cap(const struct tg_budget *b, const char *model,
                         tg_money *limit, char *period, size_t period_len);

/*
 * Insert a budget.  budget_id NULL makes a UUID.  When budget_reset_at is
 * not given and budget_duration is, it is the period's next reset from now.
 * TG_ERR_CONFLICT "Budget with id '<id>' already exists." on a duplicate.
 * On success *out holds the row as stored (free with tg_budget_free).
 */
enum tg_rc tg_budget_create(struct tg_db *db, const char *budget_id,
                            const struct tg_budget_input *in,
                            const char *created_by, struct tg_budget *out,
                            struct tg_err *err);

/* Load a budget; TG_ERR_NOT_FOUND when absent. */
enum tg_rc tg_budget_get(struct tg_db *db, const char *budget_id,
                         struct tg_budget *out, struct tg_err *err);

/* The budget row in SPEC 8's shape (new reference for the caller). */
struct json_object *tg_budget_to_json(const struct tg_budget *b);
/* The subset shown as a customer's litellm_budget_table (SPEC 8.1). */
struct json_object *tg_budget_table_json(const struct tg_budget *b);

void tg_budget_free(struct tg_budget *b);

/*
 * Change budget_id's fields inside the caller's transaction: only the
 * fields set or cleared in in change (SPEC 8 /budget/update).  A change of
 * budget_duration recomputes budget_reset_at (unless in gives it) and the
 * next reset (spend_reset_at) of every account on the budget (customers,
 * a virtual key on its own), also the customers
 * on it as the default tier when budget_id equals default_budget_id (may be
 * NULL); their spend stays.  TG_ERR_NOT_FOUND "Budget id=<id> does not
 * exist in db" (param budget_id).
 */
enum tg_rc tg_budget_apply(struct tg_db *db, const char *budget_id,
                           const struct tg_budget_input *in,
                           const char *updated_by,
                           const char *default_budget_id, struct tg_err *err);

/* tg_budget_apply() in its own transaction, then the row as stored; a
 * virtual key's budget is TG_ERR_NOT_FOUND here (it is the key's). */
enum tg_rc tg_budget_update(struct tg_db *db, const char *budget_id,
                            const struct tg_budget_input *in,
                            const char *updated_by,
                            const char *default_budget_id,
                            struct tg_budget *out, struct tg_err *err);

/*
 * Budget periods pass lazily (SPEC 6): when b has a budget_duration and its
 * budget_reset_at is due (or unset), move it to the end of the period that
 * contains now, in b and in the database (guarded by the old value, so
 * racing processes apply it once).  No query when nothing is due.
 */
enum tg_rc tg_budget_advance(struct tg_db *db, struct tg_budget *b,
                             struct tg_err *err);

/*
 * Budget rows as a JSON array (new reference in *out): every budget
 * (ids NULL) ordered by budget_id, or those of the JSON array of ids in
 * its order, the unknown ones left out (as LiteLLM's /budget/info).  The
 * budgets of virtual keys are theirs alone and never listed.  Every
 * budget's row (/budget/list) adds to tg_budget_to_json()'s fields
 * "private_for" (the customer a private budget was made for, else null),
 * "customer_count" (the customers on it; for default_budget_id, which
 * may be NULL, also those without a budget_id), "private_for_tag" (the tag
 * a budget was made for by /tag/new, else null) and "tag_count" (the tags
 * on it).
 */
enum tg_rc tg_budget_list(struct tg_db *db, struct json_object *ids,
                          const char *default_budget_id,
                          struct json_object **out, struct tg_err *err);

/*
 * Delete budget_id; *out holds the row as it was.  Customers on it fall
 * back to no budget (the foreign key's ON DELETE SET NULL); their spend
 * stays.  TG_ERR_NOT_FOUND when absent, or a virtual key's.
 */
enum tg_rc tg_budget_delete(struct tg_db *db, const char *budget_id,
                            struct tg_budget *out, struct tg_err *err);

/*
 * A budget of an account's own, copied from source_id (NULL, or a row that
 * is not there: an empty one), inside the caller's transaction: a new id
 * into out; owner as tg_budget_insert() records it (a customer's only).
 * How an account on a shared tier changes its budget fields without
 * changing the tier's.
 */
enum tg_rc tg_budget_copy(struct tg_db *db, const char *source_id,
                          const char *by, enum tg_account_kind owner_kind,
                          const char *owner, char out[37], struct tg_err *err);

/*
 * For modules that join budgets (customer, ledger): the column list, with
 * the alias b, that tg_budget_from_row() reads, and reading it from row of
 * res starting at column col0.  False when the row is malformed or b's
 * budget_id is NULL (no budget joined); *out is then untouched.
 */
#define TG_BUDGET_COLUMNS                                                      \
	"b.budget_id, b.max_budget, b.soft_budget, b.max_parallel_requests, "  \
	"b.tpm_limit, b.rpm_limit, b.model_max_budget, b.budget_duration, "    \
	"b.budget_reset_at, b.created_at, b.created_by, b.updated_at, "        \
	"b.updated_by"
#define TG_BUDGET_NCOLUMNS 13
bool tg_budget_from_row(const struct tg_db_result *res, size_t row, size_t col0,
                        struct tg_budget *out);

/*
 * The INSERT of tg_budget_create() alone, for use inside a caller's
 * transaction (an account's private budget).  owner (may be NULL: a shared
 * tier) records the account it was made for: a customer's user_id
 * (private_for) or a virtual key's token (private_for_key; such a budget
 * is not listed by tg_budget_list()).  TG_ERR_CONFLICT on a duplicate id.
 */
enum tg_rc tg_budget_insert(struct tg_db *db, const char *budget_id,
                            const struct tg_budget_input *in,
                            const char *created_by,
                            enum tg_account_kind owner_kind, const char *owner,
                            struct tg_err *err);

#endif
