/*
 * chat: the life of one chat completion (SPEC 4.2), in order: validate,
 * resolve the model, load or create the customer, refuse the blocked,
 * admit against the rate limits, then against the budget (reserving the
 * worst case), call the upstream, settle in one transaction, answer.  A
 * call with a virtual key (SPEC 13) is limited, admitted and charged for
 * the key as well as for the customer, in the same steps.  The common
 * call does steps 3 to 8 in one database round trip (fast_admit()); the
 * others take them one by one.
 *
 * The ledger row is written for every request that reached the upstream,
 * charged or not, so the ledger tells what happened to each call; a call
 * with a customer or a key holds its worst case first, so that a process
 * that dies mid-call is charged by the reclaim (a call with neither has
 * no account to charge, takes no hold, and leaves no row if it dies).
 */
#define _POSIX_C_SOURCE 200809L

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat.h"
#include "chat_priv.h"
#include "customer.h"
#include "fields.h"
#include "ledger.h"
#include "log.h"
#include "money.h"
#include "pricing.h"
#include "ratelimit.h"
#include "spool.h"
#include "sse.h"
#include "upstream.h"
#include "util.h"

const struct tg_field tg_chat_fields[TG_CHAT_NFIELDS] = {
        {"model", TG_FIELD_STRING, 0},
        {"stream", TG_FIELD_BOOL, 0},
        {"max_tokens", TG_FIELD_TOKENS, 0},
        {"max_completion_tokens", TG_FIELD_TOKENS, 0},
        {"messages", TG_FIELD_MESSAGES, 0},
        {"n", TG_FIELD_TOKENS, 0},
};
enum {
	F_MODEL,
	F_STREAM,
	F_MAX_TOKENS,
	F_MAX_COMPLETION_TOKENS,
	F_MESSAGES,
	F_N
};

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

	/* Both given: the larger, as upstreams differ in which they honour
	 * (OpenAI refuses the pair, older servers know only max_tokens).
	 * The front line made each an integer in the body (TG_FIELD_TOKENS),
	 * so the upstream sees the bound used here. */
	for (size_t i = 0; i < 2; i++) {
		static const char *const names[] = {"max_completion_tokens",
		                                    "max_tokens"};
		int64_t bound = 0;

		if (json_object_object_get_ex(body, names[i], &v) &&
		    v != NULL &&
		    tg_decimal_parse(json_object_get_string(v), 0, &bound) &&
		    bound > out)
			out = bound;
	}
	if (out <= 0)
		out = d->price.max_output_tokens;
	if (out <= 0)
		out = cfg->default_max_tokens;
	/* "n" choices: each may use the whole bound (TG_CHAT_N_MAX at most,
	 * checked before this is called, so the product fits). */
	if (json_object_object_get_ex(body, "n", &v) &&
	    json_object_is_type(v, json_type_int) &&
	    json_object_get_int64(v) > 1 &&
	    json_object_get_int64(v) <= TG_CHAT_N_MAX)
		out *= json_object_get_int64(v);
	*output_bound = out;
}

void
tg_chat_shuffle(size_t *idx, size_t n)
{
	uint32_t r[MAX_CANDIDATES];

	if (n < 2)
		return;
	tg_random_bytes(r, (n - 1) * sizeof(r[0]));
	for (size_t i = n - 1; i > 0; i--) {
		/* 32 random bits mod at most 64: the bias is below 1e-8. */
		size_t j = r[i - 1] % (i + 1);
		size_t t = idx[i];

		idx[i] = idx[j];
		idx[j] = t;
	}
}

bool
tg_chat_retryable(enum tg_rc rc, const struct tg_upstream_response *resp)
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

/*
 * A virtual key may call only the models it lists (SPEC 13): 401, in
 * LiteLLM's words.
 */
static enum tg_rc
key_allows(const struct chat *c, struct tg_err *err)
{
	char *allowed;
	enum tg_rc rc;

	if (c->key == NULL || tg_key_allows_model(c->key, c->model))
		return TG_OK;
	allowed = tg_customer_ids_text(c->key->models);
	rc = tg_err_set(err, TG_ERR_AUTH, "model",
	                "key not allowed to access model=%s. This key can "
	                "only access models=%s.",
	                c->model, allowed);
	free(allowed);
	return rc;
}

