/*
 * config: reading LiteLLM's config.yaml (the subset of SPEC section 2) into
 * a struct tg_config, with every deployment's price resolved.
 *
 * The file is read with libyaml's document API, which gives every node its
 * line, so each error names "<file>:<line>: <reason>".  Each section of the
 * file is described by a table of fields (key, kind, where it goes); a small
 * set of kinds (string, URL, seconds, count, price...) does the parsing and
 * validation, so adding a key is one table row.
 *
 * Nothing is handed out until the whole file has been read, checked and
 * priced: on any error everything is freed and the caller gets TG_ERR_CONFIG,
 * never a half-loaded config.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "config.h"
#include "log.h"
#include "money.h"
#include "pricing.h"
#include "util.h"

#define ENV_PREFIX "os.environ/"

/* A price given in the config; set tells "given" from "0". */
struct opt_price {
	bool set;
	tg_price value;
};

/* A deployment while it is read: the result plus what resolution needs. */
struct dep_parse {
	struct tg_deployment d;
	struct opt_price info_input, info_output, info_cache_read;
	struct opt_price info_cache_write, info_cache_write_1h;
	struct opt_price params_input, params_output; /* litellm_params.* */
	int64_t info_max_output_tokens;               /* 0: not given */
	int64_t info_max_input_tokens;                /* 0: not given */
	struct opt_price info_file_search, info_code_interpreter;
	struct opt_price info_reasoning, info_audio_input, info_audio_output;
	struct opt_price info_per_request;
	/* model_info's rates of the priority and flex service tiers. */
	struct opt_price info_service[TG_SERVICE_TIERS][3]; /* in, out, read */
	int base_model_line;
};

struct loader {
	const char *path;
	yaml_document_t doc;
	struct tg_config *cfg;
	struct tg_err *err;

	struct dep_parse *deps;
	size_t ndeps, capdeps;

	int alerting_line;
	bool alerting_webhook, alerting_slack; /* named in alerting */
	int alert_types_line;
	bool alert_types_set;
	int cost_map_line;
	/* The price file, whatever model_cost_map_path says
	 * (tg_config_load_prices()), or NULL. */
	const char *price_forced;

	char **logged; /* unknown keys already logged */
	size_t nlogged;
};

/* What a key's value is and how it is checked. */
enum kind {
	K_STRING,      /* char *: any string, NULL when empty or null */
	K_URL,         /* char *: http:// or https:// */
	K_SECONDS,     /* long: positive, fractions rounded up, <= one day */
	K_COUNT,       /* int: 0..TG_CONFIG_MAX_COUNT */
	K_TOKENS,      /* int64_t: 1..TG_CONFIG_MAX_TOKENS */
	K_BYTES,       /* size_t: 1..TG_CONFIG_MAX_BYTES */
	K_PRICE,       /* struct opt_price: >= 0, exact */
	K_ENFORCE,     /* enum tg_enforcement: "reserve" or "post" */
	K_ALERTING,    /* list of alerting targets (target: the loader) */
	K_ALERT_TYPES, /* list of event names: unsigned tg_event bits */
	K_PERIOD,      /* long: seconds, 1..TG_CONFIG_MAX_PERIOD */
	K_PATH,        /* char *: a file path; its line is kept for messages */
	K_CALL_PRICE,  /* struct opt_price: USD per call (or session) */
	K_TOOL_PRICES, /* a mapping of hosted tool names to K_CALL_PRICEs */
	K_BOOL,        /* bool: true or false */
};

struct field {
	const char *key;
	enum kind kind;
	size_t offset; /* into the section's target struct */
};

/* litellm_params of a model_list entry (target: struct dep_parse). */
static const struct field params_fields[] = {
        {"model", K_STRING, offsetof(struct dep_parse, d.litellm_model)},
        {"api_base", K_URL, offsetof(struct dep_parse, d.api_base)},
        {"api_key", K_STRING, offsetof(struct dep_parse, d.api_key)},
        {"api_version", K_STRING, offsetof(struct dep_parse, d.api_version)},
        {"region_name", K_STRING, offsetof(struct dep_parse, d.region)},
        {"timeout", K_SECONDS, offsetof(struct dep_parse, d.timeout_s)},
        {"mock_response", K_STRING,
         offsetof(struct dep_parse, d.mock_response)},
        /* LiteLLM also takes custom prices here; model_info wins. */
        {"input_cost_per_token", K_PRICE,
         offsetof(struct dep_parse, params_input)},
        {"output_cost_per_token", K_PRICE,
         offsetof(struct dep_parse, params_output)},
        {NULL, K_STRING, 0},
};

/* model_info of a model_list entry (target: struct dep_parse). */
static const struct field info_fields[] = {
        {"base_model", K_STRING, offsetof(struct dep_parse, d.base_model)},
        {"input_cost_per_token", K_PRICE,
         offsetof(struct dep_parse, info_input)},
        {"output_cost_per_token", K_PRICE,
         offsetof(struct dep_parse, info_output)},
        {"cache_read_input_token_cost", K_PRICE,
         offsetof(struct dep_parse, info_cache_read)},
        {"cache_creation_input_token_cost", K_PRICE,
         offsetof(struct dep_parse, info_cache_write)},
        {"cache_creation_input_token_cost_above_1hr", K_PRICE,
         offsetof(struct dep_parse, info_cache_write_1h)},
        {"max_output_tokens", K_TOKENS,
         offsetof(struct dep_parse, info_max_output_tokens)},
        {"max_input_tokens", K_TOKENS,
         offsetof(struct dep_parse, info_max_input_tokens)},
        {"file_search_cost_per_1k_calls", K_CALL_PRICE,
         offsetof(struct dep_parse, info_file_search)},
        {"code_interpreter_cost_per_session", K_CALL_PRICE,
         offsetof(struct dep_parse, info_code_interpreter)},
        {"output_cost_per_reasoning_token", K_PRICE,
         offsetof(struct dep_parse, info_reasoning)},
        {"input_cost_per_audio_token", K_PRICE,
         offsetof(struct dep_parse, info_audio_input)},
        {"output_cost_per_audio_token", K_PRICE,
         offsetof(struct dep_parse, info_audio_output)},
        {"input_cost_per_request", K_CALL_PRICE,
         offsetof(struct dep_parse, info_per_request)},
        {"input_cost_per_token_priority", K_PRICE,
         offsetof(struct dep_parse, info_service[TG_SERVICE_PRIORITY][0])},
        {"output_cost_per_token_priority", K_PRICE,
         offsetof(struct dep_parse, info_service[TG_SERVICE_PRIORITY][1])},
        {"cache_read_input_token_cost_priority", K_PRICE,
         offsetof(struct dep_parse, info_service[TG_SERVICE_PRIORITY][2])},
        {"input_cost_per_token_flex", K_PRICE,
         offsetof(struct dep_parse, info_service[TG_SERVICE_FLEX][0])},
        {"output_cost_per_token_flex", K_PRICE,
         offsetof(struct dep_parse, info_service[TG_SERVICE_FLEX][1])},
        {"cache_read_input_token_cost_flex", K_PRICE,
         offsetof(struct dep_parse, info_service[TG_SERVICE_FLEX][2])},
        /* OpenRouter reports each call's cost in its usage: charge that
         * instead of the prices (which still bound the hold). */
        {"trust_upstream_cost", K_BOOL,
         offsetof(struct dep_parse, d.trust_upstream_cost)},
        {NULL, K_STRING, 0},
};

