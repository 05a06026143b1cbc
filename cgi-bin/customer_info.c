/*
 * customer_info: GET /customer/info?end_user_id=<id> (and /end_user/info):
 * a customer's current-period spend and limits (SPEC 8, 8.1).  The work is
 * in lib/customer_routes.c; this program only declares its routes.
 *
 * A program of its own for the customer flow (see cgi-bin/customer_new.c).
 */
#include "app.h"
#include "customer_routes.h"

#define INFO_ROUTE(path)                                                       \
	{                                                                      \
		path, "GET", TG_AUTH_MASTER, TG_BODY_NONE,                     \
		        tg_customer_routes_info_fields,                        \
		        TG_CUSTOMER_ROUTES_INFO_NFIELDS,                       \
		        tg_customer_routes_info                                \
	}

static const struct tg_route routes[] = {
        INFO_ROUTE("/customer/info"),
        INFO_ROUTE("/end_user/info"),
};

static const struct tg_program program = {.name = "customer_info",
                                          .routes = routes,
                                          .nroutes = sizeof(routes) /
                                                     sizeof(routes[0])};

int
main(void)
{
	return tg_app_main(&program);
}