/* Steps 3 to 6 of SPEC 4.2: model (and the key's models), customer,
 * blocked, region. */
static enum tg_rc
resolve(struct chat *c, struct tg_err *err)
{
	const struct tg_value *model = tg_req_field(c->req, F_MODEL);
	size_t all[MAX_CANDIDATES], n;
	enum tg_rc rc;

	c->model = model->given ? model->str : NULL;
	if (c->model != NULL && !tg_config_has_model(c->cfg, c->model))
		goto unknown_model;
	/* Before the customer is loaded (or created) for a call refused. */
	if (c->model != NULL && (rc = key_allows(c, err)) != TG_OK)
		return rc;
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
			if ((rc = key_allows(c, err)) != TG_OK)
				return rc;
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
	tg_chat_shuffle(c->cand, c->ncand);
	return TG_OK;

unknown_model:
	return tg_err_set(err, TG_ERR_BAD_REQUEST, "model",
	                  "Invalid model name passed in model=%s. Call "
	                  "`/v1/models` to view available models for your "
	                  "key.",
	                  c->model);
}

/*
 * How long a request's holds (budget reservation, in-flight slot) last: they
 * outlive every attempt the request may make; after that its process is
 * presumed dead and they are reclaimed.
 */
static long
hold_seconds(const struct chat *c)
{
	long hold = 0, attempts = (long)c->cfg->num_retries + 1;
	long grace = c->cfg->hold_grace_s;

	/* The config caps every term (lib/config.h), so the longest hold fits
	 * even a 32-bit long; the clamps keep it so for a config that was not
	 * made by the loader. */
	_Static_assert(TG_CONFIG_MAX_SECONDS * (TG_CONFIG_MAX_COUNT + 2L) <
	                       INT32_MAX,
	               "the longest hold fits a long");
	for (size_t i = 0; i < c->ncand; i++)
		if (c->cfg->deployments[c->cand[i]].timeout_s > hold)
			hold = c->cfg->deployments[c->cand[i]].timeout_s;
	if (hold > TG_CONFIG_MAX_SECONDS)
		hold = TG_CONFIG_MAX_SECONDS;
	if (attempts < 1)
		attempts = 1;
	if (attempts > TG_CONFIG_MAX_COUNT + 1L)
		attempts = TG_CONFIG_MAX_COUNT + 1L;
	if (grace < 0 || grace > TG_CONFIG_MAX_SECONDS)
		grace = TG_CONFIG_MAX_SECONDS;
	return hold * attempts + grace;
}

/* What the hold of c's call says of it: its ids, model and deadline. */
static void
hold_request(const struct chat *c, struct tg_hold_request *hr)
{
	memset(hr, 0, sizeof(*hr));
	hr->request_id = tg_req_id(c->req);
	hr->model = c->model;
	hr->api_key_hash = tg_req_key_hash(c->req);
	hr->start_us = tg_req_start_us(c->req);
	hr->hold_seconds = hold_seconds(c);
	hr->alerts = &c->cfg->alerting;
}

/*
 * Step 7: rpm, tpm and parallel requests (SPEC 5) of the customer and of
 * the virtual key (SPEC 13): both must admit.  A refusal says when to
 * retry; when that is further off than an SDK's own backoff it also says
 * not to retry on its own (TG_RATELIMIT_RETRY_INLINE_S): an OpenAI SDK
 * would otherwise hold the caller's call for up to a minute per retry.
 */