/* litellm_settings (target: struct tg_config). */
static const struct field litellm_fields[] = {
        {"max_end_user_budget_id", K_STRING,
         offsetof(struct tg_config, max_end_user_budget_id)},
        {"default_max_tokens", K_TOKENS,
         offsetof(struct tg_config, default_max_tokens)},
        {"request_timeout", K_SECONDS,
         offsetof(struct tg_config, request_timeout)},
        {"num_retries", K_COUNT, offsetof(struct tg_config, num_retries)},
        {"budget_enforcement", K_ENFORCE,
         offsetof(struct tg_config, budget_enforcement)},
        {"model_cost_map_path", K_PATH,
         offsetof(struct tg_config, model_cost_map_path)},
        {NULL, K_STRING, 0},
};

/* general_settings (target: struct tg_config). */
static const struct field general_fields[] = {
        {"master_key", K_STRING, offsetof(struct tg_config, master_key)},
        {"database_url", K_STRING, offsetof(struct tg_config, database_url)},
        {"alerting", K_ALERTING, 0},
        {"alert_types", K_ALERT_TYPES,
         offsetof(struct tg_config, alerting.events)},
        {"webhook_secret", K_STRING,
         offsetof(struct tg_config, alerting.webhook_secret)},
        {NULL, K_STRING, 0},
};

/* tollgate_settings (target: struct tg_config). */
static const struct field tollgate_fields[] = {
        {"max_management_body", K_BYTES,
         offsetof(struct tg_config, max_management_body)},
        {"max_llm_body", K_BYTES, offsetof(struct tg_config, max_llm_body)},
        {"spool_dir", K_STRING, offsetof(struct tg_config, spool_dir)},
        {"metrics_key", K_STRING, offsetof(struct tg_config, metrics_key)},
        {"metrics_per_customer", K_BOOL,
         offsetof(struct tg_config, metrics_per_customer)},
        {"spool_settlements", K_BOOL,
         offsetof(struct tg_config, spool_settlements)},
        {"spool_batch_ms", K_TOKENS,
         offsetof(struct tg_config, spool_batch_ms)},
        {"budget_leases", K_BOOL, offsetof(struct tg_config, budget_leases)},
        {"lease_calls", K_COUNT, offsetof(struct tg_config, lease_calls)},
        {"lease_after_calls", K_COUNT,
         offsetof(struct tg_config, lease_after_calls)},
        {"lease_idle_ms", K_TOKENS, offsetof(struct tg_config, lease_idle_ms)},
        {"lease_seconds", K_SECONDS, offsetof(struct tg_config, lease_seconds)},
        {"hold_grace", K_SECONDS, offsetof(struct tg_config, hold_grace_s)},
        {"reclaim_interval", K_SECONDS,
         offsetof(struct tg_config, reclaim_interval_s)},
        {"webhook_timeout", K_SECONDS,
         offsetof(struct tg_config, alerting.timeout_s)},
        {"webhook_retry_base", K_SECONDS,
         offsetof(struct tg_config, alerting.retry_base_s)},
        {"webhook_retry_for", K_PERIOD,
         offsetof(struct tg_config, alerting.retry_for_s)},
        {"webhook_retention", K_PERIOD,
         offsetof(struct tg_config, alerting.retention_s)},
        {"tool_prices", K_TOOL_PRICES, 0},
        {"default_max_tool_calls", K_TOKENS,
         offsetof(struct tg_config, default_max_tool_calls)},
        {NULL, K_STRING, 0},
};

static int
node_line(const yaml_node_t *n)
{
	return n ? (int)n->start_mark.line + 1 : 0;
}

