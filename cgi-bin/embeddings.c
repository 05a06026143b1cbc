/*
 * embeddings: POST /embeddings and /v1/embeddings.  The call is metered by
 * lib/meter.c; its API is lib/api_embeddings.c.
 */
#include "app.h"
#include "meter.h"

static const struct tg_route routes[] = {
        TG_METER_ROUTE("/embeddings", embeddings),
        TG_METER_ROUTE("/v1/embeddings", embeddings),
};

static const struct tg_program program = {.name = "embeddings",
                                          .routes = routes,
                                          .nroutes = sizeof(routes) /
                                                     sizeof(routes[0])};

int
main(void)
{
	return tg_app_main(&program);
}
