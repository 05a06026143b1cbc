/*
 * chat: the life of one chat completion (SPEC 4.2), in order: validate,
 * resolve the model, load or create the customer, refuse the blocked,
 * admit against the budget (reserving the worst case), call the upstream,
 * settle in one transaction, answer.
 *
 * The ledger row is written for every request that reached the upstream,
 * charged or not, so the ledger tells what happened to each call.
 */
#define _POSIX_C_SOURCE 200809L

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat.h"
#include "customer.h"
#include "fields.h"
#include "ledger.h"
#include "log.h"
#include "money.h"
#include "pricing.h"
#include "upstream.h"
#include "util.h"

#define MAX_CANDIDATES 64

const struct tg_field tg_chat_fields[TG_CHAT_NFIELDS] = {
        {"model", TG_FIELD_STRING, 0},
        {"stream", TG_FIELD_BOOL, 0},
        {"max_tokens", TG_FIELD_COUNT, 0},
        {"max_completion_tokens", TG_FIELD_COUNT, 0},
};
enum { F_MODEL, F_STREAM, F_MAX_TOKENS, F_MAX_COMPLETION_TOKENS };

static bool
blank(const char *s)
{
	for (; *s != '\0'; s++)
		if (!isspace((unsigned char)*s))
			return false;
	return true;
}

/* Take v as the id if it is a usable one; *taken tells whether it was. */
static enum tg_rc
take_id(const char *where, const char *text, size_t n, char *buf, size_t len,
        bool *taken, struct tg_err *err)
{
	*taken = false;
	if (text == NULL || blank(text))
		return TG_OK;
	if (!tg_id_valid(text, n) || n >= len || memchr(text, '\0', n))
		return tg_err_set(err, TG_ERR_UNPROCESSABLE, where,
		                  "%s must be 1 to 255 bytes of valid UTF-8",
		                  where);
	memcpy(buf, text, n);
	buf[n] = '\0';
	*taken = true;
	return TG_OK;
}

static enum tg_rc
take_json_id(const char *where, struct json_object *v, char *buf, size_t len,
             bool *taken, struct tg_err *err)
{
	*taken = false;
	switch (json_object_get_type(v)) {
	case json_type_null: return TG_OK;
	case json_type_string:
		return take_id(where, json_object_get_string(v),
		               (size_t)json_object_get_string_len(v), buf, len,
		               taken, err);
	case json_type_int:
	case json_type_double: {
		const char *t = json_object_get_string(v);
		return take_id(where, t, strlen(t), buf, len, taken, err);
	}
	case json_type_boolean:
	case json_type_object:
	case json_type_array: break;
	}
	return tg_err_set(err, TG_ERR_UNPROCESSABLE, where,
	                  "%s must be a string or a number", where);
}

enum tg_rc
tg_chat_customer_id(const char *hdr_customer, const char *hdr_end_user,
                    struct json_object *body, char *buf, size_t len,
                    bool *found, struct tg_err *err)
{
	struct json_object *v, *meta;
	enum tg_rc rc;
	bool taken = false;

	rc = take_id("x-litellm-customer-id", hdr_customer,
	             hdr_customer ? strlen(hdr_customer) : 0, buf, len, &taken,
	             err);
	if (rc != TG_OK || taken)
		goto out;
	rc = take_id("x-litellm-end-user-id", hdr_end_user,
	             hdr_end_user ? strlen(hdr_end_user) : 0, buf, len, &taken,
	             err);
	if (rc != TG_OK || taken)
		goto out;
	if (json_object_object_get_ex(body, "user", &v)) {
		rc = take_json_id("user", v, buf, len, &taken, err);
		if (rc != TG_OK || taken)
			goto out;
	}
	if (json_object_object_get_ex(body, "metadata", &meta) &&
	    json_object_is_type(meta, json_type_object) &&
	    json_object_object_get_ex(meta, "user_id", &v))
		rc = take_json_id("metadata.user_id", v, buf, len, &taken, err);
out:
	if (rc == TG_OK)
		*found = taken;
	return rc;
}