/* Fill the error as "<file>:<line>: <reason>" and return TG_ERR_CONFIG. */
static enum tg_rc fail(struct loader *ld, int line, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static enum tg_rc
fail(struct loader *ld, int line, const char *fmt, ...)
{
	char reason[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	return tg_err_set(ld->err, TG_ERR_CONFIG, NULL, "%s:%d: %s", ld->path,
	                  line, reason);
}

static yaml_node_t *
node_at(struct loader *ld, int index)
{
	return yaml_document_get_node(&ld->doc, index);
}

/* Log an ignored key, once per (section, key) and load. */
static void
log_unknown(struct loader *ld, const char *section, const char *key, int line)
{
	char name[256];

	snprintf(name, sizeof(name), "%s%s%s", section ? section : "",
	         section ? "." : "", key);
	for (size_t i = 0; i < ld->nlogged; i++)
		if (strcmp(ld->logged[i], name) == 0)
			return;
	ld->logged = tg_xrealloc(ld->logged,
	                         (ld->nlogged + 1) * sizeof(*ld->logged));
	ld->logged[ld->nlogged++] = tg_xstrdup(name);
	tg_log_warn("%s:%d: ignoring unknown key '%s'", ld->path, line, name);
}

static bool
is_null_scalar(const yaml_node_t *n)
{
	const char *v = (const char *)n->data.scalar.value;

	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	return v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
	       strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

/*
 * The text of a scalar value, after os.environ/NAME substitution.  *out is
 * NULL for a YAML null.  The text belongs to the document or the
 * environment: copy it to keep it.
 */
static enum tg_rc
scalar_text(struct loader *ld, const yaml_node_t *n, const char *key,
            const char **out)
{
	const char *v, *env;

	if (n->type != YAML_SCALAR_NODE)
		return fail(ld, node_line(n), "'%s' must be a single value",
		            key);
	if (is_null_scalar(n)) {
		*out = NULL;
		return TG_OK;
	}
	v = (const char *)n->data.scalar.value;
	if (strncmp(v, ENV_PREFIX, strlen(ENV_PREFIX)) == 0) {
		const char *name = v + strlen(ENV_PREFIX);

		if (name[0] == '\0')
			return fail(ld, node_line(n),
			            "'%s': os.environ/ needs a variable name",
			            key);
		env = getenv(name);
		if (env == NULL)
			return fail(ld, node_line(n),
			            "environment variable %s is not set "
			            "(needed by '%s')",
			            name, key);
		v = env;
	}
	*out = v;
	return TG_OK;
}

static bool
is_http_url(const char *s)
{
	return (strncmp(s, "http://", 7) == 0 && s[7] != '\0') ||
	       (strncmp(s, "https://", 8) == 0 && s[8] != '\0');
}

/*
 * Whole seconds from a decimal ("600", "0.5"), rounded up so a timeout is
 * never shorter than asked.  False unless positive and in range.
 */
static bool
parse_seconds(const char *s, long *out)
{
	int64_t ms;

	if (!tg_decimal_parse(s, 3, &ms) || ms <= 0 ||
	    ms / 1000 >= (int64_t)LONG_MAX)
		return false;
	*out = (long)(ms / 1000 + (ms % 1000 != 0));
	return true;
}

static bool
parse_whole(const char *s, int64_t min, int64_t max, int64_t *out)
{
	int64_t v;

	if (!tg_decimal_parse(s, 0, &v) || v < min || v > max)
		return false;
	*out = v;
	return true;
}

/* One name of general_settings.alerting. */
static void
alerting_target(struct loader *ld, const yaml_node_t *n, const char *text)
{
	if (text == NULL)
		return;
	if (strcmp(text, "webhook") == 0)
		ld->alerting_webhook = true;
	else if (strcmp(text, "slack") == 0)
		ld->alerting_slack = true;
	else
		tg_log_warn("%s:%d: ignoring unsupported alerting '%s'",
		            ld->path, node_line(n), text);
}

/* The bits of one name of general_settings.alert_types: tollgate's event
 * names, and LiteLLM's "budget_alerts" for the three budget events. */
static unsigned
alert_type_bits(const char *name)
{
	static const struct {
		const char *name;
		unsigned bits;
	} types[] = {
	        {"spend_tracked", TG_EVENT_SPEND_TRACKED},
	        {"threshold_crossed", TG_EVENT_THRESHOLD_CROSSED},
	        {"budget_crossed", TG_EVENT_BUDGET_CROSSED},
	        {"soft_budget_crossed", TG_EVENT_SOFT_BUDGET_CROSSED},
	        {"budget_alerts", TG_EVENT_BUDGET_ALERTS},
	};

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(name, types[i].name) == 0)
			return types[i].bits;
	return 0;
}

/*
 * A list of names (a single value is taken as a list of one): the targets
 * of general_settings.alerting, or the events of alert_types into *bits.
 */
static enum tg_rc
parse_name_list(struct loader *ld, const yaml_node_t *n, const char *key,
                unsigned *bits)
{
	const yaml_node_t *item;
	const char *text;
	size_t count;
	enum tg_rc rc;

	if (n->type == YAML_SEQUENCE_NODE)
		count = (size_t)(n->data.sequence.items.top -
		                 n->data.sequence.items.start);
	else
		count = 1;
	if (bits != NULL) {
		ld->alert_types_set = true;
		ld->alert_types_line = node_line(n);
		*bits = 0;
	} else {
		ld->alerting_line = node_line(n);
	}
	for (size_t i = 0; i < count; i++) {
		unsigned b;

		item = n->type == YAML_SEQUENCE_NODE
		               ? node_at(ld, n->data.sequence.items.start[i])
		               : n;
		rc = scalar_text(ld, item, key, &text);
		if (rc != TG_OK)
			return rc;
		if (bits == NULL) {
			alerting_target(ld, item, text);
			continue;
		}
		if (text == NULL)
			continue;
		b = alert_type_bits(text);
		if (b == 0)
			tg_log_warn("%s:%d: ignoring unsupported alert_types "
			            "'%s' (tollgate sends spend_tracked, "
			            "threshold_crossed, budget_crossed, "
			            "soft_budget_crossed; budget_alerts names "
			            "the last three)",
			            ld->path, node_line(item), text);
		*bits |= b;
	}
	return TG_OK;
}

bool
tg_alerting_wants(const struct tg_alerting *a, enum tg_event e)
{
	if (a == NULL || (a->events & (unsigned)e) == 0)
		return false;
	if (a->webhook_url != NULL)
		return true;
	return a->slack_url != NULL && (e & TG_EVENT_BUDGET_ALERTS) != 0;
}

static enum tg_rc parse_field(struct loader *ld, const struct field *f,
                              const yaml_node_t *v, void *base);

/*
 * tollgate_settings.tool_prices: a mapping of hosted tool names
 * (tg_tool_name()) to their price per call.  An unknown name is an error:
 * a price the operator meant for a tool must not be ignored.
 */
static enum tg_rc
parse_tool_prices(struct loader *ld, const yaml_node_t *n, const char *key)
{
	static const struct field price = {"tool_prices", K_CALL_PRICE, 0};

	if (n->type == YAML_SCALAR_NODE && is_null_scalar(n))
		return TG_OK;
	if (n->type != YAML_MAPPING_NODE)
		return fail(ld, node_line(n), "'%s' must be a mapping", key);
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
	     p < n->data.mapping.pairs.top; p++) {
		const yaml_node_t *k = node_at(ld, p->key);
		const char *name = k->type == YAML_SCALAR_NODE
		                           ? (const char *)k->data.scalar.value
		                           : "";
		struct opt_price got = {false, 0};
		size_t t;
		enum tg_rc rc;

		for (t = 0; t < TG_TOOL_COUNT; t++)
			if (strcmp(name, tg_tool_name((enum tg_tool)t)) == 0)
				break;
		if (t == TG_TOOL_COUNT)
			return fail(ld, node_line(k),
			            "'%s': unknown hosted tool '%s' (known: "
			            "web_search, web_search_preview, "
			            "file_search, code_interpreter, "
			            "image_generation)",
			            key, name);
		rc = parse_field(ld, &price, node_at(ld, p->value), &got);
		if (rc != TG_OK)
			return rc;
		ld->cfg->has_tool_price[t] = got.set;
		ld->cfg->tool_price[t] = got.value;
	}
	return TG_OK;
}

/* Parse value node v of key into base + f->offset as f->kind says. */
static enum tg_rc
parse_field(struct loader *ld, const struct field *f, const yaml_node_t *v,
            void *base)
{
	char *slot = (char *)base + f->offset;
	const char *text;
	enum tg_rc rc;
	int line = node_line(v);
	int64_t whole;

	if (f->kind == K_ALERTING)
		return parse_name_list(ld, v, f->key, NULL);
	if (f->kind == K_ALERT_TYPES)
		return parse_name_list(ld, v, f->key, (unsigned *)(void *)slot);
	if (f->kind == K_TOOL_PRICES)
		return parse_tool_prices(ld, v, f->key);
	rc = scalar_text(ld, v, f->key, &text);
	if (rc != TG_OK)
		return rc;

	switch (f->kind) {
	case K_STRING:
	case K_PATH: {
		char **dst = (char **)(void *)slot;

		if (f->kind == K_PATH)
			ld->cost_map_line = line;
		free(*dst);
		*dst = (text && text[0]) ? tg_xstrdup(text) : NULL;
		return TG_OK;
	}
	case K_URL: {
		char **dst = (char **)(void *)slot;
		size_t len;

		free(*dst);
		*dst = NULL;
		if (text == NULL || text[0] == '\0')
			return TG_OK;
		/* The value is not echoed: a URL may carry credentials. */
		if (!is_http_url(text))
			return fail(ld, line,
			            "'%s' must start with http:// or https://",
			            f->key);
		/* "https://host/v1/" would give "//chat/completions". */
		len = strlen(text);
		while (len > 0 && text[len - 1] == '/')
			len--;
		*dst = tg_xstrndup(text, len);
		return TG_OK;
	}
	case K_SECONDS:
	case K_PERIOD: {
		long max = f->kind == K_PERIOD ? TG_CONFIG_MAX_PERIOD
		                               : TG_CONFIG_MAX_SECONDS;

		if (text == NULL)
			return TG_OK;
		if (!parse_seconds(text, (long *)(void *)slot) ||
		    *(long *)(void *)slot > max)
			return fail(
			        ld, line,
			        "'%s' must be a positive number of seconds, "
			        "at most %ld",
			        f->key, max);
		return TG_OK;
	}
	case K_COUNT:
		if (text == NULL)
			return TG_OK;
		if (!parse_whole(text, 0, TG_CONFIG_MAX_COUNT, &whole))
			return fail(ld, line,
			            "'%s' must be a whole number >= 0 and at "
			            "most %d",
			            f->key, TG_CONFIG_MAX_COUNT);
		*(int *)(void *)slot = (int)whole;
		return TG_OK;
	case K_TOKENS:
		if (text == NULL)
			return TG_OK;
		if (!parse_whole(text, 1, TG_CONFIG_MAX_TOKENS, &whole))
			return fail(
			        ld, line,
			        "'%s' must be a whole number > 0 and at most "
			        "%" PRId64,
			        f->key, TG_CONFIG_MAX_TOKENS);
		*(int64_t *)(void *)slot = whole;
		return TG_OK;
	case K_BYTES:
		if (text == NULL)
			return TG_OK;
		if (!parse_whole(text, 1, TG_CONFIG_MAX_BYTES, &whole))
			return fail(ld, line,
			            "'%s' must be a whole number of bytes > 0 "
			            "and at most %" PRId64,
			            f->key, TG_CONFIG_MAX_BYTES);
		*(size_t *)(void *)slot = (size_t)whole;
		return TG_OK;
	case K_PRICE:
	case K_CALL_PRICE: {
		struct opt_price *dst = (struct opt_price *)(void *)slot;
		tg_price price;

		if (text == NULL) {
			dst->set = false;
			return TG_OK;
		}
		if (!tg_price_parse(text, &price) || price < 0)
			return fail(ld, line,
			            "'%s' must be a price in USD per %s "
			            "(a decimal >= 0 with at most 15 decimals)",
			            f->key,
			            f->kind == K_PRICE ? "token" : "call");
		dst->set = true;
		dst->value = price;
		return TG_OK;
	}
	case K_ENFORCE: {
		enum tg_enforcement *dst = (enum tg_enforcement *)(void *)slot;

		if (text == NULL)
			return TG_OK;
		if (strcmp(text, "reserve") == 0)
			*dst = TG_ENFORCE_RESERVE;
		else if (strcmp(text, "post") == 0)
			*dst = TG_ENFORCE_POST;
		else
			return fail(ld, line,
			            "'%s' must be \"reserve\" or \"post\"",
			            f->key);
		return TG_OK;
	}
	case K_BOOL:
		if (text == NULL)
			return TG_OK;
		if (strcmp(text, "true") == 0 || strcmp(text, "True") == 0)
			*(bool *)(void *)slot = true;
		else if (strcmp(text, "false") == 0 ||
		         strcmp(text, "False") == 0)
			*(bool *)(void *)slot = false;
		else
			return fail(ld, line, "'%s' must be true or false",
			            f->key);
		return TG_OK;
	case K_ALERTING:
	case K_ALERT_TYPES:
	case K_TOOL_PRICES: break; /* handled above */
	}
	return TG_OK;
}

/*
 * Walk mapping n: each key of fields is parsed into base, other keys are
 * logged and ignored.  A key given twice is an error (YAML forbids it and
 * which one would win is a guess).  A null value stands for an empty map.
 */
static enum tg_rc
parse_section(struct loader *ld, const yaml_node_t *n, const char *section,
              const struct field *fields, void *base)
{
	enum tg_rc rc;

	if (n->type == YAML_SCALAR_NODE && is_null_scalar(n))
		return TG_OK;
	if (n->type != YAML_MAPPING_NODE)
		return fail(ld, node_line(n), "'%s' must be a mapping",
		            section);
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
	     p < n->data.mapping.pairs.top; p++) {
		const yaml_node_t *k = node_at(ld, p->key);
		const yaml_node_t *v = node_at(ld, p->value);
		const struct field *f;
		const char *key;

		if (k->type != YAML_SCALAR_NODE)
			return fail(ld, node_line(k),
			            "a key in '%s' is not a "
			            "plain name",
			            section);
		key = (const char *)k->data.scalar.value;
		for (yaml_node_pair_t *q = n->data.mapping.pairs.start; q < p;
		     q++) {
			const yaml_node_t *prev = node_at(ld, q->key);

			if (prev->type == YAML_SCALAR_NODE &&
			    strcmp((const char *)prev->data.scalar.value,
			           key) == 0)
				return fail(ld, node_line(k),
				            "duplicate key '%s' in '%s'", key,
				            section);
		}
		for (f = fields; f->key != NULL; f++)
			if (strcmp(f->key, key) == 0)
				break;
		if (f->key == NULL) {
			log_unknown(ld, section, key, node_line(k));
			continue;
		}
		rc = parse_field(ld, f, v, base);
		if (rc != TG_OK)
			return rc;
	}
	return TG_OK;
}

