/*
 * completions: POST /completions and /v1/completions, the legacy text
 * completions.  The call is metered by lib/meter.c; its API is
 * lib/api_completions.c.
 */
#include "app.h"
#include "meter.h"

static const struct tg_route routes[] = {
        TG_METER_ROUTE("/completions", completions),
        TG_METER_ROUTE("/v1/completions", completions),
};

static const struct tg_program program = {.name = "completions",
                                          .routes = routes,
                                          .nroutes = sizeof(routes) /
                                                     sizeof(routes[0])};

int
main(void)
{
	return tg_app_main(&program);
}
