/*
 * messages: Anthropic's Messages API, as Claude Code and the Anthropic
 * SDKs speak it: POST /v1/messages (with or without ?beta=true) is metered
 * (lib/meter.c; its API is lib/api_messages.c); POST
 * /v1/messages/count_tokens goes to the model's anthropic/ deployment,
 * uncharged.  Every error, the front line's too, is in Anthropic's
 * envelope.
 */
#include "app.h"
#include "meter.h"

static const struct tg_route routes[] = {
        TG_METER_ROUTE("/v1/messages", messages),
        {"/v1/messages/count_tokens", "POST", TG_AUTH_MASTER | TG_AUTH_KEY,
         TG_BODY_LLM, tg_api_count_tokens_fields,
         sizeof(tg_api_count_tokens_fields) /
                 sizeof(tg_api_count_tokens_fields[0]),
         tg_api_messages_count_tokens},
};

static const struct tg_program program = {.name = "messages",
                                          .routes = routes,
                                          .nroutes = sizeof(routes) /
                                                     sizeof(routes[0]),
                                          .envelope = TG_ENVELOPE_ANTHROPIC};

int
main(void)
{
	return tg_app_main(&program);
}