static enum tg_rc
rate_limit(struct chat *c, struct tg_err *err)
{
	struct tg_ratelimit_account accounts[TG_RATELIMIT_ACCOUNTS];
	char retry_after[24];
	size_t n = 0;
	enum tg_rc rc;

	if (c->has_customer) {
		accounts[n].kind = TG_ACCOUNT_CUSTOMER;
		accounts[n].id = c->user_id;
		accounts[n++].budget =
		        c->cust.has_budget ? &c->cust.budget : NULL;
	}
	if (c->key != NULL) {
		accounts[n].kind = TG_ACCOUNT_KEY;
		accounts[n].id = c->key->token;
		accounts[n++].budget =
		        c->key->has_budget ? &c->key->budget : NULL;
	}
	rc = tg_ratelimit_admit(c->db, accounts, n, tg_req_id(c->req),
	                        hold_seconds(c), &c->limits, err);
	if (rc == TG_ERR_RATE_LIMIT) {
		snprintf(retry_after, sizeof(retry_after), "%ld",
		         c->limits.retry_after);
		tg_req_add_header(c->req, "retry-after", retry_after);
		if (c->limits.retry_after > TG_RATELIMIT_RETRY_INLINE_S)
			tg_req_add_header(c->req, "x-should-retry", "false");
		memset(&c->limits, 0, sizeof(c->limits));
	}
	return rc;
}

/* End the request for the rate limits (once): tokens are those settled. */
static void
release_limits(struct chat *c, int64_t total_tokens)
{
	struct tg_err lerr;

	if (!c->limits.active)
		return;
	tg_err_clear(&lerr);
	if (tg_ratelimit_release(c->db, &c->limits, total_tokens, &lerr) !=
	    TG_OK)
		tg_log_warn("rate-limit release failed (the slot expires "
		            "by itself): %s",
		            lerr.message);
	memset(&c->limits, 0, sizeof(c->limits));
}

/*
 * The answer when d's estimate does not fit a tg_money (9.2e8 USD): the
 * client's request is too large for the price, whoever set it.  The
 * prompt (the body) is to blame if it overflows alone (413); otherwise the
 * output bound, named by the field that set it, else by max_tokens, the
 * field that would lower it (422).
 */
static enum tg_rc
too_costly(const struct chat *c, const struct tg_deployment *d, int64_t prompt,
           int64_t output, struct tg_err *err)
{
	const struct tg_value *mct =
	        tg_req_field(c->req, F_MAX_COMPLETION_TOKENS);
	const struct tg_value *mt = tg_req_field(c->req, F_MAX_TOKENS);
	const char *field = "max_tokens";
	struct tg_err ignored;
	tg_money alone;

	if (tg_pricing_estimate(&d->price, prompt, 0, &alone, &ignored) !=
	    TG_OK)
		return tg_err_set(err, TG_ERR_TOO_LARGE, "messages",
		                  "Request too large for model=%s: the "
		                  "worst-case cost of its %lld prompt tokens "
		                  "is beyond what the ledger can hold",
		                  d->model_name, (long long)prompt);
	if (mct->given && (!mt->given || mct->num >= mt->num))
		field = "max_completion_tokens";
	return tg_err_set(err, TG_ERR_UNPROCESSABLE, field,
	                  "%s=%lld is too large for model=%s: the "
	                  "worst-case cost of the request is beyond what "
	                  "the ledger can hold",
	                  field, (long long)output, d->model_name);
}

/*
 * The admission's COMMIT was sent and its answer lost, and the database is
 * gone: the hold may exist, and this request will not reach the upstream.
 * A failure settlement (nothing charged) goes to the spool, so that when
 * it is replayed the hold is released rather than charged as unsettled
 * (SPEC 4.3: the hold of a call known not to have reached the upstream is
 * released).  If the hold never committed, the replay writes a failure
 * row of 0, which is true too.
 */
static void
release_unknown_hold(struct chat *c)
{
	const struct tg_deployment *d = &c->cfg->deployments[c->cand[0]];
	struct tg_ledger_account acct =
	        tg_ledger_account_of(c->has_customer ? &c->cust : NULL, c->key);
	struct tg_reservation r;
	struct tg_ledger_entry e;
	struct tg_err serr;

	/* The one-round-trip admission failed before the customer was read:
	 * its id is all the release needs (the failure charges nothing). */
	if (c->has_customer && acct.user_id == NULL)
		acct.user_id = c->user_id;
	memset(&r, 0, sizeof(r));
	r.held = true;
	tg_strlcpy(r.request_id, sizeof(r.request_id), tg_req_id(c->req));
	tg_strlcpy(r.user_id, sizeof(r.user_id),
	           c->has_customer ? c->user_id : "");
	tg_strlcpy(r.key_token, sizeof(r.key_token),
	           c->key != NULL ? c->key->token : "");
	r.amount = c->estimate;
	tg_chat_entry_init(c, d, NULL,
	                   "{\"reason\":\"the database was lost while "
	                   "admitting the request; it was not sent "
	                   "upstream\"}",
	                   &e);
	e.success = false;
	tg_err_clear(&serr);
	if (tg_spool_write(tg_spool_dir(c->cfg), &acct, &e, &r, &serr) != TG_OK)
		tg_log_error("a hold of unknown state could not be spooled for "
		             "release (it will be charged as unsettled): %s",
		             serr.message);
}

