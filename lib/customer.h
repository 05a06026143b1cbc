/*
 * customer: end users keyed by user_id, with their current-period spend and
 * in-flight reservations (SPEC 3, 4.2, 6, 8.1).
 */
#ifndef TG_CUSTOMER_H
#define TG_CUSTOMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
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
 * budget_id).  A customer given neither goes on the default tier
 * (default_budget_id, may be NULL) when it exists, as the chat path's
 * tg_customer_upsert() does, so both show it alike.  The caller has
 * validated default_model against the config.
 */
enum tg_rc tg_customer_create(struct tg_db *db,
                              const struct tg_customer_input *in,
                              const char *default_budget_id,
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

/* /customer/update fields.  Not owned. */
struct tg_customer_update {
	const char *user_id;
	struct tg_opt_str alias;
	bool blocked_set;
	bool blocked;
	struct tg_opt_str budget_id; /* v NULL: off its tier */
	struct tg_budget_input budget;
	struct tg_opt_str allowed_model_region;
	struct tg_opt_str default_model;
};

/*
 * Update a customer (SPEC 8 /customer/update), in one transaction.  Only
 * the fields set change; explicit false and 0 count.  Budget fields change
 * the customer's private budget; a customer on a shared tier (its own or
 * the default, default_budget_id) gets a private copy of it first, so the
 * tier itself never changes here.  budget_id moves it to another tier (its
 * spend stays; its next reset becomes that tier's, computed on its next
 * load) and drops its private budget; budget_id null
 * takes it off its tier.  Errors: TG_ERR_NOT_FOUND "End User Id=<id> does
 * not exist in db" (param user_id); TG_ERR_UNPROCESSABLE for budget_id and
 * budget fields together; TG_ERR_BAD_REQUEST for an unknown budget_id.
 * The caller has validated default_model against the config.
 */
enum tg_rc tg_customer_update(struct tg_db *db,
                              const struct tg_customer_update *in,
                              const char *default_budget_id,
                              const char *updated_by, struct tg_customer *out,
                              struct tg_err *err);

/*
 * Delete the customers of user_ids (a JSON array of ids), all or nothing:
 * TG_ERR_NOT_FOUND "End User Id(s)=<ids> do not exist in db" naming the
 * missing ones, and nothing deleted.  Their private budgets go with them;
 * the ledger keeps its rows.  *deleted = the number deleted.
 */
enum tg_rc tg_customer_delete(struct tg_db *db, struct json_object *user_ids,
                              size_t *deleted, struct tg_err *err);

/*
 * Block (blocked true: missing ids are created, blocked, on the default
 * tier as the chat path would) or unblock (the flag cleared; missing ids
 * are left missing) every id of user_ids, in one transaction.
 */
enum tg_rc tg_customer_set_blocked(struct tg_db *db,
                                   struct json_object *user_ids, bool blocked,
                                   const char *default_budget_id,
                                   struct tg_err *err);

/* Filters and paging of tg_customer_list(). */
struct tg_customer_filter {
	const char *budget_id; /* NULL: any */
	int blocked;           /* -1 any, 0, 1 */
	const char *search;    /* NULL: any; else a substring of the id or
	                          the alias, compared without case */
	int64_t page;          /* from 1 */
	int64_t page_size;     /* 0: every customer */
};

/*
 * Customer objects ordered by user_id (a JSON array, new reference in
 * *out), and in *total how many match the filters on every page.  A
 * period that ended shows spend 0, as the next request will find it
 * (SPEC 6).  Both written on success only.
 */
enum tg_rc tg_customer_list(struct tg_db *db,
                            const struct tg_customer_filter *f,
                            const char *default_budget_id,
                            struct json_object **out, int64_t *total,
                            struct tg_err *err);

/*
 * The ids of a JSON array as the message lists them, LiteLLM's
 * "['a', 'b']" (quotes and backslashes escaped).  Caller frees.
 */
char *tg_customer_ids_text(struct json_object *ids);

/* The customer object of SPEC 8.1 (new reference for the caller). */
struct json_object *tg_customer_to_json(const struct tg_customer *c);

/* c as an account (lib/account.h), a view valid while c lives. */
struct tg_account tg_customer_account(const struct tg_customer *c);

void tg_customer_free(struct tg_customer *c);

#endif
