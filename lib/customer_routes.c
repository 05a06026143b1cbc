/*
 * customer_routes: the handlers and field tables of /customer/new,
 * /customer/info and /customer/update (SPEC 8, 8.1).
 *
 * They live in the library because three programs serve them from one
 * copy: cgi-bin/customer_new and cgi-bin/customer_info, programs of their
 * own for the customer flow, and cgi-bin/customer, whose /customer/update
 * reads the same field layout as /customer/new and answers the same way.
 * The work is in lib/customer.c.
 */
#include <stddef.h>
#include <string.h>

#include "config.h"
#include "customer.h"
#include "customer_routes.h"

/* /customer/new and /customer/update (where null clears). */
const struct tg_field tg_customer_routes_fields[] = {
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
default_tier(struct tg_req *req)
{
	return tg_req_config(req)->max_end_user_budget_id;
}

static enum tg_rc
check_model(struct tg_req *req, const char *model, struct tg_err *err)
{
	if (model != NULL && !tg_config_has_model(tg_req_config(req), model))
		return tg_err_set(err, TG_ERR_UNPROCESSABLE, "default_model",
		                  "default_model=%s is not a model of this "
		                  "proxy. Call `/v1/models` to view available "
		                  "models.",
		                  model);
	return TG_OK;
}

/*
 * Answer with customer c when rc says it was loaded (and free it), with
 * its spend on each model its budget caps (model_spend), the same on
 * every route that answers with a customer.
 */
static enum tg_rc
respond_customer(struct tg_req *req, enum tg_rc rc, struct tg_customer *c,
                 struct tg_err *err)
{
	struct json_object *o, *ms = NULL;
	struct tg_db *db;

	if (rc != TG_OK)
		return rc;
	rc = tg_req_db(req, &db, err);
	if (rc == TG_OK)
		rc = tg_account_model_spend(db, TG_ACCOUNT_CUSTOMER, c->user_id,
		                            &ms, err);
	if (rc != TG_OK) {
		tg_customer_free(c);
		return rc;
	}
	o = tg_customer_to_json(c);
	json_object_object_add(o, "model_spend", ms);
	tg_req_respond_json(req, 200, o);
	tg_customer_free(c);
	return TG_OK;
}

enum tg_rc
tg_customer_routes_new(struct tg_req *req, struct tg_err *err)
{
	struct tg_customer_input in = {0};
	struct tg_customer c;
	struct tg_db *db;
	enum tg_rc rc;

	in.user_id = tg_req_str(req, F_USER_ID);
	in.alias = tg_req_str(req, F_ALIAS);
	in.blocked_set = tg_req_field(req, F_BLOCKED)->given;
	in.blocked = tg_req_field(req, F_BLOCKED)->num != 0;
	in.budget_id = tg_req_str(req, F_BUDGET_ID);
	tg_budget_input_from_values(tg_req_field(req, F_BUDGET), &in.budget);
	in.allowed_model_region = tg_req_str(req, F_REGION);
	in.default_model = tg_req_str(req, F_DEFAULT_MODEL);

	if ((rc = check_model(req, in.default_model, err)) != TG_OK)
		return rc;
	if ((rc = tg_req_db(req, &db, err)) != TG_OK)
		return rc;
	rc = tg_customer_create(db, &in, default_tier(req), "master_key", &c,
	                        err);
	return respond_customer(req, rc, &c, err);
}

const struct tg_field tg_customer_routes_info_fields[] = {
        {"end_user_id", TG_FIELD_ID, TG_FIELD_REQUIRED},
};

enum tg_rc
tg_customer_routes_info(struct tg_req *req, struct tg_err *err)
{
	struct tg_customer c;
	struct tg_db *db;
	enum tg_rc rc;

	if ((rc = tg_req_db(req, &db, err)) != TG_OK)
		return rc;
	rc = tg_customer_get(db, tg_req_field(req, 0)->str, default_tier(req),
	                     &c, err);
	return respond_customer(req, rc, &c, err);
}

static struct tg_opt_str
opt_str(struct tg_req *req, size_t i)
{
	const struct tg_value *v = tg_req_field(req, i);
	struct tg_opt_str o = {v->given || v->null, v->given ? v->str : NULL};
	return o;
}

enum tg_rc
tg_customer_routes_update(struct tg_req *req, struct tg_err *err)
{
	struct tg_customer_update in;
	struct tg_customer c;
	struct tg_db *db;
	enum tg_rc rc;

	memset(&in, 0, sizeof(in));
	in.user_id = tg_req_str(req, F_USER_ID);
	in.alias = opt_str(req, F_ALIAS);
	in.blocked_set = tg_req_field(req, F_BLOCKED)->given;
	in.blocked = tg_req_field(req, F_BLOCKED)->num != 0;
	in.budget_id = opt_str(req, F_BUDGET_ID);
	tg_budget_input_from_values(tg_req_field(req, F_BUDGET), &in.budget);
	in.allowed_model_region = opt_str(req, F_REGION);
	in.default_model = opt_str(req, F_DEFAULT_MODEL);
	if ((rc = check_model(req, in.default_model.v, err)) != TG_OK)
		return rc;
	if ((rc = tg_req_db(req, &db, err)) != TG_OK)
		return rc;
	rc = tg_customer_update(db, &in, default_tier(req), "master_key", &c,
	                        err);
	return respond_customer(req, rc, &c, err);
}