/*
 * The worst-case cost of c's request over the n deployments of cand, into
 * *estimate.  NULL, or the first deployment for which it is beyond what the
 * ledger can hold (*prompt and *output then its bounds, for too_costly()).
 */
static const struct tg_deployment *
worst_case(const struct chat *c, const size_t *cand, size_t n,
           tg_money *estimate, int64_t *prompt, int64_t *output)
{
	struct tg_err ignored;

	*estimate = 0;
	for (size_t i = 0; i < n; i++) {
		const struct tg_deployment *d = &c->cfg->deployments[cand[i]];
		tg_money est;

		tg_chat_bounds(c->cfg, d, c->body, c->body_len, prompt, output);
		if (tg_pricing_estimate(&d->price, *prompt, *output, &est,
		                        &ignored) != TG_OK)
			return d;
		if (est > *estimate)
			*estimate = est;
	}
	return NULL;
}

/* Step 8: the worst case over every deployment that may serve it. */
static enum tg_rc
admit(struct chat *c, struct tg_err *err)
{
	const struct tg_deployment *d;
	struct tg_hold_request hr;
	int64_t prompt, output;
	enum tg_rc rc;

	d = worst_case(c, c->cand, c->ncand, &c->estimate, &prompt, &output);
	if (d != NULL)
		return too_costly(c, d, prompt, output, err);
	/* A hold is how a call whose process dies is still charged
	 * (ledger.h); without a customer and a virtual key there is no
	 * account to charge, and no hold. */
	if (!c->has_customer && c->key == NULL)
		return TG_OK;
	hold_request(c, &hr);
	rc = tg_ledger_admit(c->db, c->has_customer ? &c->cust : NULL, c->key,
	                     c->estimate, c->cfg->budget_enforcement, &hr,
	                     &c->resv, err);
	if (rc == TG_ERR_BUDGET)
		tg_req_add_header(c->req, "x-should-retry", "false");
	if (rc == TG_ERR_DB && tg_db_txn_uncertain(c->db))
		release_unknown_hold(c);
	return rc;
}

/* Whether the virtual key has rate limits (SPEC 5, 13). */
static bool
key_limited(const struct tg_key *k)
{
	return k->has_budget &&
	       (k->budget.rpm_limit.set || k->budget.tpm_limit.set ||
	        k->budget.max_parallel_requests.set);
}

/*
 * Steps 3 to 8 of SPEC 4.2 in one database round trip for the common call
 * (tg_ledger_admit_fast): its model given, reserve mode, no rate limits on
 * the key.  The estimate is the worst case over every deployment of the
 * model; the procedure holds it only for a customer that is neither
 * blocked nor limited to a region (whose deployments would be fewer) nor
 * rate-limited nor due a reset, and says "slow" otherwise.  A call without
 * a customer and without a virtual key has no account to hold from, so it
 * costs no round trip here (ledger.h says what that means for a crash).
 * *done false: nothing was held and c is as it was; the caller takes the
 * long way (resolve, rate_limit, admit), which answers every error of
 * these steps in its own words.
 */
