/*
 * budget: the budget routes (SPEC 8) other than /budget/new: budgets are
 * reusable limits rows ("pricing tiers") that customers point at.
 * /budget/update, info, list, delete; /budget/update is
 * lib/budget_routes.c's.  /budget/new has a program of its own
 * (cgi-bin/budget_new.c).
 *
 * One program for the rest of the resource (see cgi-bin/customer.c).
 */
#include <stddef.h>

#include "app.h"
#include "budget.h"
#include "budget_routes.h"

#define NFIELDS(t) (sizeof(t) / sizeof((t)[0]))

/* The config's default tier (max_end_user_budget_id), or NULL. */
static const char *
default_tier(struct tg_req *req)
{
	return tg_req_config(req)->max_end_user_budget_id;
}

/*
 * /budget/info {"budgets": [...]}: an empty list is the client's 400
 * (SPEC 8), so the list is checked here rather than by ID_LIST's 422.
 */
static const struct tg_field info_fields[] = {
        {"budgets", TG_FIELD_ARRAY, TG_FIELD_REQUIRED},
};

static enum tg_rc
handle_info(struct tg_req *req, struct tg_err *err)
{
	struct json_object *ids = tg_req_field(req, 0)->json;
	struct json_object *arr;
	struct tg_db *db;
	enum tg_rc rc;

	if (json_object_array_length(ids) == 0)
		return tg_err_set(err, TG_ERR_BAD_REQUEST, "budgets",
		                  "Specify list of budget id's to query. "
		                  "Passed in={'budgets': []}");
	for (size_t i = 0; i < json_object_array_length(ids); i++) {
		struct json_object *e = json_object_array_get_idx(ids, i);
		if (!json_object_is_type(e, json_type_string) ||
		    !tg_id_valid(json_object_get_string(e),
		                 (size_t)json_object_get_string_len(e)))
			return tg_err_set(err, TG_ERR_UNPROCESSABLE, "budgets",
			                  "budgets must be a list of ids");
	}
	if ((rc = tg_req_db(req, &db, err)) != TG_OK)
		return rc;
	if ((rc = tg_budget_list(db, ids, default_tier(req), &arr, err)) !=
	    TG_OK)
		return rc;
	tg_req_respond_json(req, 200, arr);
	return TG_OK;
}

static enum tg_rc
handle_list(struct tg_req *req, struct tg_err *err)
{
	struct json_object *arr;
	struct tg_db *db;
	enum tg_rc rc;

	if ((rc = tg_req_db(req, &db, err)) != TG_OK)
		return rc;
	if ((rc = tg_budget_list(db, NULL, default_tier(req), &arr, err)) !=
	    TG_OK)
		return rc;
	tg_req_respond_json(req, 200, arr);
	return TG_OK;
}

/* /budget/delete {"id": "<budget_id>"} */
static const struct tg_field delete_fields[] = {
        {"id", TG_FIELD_ID, TG_FIELD_REQUIRED},
};

static enum tg_rc
handle_delete(struct tg_req *req, struct tg_err *err)
{
	struct tg_budget b;
	struct tg_db *db;
	enum tg_rc rc;

	if ((rc = tg_req_db(req, &db, err)) != TG_OK)
		return rc;
	rc = tg_budget_delete(db, tg_req_field(req, 0)->str, &b, err);
	if (rc != TG_OK)
		return rc;
	tg_req_respond_json(req, 200, tg_budget_to_json(&b));
	tg_budget_free(&b);
	return TG_OK;
}

static const struct tg_route routes[] = {
        {"/budget/update", "POST", TG_AUTH_MASTER, TG_BODY_MGMT,
         tg_budget_routes_update_fields,
         NFIELDS(tg_budget_routes_update_fields), tg_budget_routes_update},
        {"/budget/info", "POST", TG_AUTH_MASTER, TG_BODY_MGMT, info_fields,
         NFIELDS(info_fields), handle_info},
        {"/budget/list", "GET", TG_AUTH_MASTER, TG_BODY_NONE, NULL, 0,
         handle_list},
        {"/budget/delete", "POST", TG_AUTH_MASTER, TG_BODY_MGMT, delete_fields,
         NFIELDS(delete_fields), handle_delete},
};

static const struct tg_program program = {
        .name = "budget", .routes = routes, .nroutes = NFIELDS(routes)};

int
main(void)
{
	return tg_app_main(&program);
}
