/*
 * budget_routes: the handlers and field tables of /budget/new and
 * /budget/update (SPEC 8).
 *
 * They live in the library because two programs serve them from one copy:
 * cgi-bin/budget_new, a program of its own for the customer flow, and
 * cgi-bin/budget, whose /budget/update reads the same field layout as
 * /budget/new and answers the same way.  The work is in lib/budget.c.
 */
#include <stddef.h>

#include "budget_routes.h"
#include "config.h"

/* The config's default tier (max_end_user_budget_id), or NULL. */
static const char *
default_tier(struct tg_req *req)
{
	return tg_req_config(req)->max_end_user_budget_id;
}

const struct tg_field tg_budget_routes_new_fields[] = {
        {"budget_id", TG_FIELD_ID, 0},
        TG_BUDGET_FIELDS,
};
enum { F_BUDGET_ID, F_BUDGET /* the TG_BUDGET_FIELDS run */ };

enum tg_rc
tg_budget_routes_new(struct tg_req *req, struct tg_err *err)
{
	struct tg_budget_input in;
	struct tg_budget b;
	struct tg_db *db;
	const struct tg_value *v;
	enum tg_rc rc;

	tg_budget_input_from_values(tg_req_field(req, F_BUDGET), &in);
	if ((rc = tg_req_db(req, &db, err)) != TG_OK)
		return rc;
	v = tg_req_field(req, F_BUDGET_ID);
	rc = tg_budget_create(db, v->given ? v->str : NULL, &in, "master_key",
	                      &b, err);
	if (rc != TG_OK)
		return rc;
	tg_req_respond_json(req, 200, tg_budget_to_json(&b));
	tg_budget_free(&b);
	return TG_OK;
}

/* /budget/update: budget_id + the fields to change; null clears. */
const struct tg_field tg_budget_routes_update_fields[] = {
        {"budget_id", TG_FIELD_ID, TG_FIELD_REQUIRED},
        TG_BUDGET_FIELDS,
};

enum tg_rc
tg_budget_routes_update(struct tg_req *req, struct tg_err *err)
{
	struct tg_budget_input in;
	struct tg_budget b;
	struct tg_db *db;
	enum tg_rc rc;

	tg_budget_input_from_values(tg_req_field(req, F_BUDGET), &in);
	if ((rc = tg_req_db(req, &db, err)) != TG_OK)
		return rc;
	rc = tg_budget_update(db, tg_req_field(req, F_BUDGET_ID)->str, &in,
	                      "master_key", default_tier(req), &b, err);
	if (rc != TG_OK)
		return rc;
	tg_req_respond_json(req, 200, tg_budget_to_json(&b));
	tg_budget_free(&b);
	return TG_OK;
}