static void
deployment_free_strings(struct tg_deployment *d)
{
	free(d->model_name);
	free(d->litellm_model);
	free(d->upstream_model);
	free(d->api_base);
	free(d->api_key);
	free(d->api_version);
	free(d->region);
	free(d->mock_response);
	free(d->base_model);
	free(d->price_name);
}

/*
 * Split litellm_params.model into provider and upstream name; a provider
 * with a model_prefix (Fireworks) gets it before a name without '/'.
 */
static enum tg_rc
parse_provider(struct loader *ld, struct dep_parse *dp, int line)
{
	const struct tg_provider_info *prov;
	const char *model = dp->d.litellm_model, *slash;
	size_t plen;

	slash = strchr(model, '/');
	if (slash == NULL) {
		dp->d.provider = TG_PROVIDER_OPENAI;
		dp->d.upstream_model = tg_xstrdup(model);
		return TG_OK;
	}
	plen = (size_t)(slash - model);
	prov = tg_provider_by_name(model, plen);
	if (prov == NULL)
		return fail(ld, line,
		            "unsupported provider '%.*s' in model '%s' "
		            "(supported: %s)",
		            (int)plen, model, model, tg_provider_names());
	if (slash[1] == '\0')
		return fail(ld, line,
		            "model '%s' has no name after the provider", model);
	dp->d.provider = prov->id;
	if (prov->model_prefix != NULL && strchr(slash + 1, '/') == NULL) {
		size_t n = strlen(prov->model_prefix);

		dp->d.upstream_model = tg_xmalloc(n + strlen(slash + 1) + 1);
		memcpy(dp->d.upstream_model, prov->model_prefix, n);
		strcpy(dp->d.upstream_model + n, slash + 1);
	} else {
		dp->d.upstream_model = tg_xstrdup(slash + 1);
	}
	return TG_OK;
}

