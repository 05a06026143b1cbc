/*
 * budget_new: POST /budget/new: a reusable budget ("pricing tier") that
 * customers point at (SPEC 8).
 */
#include <stddef.h>

#include "app.h"
#include "budget.h"

static const struct tg_field fields[] = {
        {"budget_id", TG_FIELD_ID, 0},
        {"max_budget", TG_FIELD_MONEY, 0},
        {"soft_budget", TG_FIELD_MONEY, 0},
        {"tpm_limit", TG_FIELD_COUNT, 0},
        {"rpm_limit", TG_FIELD_COUNT, 0},
        {"max_parallel_requests", TG_FIELD_COUNT, 0},
        {"budget_duration", TG_FIELD_DURATION, 0},
        {"budget_reset_at", TG_FIELD_TIME, 0},
        {"model_max_budget", TG_FIELD_OBJECT, 0},
};
enum {
	F_BUDGET_ID,
	F_MAX_BUDGET,
	F_SOFT_BUDGET,
	F_TPM,
	F_RPM,
	F_PARALLEL,
	F_DURATION,
	F_RESET_AT,
	F_MODEL_MAX_BUDGET
};

static enum tg_rc
handle(struct tg_req *req, struct tg_err *err)
{
	struct tg_budget_input in = {0};
	struct tg_budget b;
	struct tg_db *db;
	const struct tg_value *v;
	enum tg_rc rc;

#define MONEY(i, dst)                                                          \
	do {                                                                   \
		v = tg_req_field(req, i);                                      \
		(dst).set = v->given;                                          \
		(dst).v = v->num;                                              \
	} while (0)
	MONEY(F_MAX_BUDGET, in.max_budget);
	MONEY(F_SOFT_BUDGET, in.soft_budget);
	MONEY(F_TPM, in.tpm_limit);
	MONEY(F_RPM, in.rpm_limit);
	MONEY(F_PARALLEL, in.max_parallel_requests);
#undef MONEY
	v = tg_req_field(req, F_RESET_AT);
	in.budget_reset_at.set = v->given;
	in.budget_reset_at.v = (time_t)v->num;
	v = tg_req_field(req, F_DURATION);
	in.budget_duration = v->given ? v->str : NULL;
	v = tg_req_field(req, F_MODEL_MAX_BUDGET);
	in.model_max_budget = v->given
	                              ? json_object_to_json_string_ext(
	                                        v->json, JSON_C_TO_STRING_PLAIN)
	                              : NULL;

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
