/*
 * responses: the OpenAI Responses API (the Codex CLI's only API), with and
 * without /v1: POST /responses is metered (lib/meter.c; its API is
 * lib/api_responses.c); the routes of a response an upstream keeps go to
 * the deployment that made it, uncharged.
 */
#include "app.h"
#include "meter.h"

#define STORED(path, method)                                                   \
	{                                                                      \
		path, method, TG_AUTH_MASTER | TG_AUTH_KEY, TG_BODY_NONE,      \
		        NULL, 0, tg_api_responses_stored                       \
	}

static const struct tg_route routes[] = {
        TG_METER_ROUTE("/responses", responses),
        TG_METER_ROUTE("/v1/responses", responses),
        STORED("/responses/*", "GET"),
        STORED("/v1/responses/*", "GET"),
        STORED("/responses/*", "DELETE"),
        STORED("/v1/responses/*", "DELETE"),
        STORED("/responses/*/input_items", "GET"),
        STORED("/v1/responses/*/input_items", "GET"),
        STORED("/responses/*/cancel", "POST"),
        STORED("/v1/responses/*/cancel", "POST"),
};

static const struct tg_program program = {.name = "responses",
                                          .routes = routes,
                                          .nroutes = sizeof(routes) /
                                                     sizeof(routes[0])};

int
main(void)
{
	return tg_app_main(&program);
}
