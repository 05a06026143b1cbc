/*
 * meter: one metered LLM call, whatever the route (SPEC 4.2, 11; DESIGN
 * "The metered call").
 *
 * authenticate (the front line) -> the model's deployments -> the call's
 * accounts (customer, virtual key) -> rate limits -> hold -> upstream
 * attempts with failover -> usage -> charge -> settle or spool -> answer
 * (webhook events are written with the settlement and sent after it).
 * The route's API is an adapter (lib/api.h), given as the route's data.
 */
#ifndef TG_METER_H
#define TG_METER_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "api.h"
#include "app.h"
#include "err.h"

/* The most deployments one model name may have. */
#define TG_METER_MAX_CANDIDATES 64

/*
 * The handlers of the metered routes, one per API: each meters a call
 * through the API's adapter (lib/api.h), with the adapter's fields.
 */
enum tg_rc tg_meter_chat(struct tg_req *req, struct tg_err *err);
enum tg_rc tg_meter_responses(struct tg_req *req, struct tg_err *err);
enum tg_rc tg_meter_embeddings(struct tg_req *req, struct tg_err *err);
enum tg_rc tg_meter_completions(struct tg_req *req, struct tg_err *err);
enum tg_rc tg_meter_messages(struct tg_req *req, struct tg_err *err);

/* A metered route of the API whose adapter is tg_api_<api>: its fields,
 * its handler. */
#define TG_METER_ROUTE(path, api)                                              \
	{                                                                      \
		path, "POST", TG_AUTH_MASTER | TG_AUTH_KEY, TG_BODY_LLM,       \
		        tg_api_##api##_fields,                                 \
		        sizeof(tg_api_##api##_fields) /                        \
		                sizeof(tg_api_##api##_fields[0]),              \
		        tg_meter_##api                                         \
	}

/*
 * The customer id (SPEC 4.1): header x-litellm-customer-id, header
 * x-litellm-end-user-id, body "user", body "metadata.user_id"; the first
 * that is not empty or white space wins; a number is its decimal text.
 * Writes it to buf (len >= 256) and sets *found.  TG_ERR_UNPROCESSABLE
 * when the winning value is not a valid id (SPEC 1) or not a string or
 * number.
 */
enum tg_rc tg_meter_customer_id(const char *hdr_customer,
                                const char *hdr_end_user,
                                struct json_object *body, char *buf, size_t len,
                                bool *found, struct tg_err *err);

/*
 * Shuffle idx[0..n) uniformly (Fisher-Yates), so requests spread over the
 * deployments of a model name (SPEC 7.3); n <= TG_METER_MAX_CANDIDATES.
 */
void tg_meter_shuffle(size_t *idx, size_t n);

#endif