static int64_t
count_image_parts(struct json_object *messages)
{
	int64_t images = 0;
	size_t n = json_object_array_length(messages);

	for (size_t i = 0; i < n; i++) {
		struct json_object *m = json_object_array_get_idx(messages, i);
		struct json_object *content, *type;

		if (!json_object_object_get_ex(m, "content", &content) ||
		    !json_object_is_type(content, json_type_array))
			continue;
		for (size_t j = 0; j < json_object_array_length(content); j++) {
			struct json_object *part =
			        json_object_array_get_idx(content, j);
			if (json_object_object_get_ex(part, "type", &type) &&
			    json_object_is_type(type, json_type_string) &&
			    strcmp(json_object_get_string(type), "image_url") ==
			            0)
				images++;
		}
	}
	return images;
}

void
tg_chat_bounds(const struct tg_config *cfg, const struct tg_deployment *d,
               struct json_object *body, size_t body_len, int64_t *prompt_bound,
               int64_t *output_bound)
{
	struct json_object *v, *messages;
	int64_t out = 0;

	/* A BPE token covers at least one byte of text, so the body's size
	 * bounds the prompt; an image is billed by its size, not its bytes. */
	*prompt_bound = (int64_t)body_len;
	if (json_object_object_get_ex(body, "messages", &messages) &&
	    json_object_is_type(messages, json_type_array))
		*prompt_bound +=
		        count_image_parts(messages) * TG_IMAGE_TOKENS_MAX;

	if (json_object_object_get_ex(body, "max_completion_tokens", &v) &&
	    v != NULL)
		tg_decimal_parse(json_object_get_string(v), 0, &out);
	if (out <= 0 && json_object_object_get_ex(body, "max_tokens", &v) &&
	    v != NULL)
		tg_decimal_parse(json_object_get_string(v), 0, &out);
	if (out <= 0)
		out = d->price.max_output_tokens;
	if (out <= 0)
		out = cfg->default_max_tokens;
	*output_bound = out;
}

/* Fisher-Yates over the candidates, so load spreads over deployments. */
static void
shuffle(size_t *idx, size_t n)
{
	unsigned char r[MAX_CANDIDATES * 2];
	char uuid[37];

	if (n < 2)
		return;
	/* tg_uuid_new is our one source of randomness; 122 bits per call. */
	for (size_t i = 0; i < sizeof(r); i += 16) {
		tg_uuid_new(uuid);
		for (size_t j = 0; j < 16 && i + j < sizeof(r); j++)
			r[i + j] = (unsigned char)uuid[j * 2] ^
			           (unsigned char)(uuid[j * 2 + 1] << 4);
	}
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = ((size_t)r[i * 2] << 8 | r[i * 2 + 1]) % (i + 1);
		size_t t = idx[i];
		idx[i] = idx[j];
		idx[j] = t;
	}
}

static bool
retryable(enum tg_rc rc, const struct tg_upstream_response *resp)
{
	if (rc == TG_ERR_UPSTREAM_CONNECT || rc == TG_ERR_TIMEOUT)
		return true;
	return rc == TG_OK && (resp->status == 429 || resp->status >= 500);
}

/* The envelope type for an upstream's status, in the SPEC's vocabulary. */
static const char *
upstream_type(long status)
{
	switch (status) {
	case 400: return "invalid_request_error";
	case 401: return "auth_error";
	case 403: return "permission_error";
	case 404: return "not_found";
	case 408: return "timeout_error";
	case 413: return "invalid_request_error";
	case 422: return "invalid_request_error";
	case 429: return "rate_limit_error";
	case 503: return "service_unavailable";
	default:
		return status >= 500 ? "internal_server_error"
		                     : "invalid_request_error";
	}
}

/* Whether text is an OpenAI error envelope {"error": {...}}. */
static bool
is_envelope(const char *text, size_t len)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *obj = json_tokener_parse_ex(tok, text, (int)len);
	struct json_object *e;
	bool yes = obj != NULL && json_object_is_type(obj, json_type_object) &&
	           json_object_object_get_ex(obj, "error", &e) &&
	           json_object_is_type(e, json_type_object);

	json_object_put(obj);
	json_tokener_free(tok);
	return yes;
}

/* Bytes of the choices' text: an upper bound of completion tokens when the
 * upstream did not say. */
