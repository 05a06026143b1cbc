/*
 * budget_new: POST /budget/new: a reusable budget ("pricing tier") that
 * customers point at (SPEC 8).  The work is in lib/budget_routes.c; this
 * program only declares its route.
 *
 * A program of its own for the customer flow (see cgi-bin/customer_new.c).
 */
#include "app.h"
#include "budget_routes.h"

static const struct tg_route routes[] = {
        {"/budget/new", "POST", TG_AUTH_MASTER, TG_BODY_MGMT,
         tg_budget_routes_new_fields, TG_BUDGET_ROUTES_NEW_NFIELDS,
         tg_budget_routes_new},
};

static const struct tg_program program = {.name = "budget_new",
                                          .routes = routes,
                                          .nroutes = sizeof(routes) /
                                                     sizeof(routes[0])};

int
main(void)
{
	return tg_app_main(&program);
}