/* A copy of getenv(name), or NULL when unset or empty. */
static char *
env_dup(const char *name)
{
	const char *v = getenv(name);

	return (v && v[0]) ? tg_xstrdup(v) : NULL;
}

/*
 * What the provider's row says of a deployment's api_base and api_key
 * beyond what the config gives: the environment variables LiteLLM reads
 * when api_key or api_base is absent (read once, here, as os.environ/ is),
 * the provider's base_path after an api_base that lacks it, and a load
 * error for a provider with no default base and no api_base at all.
 */
static enum tg_rc
apply_provider_env(struct loader *ld, struct dep_parse *dp, int line)
{
	const struct tg_provider_info *prov = tg_provider(dp->d.provider);
	struct tg_deployment *d = &dp->d;

	if (d->api_key == NULL && prov->key_env != NULL)
		for (size_t i = 0; prov->key_env[i] != NULL && !d->api_key; i++)
			d->api_key = env_dup(prov->key_env[i]);
	if (d->api_base == NULL && prov->base_env != NULL) {
		d->api_base = env_dup(prov->base_env);
		if (d->api_base != NULL && !is_http_url(d->api_base))
			return fail(ld, line,
			            "model '%s': %s must start with http:// or "
			            "https://",
			            d->model_name, prov->base_env);
	}
	if (d->api_base != NULL && prov->base_path != NULL) {
		size_t blen = strlen(d->api_base);
		size_t plen = strlen(prov->base_path);
		char *base;

		while (blen > 0 && d->api_base[blen - 1] == '/')
			blen--;
		if (blen < plen || memcmp(d->api_base + blen - plen,
		                          prov->base_path, plen) != 0) {
			base = tg_xmalloc(blen + plen + 1);
			memcpy(base, d->api_base, blen);
			strcpy(base + blen, prov->base_path);
			free(d->api_base);
			d->api_base = base;
		}
	}
	if (d->api_base == NULL && prov->default_base == NULL && !prov->local)
		return fail(ld, line,
		            "model '%s': %s needs litellm_params.api_base%s%s",
		            d->model_name, prov->name,
		            prov->base_env ? " or the environment variable "
		                           : "",
		            prov->base_env ? prov->base_env : "");
	return TG_OK;
}

/* One model_list entry. */
static enum tg_rc
parse_deployment(struct loader *ld, const yaml_node_t *n)
{
	struct dep_parse dp;
	enum tg_rc rc;
	int line = node_line(n), model_line = line;

	memset(&dp, 0, sizeof(dp));
	dp.d.line = line;
	if (n->type != YAML_MAPPING_NODE) {
		rc = fail(ld, line, "a model_list entry must be a mapping");
		goto out;
	}
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
	     p < n->data.mapping.pairs.top; p++) {
		const yaml_node_t *k = node_at(ld, p->key);
		const yaml_node_t *v = node_at(ld, p->value);
		const char *key, *text;

		if (k->type != YAML_SCALAR_NODE) {
			rc = fail(ld, node_line(k),
			          "a key in a model_list entry is not a plain "
			          "name");
			goto out;
		}
		key = (const char *)k->data.scalar.value;
		if (strcmp(key, "model_name") == 0) {
			rc = scalar_text(ld, v, key, &text);
			if (rc != TG_OK)
				goto out;
			free(dp.d.model_name);
			dp.d.model_name =
			        (text && text[0]) ? tg_xstrdup(text) : NULL;
		} else if (strcmp(key, "litellm_params") == 0) {
			rc = parse_section(ld, v, "litellm_params",
			                   params_fields, &dp);
			if (rc != TG_OK)
				goto out;
			model_line = node_line(v);
		} else if (strcmp(key, "model_info") == 0) {
			rc = parse_section(ld, v, "model_info", info_fields,
			                   &dp);
			if (rc != TG_OK)
				goto out;
			dp.base_model_line = node_line(v);
		} else {
			log_unknown(ld, "model_list[]", key, node_line(k));
		}
	}

	if (dp.d.model_name == NULL) {
		rc = fail(ld, line, "model_list entry without model_name");
		goto out;
	}
	if (dp.d.litellm_model == NULL) {
		rc = fail(ld, model_line,
		          "model '%s' has no litellm_params.model",
		          dp.d.model_name);
		goto out;
	}
	rc = parse_provider(ld, &dp, model_line);
	if (rc != TG_OK)
		goto out;
	if (dp.d.provider == TG_PROVIDER_AZURE &&
	    (dp.d.api_base == NULL || dp.d.api_version == NULL)) {
		rc = fail(ld, model_line,
		          "model '%s': azure needs litellm_params.%s",
		          dp.d.model_name,
		          dp.d.api_base == NULL ? "api_base" : "api_version");
		goto out;
	}
	rc = apply_provider_env(ld, &dp, model_line);
	if (rc != TG_OK)
		goto out;

	if (ld->ndeps == ld->capdeps) {
		ld->capdeps = ld->capdeps ? ld->capdeps * 2 : 8;
		ld->deps =
		        tg_xrealloc(ld->deps, ld->capdeps * sizeof(*ld->deps));
	}
	ld->deps[ld->ndeps++] = dp;
	memset(&dp, 0, sizeof(dp));
	rc = TG_OK;
out:
	deployment_free_strings(&dp.d);
	return rc;
}