static enum tg_rc
fast_admit(struct chat *c, bool *done, struct tg_err *err)
{
	const struct tg_value *model = tg_req_field(c->req, F_MODEL);
	struct tg_hold_request hr;
	struct tg_err ignored;
	tg_money estimate = 0;
	int64_t prompt, output;
	bool found = false, slow = false, loaded = false;
	size_t n;
	enum tg_rc rc;

	*done = false;
	if (!model->given || !tg_config_has_model(c->cfg, model->str) ||
	    c->cfg->budget_enforcement != TG_ENFORCE_RESERVE)
		return TG_OK;
	if (c->key != NULL &&
	    (!tg_key_allows_model(c->key, model->str) || key_limited(c->key)))
		return TG_OK;
	tg_err_clear(&ignored);
	if (tg_chat_customer_id(tg_req_header(c->req, "x-litellm-customer-id"),
	                        tg_req_header(c->req, "x-litellm-end-user-id"),
	                        c->body, c->user_id, sizeof(c->user_id), &found,
	                        &ignored) != TG_OK)
		return TG_OK;
	n = tg_config_deployments(c->cfg, model->str, c->cand, MAX_CANDIDATES);
	if (worst_case(c, c->cand, n, &estimate, &prompt, &output) != NULL)
		return TG_OK; /* too costly: said by the long way */
	if (n == 0)
		return TG_OK;
	c->model = model->str;
	c->ncand = n;
	tg_chat_shuffle(c->cand, c->ncand);
	c->estimate = estimate;
	if (!found && c->key == NULL) {
		*done = true;
		return TG_OK;
	}
	hold_request(c, &hr);
	rc = tg_ledger_admit_fast(c->db, found ? c->user_id : NULL,
	                          c->cfg->max_end_user_budget_id, c->key,
	                          c->estimate, &hr, &slow, &c->cust, &loaded,
	                          &c->resv, err);
	if (rc == TG_OK && slow) {
		c->model = NULL;
		c->ncand = 0;
		c->estimate = 0;
		return TG_OK;
	}
	*done = true;
	c->has_customer = loaded;
	if (rc == TG_ERR_BUDGET)
		tg_req_add_header(c->req, "x-should-retry", "false");
	if (rc == TG_ERR_DB && tg_db_txn_uncertain(c->db)) {
		c->has_customer = found;
		release_unknown_hold(c);
	}
	return rc;
}

char *
tg_chat_metadata(const struct tg_deployment *d, int attempts, bool estimated)
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

/*
 * Usage when the upstream did not report it: the prompt bound of SPEC 4.3
 * and one token per byte of generated text, an upper bound of both, so a
 * call is never charged less than it cost.
 */
void
tg_chat_bounded_usage(struct chat *c, const struct tg_deployment *d,
                      int64_t text_bytes, struct tg_usage *u)
{
	int64_t prompt, output;

	tg_chat_bounds(c->cfg, d, c->body, c->body_len, &prompt, &output);
	/* Never above the output bound the hold was computed with: the
	 * upstream was asked for no more (SPEC 4.5). */
	if (text_bytes > output)
		text_bytes = output;
	memset(u, 0, sizeof(*u));
	u->prompt_tokens = prompt;
	u->completion_tokens = text_bytes;
	u->total_tokens = prompt + text_bytes;
}

/* The ledger row of a request; strings borrowed from c and resp. */
void
tg_chat_entry_init(struct chat *c, const struct tg_deployment *d,
                   const char *api_base, const char *meta,
                   struct tg_ledger_entry *e)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	memset(e, 0, sizeof(*e));
	e->request_id = tg_req_id(c->req);
	e->end_user = c->has_customer ? c->user_id : "";
	e->model = c->model;
	e->model_id = d->litellm_model;
	e->api_key_hash = tg_req_key_hash(c->req);
	e->call_type = "acompletion";
	/* The upstream's answer names the base it used; a call that got no
	 * answer was still aimed at the deployment's. */
	e->api_base = api_base != NULL && api_base[0] != '\0'
	                      ? api_base
	                      : tg_upstream_base(d);
	e->start_us = tg_req_start_us(c->req);
	e->end_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
	e->metadata = meta;
}

/*
 * Settle e; *charged (may be NULL) gets what was charged.  When the
 * database is out of reach the settlement goes to the spool and this still
 * succeeds: the upstream's tokens were spent, the client gets them, and the
 * hold keeps the budget safe until the spool is replayed (SPEC 4.4).  Only
 * when that fails too is it an error, in the SPEC's 503 terms.  The rate
 * limits are released here, before the answer ends (a stream's [DONE]
 * follows), so a client's next request finds its slot free.
 */