static int64_t
completion_bytes(const char *text, size_t len)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *obj = json_tokener_parse_ex(tok, text, (int)len);
	struct json_object *choices, *msg, *content;
	int64_t n = 0;

	if (obj != NULL &&
	    json_object_object_get_ex(obj, "choices", &choices) &&
	    json_object_is_type(choices, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(choices); i++) {
			struct json_object *c =
			        json_object_array_get_idx(choices, i);
			if (json_object_object_get_ex(c, "message", &msg) &&
			    json_object_object_get_ex(msg, "content", &content))
				n += (int64_t)strlen(
				        json_object_get_string(content));
		}
	} else {
		n = (int64_t)len;
	}
	json_object_put(obj);
	json_tokener_free(tok);
	return n;
}

struct chat {
	struct tg_req *req;
	const struct tg_config *cfg;
	struct tg_db *db;
	struct json_object *body;
	size_t body_len;
	char user_id[256];
	bool has_customer;
	struct tg_customer cust;
	const char *model;
	size_t cand[MAX_CANDIDATES];
	size_t ncand;
	tg_money estimate;
	struct tg_reservation resv;
};

/* Steps 3 to 6 of SPEC 4.2: model, customer, blocked, region. */
static enum tg_rc
resolve(struct chat *c, struct tg_err *err)
{
	const struct tg_value *model = tg_req_field(c->req, F_MODEL);
	size_t all[MAX_CANDIDATES], n;
	enum tg_rc rc;

	c->model = model->given ? model->str : NULL;
	if (c->model != NULL && !tg_config_has_model(c->cfg, c->model))
		goto unknown_model;
	rc = tg_chat_customer_id(tg_req_header(c->req, "x-litellm-customer-id"),
	                         tg_req_header(c->req, "x-litellm-end-user-id"),
	                         c->body, c->user_id, sizeof(c->user_id),
	                         &c->has_customer, err);
	if (rc != TG_OK)
		return rc;
	if (c->has_customer) {
		rc = tg_customer_upsert(c->db, c->user_id,
		                        c->cfg->max_end_user_budget_id,
		                        &c->cust, err);
		if (rc != TG_OK) {
			c->has_customer = false;
			return rc;
		}
		if (c->model == NULL && c->cust.default_model != NULL) {
			c->model = c->cust.default_model;
			if (!tg_config_has_model(c->cfg, c->model))
				goto unknown_model;
		}
	}
	if (c->model == NULL)
		return tg_err_set(err, TG_ERR_BAD_REQUEST, "model",
		                  "Missing required field: model");
	if (c->has_customer && c->cust.blocked)
		return tg_err_set(err, TG_ERR_FORBIDDEN, NULL,
		                  "User blocked from making LLM API Calls. "
		                  "User=%s",
		                  c->user_id);

	n = tg_config_deployments(c->cfg, c->model, all, MAX_CANDIDATES);
	for (size_t i = 0; i < n; i++) {
		const char *region = c->cfg->deployments[all[i]].region;
		if (c->has_customer && c->cust.allowed_model_region != NULL &&
		    (region == NULL ||
		     strcmp(region, c->cust.allowed_model_region) != 0))
			continue;
		c->cand[c->ncand++] = all[i];
	}
	if (c->ncand == 0)
		return tg_err_set(err, TG_ERR_BAD_REQUEST, "model",
		                  "No deployment of model=%s is in the "
		                  "customer's allowed region '%s'",
		                  c->model, c->cust.allowed_model_region);
	shuffle(c->cand, c->ncand);
	return TG_OK;

unknown_model:
	return tg_err_set(err, TG_ERR_BAD_REQUEST, "model",
	                  "Invalid model name passed in model=%s. Call "
	                  "`/v1/models` to view available models for your "
	                  "key.",
	                  c->model);
}