static enum tg_rc
parse_model_list(struct loader *ld, const yaml_node_t *n)
{
	enum tg_rc rc;

	if (n->type == YAML_SCALAR_NODE && is_null_scalar(n))
		return TG_OK;
	if (n->type != YAML_SEQUENCE_NODE)
		return fail(ld, node_line(n), "'model_list' must be a list");
	for (yaml_node_item_t *it = n->data.sequence.items.start;
	     it < n->data.sequence.items.top; it++) {
		rc = parse_deployment(ld, node_at(ld, *it));
		if (rc != TG_OK)
			return rc;
	}
	return TG_OK;
}

static enum tg_rc
parse_root(struct loader *ld, const yaml_node_t *root)
{
	static const struct {
		const char *key;
		const struct field *fields;
	} sections[] = {
	        {"litellm_settings", litellm_fields},
	        {"general_settings", general_fields},
	        {"tollgate_settings", tollgate_fields},
	};
	enum tg_rc rc;

	if (root->type != YAML_MAPPING_NODE)
		return fail(ld, node_line(root),
		            "the config must be a mapping of sections");
	for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
	     p < root->data.mapping.pairs.top; p++) {
		const yaml_node_t *k = node_at(ld, p->key);
		const yaml_node_t *v = node_at(ld, p->value);
		const char *key;
		size_t i;

		if (k->type != YAML_SCALAR_NODE)
			return fail(ld, node_line(k),
			            "a top-level key is not a plain name");
		key = (const char *)k->data.scalar.value;
		for (yaml_node_pair_t *q = root->data.mapping.pairs.start;
		     q < p; q++) {
			const yaml_node_t *prev = node_at(ld, q->key);

			if (prev->type == YAML_SCALAR_NODE &&
			    strcmp((const char *)prev->data.scalar.value,
			           key) == 0)
				return fail(ld, node_line(k),
				            "duplicate section '%s'", key);
		}
		if (strcmp(key, "model_list") == 0) {
			rc = parse_model_list(ld, v);
			if (rc != TG_OK)
				return rc;
			continue;
		}
		for (i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
			if (strcmp(sections[i].key, key) == 0)
				break;
		if (i == sizeof(sections) / sizeof(sections[0])) {
			log_unknown(ld, NULL, key, node_line(k));
			continue;
		}
		rc = parse_section(ld, v, key, sections[i].fields, ld->cfg);
		if (rc != TG_OK)
			return rc;
	}
	return TG_OK;
}

/*
 * The price file to use: model_cost_map_path (a relative path is taken
 * from the config file's directory, since the web server's working
 * directory is anyone's guess), else prices_default.  Returns malloc'd.
 */
static char *
price_file_path(const struct loader *ld, const char *prices_default)
{
	const char *p = ld->cfg->model_cost_map_path, *slash;
	char *path;
	size_t dirlen;

	if (ld->price_forced != NULL)
		return tg_xstrdup(ld->price_forced);
	if (p == NULL)
		return prices_default ? tg_xstrdup(prices_default) : NULL;
	slash = strrchr(ld->path, '/');
	if (p[0] == '/' || slash == NULL)
		return tg_xstrdup(p);
	dirlen = (size_t)(slash - ld->path) + 1;
	path = tg_xmalloc(dirlen + strlen(p) + 1);
	memcpy(path, ld->path, dirlen);
	strcpy(path + dirlen, p);
	return path;
}

/* "<prefix>/<model>", malloc'd. */
static char *
prefixed(const char *prefix, const char *model)
{
	size_t plen = strlen(prefix);
	char *name = tg_xmalloc(plen + 1 + strlen(model) + 1);

	memcpy(name, prefix, plen);
	name[plen] = '/';
	strcpy(name + plen + 1, model);
	return name;
}

/* Try one price name; remember it in the "looked up" list. */
static const struct tg_price_entry *
try_name(const struct tg_pricing *table, const char *name, char *tried,
         size_t triedlen)
{
	size_t used = strlen(tried);
	int n;

	/* A list too long for the message is cut; the lookup goes on. */
	n = snprintf(tried + used, triedlen - used, "%s%s", used ? ", " : "",
	             name);
	(void)n;
	return tg_pricing_find(table, name);
}

/*
 * Resolve dp's price in SPEC 7.2 order: model_info (or litellm_params)
 * overrides, model_info.base_model, "<provider>/<name>", the provider's
 * price_prefix "<alias>/<name>" if it has one, "<name>".  The table is
 * loaded on first need, so a config that prices everything itself never
 * reads the file.
 */
static enum tg_rc
resolve_price(struct loader *ld, struct dep_parse *dp,
              struct tg_pricing **table)
{
	struct tg_deployment *d = &dp->d;
	struct opt_price in =
	        dp->info_input.set ? dp->info_input : dp->params_input;
	struct opt_price outp =
	        dp->info_output.set ? dp->info_output : dp->params_output;
	const struct tg_price_entry *found = NULL;
	char tried[512] = "", *name = NULL;
	const char *found_name = NULL;
	enum tg_rc rc;

	if (in.set && outp.set) {
		memset(&d->price, 0, sizeof(d->price));
		d->price.input = in.value;
		d->price.output = outp.value;
		d->price_name =
		        tg_xstrdup(dp->info_input.set && dp->info_output.set
		                           ? "model_info"
		                           : "litellm_params");
		goto overrides;
	}

	if (*table == NULL) {
		const char *path = ld->cfg->price_file;
		struct tg_err perr;

		if (path == NULL)
			return fail(ld, d->line,
			            "no price for model '%s': no price file "
			            "configured",
			            d->model_name);
		tg_err_clear(&perr);
		rc = tg_pricing_load(path, table, &perr);
		if (rc != TG_OK)
			return fail(ld,
			            ld->cost_map_line ? ld->cost_map_line
			                              : d->line,
			            "price file: %s", perr.message);
		/* What a running process watches for a new map. */
		tg_pricing_stamp(*table, &ld->cfg->price_file_stamp);
	}

