/*
 * budget: the budget routes (SPEC 8): budgets are reusable limits rows
 * ("pricing tiers") that customers point at.  /budget/new.
 *
 * One program for the resource (see cgi-bin/customer.c).
 */
#include <stddef.h>

#include "app.h"
#include "budget.h"

#define NFIELDS(t) (sizeof(t) / sizeof((t)[0]))

static const struct tg_field new_fields[] = {
        {"budget_id", TG_FIELD_ID, 0},
        TG_BUDGET_FIELDS,
};
enum { F_BUDGET_ID, F_BUDGET /* the TG_BUDGET_FIELDS run */ };

static enum tg_rc
handle_new(struct tg_req *req, struct tg_err *err)
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

static const struct tg_route routes[] = {
        {"/budget/new", "POST", true, TG_BODY_MGMT, new_fields,
         NFIELDS(new_fields), handle_new},
};

static const struct tg_program program = {"budget", routes, NFIELDS(routes)};

int
main(void)
{
	return tg_app_main(&program);
}