/* Step 8: the worst case over every deployment that may serve it. */
static enum tg_rc
admit(struct chat *c, struct tg_err *err)
{
	long hold = 0;
	enum tg_rc rc;

	c->estimate = 0;
	for (size_t i = 0; i < c->ncand; i++) {
		const struct tg_deployment *d =
		        &c->cfg->deployments[c->cand[i]];
		int64_t prompt, output;
		tg_money est;

		tg_chat_bounds(c->cfg, d, c->body, c->body_len, &prompt,
		               &output);
		rc = tg_pricing_estimate(&d->price, prompt, output, &est, err);
		if (rc != TG_OK)
			return rc;
		if (est > c->estimate)
			c->estimate = est;
		if (d->timeout_s > hold)
			hold = d->timeout_s;
	}
	if (!c->has_customer)
		return TG_OK;
	/* A hold outlives every attempt the request may make; after that its
	 * process is presumed dead and the hold is reclaimed. */
	hold = hold * (c->cfg->num_retries + 1) + 60;
	rc = tg_ledger_admit(c->db, &c->cust, c->estimate,
	                     c->cfg->budget_enforcement, hold,
	                     tg_req_id(c->req), &c->resv, err);
	if (rc == TG_ERR_BUDGET)
		tg_req_add_header(c->req, "x-should-retry", "false");
	return rc;
}

static char *
metadata_json(const struct tg_deployment *d, int attempts, bool estimated)
{
	struct json_object *m = json_object_new_object();
	char *text;

	json_object_object_add(m, "model_group",
	                       json_object_new_string(d->model_name));
	json_object_object_add(m, "attempts", json_object_new_int(attempts));
	if (estimated)
		json_object_object_add(m, "usage_estimated",
		                       json_object_new_boolean(1));
	text = tg_xstrdup(
	        json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN));
	json_object_put(m);
	return text;
}

/* Release the hold of a request that never reached settlement. */
static void
release(struct chat *c, const struct tg_deployment *d, int attempts)
{
	struct tg_ledger_entry e;
	struct tg_err err;
	char *meta = metadata_json(d, attempts, false);

	memset(&e, 0, sizeof(e));
	tg_err_clear(&err);
	e.request_id = tg_req_id(c->req);
	e.end_user = c->has_customer ? c->user_id : "";
	e.model = c->model;
	e.model_id = d->litellm_model;
	e.api_key_hash = tg_req_key_hash(c->req);
	e.call_type = "acompletion";
	e.success = false;
	e.start_us = e.end_us = tg_req_start_us(c->req);
	e.metadata = meta;
	if (tg_ledger_settle(c->db, c->has_customer ? &c->cust : NULL, &e,
	                     &c->resv, &err) != TG_OK)
		tg_log_error("could not release a hold: %s", err.message);
	free(meta);
}

