/*
 * customer_routes: the handlers and field tables of /customer/new,
 * /customer/info and /customer/update (SPEC 8, 8.1), for the programs that
 * serve them (each route also under /end_user/).
 */
#ifndef TG_CUSTOMER_ROUTES_H
#define TG_CUSTOMER_ROUTES_H

#include "app.h"
#include "budget.h"

/*
 * POST /customer/new: create a customer, with a private budget, on a tier
 * (budget_id) or on the default tier; answers the customer as
 * /customer/info does.  Its field table is tg_customer_routes_fields.
 */
#define TG_CUSTOMER_ROUTES_NFIELDS (6 + TG_BUDGET_NFIELDS)
extern const struct tg_field
        tg_customer_routes_fields[TG_CUSTOMER_ROUTES_NFIELDS];
enum tg_rc tg_customer_routes_new(struct tg_req *req, struct tg_err *err);

/*
 * GET /customer/info?end_user_id=: the customer with its current-period
 * spend and effective budget.  Its field table is
 * tg_customer_routes_info_fields.
 */
#define TG_CUSTOMER_ROUTES_INFO_NFIELDS 1
extern const struct tg_field
        tg_customer_routes_info_fields[TG_CUSTOMER_ROUTES_INFO_NFIELDS];
enum tg_rc tg_customer_routes_info(struct tg_req *req, struct tg_err *err);

/*
 * POST /customer/update: the fields of /customer/new
 * (tg_customer_routes_fields); null clears.
 */
enum tg_rc tg_customer_routes_update(struct tg_req *req, struct tg_err *err);

#endif