	if (d->base_model != NULL) {
		found = try_name(*table, d->base_model, tried, sizeof(tried));
		if (found != NULL)
			found_name = d->base_model;
		else
			tg_log_warn("%s:%d: base_model '%s' is not in the "
			            "price file; trying the model's own name",
			            ld->path, dp->base_model_line,
			            d->base_model);
	}
	if (found == NULL) {
		name = prefixed(tg_provider_name(d->provider),
		                d->upstream_model);
		found = try_name(*table, name, tried, sizeof(tried));
		if (found != NULL)
			found_name = name;
	}
	/* The provider's other price prefix (ollama_chat/ as ollama/). */
	if (found == NULL && tg_provider(d->provider)->price_prefix != NULL) {
		free(name);
		name = prefixed(tg_provider(d->provider)->price_prefix,
		                d->upstream_model);
		found = try_name(*table, name, tried, sizeof(tried));
		if (found != NULL)
			found_name = name;
	}
	if (found == NULL) {
		found = try_name(*table, d->upstream_model, tried,
		                 sizeof(tried));
		if (found != NULL)
			found_name = d->upstream_model;
	}
	if (found == NULL) {
		free(name);
		return fail(ld, d->line,
		            "no price for model '%s' (looked up: %s)",
		            d->model_name, tried);
	}
	d->price = *found;
	d->price_name = tg_xstrdup(found_name);
	free(name);
	/* A single given price replaces that half of the file's entry. */
	if (in.set)
		d->price.input = in.value;
	if (outp.set)
		d->price.output = outp.value;

overrides:
	if (dp->info_cache_read.set) {
		d->price.cache_read = dp->info_cache_read.value;
		d->price.has_cache_read = true;
	}
	if (dp->info_cache_write.set) {
		d->price.cache_write = dp->info_cache_write.value;
		d->price.has_cache_write = true;
	}
	if (dp->info_cache_write_1h.set) {
		d->price.cache_write_1h = dp->info_cache_write_1h.value;
		d->price.has_cache_write_1h = true;
	}
	if (dp->info_max_output_tokens > 0)
		d->price.max_output_tokens = dp->info_max_output_tokens;
	if (dp->info_max_input_tokens > 0)
		d->price.max_input_tokens = dp->info_max_input_tokens;
	if (dp->info_file_search.set) {
		/* Rounded up, as the price file's (lib/pricing.c). */
		d->price.tool[TG_TOOL_FILE_SEARCH] =
		        (dp->info_file_search.value + 999) / 1000;
		d->price.has_tool[TG_TOOL_FILE_SEARCH] = true;
	}
	if (dp->info_code_interpreter.set) {
		d->price.tool[TG_TOOL_CODE_INTERPRETER] =
		        dp->info_code_interpreter.value;
		d->price.has_tool[TG_TOOL_CODE_INTERPRETER] = true;
	}
	if (dp->info_reasoning.set) {
		d->price.reasoning = dp->info_reasoning.value;
		d->price.has_reasoning = true;
	}
	if (dp->info_audio_input.set) {
		d->price.audio_input = dp->info_audio_input.value;
		d->price.has_audio_input = true;
	}
	if (dp->info_audio_output.set) {
		d->price.audio_output = dp->info_audio_output.value;
		d->price.has_audio_output = true;
	}
	if (dp->info_per_request.set) {
		d->price.per_request = dp->info_per_request.value;
		d->price.has_per_request = true;
	}
	for (int st = TG_SERVICE_PRIORITY; st < TG_SERVICE_TIERS; st++) {
		const struct opt_price *g = dp->info_service[st];

		if (g[0].set || g[1].set || g[2].set)
			tg_pricing_set_service(&d->price,
			                       (enum tg_service_tier)st,
			                       g[0].set ? &g[0].value : NULL,
			                       g[1].set ? &g[1].value : NULL,
			                       g[2].set ? &g[2].value : NULL);
	}
	return TG_OK;
}

/* Checks and defaults that need the whole file. */
static enum tg_rc
finish(struct loader *ld, const char *prices_default)
{
	struct tg_config *cfg = ld->cfg;
	struct tg_pricing *table = NULL;
	enum tg_rc rc = TG_OK;

	if (cfg->master_key == NULL)
		cfg->master_key = env_dup("LITELLM_MASTER_KEY");
	if (cfg->database_url == NULL)
		cfg->database_url = env_dup("DATABASE_URL");
	if (ld->alerting_webhook) {
		cfg->alerting.webhook_url = env_dup("WEBHOOK_URL");
		if (cfg->alerting.webhook_url == NULL)
			return fail(ld, ld->alerting_line,
			            "alerting 'webhook' needs the environment "
			            "variable WEBHOOK_URL");
		if (!is_http_url(cfg->alerting.webhook_url))
			return fail(ld, ld->alerting_line,
			            "WEBHOOK_URL must start with http:// or "
			            "https://");
	}
	if (ld->alerting_slack) {
		cfg->alerting.slack_url = env_dup("SLACK_WEBHOOK_URL");
		if (cfg->alerting.slack_url == NULL)
			return fail(ld, ld->alerting_line,
			            "alerting 'slack' needs the environment "
			            "variable SLACK_WEBHOOK_URL");
		if (!is_http_url(cfg->alerting.slack_url))
			return fail(ld, ld->alerting_line,
			            "SLACK_WEBHOOK_URL must start with http:// "
			            "or https://");
	}
	/* A LiteLLM config may list only alert types tollgate does not
	 * have: like an unknown key, not a reason to refuse the file. */
	if (ld->alert_types_set && cfg->alerting.events == 0)
		tg_log_warn(
		        "%s:%d: alert_types names no event tollgate sends "
		        "(spend_tracked, threshold_crossed, budget_crossed, "
		        "soft_budget_crossed, budget_alerts): no event is "
		        "sent",
		        ld->path, ld->alert_types_line);

	cfg->price_file = price_file_path(ld, prices_default);
	for (size_t i = 0; i < ld->ndeps; i++) {
		struct dep_parse *dp = &ld->deps[i];

		if (dp->d.timeout_s == 0)
			dp->d.timeout_s = cfg->request_timeout;
		rc = resolve_price(ld, dp, &table);
		if (rc != TG_OK)
			goto out;
	}

	/* Hand the deployments over. */
	cfg->deployments = tg_xcalloc(ld->ndeps ? ld->ndeps : 1,
	                              sizeof(*cfg->deployments));
	for (size_t i = 0; i < ld->ndeps; i++) {
		cfg->deployments[i] = ld->deps[i].d;
		memset(&ld->deps[i].d, 0, sizeof(ld->deps[i].d));
	}
	cfg->ndeployments = ld->ndeps;
out:
	tg_pricing_free(table);
	return rc;
}

/* Parse the YAML text of ld->path into ld->doc. */
static enum tg_rc
load_document(struct loader *ld, bool *have_doc)
{
	yaml_parser_t parser;
	FILE *f;
	enum tg_rc rc = TG_OK;

	f = fopen(ld->path, "rb");
	if (f == NULL)
		return tg_err_set(ld->err, TG_ERR_CONFIG, NULL,
		                  "%s: cannot read: %s", ld->path,
		                  strerror(errno));
	if (!yaml_parser_initialize(&parser)) {
		fclose(f);
		return tg_err_set(ld->err, TG_ERR_CONFIG, NULL,
		                  "%s: cannot start the YAML parser", ld->path);
	}
	yaml_parser_set_input_file(&parser, f);
	if (!yaml_parser_load(&parser, &ld->doc)) {
		const yaml_mark_t *m = parser.error == YAML_READER_ERROR
		                               ? &parser.mark
		                               : &parser.problem_mark;

		rc = fail(ld, (int)m->line + 1, "invalid YAML: %s%s%s",
		          parser.context ? parser.context : "",
		          parser.context ? ": " : "",
		          parser.problem ? parser.problem : "parse error");
	} else {
		*have_doc = true;
	}
	yaml_parser_delete(&parser);
	fclose(f);
	return rc;
}