enum tg_rc
tg_chat_handle(struct tg_req *req, struct tg_err *err)
{
	struct chat c;
	struct tg_upstream_response resp;
	struct tg_ledger_entry e;
	struct tg_usage usage;
	struct json_object *messages;
	const struct tg_deployment *d = NULL;
	const char *raw;
	char *up_body = NULL, *meta = NULL;
	char cost_text[TG_MONEY_STRLEN];
	size_t up_len;
	tg_money cost = 0;
	enum tg_rc rc, up_rc = TG_OK;
	int attempts = 0;
	bool success, estimated = false;
	struct timespec ts;

	memset(&c, 0, sizeof(c));
	memset(&resp, 0, sizeof(resp));
	c.req = req;
	c.cfg = tg_req_config(req);
	c.body = tg_req_json(req);
	raw = tg_req_body(req, &c.body_len);
	(void)raw;

	if (!json_object_object_get_ex(c.body, "messages", &messages) ||
	    messages == NULL) {
		rc = tg_err_set(err, TG_ERR_BAD_REQUEST, "messages",
		                "Missing required field: messages");
		goto out;
	}
	if (!json_object_is_type(messages, json_type_array) ||
	    json_object_array_length(messages) == 0) {
		rc = tg_err_set(err, TG_ERR_UNPROCESSABLE, "messages",
		                "messages must be a non-empty array");
		goto out;
	}
	if (tg_req_field(req, F_STREAM)->given &&
	    tg_req_field(req, F_STREAM)->num) {
		rc = tg_err_set(err, TG_ERR_BAD_REQUEST, "stream",
		                "streaming is not supported yet");
		goto out;
	}
	/* The ledger is not optional: without the database nothing is sent
	 * upstream, so no tokens go unaccounted. */
	if ((rc = tg_req_db(req, &c.db, err)) != TG_OK)
		goto out;
	if ((rc = resolve(&c, err)) != TG_OK)
		goto out;
	if ((rc = admit(&c, err)) != TG_OK)
		goto out;

	/* Step 9: the deployments in shuffled order, retrying on failures
	 * that another deployment (or a second try) may not have. */
	for (;;) {
		d = &c.cfg->deployments[c.cand[(size_t)attempts % c.ncand]];
		attempts++;
		up_body = tg_upstream_body(d, c.body, &up_len);
		up_rc = tg_upstream_call(d, up_body, up_len, d->timeout_s,
		                         &resp, err);
		free(up_body);
		up_body = NULL;
		if (!retryable(up_rc, &resp) || attempts > c.cfg->num_retries)
			break;
		tg_log_warn("deployment %s failed (%s, status %ld); retrying",
		            d->litellm_model, tg_rc_str(up_rc), resp.status);
		tg_upstream_response_free(&resp);
		memset(&resp, 0, sizeof(resp));
	}

	/* Step 10: settle. */
	success = up_rc == TG_OK && resp.status >= 200 && resp.status < 300;
	memset(&usage, 0, sizeof(usage));
	if (success) {
		if (!tg_usage_parse(resp.body, resp.body_len, &usage)) {
			/* No usage: charge the upper bound rather than nothing.
			 */
			int64_t prompt, output;
			tg_chat_bounds(c.cfg, d, c.body, c.body_len, &prompt,
			               &output);
			usage.prompt_tokens = prompt;
			usage.completion_tokens =
			        completion_bytes(resp.body, resp.body_len);
			usage.total_tokens =
			        usage.prompt_tokens + usage.completion_tokens;
			estimated = true;
		}
		rc = tg_pricing_cost(&d->price, usage.prompt_tokens,
		                     usage.completion_tokens,
		                     usage.cached_tokens, &cost, err);
		if (rc != TG_OK) {
			release(&c, d, attempts);
			goto out;
		}
	}
	meta = metadata_json(d, attempts, estimated);
	clock_gettime(CLOCK_REALTIME, &ts);
	memset(&e, 0, sizeof(e));
	e.request_id = tg_req_id(req);
	e.end_user = c.has_customer ? c.user_id : "";
	e.model = c.model;
	e.model_id = d->litellm_model;
	e.api_key_hash = tg_req_key_hash(req);
	e.call_type = "acompletion";
	e.api_base = resp.api_base;
	e.success = success;
	e.spend = success ? cost : 0;
	e.prompt_tokens = usage.prompt_tokens;
	e.completion_tokens = usage.completion_tokens;
	e.total_tokens = usage.total_tokens;
	e.start_us = tg_req_start_us(req);
	e.end_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
	e.metadata = meta;
	{
		struct tg_err serr;
		tg_err_clear(&serr);
		rc = tg_ledger_settle(c.db, c.has_customer ? &c.cust : NULL, &e,
		                      &c.resv, &serr);
		if (rc != TG_OK) {
			/* The upstream answered but the ledger cannot say so:
			 * the client must not get tokens we did not record. */
			tg_log_error("settlement failed after retries; %s of "
			             "usage unrecorded: %s",
			             success ? "the upstream's" : "no",
			             serr.message);
			rc = tg_err_set(err, TG_ERR_DB, NULL,
			                "Could not record the request in the "
			                "ledger: %s",
			                serr.message);
			goto out;
		}
	}

	/* Step 11: answer. */
	if (success) {
		tg_money_format(cost, cost_text, sizeof(cost_text));
		tg_req_add_header(req, "x-litellm-response-cost", cost_text);
		tg_req_respond_raw(req, 200, resp.body, resp.body_len);
		rc = TG_OK;
	} else if (up_rc != TG_OK) {
		rc = up_rc; /* err was filled by the upstream call */
	} else if (resp.body != NULL && is_envelope(resp.body, resp.body_len)) {
		tg_req_respond_raw(req, (int)resp.status, resp.body,
		                   resp.body_len);
		rc = TG_OK;
	} else {
		rc = tg_err_set(err, TG_ERR_UPSTREAM, NULL,
		                "Upstream error %ld: %.300s", resp.status,
		                resp.body ? resp.body : "");
		err->status = (int)resp.status;
		snprintf(err->type, sizeof(err->type), "%s",
		         upstream_type(resp.status));
	}

out:
	free(meta);
	tg_upstream_response_free(&resp);
	if (c.has_customer)
		tg_customer_free(&c.cust);
	return rc;
}
