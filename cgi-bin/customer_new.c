/*
 * customer_new: POST /customer/new (and /end_user/new): create a customer,
 * with its own budget, on a shared tier or on the default tier (SPEC 8).
 * The work is in lib/customer_routes.c; this program only declares its
 * routes.
 *
 * A program of its own rather than one of cgi-bin/customer's routes: the
 * endpoints of the customer flow (/chat/completions, /customer/new,
 * /customer/info, /budget/new) each get their own process pool, so that
 * no other route's requests queue in front of them (README, "The
 * programs").
 */
#include "app.h"
#include "customer_routes.h"

#define NEW_ROUTE(path)                                                        \
	{                                                                      \
		path, "POST", TG_AUTH_MASTER, TG_BODY_MGMT,                    \
		        tg_customer_routes_fields, TG_CUSTOMER_ROUTES_NFIELDS, \
		        tg_customer_routes_new                                 \
	}

static const struct tg_route routes[] = {
        NEW_ROUTE("/customer/new"),
        NEW_ROUTE("/end_user/new"),
};

static const struct tg_program program = {.name = "customer_new",
                                          .routes = routes,
                                          .nroutes = sizeof(routes) /
                                                     sizeof(routes[0])};

int
main(void)
{
	return tg_app_main(&program);
}
