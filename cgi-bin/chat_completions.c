/*
 * chat_completions: POST /chat/completions and /v1/chat/completions.
 * The call is metered by lib/meter.c; its API is lib/api_chat.c.
 */
#include "app.h"
#include "meter.h"

static const struct tg_route routes[] = {
        TG_METER_ROUTE("/chat/completions", chat),
        TG_METER_ROUTE("/v1/chat/completions", chat),
};

static const struct tg_program program = {.name = "chat_completions",
                                          .routes = routes,
                                          .nroutes = sizeof(routes) /
                                                     sizeof(routes[0])};

int
main(void)
{
	return tg_app_main(&program);
}