/* tg_config_load(), with the price file price_forced when not NULL. */
static enum tg_rc
config_load(const char *path, const char *prices_default,
            const char *price_forced, struct tg_config **out,
            struct tg_err *err)
{
	struct loader ld;
	struct tg_config *cfg;
	yaml_node_t *root;
	bool have_doc = false;
	enum tg_rc rc;

	memset(&ld, 0, sizeof(ld));
	ld.path = path;
	ld.price_forced = price_forced;
	ld.err = err;
	cfg = tg_xcalloc(1, sizeof(*cfg));
	ld.cfg = cfg;
	cfg->path = tg_xstrdup(path);
	cfg->default_max_tokens = 4096;
	cfg->request_timeout = 600;
	cfg->num_retries = 0;
	cfg->budget_enforcement = TG_ENFORCE_RESERVE;
	cfg->max_management_body = 65536;
	cfg->max_llm_body = 10485760;
	cfg->hold_grace_s = 60;
	cfg->reclaim_interval_s = 30;
	cfg->spool_batch_ms = 20;
	cfg->lease_calls = 32;
	cfg->lease_after_calls = 2;
	cfg->lease_idle_ms = 500;
	cfg->lease_seconds = 5;
	cfg->alerting.events = TG_EVENT_ALL;
	cfg->alerting.timeout_s = 5;
	cfg->alerting.retry_base_s = 5;
	cfg->alerting.retry_for_s = 86400;
	cfg->alerting.retention_s = 7 * 86400;
	cfg->default_max_tool_calls = 10;
	/* OpenAI's list prices per call (a code interpreter's per session):
	 * what a config that says nothing charges for them. */
	tg_price_parse("0.01", &cfg->tool_price[TG_TOOL_WEB_SEARCH]);
	tg_price_parse("0.025", &cfg->tool_price[TG_TOOL_WEB_SEARCH_PREVIEW]);
	tg_price_parse("0.0025", &cfg->tool_price[TG_TOOL_FILE_SEARCH]);
	tg_price_parse("0.03", &cfg->tool_price[TG_TOOL_CODE_INTERPRETER]);
	cfg->has_tool_price[TG_TOOL_WEB_SEARCH] = true;
	cfg->has_tool_price[TG_TOOL_WEB_SEARCH_PREVIEW] = true;
	cfg->has_tool_price[TG_TOOL_FILE_SEARCH] = true;
	cfg->has_tool_price[TG_TOOL_CODE_INTERPRETER] = true;

	rc = load_document(&ld, &have_doc);
	if (rc != TG_OK)
		goto out;
	root = yaml_document_get_root_node(&ld.doc);
	if (root == NULL) {
		rc = fail(&ld, 1, "the config is empty");
		goto out;
	}
	rc = parse_root(&ld, root);
	if (rc != TG_OK)
		goto out;
	rc = finish(&ld, prices_default);
	if (rc != TG_OK)
		goto out;

	*out = cfg;
	cfg = NULL;
out:
	tg_config_free(cfg);
	for (size_t i = 0; i < ld.ndeps; i++)
		deployment_free_strings(&ld.deps[i].d);
	free(ld.deps);
	for (size_t i = 0; i < ld.nlogged; i++)
		free(ld.logged[i]);
	free(ld.logged);
	if (have_doc)
		yaml_document_delete(&ld.doc);
	return rc;
}

const char *
tg_config_path(const char *given, char *fallback, size_t len)
{
	const char *path = given;

	if (path == NULL || path[0] == '\0')
		path = getenv("TOLLGATE_CONFIG");
	if (path == NULL || path[0] == '\0') {
		snprintf(fallback, len, "%s/tollgate/config.yaml",
		         TG_SYSCONFDIR);
		path = fallback;
	}
	return path;
}

const char *
tg_config_default_prices(void)
{
	const char *prices = getenv("TOLLGATE_PRICE_FILE");

	return prices && prices[0] ? prices : TG_DATADIR "/model_prices.json";
}

enum tg_rc
tg_config_load(const char *path, const char *prices_default,
               struct tg_config **out, struct tg_err *err)
{
	return config_load(path, prices_default, NULL, out, err);
}

enum tg_rc
tg_config_load_prices(const char *path, const char *price_file,
                      struct tg_config **out, struct tg_err *err)
{
	return config_load(path, NULL, price_file, out, err);
}

void
tg_config_free(struct tg_config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < cfg->ndeployments; i++)
		deployment_free_strings(&cfg->deployments[i]);
	free(cfg->deployments);
	free(cfg->path);
	free(cfg->master_key);
	free(cfg->database_url);
	free(cfg->alerting.webhook_url);
	free(cfg->alerting.slack_url);
	free(cfg->alerting.webhook_secret);
	free(cfg->spool_dir);
	free(cfg->metrics_key);
	free(cfg->max_end_user_budget_id);
	free(cfg->model_cost_map_path);
	free(cfg->price_file);
	free(cfg);
}

size_t
tg_config_deployments(const struct tg_config *cfg, const char *model_name,
                      size_t *idx, size_t cap)
{
	size_t n = 0;

	for (size_t i = 0; i < cfg->ndeployments && n < cap; i++)
		if (strcmp(cfg->deployments[i].model_name, model_name) == 0)
			idx[n++] = i;
	return n;
}

bool
tg_config_has_model(const struct tg_config *cfg, const char *model_name)
{
	for (size_t i = 0; i < cfg->ndeployments; i++)
		if (strcmp(cfg->deployments[i].model_name, model_name) == 0)
			return true;
	return false;
}

bool
tg_config_tool_price(const struct tg_config *cfg, const struct tg_deployment *d,
                     enum tg_tool t, enum tg_search_context size, tg_price *out)
{
	const struct tg_price_entry *p = &d->price;

	switch (t) {
	case TG_TOOL_WEB_SEARCH:
	case TG_TOOL_WEB_SEARCH_PREVIEW:
		if (p->has_search_context && size < TG_SEARCH_SIZES) {
			*out = p->search_context[size];
			return true;
		}
		break;
	case TG_TOOL_FILE_SEARCH:
	case TG_TOOL_CODE_INTERPRETER:
		if (p->has_tool[t]) {
			*out = p->tool[t];
			return true;
		}
		break;
	case TG_TOOL_IMAGE_GENERATION:
	case TG_TOOL_COUNT: break;
	}
	if (t >= TG_TOOL_COUNT || !cfg->has_tool_price[t])
		return false;
	*out = cfg->tool_price[t];
	return true;
}
