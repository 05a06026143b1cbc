/*
 * chat_completions: POST /chat/completions and /v1/chat/completions.
 * The work is in lib/chat.c; this program only declares its routes.
 */
#include "app.h"
#include "chat.h"

#define CHAT_ROUTE(path)                                                       \
	{                                                                      \
		path, "POST", TG_AUTH_MASTER | TG_AUTH_KEY, TG_BODY_LLM,       \
		        tg_chat_fields, TG_CHAT_NFIELDS, tg_chat_handle        \
	}

static const struct tg_route routes[] = {
        CHAT_ROUTE("/chat/completions"),
        CHAT_ROUTE("/v1/chat/completions"),
};

static const struct tg_program program = {"chat_completions", routes,
                                          sizeof(routes) / sizeof(routes[0])};

int
main(void)
{
	return tg_app_main(&program);
}
