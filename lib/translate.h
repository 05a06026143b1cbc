/*
 * translate: a client's API served by a deployment that speaks another
 * (a chat completion by an anthropic/ deployment, a Messages API call by
 * an OpenAI-format one), so that any client reaches any model.
 *
 * The meter (lib/meter.c) stays the same: the client's adapter bounds the
 * call and names its fields, the upstream API's adapter reads the usage
 * of the upstream's answer, and a translation turns the request into the
 * upstream's API and the answer, whole or event by event, into the
 * client's:
 *
 *   lib/translate_anthropic.c  chat completions -> Anthropic's Messages
 *   lib/translate_openai.c     Anthropic's Messages -> chat completions
 */
#ifndef TG_TRANSLATE_H
#define TG_TRANSLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "app.h"
#include "config.h"
#include "err.h"
#include "provider.h"
#include "sse.h"

struct tg_relay; /* lib/relay.h */

struct tg_translation {
	enum tg_api client;   /* the route's API */
	enum tg_api upstream; /* the API the deployment speaks */
	/*
	 * What the request holds that the upstream API cannot carry: a 4xx
	 * naming it, before anything is held or sent.
	 */
	enum tg_rc (*check)(const struct tg_req *req, struct tg_err *err);
	/* Prompt tokens the upstream adds to the request beyond its text
	 * (Anthropic's tool use prompt), for the hold. */
	int64_t (*prompt_overhead)(const struct tg_req *req);
	/*
	 * The upstream's body (a new object) for the client's body: the
	 * output bound is output_bound (the hold's), streamed asks for a
	 * stream (with its usage).  The deployment's model and mappings are
	 * applied after (tg_upstream_body).
	 */
	struct json_object *(*request)(struct json_object *body,
	                               int64_t output_bound, bool streamed);
	/* The client's answer (a new object) for the upstream's whole 2xx
	 * answer, or NULL when it is not one. */
	struct json_object *(*answer)(const char *body, size_t len);
	/* An upstream event, after the upstream's dialect noted it: the
	 * client's events for it, written now (lib/relay.h). */
	void (*event)(struct tg_relay *r, const struct tg_sse_event *ev,
	              struct json_object *obj);
	/* The end of a whole stream, after its settlement: the client's
	 * last events (before its dialect's closing). */
	void (*finish)(struct tg_relay *r);
};

extern const struct tg_translation tg_translate_chat_to_messages;
extern const struct tg_translation tg_translate_messages_to_chat;

/*
 * The API a deployment of provider p is called with for a route of API
 * client: client itself when p serves it, else one p serves that a
 * translation reaches (*tr set; else NULL).  false when p can serve the
 * route neither way.
 */
bool tg_translate_route(enum tg_api client, enum tg_provider p,
                        enum tg_api *upstream,
                        const struct tg_translation **tr);

#endif