enum tg_rc
tg_chat_settle(struct chat *c, const struct tg_ledger_entry *e,
               tg_money *charged, struct tg_err *err)
{
	struct tg_ledger_account acct =
	        tg_ledger_account_of(c->has_customer ? &c->cust : NULL, c->key);
	struct tg_err serr, sperr;

	acct.alerts = &c->cfg->alerting;
	tg_money got = e->spend;

	tg_err_clear(&serr);
	if (tg_ledger_settle(c->db, &acct, e, &c->resv, &got, &serr) == TG_OK) {
		release_limits(c, e->total_tokens);
		if (charged != NULL)
			*charged = got;
		return TG_OK;
	}
	tg_err_clear(&sperr);
	/* Any database failure: out of reach now, or a statement it refuses
	 * (kept by the replay as .failed for the operator); either way the
	 * tokens were spent and the client gets them. */
	if (serr.rc == TG_ERR_DB) {
		if (tg_spool_write(tg_spool_dir(c->cfg), &acct, e, &c->resv,
		                   &sperr) == TG_OK) {
			tg_log_warn("database unreachable (%s); settlement "
			            "spooled",
			            serr.message);
			/* The slot expires by itself: the database is
			 * not there to free it. */
			memset(&c->limits, 0, sizeof(c->limits));
			if (charged != NULL)
				*charged = e->spend;
			return TG_OK;
		}
		tg_log_error("settlement could not be spooled either: %s",
		             sperr.message);
	}
	/* The upstream answered but neither the ledger nor the spool can
	 * say so: the client must not get tokens we did not record. */
	tg_log_error("settlement failed after retries; %s of usage "
	             "unrecorded: %s",
	             e->spend > 0 ? "the upstream's" : "none", serr.message);
	return tg_err_set(err, TG_ERR_DB, NULL,
	                  "Could not record the request in the ledger: %s",
	                  serr.message);
}

/* The answer for a non-2xx upstream status (no charge). */
enum tg_rc
tg_chat_upstream_error(struct tg_req *req,
                       const struct tg_upstream_response *resp,
                       struct tg_err *err)
{
	if (resp->body != NULL && is_envelope(resp->body, resp->body_len)) {
		tg_req_respond_raw(req, (int)resp->status, resp->body,
		                   resp->body_len);
		return TG_OK;
	}
	tg_err_set(err, TG_ERR_UPSTREAM, NULL, "Upstream error %ld: %.300s",
	           resp->status, resp->body ? resp->body : "");
	err->status = (int)resp->status;
	snprintf(err->type, sizeof(err->type), "%s",
	         upstream_type(resp->status));
	return TG_ERR_UPSTREAM;
}

