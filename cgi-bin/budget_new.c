/*
 * budget_new: POST /budget/new: a reusable budget ("pricing tier") that
 * customers point at (SPEC 8).
 */
#include <stddef.h>

#include "app.h"
#include "budget.h"

static const struct tg_field fields[] = {
        {"budget_id", TG_FIELD_ID, 0},
        TG_BUDGET_FIELDS,
};
enum { F_BUDGET_ID, F_BUDGET /* the TG_BUDGET_FIELDS run */ };

static enum tg_rc
handle(struct tg_req *req, struct tg_err *err)
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
        {"/budget/new", "POST", true, TG_BODY_MGMT, fields,
         sizeof(fields) / sizeof(fields[0]), handle},
};

static const struct tg_program program = {"budget_new", routes, 1};

int
main(void)
{
	return tg_app_main(&program);
}
