/*
 * customer: end users keyed by user_id, with their current-period spend and
 * in-flight reservations (SPEC 3, 4.2, 6, 8.1).
 */
#ifndef TG_CUSTOMER_H
#define TG_CUSTOMER_H

#include <stdbool.h>
#include <time.h>

#include <json-c/json.h>

#include "budget.h"
#include "db.h"
#include "err.h"
#include "money.h"

/* A customer row with its effective budget.  Owned strings. */
struct tg_customer {
	char *user_id;
	char *alias;
	bool blocked;
	tg_money spend;    /* current period (a due reset already applied) */
	tg_money reserved; /* held by requests in flight */
	char *budget_id;   /* as stored, or NULL */
	char *allowed_model_region; /* "eu", "us" or NULL */
	char *default_model;
	struct tg_opt_time spend_reset_at;
	bool has_budget; /* own budget_id, else the default tier, when it exists
	                  */
	struct tg_budget budget;
};

/* /customer/new fields; unset or NULL = not given.  Not owned. */
struct tg_customer_input {
	const char *user_id;
	const char *alias;
	bool blocked_set;
	bool blocked;
	const char *budget_id;
	struct tg_budget_input budget; /* private budget fields */
	const char *allowed_model_region;
	const char *default_model;
};

/*
 * Create a customer (SPEC 8 /customer/new).  Budget fields make a private
 * budget row (in the same transaction).  Errors: TG_ERR_CONFLICT "Customer
 * already exists, passed user_id=<id>. Please pass a new user_id.";
 * TG_ERR_UNPROCESSABLE "Set either 'max_budget' or 'budget_id', not both."
 * (param max_budget); TG_ERR_BAD_REQUEST for an unknown budget_id (param
 * budget_id).  The caller has validated default_model against the config.
 */
enum tg_rc tg_customer_create(struct tg_db *db,
                              const struct tg_customer_input *in,
                              const char *created_by, struct tg_customer *out,
                              struct tg_err *err);

/*
 * Load user_id with its effective budget (own, else default_budget_id when
 * that row exists; default_budget_id may be NULL), applying a due period
 * reset first.  TG_ERR_NOT_FOUND "End User Id=<id> does not exist in db"
 * (param end_user_id) when absent.
 */
enum tg_rc tg_customer_get(struct tg_db *db, const char *user_id,
                           const char *default_budget_id,
                           struct tg_customer *out, struct tg_err *err);

/*
 * The chat path: load user_id, creating it first when missing (a new row
 * gets default_budget_id when that budget exists, in the INSERT itself, so
 * concurrent first requests cannot slip past it), and apply a due reset.
 */
enum tg_rc tg_customer_upsert(struct tg_db *db, const char *user_id,
                              const char *default_budget_id,
                              struct tg_customer *out, struct tg_err *err);

/* The customer object of SPEC 8.1 (new reference for the caller). */
struct json_object *tg_customer_to_json(const struct tg_customer *c);

void tg_customer_free(struct tg_customer *c);

#endif
