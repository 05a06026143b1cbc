/*
 * customer: the customer routes (SPEC 8, 8.1), each also under /end_user/:
 * /customer/new, /customer/info.
 *
 * One program per resource rather than per URL: each FastCGI program holds
 * its own database connection and statements, so one pool serves every
 * customer route.
 */
#include <stddef.h>

#include "app.h"
#include "customer.h"

#define NFIELDS(t) (sizeof(t) / sizeof((t)[0]))

static const struct tg_field new_fields[] = {
        {"user_id", TG_FIELD_ID, TG_FIELD_REQUIRED},
        {"alias", TG_FIELD_ID, 0},
        {"blocked", TG_FIELD_BOOL, 0},
        {"budget_id", TG_FIELD_ID, 0},
        {"allowed_model_region", TG_FIELD_REGION, 0},
        {"default_model", TG_FIELD_STRING, 0},
        TG_BUDGET_FIELDS,
};
enum {
	F_USER_ID,
	F_ALIAS,
	F_BLOCKED,
	F_BUDGET_ID,
	F_REGION,
	F_DEFAULT_MODEL,
	F_BUDGET /* the TG_BUDGET_FIELDS run */
};

static const char *
str(struct tg_req *req, size_t i)
{
	const struct tg_value *v = tg_req_field(req, i);
	return v->given ? v->str : NULL;
}

static enum tg_rc
handle_new(struct tg_req *req, struct tg_err *err)
{
	struct tg_customer_input in = {0};
	struct tg_customer c;
	struct tg_db *db;
	enum tg_rc rc;

	in.user_id = str(req, F_USER_ID);
	in.alias = str(req, F_ALIAS);
	in.blocked_set = tg_req_field(req, F_BLOCKED)->given;
	in.blocked = tg_req_field(req, F_BLOCKED)->num != 0;
	in.budget_id = str(req, F_BUDGET_ID);
	tg_budget_input_from_values(tg_req_field(req, F_BUDGET), &in.budget);
	in.allowed_model_region = str(req, F_REGION);
	in.default_model = str(req, F_DEFAULT_MODEL);

	if (in.default_model != NULL &&
	    !tg_config_has_model(tg_req_config(req), in.default_model))
		return tg_err_set(err, TG_ERR_UNPROCESSABLE, "default_model",
		                  "default_model=%s is not a model of this "
		                  "proxy. Call `/v1/models` to view available "
		                  "models.",
		                  in.default_model);
	if ((rc = tg_req_db(req, &db, err)) != TG_OK)
		return rc;
	if ((rc = tg_customer_create(db, &in, "master_key", &c, err)) != TG_OK)
		return rc;
	tg_req_respond_json(req, 200, tg_customer_to_json(&c));
	tg_customer_free(&c);
	return TG_OK;
}

static const struct tg_field info_fields[] = {
        {"end_user_id", TG_FIELD_ID, TG_FIELD_REQUIRED},
};

static enum tg_rc
handle_info(struct tg_req *req, struct tg_err *err)
{
	struct tg_customer c;
	struct tg_db *db;
	enum tg_rc rc;

	if ((rc = tg_req_db(req, &db, err)) != TG_OK)
		return rc;
	rc = tg_customer_get(db, tg_req_field(req, 0)->str,
	                     tg_req_config(req)->max_end_user_budget_id, &c,
	                     err);
	if (rc != TG_OK)
		return rc;
	tg_req_respond_json(req, 200, tg_customer_to_json(&c));
	tg_customer_free(&c);
	return TG_OK;
}

#define ROUTES(path, method, body, fields, handler)                            \
	{"/customer/" path, method, true, body, fields,                        \
	 NFIELDS(fields),   handler},                                          \
	{                                                                      \
		"/end_user/" path, method, true, body, fields,                 \
		        NFIELDS(fields), handler                               \
	}

static const struct tg_route routes[] = {
        ROUTES("new", "POST", TG_BODY_MGMT, new_fields, handle_new),
        ROUTES("info", "GET", TG_BODY_NONE, info_fields, handle_info),
};

static const struct tg_program program = {"customer", routes, NFIELDS(routes)};

int
main(void)
{
	return tg_app_main(&program);
}
