/*
 * meter: the life of one metered call (SPEC 4.2), whatever its API, in
 * order: validate, resolve the model, load or create the customer, refuse
 * the blocked, admit against the rate limits, then against the budget
 * (holding the worst case), call the upstream, settle in one transaction,
 * answer.  A call with a virtual key (SPEC 13) is limited, admitted and
 * charged for the key as well as for the customer, in the same steps.
 * The ledger decides how the admission runs (lib/ledger.c: one round trip
 * for the common call); this file supplies what it must check of the
 * customer, as a gate.
 *
 * The ledger row is written for every call that reached the upstream,
 * charged or not, so the ledger tells what happened to each call; a call
 * with a customer or a key holds its worst case first, so that a process
 * that dies mid-call is charged by the reclaim (a call with neither has
 * no account to charge, takes no hold, and leaves no row if it dies).
 *
 * What the route's API means (its fields, bounds, usage, stream) is its
 * adapter's (lib/api.h); the attempts over the deployments, the charge and
 * the answer are written once, here, for every API.
 */
#define _POSIX_C_SOURCE 200809L

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "customer.h"
#include "fields.h"
#include "jsonx.h"
#include "key.h"
#include "ledger.h"
#include "log.h"
#include "meter.h"
#include "metrics.h"
#include "money.h"
#include "pricing.h"
#include "ratelimit.h"
#include "relay.h"
#include "journal.h"
#include "lease.h"
#include "spool.h"
#include "tag.h"
#include "translate.h"
#include "upstream.h"
#include "util.h"

/* One metered call in progress. */
struct call {
	struct tg_req *req;
	const struct tg_api_adapter *api;
	const struct tg_config *cfg;
	struct tg_db *db;
	struct json_object *body;
	const char *body_text; /* as it came, body_len bytes */
	size_t body_len;
	bool streamed;
	char user_id[256];
	bool has_id;  /* the call named a customer */
	bool settled; /* its settlement was written (SPEC 4.4) */
	/* A budget it was held against is near its end: settled in the
	 * database before the answer, even with spool_settlements (SPEC
	 * 4.6), so that its hold does not keep the last of it. */
	bool tight;
	bool has_customer; /* cust holds it as loaded */
	struct tg_customer cust;
	const struct tg_key *key; /* the virtual key used, or NULL (SPEC 13) */
	/* The tags it names (SPEC 11), and those of them that exist, as
	 * loaded (by name) when the admission takes the statements' way. */
	const char *tag_names[TG_TAG_MAX];
	size_t ntag_names;
	char tag_header[4096];        /* x-litellm-tags, split in place */
	struct json_object *tag_list; /* metadata.tags, taken off the body */
	struct tg_tag tags[TG_TAG_MAX];
	size_t ntags;
	const char *model;
	size_t cand[TG_METER_MAX_CANDIDATES];
	size_t ncand;
	tg_money estimate;
	struct tg_reservation resv;
	struct tg_ratelimit_hold limits; /* active until released */
};