/* Non-streamed: call, settle, answer (SPEC 4.2 steps 9 to 11). */
static enum tg_rc
complete(struct chat *c, struct tg_err *err)
{
	struct tg_upstream_response resp;
	struct tg_ledger_entry e;
	struct tg_usage usage;
	const struct tg_deployment *d;
	char *up_body, *meta = NULL;
	char cost_text[TG_MONEY_STRLEN];
	size_t up_len;
	tg_money cost = 0;
	enum tg_rc rc, up_rc;
	int attempts = 0;
	bool success, estimated = false;

	memset(&resp, 0, sizeof(resp));
	/* The deployments in shuffled order, retrying on failures that
	 * another deployment (or a second try) may not have. */
	for (;;) {
		d = &c->cfg->deployments[c->cand[(size_t)attempts % c->ncand]];
		attempts++;
		up_body = tg_upstream_body(d, c->body, c->body_text,
		                           c->body_len, &up_len);
		up_rc = tg_upstream_call(d, up_body, up_len, d->timeout_s,
		                         &resp, err);
		free(up_body);
		if (!tg_chat_retryable(up_rc, &resp) ||
		    attempts > c->cfg->num_retries)
			break;
		tg_log_warn("deployment %s failed (%s, status %ld); retrying",
		            d->litellm_model, tg_rc_str(up_rc), resp.status);
		tg_upstream_response_free(&resp);
		memset(&resp, 0, sizeof(resp));
	}

	success = up_rc == TG_OK && resp.status >= 200 && resp.status < 300;
	memset(&usage, 0, sizeof(usage));
	if (success && !tg_usage_parse(resp.body, resp.body_len, &usage)) {
		/* No usage: charge the upper bound rather than nothing. */
		tg_chat_bounded_usage(
		        c, d, completion_bytes(resp.body, resp.body_len),
		        &usage);
		estimated = true;
	}
	if (success &&
	    (rc = tg_pricing_cost(&d->price, usage.prompt_tokens,
	                          usage.completion_tokens, usage.cached_tokens,
	                          &cost, err)) != TG_OK) {
		success = false;
		cost = 0;
		up_rc = rc;
	}
	meta = tg_chat_metadata(d, attempts, estimated);
	tg_chat_entry_init(c, d, resp.api_base, meta, &e);
	e.success = success;
	e.spend = cost;
	e.prompt_tokens = usage.prompt_tokens;
	e.completion_tokens = usage.completion_tokens;
	e.total_tokens = usage.total_tokens;
	if ((rc = tg_chat_settle(c, &e, &cost, err)) != TG_OK)
		goto out;

	if (success) {
		tg_money_format(cost, cost_text, sizeof(cost_text));
		tg_req_add_header(c->req, "x-litellm-response-cost", cost_text);
		/* As LiteLLM: the region of the deployment that answered. */
		if (d->region != NULL)
			tg_req_add_header(c->req, "x-litellm-model-region",
			                  d->region);
		tg_req_respond_raw(c->req, 200, resp.body, resp.body_len);
		rc = TG_OK;
	} else if (up_rc != TG_OK) {
		rc = up_rc; /* err was filled by the upstream call */
	} else {
		rc = tg_chat_upstream_error(c->req, &resp, err);
	}
out:
	free(meta);
	tg_upstream_response_free(&resp);
	return rc;
}

enum tg_rc
tg_chat_handle(struct tg_req *req, struct tg_err *err)
{
	struct chat c;
	enum tg_rc rc;
	bool streamed, admitted = false;

	memset(&c, 0, sizeof(c));
	c.req = req;
	c.key = tg_req_key(req);
	c.cfg = tg_req_config(req);
	c.body = tg_req_json(req);
	c.body_text = tg_req_body(req, &c.body_len);
	streamed = tg_req_field(req, F_STREAM)->given &&
	           tg_req_field(req, F_STREAM)->num;

	/* The shape of messages was checked at the front line. */
	if (!tg_req_field(req, F_MESSAGES)->given) {
		rc = tg_err_set(err, TG_ERR_BAD_REQUEST, "messages",
		                "Missing required field: messages");
		goto out;
	}
	if (tg_req_field(req, F_N)->given &&
	    tg_req_field(req, F_N)->num > TG_CHAT_N_MAX) {
		rc = tg_err_set(err, TG_ERR_UNPROCESSABLE, "n",
		                "Invalid 'n': integer above the maximum value, "
		                "expected a value <= %d",
		                TG_CHAT_N_MAX);
		goto out;
	}
	/* The ledger is not optional: without the database nothing is sent
	 * upstream, so no tokens go unaccounted. */
	if ((rc = tg_req_db(req, &c.db, err)) != TG_OK)
		goto out;
	if ((rc = fast_admit(&c, &admitted, err)) != TG_OK)
		goto out;
	if (!admitted && (rc = resolve(&c, err)) != TG_OK)
		goto out;
	if (!admitted && (rc = rate_limit(&c, err)) != TG_OK)
		goto out;
	if (!admitted && (rc = admit(&c, err)) != TG_OK)
		goto out;
	rc = streamed ? tg_chat_stream(&c, err) : complete(&c, err);
out:
	/* Whatever ended the request before settlement (budget refusal,
	 * a failed settlement): its slot is freed, no tokens counted. */
	release_limits(&c, 0);
	if (c.has_customer)
		tg_customer_free(&c.cust);
	return rc;
}
