/*
 * chat: POST /chat/completions (SPEC 4): who the customer is, what the
 * request may cost at worst, admission, the upstream call, settlement.
 */
#ifndef TG_CHAT_H
#define TG_CHAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "app.h"
#include "config.h"
#include "err.h"

/* The most choices ("n") a request may ask for: OpenAI's limit. */
#define TG_CHAT_N_MAX 128

/* Worst-case tokens of one image part (SPEC 4.3): the largest image bill
 * of the priced models (gpt-4o-mini's 8-tile high-detail image, 48,169). */
#define TG_IMAGE_TOKENS_MAX 48169

/*
 * The customer id (SPEC 4.1): header x-litellm-customer-id, header
 * x-litellm-end-user-id, body "user", body "metadata.user_id"; the first
 * that is not empty or white space wins; a number is its decimal text.
 * Writes it to buf (len >= 256) and sets *found.  TG_ERR_UNPROCESSABLE
 * when the winning value is not a valid id (SPEC 1) or not a string or
 * number.
 */
enum tg_rc tg_chat_customer_id(const char *hdr_customer,
                               const char *hdr_end_user,
                               struct json_object *body, char *buf, size_t len,
                               bool *found, struct tg_err *err);

/*
 * Upper bounds of a request's tokens (SPEC 4.3): prompt = body bytes +
 * TG_IMAGE_TOKENS_MAX per image part; output = max_completion_tokens or
 * max_tokens (the larger when both are given), else the model's
 * max_output_tokens, else default_max_tokens; times "n" (1..TG_CHAT_N_MAX)
 * when more than one choice is asked for.
 */
void tg_chat_bounds(const struct tg_config *cfg, const struct tg_deployment *d,
                    struct json_object *body, size_t body_len,
                    int64_t *prompt_bound, int64_t *output_bound);

/*
 * Shuffle idx[0..n) uniformly (Fisher-Yates), so requests spread over the
 * deployments of a model name (SPEC 7.3); n <= 64.
 */
void tg_chat_shuffle(size_t *idx, size_t n);

/* The handler of /chat/completions and /v1/chat/completions.  Its field
 * table is tg_chat_fields. */
enum tg_rc tg_chat_handle(struct tg_req *req, struct tg_err *err);
#define TG_CHAT_NFIELDS 6
extern const struct tg_field tg_chat_fields[TG_CHAT_NFIELDS];

#endif