/* ---- the customer id ---- */

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
tg_meter_customer_id(const char *hdr_customer, const char *hdr_end_user,
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

void
tg_meter_shuffle(size_t *idx, size_t n)
{
	uint32_t r[TG_METER_MAX_CANDIDATES];

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

/* ---- the model and its worst case ---- */

/*
 * A virtual key may call only the models it lists (SPEC 13): 401, in
 * LiteLLM's words.
 */
static enum tg_rc
key_allows(const struct call *c, struct tg_err *err)
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

static enum tg_rc
unknown_model(const struct call *c, struct tg_err *err)
{
	return tg_err_set(err, TG_ERR_BAD_REQUEST, "model",
	                  "Invalid model name passed in model=%s. Call "
	                  "`/v1/models` to view available models for your "
	                  "key.",
	                  c->model);
}

/*
 * What the call's tags allow (SPEC 11): none of them blocked, and each
 * that names its models names the call's.
 */
static enum tg_rc
tags_allow(const struct call *c, const struct tg_admission *a,
           struct tg_err *err)
{
	for (size_t i = 0; i < a->ntags; i++) {
		const struct tg_tag *t = &a->tags[i];

		if (t->blocked)
			return tg_err_set(err, TG_ERR_FORBIDDEN, NULL,
			                  "Tag blocked from making LLM API "
			                  "Calls. Tag=%s",
			                  t->name);
		if (!tg_tag_allows_model(t, c->model))
			return tg_err_set(err, TG_ERR_AUTH, "model",
			                  "tag=%s not allowed to access "
			                  "model=%s. This tag can only access "
			                  "models=%s.",
			                  t->name, c->model, t->models);
	}
	return TG_OK;
}

/*
 * The deployments of c->model that serve the call's API and, for a
 * customer limited to a region, are in it (cust may be NULL), shuffled
 * into c->cand.
 */
static enum tg_rc
candidates(struct call *c, const struct tg_customer *cust, struct tg_err *err)
{
	size_t all[TG_METER_MAX_CANDIDATES], n, serving = 0;

	c->ncand = 0;
	n = tg_config_deployments(c->cfg, c->model, all,
	                          TG_METER_MAX_CANDIDATES);
	for (size_t i = 0; i < n; i++) {
		const struct tg_deployment *d = &c->cfg->deployments[all[i]];

		enum tg_api up;
		const struct tg_translation *tr;

		if (!tg_translate_route(c->api->api, d->provider, &up, &tr))
			continue;
		serving++;
		if (cust != NULL && cust->allowed_model_region != NULL &&
		    (d->region == NULL ||
		     strcmp(d->region, cust->allowed_model_region) != 0))
			continue;
		c->cand[c->ncand++] = all[i];
	}
	if (serving == 0)
		return tg_err_set(
		        err, TG_ERR_BAD_REQUEST, "model",
		        "model=%s does not serve %s: no deployment of "
		        "it is of a provider with that API or one "
		        "tollgate translates it to",
		        c->model, tg_api_path(c->api->api));
	if (c->ncand == 0)
		return tg_err_set(err, TG_ERR_BAD_REQUEST, "model",
		                  "No deployment of model=%s is in the "
		                  "customer's allowed region '%s'",
		                  c->model, cust->allowed_model_region);
	tg_meter_shuffle(c->cand, c->ncand);
	return TG_OK;
}

/*
 * The bounds of c's call on deployment d: the route's API's, and what a
 * translation to d's API adds to the prompt.
 */
static enum tg_rc
bounds_on(const struct call *c, const struct tg_deployment *d,
          struct tg_bounds *b, struct tg_err *err)
{
	const struct tg_translation *tr;
	enum tg_api up;
	enum tg_rc rc;

	if ((rc = c->api->bounds(c->cfg, d, c->req, b, err)) != TG_OK)
		return rc;
	if (tg_translate_route(c->api->api, d->provider, &up, &tr) &&
	    tr != NULL && tr->prompt_overhead != NULL)
		b->prompt += tr->prompt_overhead(c->req);
	return TG_OK;
}

/*
 * The worst-case cost of c's call on deployment d into *est (SPEC 4.3):
 * its bounds priced, hosted tool calls included.  A call whose worst case
 * does not fit a tg_money (9.2e8 USD) is too large for the price,
 * whoever set it: the prompt is to blame if it overflows alone (413),
 * else the output bound, named by the field that sets it (422).
 */
static enum tg_rc
worst_case_on(const struct call *c, const struct tg_deployment *d,
              tg_money *est, struct tg_err *err)
{
	struct tg_bounds b;
	struct tg_err ignored;
	tg_money alone;
	unsigned services;
	enum tg_rc rc;

	if ((rc = bounds_on(c, d, &b, err)) != TG_OK)
		return rc;
	tg_err_clear(&ignored);
	services = b.service_tiers ? b.service_tiers : TG_SERVICE_ANY;
	if (tg_pricing_estimate(&d->price, b.prompt, b.output, services, est,
	                        &ignored) == TG_OK &&
	    tg_money_add_cost(est, b.tool_calls, b.tool_call_price))
		return TG_OK;
	if (tg_pricing_estimate(&d->price, b.prompt, 0, services, &alone,
	                        &ignored) != TG_OK)
		return tg_err_set(err, TG_ERR_TOO_LARGE, b.prompt_field,
		                  "Request too large for model=%s: the "
		                  "worst-case cost of its %lld prompt tokens "
		                  "is beyond what the ledger can hold",
		                  d->model_name, (long long)b.prompt);
	return tg_err_set(err, TG_ERR_UNPROCESSABLE, b.output_field,
	                  "%s=%lld is too large for model=%s: the "
	                  "worst-case cost of the request is beyond what "
	                  "the ledger can hold",
	                  b.output_field, (long long)b.output, d->model_name);
}

/* The worst case over every candidate deployment (SPEC 4.3). */
static enum tg_rc
worst_case(struct call *c, tg_money *estimate, struct tg_err *err)
{
	enum tg_rc rc;

	*estimate = 0;
	for (size_t i = 0; i < c->ncand; i++) {
		tg_money est;

		rc = worst_case_on(c, &c->cfg->deployments[c->cand[i]], &est,
		                   err);
		if (rc != TG_OK)
			return rc;
		if (est > *estimate)
			*estimate = est;
	}
	return TG_OK;
}

/* What a candidate reached through a translation cannot carry of the
 * request: a 4xx before anything is held. */
static enum tg_rc
translatable(const struct call *c, struct tg_err *err)
{
	for (size_t i = 0; i < c->ncand; i++) {
		const struct tg_deployment *d =
		        &c->cfg->deployments[c->cand[i]];
		const struct tg_translation *tr;
		enum tg_api up;
		enum tg_rc rc;

		if (tg_translate_route(c->api->api, d->provider, &up, &tr) &&
		    tr != NULL && (rc = tr->check(c->req, err)) != TG_OK)
			return rc;
	}
	return TG_OK;
}

/* ---- holds and limits ---- */

/*
 * How long a call's holds (budget reservation, in-flight slot) last: they
 * outlive every attempt the call may make; after that its process is
 * presumed dead and they are reclaimed.
 */
static long
hold_seconds(const struct call *c)
{
	long hold = 0, attempts = (long)c->cfg->num_retries + 1;
	long grace = c->cfg->hold_grace_s;
	size_t all[TG_METER_MAX_CANDIDATES], n;

	/* The config caps every term (lib/config.h), so the longest hold fits
	 * even a 32-bit long; the clamps keep it so for a config that was not
	 * made by the loader. */
	_Static_assert(TG_CONFIG_MAX_SECONDS * (TG_CONFIG_MAX_COUNT + 2L) <
	                       INT32_MAX,
	               "the longest hold fits a long");
	/* Every deployment of the model: the candidates may not be known
	 * yet (the gate narrows them after the rate limits' slot). */
	n = c->model != NULL ? tg_config_deployments(c->cfg, c->model, all,
	                                             TG_METER_MAX_CANDIDATES)
	                     : 0;
	for (size_t i = 0; i < n; i++)
		if (c->cfg->deployments[all[i]].timeout_s > hold)
			hold = c->cfg->deployments[all[i]].timeout_s;
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

/*
 * Step 7: rpm, tpm and parallel requests (SPEC 5) of each of the call's
 * accounts (the customer, the virtual key, the tags; lib/account.h): every
 * one must admit.  A refusal says when to
 * retry; when that is further off than an SDK's own backoff it also says
 * not to retry on its own (TG_RATELIMIT_RETRY_INLINE_S): an OpenAI SDK
 * would otherwise hold the caller's call for up to a minute per retry.
 */
static enum tg_rc
rate_limit(struct call *c, const struct tg_admission *a, struct tg_err *err)
{
	char retry_after[24];
	enum tg_rc rc;

	rc = tg_ratelimit_admit(c->db, a->accounts, a->naccounts,
	                        tg_req_id(c->req), hold_seconds(c), &c->limits,
	                        err);
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

/* End the call for the rate limits (once): tokens are those settled. */
static void
release_limits(struct call *c, int64_t total_tokens)
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

/* What the hold of c's call says of it: its ids, model and deadline. */
static void
hold_request(const struct call *c, struct tg_hold_request *hr)
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
 * What the ledger checks through us before it holds, with the customer as
 * loaded (SPEC 4.2 steps 4 to 7): its default model, blocked, its region,
 * the worst case over the deployments it may use, the rate limits.
 */
static enum tg_rc
gate(void *arg, const struct tg_customer *cust, struct tg_admission *a,
     struct tg_err *err)
{
	struct call *c = arg;
	enum tg_rc rc;

	if (c->model == NULL && cust != NULL && cust->default_model != NULL) {
		c->model = cust->default_model;
		if (!tg_config_has_model(c->cfg, c->model))
			return unknown_model(c, err);
		if ((rc = key_allows(c, err)) != TG_OK)
			return rc;
	}
	if (c->model == NULL)
		return tg_err_set(err, TG_ERR_BAD_REQUEST, "model",
		                  "Missing required field: model");
	if (cust != NULL && cust->blocked)
		return tg_err_set(err, TG_ERR_FORBIDDEN, NULL,
		                  "User blocked from making LLM API Calls. "
		                  "User=%s",
		                  cust->user_id);
	if ((rc = tags_allow(c, a, err)) != TG_OK)
		return rc;
	if ((rc = candidates(c, cust, err)) != TG_OK)
		return rc;
	if ((rc = worst_case(c, &a->estimate, err)) != TG_OK)
		return rc;
	c->estimate = a->estimate;
	hold_request(c, &a->hold);
	return rate_limit(c, a, err);
}

/* ---- the ledger row ---- */

/* Whether the call's tag named i is an account (its hold was taken from
 * it). */
static bool
tag_known(const struct call *c, size_t i)
{
	for (size_t k = 0; c->resv.held && k < c->resv.ntags; k++)
		if (strcmp(c->resv.tags[k].name, c->tag_names[i]) == 0)
			return true;
	return false;
}

/* The ledger row's metadata JSON text (caller frees). */
static char *
row_metadata(const struct call *c, const struct tg_deployment *d, int attempts,
             bool estimated, const struct tg_answer *a)
{
	struct json_object *m = json_object_new_object();
	char *text;

	json_object_object_add(m, "model_group",
	                       json_object_new_string(d->model_name));
	/* The tags the call named (LiteLLM's request_tags), and those of
	 * them that were no account, charged nothing. */
	if (c->ntag_names > 0) {
		struct json_object *all = json_object_new_array();
		struct json_object *unknown = json_object_new_array();

		for (size_t i = 0; i < c->ntag_names; i++) {
			json_object_array_add(
			        all, json_object_new_string(c->tag_names[i]));
			if (!tag_known(c, i))
				json_object_array_add(unknown,
				                      json_object_new_string(
				                              c->tag_names[i]));
		}
		json_object_object_add(m, "tags", all);
		if (json_object_array_length(unknown) > 0)
			json_object_object_add(m, "unknown_tags", unknown);
		else
			json_object_put(unknown);
	}
	json_object_object_add(m, "attempts", json_object_new_int(attempts));
	if (estimated)
		json_object_object_add(m, "usage_estimated",
		                       json_object_new_boolean(1));
	/* The upstream's id of its answer: /spend/logs finds the row by it
	 * (sql/008's response_id). */
	if (a != NULL && a->response_id[0] != '\0')
		json_object_object_add(m, "response_id",
		                       json_object_new_string(a->response_id));
	/* The prompt's tokens by class, so that the charge can be derived
	 * from the row again. */
	if (a != NULL && a->u.cached_tokens > 0)
		json_object_object_add(
		        m, "cache_read_input_tokens",
		        json_object_new_int64(a->u.cached_tokens));
	if (a != NULL && a->u.cache_write_tokens > 0)
		json_object_object_add(
		        m, "cache_creation_5m_input_tokens",
		        json_object_new_int64(a->u.cache_write_tokens));
	if (a != NULL && a->u.cache_write_1h_tokens > 0)
		json_object_object_add(
		        m, "cache_creation_1h_input_tokens",
		        json_object_new_int64(a->u.cache_write_1h_tokens));
	if (a != NULL && a->u.audio_prompt_tokens > 0)
		json_object_object_add(
		        m, "audio_input_tokens",
		        json_object_new_int64(a->u.audio_prompt_tokens));
	if (a != NULL && a->u.reasoning_tokens > 0)
		json_object_object_add(
		        m, "reasoning_tokens",
		        json_object_new_int64(a->u.reasoning_tokens));
	if (a != NULL && a->u.audio_completion_tokens > 0)
		json_object_object_add(
		        m, "audio_output_tokens",
		        json_object_new_int64(a->u.audio_completion_tokens));
	if (a != NULL && a->u.service_tier != TG_SERVICE_DEFAULT)
		json_object_object_add(
		        m, "service_tier",
		        json_object_new_string(
		                tg_service_tier_name(a->u.service_tier)));
	if (a != NULL && a->u.has_cost && d->trust_upstream_cost) {
		char buf[48];

		tg_money_format(a->u.cost, buf, sizeof(buf));
		json_object_object_add(m, "upstream_cost",
		                       json_object_new_string(buf));
	}
	for (size_t t = 0; a != NULL && t < TG_TOOL_COUNT; t++) {
		char key[48];

		if (a->u.tool_calls[t] <= 0)
			continue;
		snprintf(key, sizeof(key), "%s_calls",
		         tg_tool_name((enum tg_tool)t));
		json_object_object_add(
		        m, key, json_object_new_int64(a->u.tool_calls[t]));
	}
	text = tg_xstrdup(
	        json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN));
	json_object_put(m);
	return text;
}

/* The ledger row of c's call on d; strings borrowed from c and api_base. */
static void
entry_init(struct call *c, const struct tg_deployment *d, const char *api_base,
           const char *meta, struct tg_ledger_entry *e)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	memset(e, 0, sizeof(*e));
	e->request_id = tg_req_id(c->req);
	e->end_user = c->has_id ? c->user_id : "";
	e->model = c->model;
	e->model_id = d->litellm_model;
	e->api_key_hash = tg_req_key_hash(c->req);
	e->call_type = c->api->call_type;
	/* The upstream's answer names the base it used; a call that got no
	 * answer was still aimed at the deployment's. */
	e->api_base = api_base != NULL && api_base[0] != '\0'
	                      ? api_base
	                      : tg_upstream_base(d);
	e->start_us = tg_req_start_us(c->req);
	e->end_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
	e->metadata = meta;
	e->tags = c->tag_names;
	e->ntags = c->ntag_names;
}

/* The accounts of c's call, for its settlement. */
static struct tg_ledger_account
accounts(const struct call *c)
{
	struct tg_ledger_account acct =
	        tg_ledger_account_of(c->has_customer ? &c->cust : NULL, c->key);

	/* A customer named but not read (the admission failed before):
	 * its id is all a settlement of nothing needs. */
	if (c->has_id && acct.user_id == NULL)
		acct.user_id = c->user_id;
	acct.alerts = &c->cfg->alerting;
	return acct;
}

/*
 * The admission's COMMIT was sent and its answer lost, and the database is
 * gone: the hold may exist, and this call will not reach the upstream.  A
 * failure settlement (nothing charged) goes to the spool, so that when it
 * is replayed the hold is released rather than charged as unsettled
 * (SPEC 4.3: the hold of a call known not to have reached the upstream is
 * released).  If the hold never committed, the replay writes a failure row
 * of 0, which is true too.
 */
static void
release_unknown_hold(struct call *c)
{
	const struct tg_deployment *d;
	struct tg_ledger_account acct = accounts(c);
	struct tg_reservation r;
	struct tg_ledger_entry e;
	struct tg_err serr;
	size_t all[1];

	if (c->ncand > 0)
		d = &c->cfg->deployments[c->cand[0]];
	else if (c->model != NULL &&
	         tg_config_deployments(c->cfg, c->model, all, 1) == 1)
		d = &c->cfg->deployments[all[0]];
	else
		return; /* no model: nothing can have been held */
	memset(&r, 0, sizeof(r));
	r.held = true;
	tg_strlcpy(r.request_id, sizeof(r.request_id), tg_req_id(c->req));
	tg_strlcpy(r.user_id, sizeof(r.user_id), c->has_id ? c->user_id : "");
	tg_strlcpy(r.key_token, sizeof(r.key_token),
	           c->key != NULL ? c->key->token : "");
	/* Which tags it holds, if it holds, is for its row to say. */
	r.tags_unknown = c->ntag_names > 0;
	r.amount = c->estimate;
	entry_init(c, d, NULL,
	           "{\"reason\":\"the database was lost while admitting the "
	           "request; it was not sent upstream\"}",
	           &e);
	e.success = false;
	tg_err_clear(&serr);
	if (tg_spool_write(tg_spool_dir(c->cfg), &acct, &e, &r, &serr) != TG_OK)
		tg_log_error("a hold of unknown state could not be spooled for "
		             "release (it will be charged as unsettled): %s",
		             serr.message);
}

/*
 * Settle e; *charged (may be NULL) gets what was charged.  When the
 * database is out of reach the settlement goes to the spool and this still
 * succeeds: the upstream's tokens were spent, the client gets them, and the
 * hold keeps the budget safe until the spool is replayed (SPEC 4.4).  Only
 * when that fails too is it an error, in the SPEC's 503 terms.  The rate
 * limits are released here, before the answer ends (a stream's end
 * follows), so a client's next call finds its slot free.
 */
static enum tg_rc
settle(struct call *c, const struct tg_ledger_entry *e, tg_money *charged,
       struct tg_err *err)
{
	struct tg_ledger_account acct = accounts(c);
	struct tg_reservation r = c->resv;
	struct tg_err serr, sperr;
	tg_money got = e->spend;

	/* Against a lease: what the lease has for it (lib/lease.h). */
	if (r.held && r.lease_id[0] != '\0')
		tg_lease_settling(&r);
	tg_err_clear(&serr);
	/* Through this process's journal (spool_settlements, leases):
	 * durable on local disk now, in the database with the next batch;
	 * the hold keeps the budget safe until then (SPEC 4.6). */
	if (tg_journal_on(c->cfg) && !c->tight) {
		if (tg_journal_settle(tg_spool_dir(c->cfg), &acct, e, &r,
		                      &serr) == TG_OK) {
			got = r.held && r.lease_id[0] != '\0' &&
			                      e->spend > r.amount
			              ? r.amount
			              : e->spend;
			goto settled;
		}
		tg_log_warn("%s; settling in the database", serr.message);
		tg_err_clear(&serr);
	}
	if (tg_ledger_settle(c->db, &acct, e, &r, &got, &serr) == TG_OK)
		goto settled;
	tg_err_clear(&sperr);
	/* Any database failure: out of reach now, or a statement it refuses
	 * (kept by the replay as .failed for the operator); either way the
	 * tokens were spent and the client gets them. */
	if (serr.rc == TG_ERR_DB) {
		if (tg_spool_write(tg_spool_dir(c->cfg), &acct, e, &r,
		                   &sperr) == TG_OK) {
			tg_log_warn("database unreachable (%s); settlement "
			            "spooled",
			            serr.message);
			/* The slot expires by itself: the database is
			 * not there to free it. */
			memset(&c->limits, 0, sizeof(c->limits));
			got = r.held && r.lease_id[0] != '\0' &&
			                      e->spend > r.amount
			              ? r.amount
			              : e->spend;
			c->settled = true;
			/* Its lease may not give back its share before the
			 * spool is replayed: it is left to its deadline. */
			if (r.held && r.lease_id[0] != '\0') {
				tg_lease_settled(&r, got);
				tg_lease_taint(r.lease_id);
			}
			if (charged != NULL)
				*charged = got;
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
settled:
	c->settled = true;
	if (r.held && r.lease_id[0] != '\0')
		tg_lease_settled(&r, got);
	release_limits(c, e->total_tokens);
	if (charged != NULL)
		*charged = got;
	return TG_OK;
}

/* ---- the upstream's answer ---- */

/* Whether a failed attempt may be tried again (another deployment, or the
 * same one once more). */
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

/*
 * The message of an error body in either API's envelope (OpenAI's
 * {"error": {"message"}}, Anthropic's {"type": "error", "error":
 * {"message"}}) into err->message: the upstream's own words, for a client
 * of the other API.
 */
static bool
envelope_message(const char *text, size_t len, char *buf, size_t size)
{
	struct json_object *obj = tg_json_parse(text, len), *e, *m;
	bool found = json_object_is_type(obj, json_type_object) &&
	             json_object_object_get_ex(obj, "error", &e) &&
	             json_object_object_get_ex(e, "message", &m) &&
	             json_object_is_type(m, json_type_string);

	if (found)
		snprintf(buf, size, "%s", json_object_get_string(m));
	json_object_put(obj);
	return found;
}

/* The answer for a non-2xx upstream status (no charge). */
static enum tg_rc
upstream_error(struct tg_req *req, const struct tg_upstream_response *resp,
               struct tg_err *err)
{
	char said[sizeof(err->message)];

	/* The upstream's own error, when it is in the client's API's
	 * shape; else in tollgate's words, in that shape. */
	if (resp->body != NULL &&
	    tg_error_envelope_is(tg_req_envelope(req), resp->body,
	                         resp->body_len)) {
		tg_req_respond_raw(req, (int)resp->status, resp->body,
		                   resp->body_len);
		return TG_OK;
	}
	if (resp->body != NULL &&
	    envelope_message(resp->body, resp->body_len, said, sizeof(said)))
		tg_err_set(err, TG_ERR_UPSTREAM, NULL, "%s", said);
	else
		tg_err_set(err, TG_ERR_UPSTREAM, NULL,
		           "Upstream error %ld: %.300s", resp->status,
		           resp->body ? resp->body : "");
	err->status = (int)resp->status;
	snprintf(err->type, sizeof(err->type), "%s",
	         upstream_type(resp->status));
	return TG_ERR_UPSTREAM;
}

/*
 * The cost of answer a on d, into *cost.  An answer without usage is
 * charged the upper bound (SPEC 4.5): the prompt bound and one token per
 * byte of the text produced, never above the output bound the hold was
 * computed with (the upstream was asked for no more), and the row says
 * so (*estimated).
 */
static enum tg_rc
answer_cost(struct call *c, const struct tg_deployment *d, struct tg_answer *a,
            tg_money *cost, bool *estimated, struct tg_err *err)
{
	struct tg_bounds b;
	enum tg_rc rc;

	*estimated = false;
	if ((rc = bounds_on(c, d, &b, err)) != TG_OK)
		return rc;
	if (!a->u.present) {
		int64_t text =
		        a->text_bytes < b.output ? a->text_bytes : b.output;

		a->u.prompt_tokens = b.prompt;
		a->u.completion_tokens = text;
		a->u.total_tokens = b.prompt + text;
		a->u.cached_tokens = 0;
		a->u.cache_write_tokens = 0;
		a->u.cache_write_1h_tokens = 0;
		a->u.audio_prompt_tokens = 0;
		a->u.reasoning_tokens = 0;
		a->u.audio_completion_tokens = 0;
		a->u.has_cost = false;
		*estimated = true;
	}
	/* A usage that counts reasoning apart from the completion (xAI's):
	 * tollgate's completion holds it. */
	if (!*estimated && tg_provider(d->provider)->reasoning_apart &&
	    a->u.reasoning_tokens > 0 &&
	    (__builtin_add_overflow(a->u.completion_tokens,
	                            a->u.reasoning_tokens,
	                            &a->u.completion_tokens) ||
	     __builtin_add_overflow(a->u.total_tokens, a->u.reasoning_tokens,
	                            &a->u.total_tokens)))
		return tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                  "cost of the request overflows");
	/* The searches the request was billed for whatever the answer
	 * says (chat's web_search_options). */
	if (a->u.tool_calls[TG_TOOL_WEB_SEARCH] < b.searches)
		a->u.tool_calls[TG_TOOL_WEB_SEARCH] = b.searches;
	if (d->trust_upstream_cost && a->u.has_cost) {
		/* The upstream's own figure, tools and all (OpenRouter's). */
		*cost = a->u.cost;
		return TG_OK;
	}
	rc = tg_pricing_cost(&d->price, &a->u, cost, err);
	if (rc == TG_OK &&
	    !tg_pricing_add_tools(cost, a->u.tool_calls, b.tool_price))
		rc = tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                "cost of the request overflows");
	return rc;
}

/* An attempt's outcome, for the answer. */
struct outcome {
	const struct tg_deployment *d;
	enum tg_api api;                 /* the API d was called with */
	const struct tg_translation *tr; /* NULL: the route's own */
	int attempts;
	enum tg_rc up_rc;
	struct tg_err up_err;
	struct tg_upstream_response resp;
};

/*
 * The attempts over the deployments in shuffled order, retrying on
 * failures another deployment (or a second try) may not have; a streamed
 * attempt whose events reached the client is final (another try cannot
 * undo them).
 */
static const char *
client_header(const void *req, const char *name)
{
	return tg_req_header(req, name);
}

/*
 * The body of c's call for o's deployment, in the API it is called with
 * (o->api, o->tr set): the client's, spliced (tg_upstream_body), or its
 * translation, with the output bound of the hold.
 */
static char *
upstream_body(const struct call *c, struct outcome *o, size_t *len)
{
	struct json_object *obj;
	struct tg_bounds b;
	struct tg_err ignored;
	char *text;

	if (!tg_translate_route(c->api->api, o->d->provider, &o->api, &o->tr))
		o->api = c->api->api; /* not a candidate: never so */
	if (o->tr == NULL)
		return tg_upstream_body(o->d, c->body, c->body_text,
		                        c->body_len, len);
	tg_err_clear(&ignored);
	/* Admitted with these bounds, so they are known to be good. */
	if (bounds_on(c, o->d, &b, &ignored) != TG_OK)
		b.output = tg_api_output_bound(c->cfg, o->d, 0);
	obj = o->tr->request(c->body, b.output, c->streamed);
	text = tg_upstream_body(o->d, obj, NULL, 0, len);
	json_object_put(obj);
	return text;
}

static void
attempts(struct call *c, struct tg_relay *r, struct outcome *o)
{
	struct tg_upstream_request rq;
	char *up_body, *headers[8];
	char labels[TG_METRICS_LABELS_MAX];
	const char *kv[2] = {"route", tg_api_path(c->api->api)};
	int64_t sent_us;
	size_t up_len;

	memset(o, 0, sizeof(*o));
	for (;;) {
		o->d = &c->cfg->deployments[c->cand[(size_t)o->attempts %
		                                    c->ncand]];
		o->attempts++;
		memset(&rq, 0, sizeof(rq));
		up_body = upstream_body(c, o, &up_len);
		rq.api = o->api;
		rq.body = up_body;
		rq.body_len = up_len;
		rq.timeout_s = o->d->timeout_s;
		tg_upstream_client_headers(o->d, client_header, c->req, headers,
		                           8);
		rq.headers = (const char *const *)headers;
		tg_err_clear(&o->up_err);
		sent_us = tg_now_us();
		if (r != NULL) {
			struct tg_bounds b;
			struct tg_err ignored;

			tg_relay_attempt(r, o->d,
			                 tg_api_adapter(o->api)->stream, o->tr);
			/* Admitted with these bounds: known to be good. */
			tg_err_clear(&ignored);
			r->output_bound =
			        bounds_on(c, o->d, &b, &ignored) == TG_OK
			                ? b.output
			                : 0;
			o->up_rc = tg_upstream_stream(o->d, &rq, tg_relay_data,
			                              r, &o->resp, &o->up_err);
			o->up_rc = tg_relay_finish(r, o->up_rc, &o->up_err);
		} else {
			o->up_rc = tg_upstream_call(o->d, &rq, &o->resp,
			                            &o->up_err);
		}
		/* Each attempt, to its last byte (SPEC 15). */
		if (tg_metrics_labels(labels, sizeof(labels), 1, kv))
			tg_metrics_observe(TG_METRICS_UPSTREAM, labels,
			                   tg_now_us() - sent_us);
		free(up_body);
		tg_upstream_headers_free(headers);
		if ((r != NULL && r->started) ||
		    !retryable(o->up_rc, &o->resp) ||
		    o->attempts > c->cfg->num_retries)
			break;
		tg_log_warn("deployment %s failed (%s, status %ld); retrying",
		            o->d->litellm_model, tg_rc_str(o->up_rc),
		            o->resp.status);
		tg_upstream_response_free(&o->resp);
		memset(&o->resp, 0, sizeof(o->resp));
	}
}

/* The upstream's whole answer to the client, in the client's API. */
static void
respond_answer(struct call *c, const struct outcome *o)
{
	struct json_object *answer;

	if (o->tr == NULL ||
	    (answer = o->tr->answer(o->resp.body, o->resp.body_len)) == NULL) {
		tg_req_respond_raw(c->req, 200, o->resp.body, o->resp.body_len);
		return;
	}
	tg_req_respond_json(c->req, 200, answer);
}

/*
 * An answer that is not a stream that began (SPEC 4.2 steps 10 and 11):
 * settle what it cost (nothing for a failure), then answer with it, or
 * with the upstream's error.
 */
static enum tg_rc
answer_whole(struct call *c, struct outcome *o, struct tg_err *err)
{
	struct tg_ledger_entry e;
	struct tg_answer a;
	char cost_text[TG_MONEY_STRLEN];
	char *meta = NULL;
	tg_money cost = 0;
	bool success, estimated = false;
	enum tg_rc rc;

	memset(&a, 0, sizeof(a));
	success = o->up_rc == TG_OK && o->resp.status >= 200 &&
	          o->resp.status < 300 && o->resp.body != NULL;
	if (c->streamed && success) {
		/* A stream that ended before its first event. */
		success = false;
		o->up_rc = tg_err_set(&o->up_err, TG_ERR_UPSTREAM_CONNECT, NULL,
		                      "Connection error: upstream ended the "
		                      "stream without an event");
	}
	if (success) {
		tg_api_adapter(o->api)->read_answer(o->resp.body,
		                                    o->resp.body_len, &a);
		if ((rc = answer_cost(c, o->d, &a, &cost, &estimated,
		                      &o->up_err)) != TG_OK) {
			success = false;
			cost = 0;
			o->up_rc = rc;
		}
	}
	meta = row_metadata(c, o->d, o->attempts, estimated,
	                    success ? &a : NULL);
	entry_init(c, o->d, o->resp.api_base, meta, &e);
	e.success = success;
	e.spend = cost;
	e.prompt_tokens = a.u.prompt_tokens;
	e.completion_tokens = a.u.completion_tokens;
	e.total_tokens = a.u.total_tokens;
	if ((rc = settle(c, &e, &cost, err)) != TG_OK)
		goto out;
	if (success) {
		tg_money_format(cost, cost_text, sizeof(cost_text));
		tg_req_add_header(c->req, "x-litellm-response-cost", cost_text);
		/* As LiteLLM: the region of the deployment that answered. */
		if (o->d->region != NULL)
			tg_req_add_header(c->req, "x-litellm-model-region",
			                  o->d->region);
		respond_answer(c, o);
		rc = TG_OK;
	} else if (o->up_rc != TG_OK) {
		*err = o->up_err;
		rc = o->up_rc;
	} else {
		rc = upstream_error(c->req, &o->resp, err);
	}
out:
	free(meta);
	return rc;
}

/*
 * A stream that ran (SPEC 4.5): charge what was produced, measured or
 * bounded, settle, then end it.  A stream that ended without the API's end
 * (no [DONE] and an unfinished choice; no terminal event) was cut off (the
 * upstream died, or a proxy in between), however cleanly the connection
 * closed: the client must not take it for complete, and its row is a
 * failure charged what was relayed, never more than the hold.
 */
static enum tg_rc
answer_stream(struct call *c, struct outcome *o, struct tg_relay *r)
{
	struct tg_ledger_entry e;
	struct tg_err err, cost_err;
	char *meta;
	tg_money cost = 0;
	bool estimated = false, broken, cut;

	cut = o->up_rc == TG_OK && !r->failed && !r->up->whole(r);
	if (cut)
		o->up_rc = tg_err_set(&o->up_err, TG_ERR_UPSTREAM_CONNECT, NULL,
		                      "Connection error: the upstream's stream "
		                      "ended before the completion did");
	broken = o->up_rc != TG_OK || r->failed;
	tg_err_clear(&cost_err);
	if (answer_cost(c, o->d, &r->answer, &cost, &estimated, &cost_err) !=
	    TG_OK)
		cost = c->estimate;
	/* A failure is never charged more than its hold. */
	if (broken && c->resv.held && cost > c->resv.amount)
		cost = c->resv.amount;
	meta = row_metadata(c, o->d, o->attempts, estimated, &r->answer);
	entry_init(c, o->d, o->resp.api_base, meta, &e);
	e.success = !broken;
	e.spend = cost;
	e.prompt_tokens = r->answer.u.prompt_tokens;
	e.completion_tokens = r->answer.u.completion_tokens;
	e.total_tokens = r->answer.u.total_tokens;
	tg_err_clear(&err);
	if (settle(c, &e, NULL, &err) != TG_OK) {
		tg_relay_end(r, false, &err, NULL);
	} else if (o->up_rc != TG_OK) {
		tg_log_warn("stream broke after it began: %s",
		            o->up_err.message);
		tg_relay_end(r, true, NULL, &o->up_err);
	} else {
		tg_relay_end(r, true, NULL, NULL);
	}
	free(meta);
	/* The answer went out as a stream: nothing is left to respond. */
	return TG_OK;
}

/* Steps 9 to 11: the upstream call, its settlement, the answer. */
static enum tg_rc
call_upstream(struct call *c, struct tg_err *err)
{
	struct tg_relay relay, *r = NULL;
	struct outcome o;
	bool client_usage = false;
	enum tg_rc rc;

	if (c->api->prepare != NULL)
		c->api->prepare(c->body, c->streamed, &client_usage);
	if (c->streamed) {
		r = &relay;
		tg_relay_init(r, c->req, c->api->stream, client_usage);
	}
	attempts(c, r, &o);
	if (r != NULL && r->started)
		rc = answer_stream(c, &o, r);
	else
		rc = answer_whole(c, &o, err);
	if (r != NULL)
		tg_relay_free(r);
	tg_upstream_response_free(&o.resp);
	return rc;
}

/* ---- the call ---- */

/*
 * metadata.tags is tollgate's (as LiteLLM's): taken off the body the
 * upstream gets (a provider refuses a list in metadata; metadata without
 * anything else goes too), and kept, since c->tag_names points into it.
 */
static void
take_tags(struct call *c)
{
	struct json_object *meta, *tags;

	if (c->body == NULL ||
	    !json_object_object_get_ex(c->body, "metadata", &meta) ||
	    !json_object_is_type(meta, json_type_object) ||
	    !json_object_object_get_ex(meta, "tags", &tags))
		return;
	c->tag_list = json_object_get(tags);
	json_object_object_del(meta, "tags");
	if (json_object_object_length(meta) == 0)
		json_object_object_del(c->body, "metadata");
}

/*
 * Whether a budget the call was held against has less left than a lease
 * could take (lib/lease.h: 1/16 of it, at least two calls' worst case):
 * then its calls settle in the database before their answers, as
 * without spool_settlements, and a client refused there was refused by
 * the budget, not by the holds of calls already answered.
 */
static bool
near_end(const struct call *c, tg_money estimate)
{
	tg_money band = 32 * estimate;

	if (c->resv.budgeted && c->has_customer &&
	    c->cust.budget.max_budget.v - c->cust.spend < band)
		return true;
	return c->resv.key_budgeted && c->key != NULL &&
	       c->key->budget.max_budget.v - c->key->spend < band;
}

/*
 * Steps 3 to 8 of SPEC 4.2: the model (and the key's models), the
 * customer, and the admission, which the ledger runs (ledger.h), with
 * gate() for what it must check on the way.
 */
static enum tg_rc
admit(struct call *c, struct tg_err *err)
{
	const struct tg_value *model = tg_req_field(c->req, c->api->f_model);
	struct tg_admission a;
	enum tg_rc rc;

	memset(&a, 0, sizeof(a));
	/* A key's alias is the model it stands for, from here on: its
	 * models list, deployments, price and row (LiteLLM's aliases). */
	c->model = tg_key_model_of(c->key, model->given ? model->str : NULL);
	if (c->model != NULL) {
		if (!tg_config_has_model(c->cfg, c->model))
			return unknown_model(c, err);
		/* Before the customer is loaded (or created) for a call
		 * refused. */
		if ((rc = key_allows(c, err)) != TG_OK)
			return rc;
	}
	rc = tg_meter_customer_id(
	        tg_req_header(c->req, "x-litellm-customer-id"),
	        tg_req_header(c->req, "x-litellm-end-user-id"), c->body,
	        c->user_id, sizeof(c->user_id), &c->has_id, err);
	if (rc != TG_OK)
		return rc;
	/* The worst case a customer without a region has: every deployment
	 * of the model that serves the API. */
	if (c->model != NULL) {
		if ((rc = candidates(c, NULL, err)) != TG_OK)
			return rc;
		if ((rc = translatable(c, err)) != TG_OK)
			return rc;
		if ((rc = worst_case(c, &a.estimate, err)) != TG_OK)
			return rc;
		c->estimate = a.estimate;
		a.estimate_known = true;
	}
	/* The tags it names, and of them those that are accounts. */
	rc = tg_tag_names(c->body, tg_req_header(c->req, "x-litellm-tags"),
	                  c->tag_header, sizeof(c->tag_header), c->tag_names,
	                  &c->ntag_names, err);
	if (rc != TG_OK)
		return rc;
	take_tags(c);
	a.user_id = c->has_id ? c->user_id : NULL;
	a.default_budget_id = c->cfg->max_end_user_budget_id;
	a.key = c->key;
	a.tag_names = c->tag_names;
	a.ntag_names = c->ntag_names;
	a.tags = c->tags;
	a.mode = c->cfg->budget_enforcement;
	hold_request(c, &a.hold);
	/* A busy account's call against this process's lease of its budget,
	 * without the database (lib/lease.h); else the database's. */
	if (a.estimate_known && a.mode == TG_ENFORCE_RESERVE &&
	    c->ntag_names == 0 &&
	    tg_lease_admit(c->cfg, a.user_id, c->key, a.estimate, &a.hold,
	                   &c->resv, &c->cust, &c->has_customer))
		return TG_OK;
	rc = tg_ledger_admit(c->db, &a, gate, c, &c->cust, &c->has_customer,
	                     &c->resv, err);
	if (rc == TG_OK && c->resv.held)
		c->tight = near_end(c, a.estimate);
	if (rc == TG_OK && c->resv.held && c->resv.fast && c->model != NULL)
		tg_lease_note(c->cfg, &c->resv,
		              c->has_customer ? &c->cust : NULL, c->key,
		              c->model, a.estimate, a.hold.hold_seconds);
	c->ntags = a.ntags; /* loaded: freed with the call */
	if (rc == TG_OK && c->resv.held)
		c->estimate = c->resv.amount;
	if (rc == TG_ERR_BUDGET)
		tg_req_add_header(c->req, "x-should-retry", "false");
	if (rc == TG_ERR_DB && tg_db_txn_uncertain(c->db))
		release_unknown_hold(c);
	return rc;
}

static enum tg_rc
meter(struct tg_req *req, const struct tg_api_adapter *api, struct tg_err *err)
{
	struct call c;
	enum tg_rc rc;

	memset(&c, 0, sizeof(c));
	c.req = req;
	c.api = api;
	c.key = tg_req_key(req);
	c.cfg = tg_req_config(req);
	c.body = tg_req_json(req);
	c.body_text = tg_req_body(req, &c.body_len);
	c.streamed = api->stream != NULL && api->f_stream != TG_API_NO_FIELD &&
	             tg_req_field(req, api->f_stream)->given &&
	             tg_req_field(req, api->f_stream)->num;

	if ((rc = api->check(req, err)) != TG_OK)
		goto out;
	/* The ledger is not optional: without the database nothing is sent
	 * upstream, so no tokens go unaccounted. */
	if ((rc = tg_req_db(req, &c.db, err)) != TG_OK)
		goto out;
	if ((rc = admit(&c, err)) != TG_OK)
		goto out;
	/* A stream may last minutes, while this process's settlements wait
	 * in its journal: they go in first (spool_settlements, SPEC 4.6). */
	if (c.streamed && tg_journal_pending() > 0) {
		struct tg_err jerr;

		tg_err_clear(&jerr);
		if (tg_journal_move(c.db, &c.cfg->alerting, NULL, &jerr) !=
		    TG_OK)
			tg_log_warn("moving the journal before a stream: %s",
			            jerr.message);
	}
	rc = call_upstream(&c, err);
out:
	/* Counted once answered, with its status (SPEC 15); a model the
	 * config does not have is no label (clients choose the name). */
	tg_req_note_call(req, tg_api_path(api->api),
	                 c.model != NULL && tg_config_has_model(c.cfg, c.model)
	                         ? c.model
	                         : NULL);
	/* Whatever ended the call before settlement (a budget refusal, a
	 * failed settlement): its slot is freed, no tokens counted; its share
	 * of a lease is charged as unsettled, as its own hold would be. */
	release_limits(&c, 0);
	if (c.resv.held && c.resv.lease_id[0] != '\0' && !c.settled)
		tg_lease_abandon(c.db, &c.resv);
	if (c.has_customer)
		tg_customer_free(&c.cust);
	for (size_t i = 0; i < c.ntags; i++)
		tg_tag_free(&c.tags[i]);
	json_object_put(c.tag_list);
	return rc;
}

enum tg_rc
tg_meter_chat(struct tg_req *req, struct tg_err *err)
{
	return meter(req, &tg_api_chat, err);
}

enum tg_rc
tg_meter_responses(struct tg_req *req, struct tg_err *err)
{
	return meter(req, &tg_api_responses, err);
}

enum tg_rc
tg_meter_embeddings(struct tg_req *req, struct tg_err *err)
{
	return meter(req, &tg_api_embeddings, err);
}

enum tg_rc
tg_meter_completions(struct tg_req *req, struct tg_err *err)
{
	return meter(req, &tg_api_completions, err);
}

enum tg_rc
tg_meter_messages(struct tg_req *req, struct tg_err *err)
{
	return meter(req, &tg_api_messages, err);
}
