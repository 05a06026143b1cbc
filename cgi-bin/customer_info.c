/*
 * customer_info: GET /customer/info?end_user_id=<id> (and /end_user/info):
 * a customer's current-period spend and limits (SPEC 8, 8.1).
 */
#include "app.h"
#include "customer.h"

static const struct tg_field fields[] = {
        {"end_user_id", TG_FIELD_ID, TG_FIELD_REQUIRED},
};

static enum tg_rc
handle(struct tg_req *req, struct tg_err *err)
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

#define ROUTE(path)                                                            \
	{                                                                      \
		path, "GET", true, TG_BODY_NONE, fields, 1, handle             \
	}

static const struct tg_route routes[] = {
        ROUTE("/customer/info"),
        ROUTE("/end_user/info"),
};

static const struct tg_program program = {"customer_info", routes,
                                          sizeof(routes) / sizeof(routes[0])};

int
main(void)
{
	return tg_app_main(&program);
}
