/*
 * config: LiteLLM's config.yaml (the subset SPEC section 2 lists), read with
 * libyaml once per process, and again when it or its price file changes
 * (lib/app.c).
 *
 * A config is loaded whole or not at all: on any error nothing is returned
 * and err->message is "<file>:<line>: <reason>", which the caller logs and
 * turns into 500 "Configuration error: <reason>".
 */
#ifndef TG_CONFIG_H
#define TG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "price_table.h"
#include "pricing.h"
#include "provider.h"

/* One entry of model_list. All strings are owned by the config. */
struct tg_deployment {
	char *model_name;    /* what clients send */
	char *litellm_model; /* litellm_params.model as written */
	enum tg_provider provider;
	char *upstream_model; /* the part after "<provider>/" */
	char *api_base;       /* NULL: provider default */
	char *api_key;        /* NULL: none (never logged) */
	char *api_version;    /* azure */
	char *region;         /* region_name or NULL */
	char *mock_response;  /* mock: fixed answer or NULL (echo) */
	char *base_model;     /* model_info.base_model or NULL */
	long timeout_s;       /* litellm_params.timeout, else request_timeout */
	struct tg_price_entry price; /* resolved at load (SPEC 7.2 order) */
	/* model_info.trust_upstream_cost: charge the cost the upstream
	 * reports in its usage (OpenRouter's usage.cost) when it does. */
	bool trust_upstream_cost;
	char *price_name; /* the name the price was found under, or "model_info"
	                   */
	int line;         /* line in the config, for messages */
};

enum tg_enforcement {
	TG_ENFORCE_RESERVE = 0, /* spend + reserved + estimate <= max_budget */
	TG_ENFORCE_POST,        /* LiteLLM's: admit while spend < max_budget */
};

/* The events of SPEC 9, as bits of tg_alerting.events. */
enum tg_event {
	TG_EVENT_SPEND_TRACKED = 1 << 0,
	TG_EVENT_THRESHOLD_CROSSED = 1 << 1, /* 85% and 95% of max_budget */
	TG_EVENT_BUDGET_CROSSED = 1 << 2,    /* 100%, or the first refusal */
	TG_EVENT_SOFT_BUDGET_CROSSED = 1 << 3,
};
#define TG_EVENT_BUDGET_ALERTS                                                 \
	(TG_EVENT_THRESHOLD_CROSSED | TG_EVENT_BUDGET_CROSSED |                \
	 TG_EVENT_SOFT_BUDGET_CROSSED)
#define TG_EVENT_ALL (TG_EVENT_SPEND_TRACKED | TG_EVENT_BUDGET_ALERTS)

/*
 * Where events go.  webhook_url gets every event chosen by
 * general_settings.alert_types; slack_url (Slack's incoming webhook) only
 * the budget alerts.  Both NULL: alerting is off and no event is written.
 */
struct tg_alerting {
	char *webhook_url;    /* WEBHOOK_URL, with "webhook" in alerting */
	char *slack_url;      /* SLACK_WEBHOOK_URL, with "slack" in alerting */
	char *webhook_secret; /* general_settings.webhook_secret: signs bodies
	                       */
	unsigned events;      /* enum tg_event bits; TG_EVENT_ALL unless
	                         general_settings.alert_types */
	long timeout_s;       /* one delivery attempt (tollgate_settings.
	                         webhook_timeout, 5 s) */
	long retry_base_s;    /* the first retry's delay, doubled after each
	                         failure up to an hour (webhook_retry_base,
	                         5 s) */
	long retry_for_s;     /* how long an event is retried before it is
	                         marked dead (webhook_retry_for, 24 h) */
	long retention_s;     /* delivered events are pruned after
	                         (webhook_retention, 7 days) */
};

/* Whether e is written for a (NULL: alerting off). */
bool tg_alerting_wants(const struct tg_alerting *a, enum tg_event e);

struct tg_config {
	char *path;
	struct tg_deployment *deployments;
	size_t ndeployments;

	char *master_key; /* general_settings.master_key or LITELLM_MASTER_KEY;
	                     NULL = none */
	char *database_url; /* general_settings.database_url or DATABASE_URL;
	                       NULL = none */
	struct tg_alerting alerting; /* general_settings.alerting (SPEC 9) */

	char *max_end_user_budget_id; /* default tier, or NULL */
	int64_t default_max_tokens;   /* 4096 unless set */
	long request_timeout;         /* seconds, 600 unless set */
	int num_retries;              /* 0 unless set */
	enum tg_enforcement budget_enforcement;
	char *model_cost_map_path; /* NULL: the shipped price file */
	/* The price file the config's prices come from (model_cost_map_path
	 * from the config's directory, else the default; NULL: neither), and
	 * its identity as it was read (present false when no deployment
	 * needed it), so that a process can tell when it changes. */
	char *price_file;
	struct tg_file_stamp price_file_stamp;

	size_t max_management_body; /* 64 KiB unless
	                               tollgate_settings.max_management_body */
	size_t max_llm_body; /* 10 MiB unless tollgate_settings.max_llm_body */
	/* tollgate_settings.spool_dir: where settlements wait for the
	 * database (SPEC 4.4); NULL: TOLLGATE_SPOOL_DIR from the environment,
	 * else $localstatedir/spool/tollgate. */
	char *spool_dir;
	/* The hot path's shape (SPEC 4.6): spool_settlements settles calls
	 * through this process's journal, moved into the database in
	 * batches every spool_batch_ms (20); budget_leases admits the calls of
	 * a busy account against a lease of its budget (lib/lease.h): taken
	 * after lease_after_calls (2) calls of it within lease_idle_ms (500)
	 * of each other, for lease_calls (32) calls' worst case; returned when
	 * quiet for lease_idle_ms, spent, lease_seconds (5) old, or at exit.
	 * Leases settle through the journal whatever spool_settlements
	 * says. */
	bool spool_settlements;
	int64_t spool_batch_ms;
	bool budget_leases;
	int lease_calls;
	int lease_after_calls;
	int64_t lease_idle_ms;
	long lease_seconds;
	/* tollgate_settings.metrics_key: a key GET /metrics takes besides
	 * the master key (a Prometheus server's), or NULL; and
	 * metrics_per_customer: each customer's and key's spend and
	 * remaining budget there too (SPEC 15). */
	char *metrics_key;
	bool metrics_per_customer;
	/* A hold lasts every attempt's timeout plus hold_grace (60 s unless
	 * tollgate_settings.hold_grace); a process looks for expired holds
	 * every reclaim_interval (30 s). */
	long hold_grace_s;
	long reclaim_interval_s;
	/* The hosted tools' prices per call when the price data has none
	 * for a model (tollgate_settings.tool_prices; the defaults are
	 * OpenAI's list prices: web_search 0.01, web_search_preview 0.025,
	 * file_search 0.0025, code_interpreter 0.03 USD). */
	bool has_tool_price[TG_TOOL_COUNT];
	tg_price tool_price[TG_TOOL_COUNT];
	/* The hosted tool calls a Responses hold covers when the request
	 * gives no max_tool_calls (tollgate_settings.default_max_tool_calls,
	 * 10). */
	int64_t default_max_tool_calls;
};

/*
 * Ceilings of the config's limits: a value above one is a config error
 * naming the key and the limit.  Far above any real setting, and low enough
 * that nothing computed from them overflows: a body of TG_CONFIG_MAX_BYTES
 * plus its NUL fits the int lengths of json-c and libfcgi, and a hold of
 * timeout x (num_retries + 1) + hold_grace seconds fits a long (lib/meter.c).
 */
#define TG_CONFIG_MAX_BYTES   ((int64_t)1 << 30)    /* max_*_body: 1 GiB */
#define TG_CONFIG_MAX_SECONDS 86400L                /* timeouts: one day */
#define TG_CONFIG_MAX_COUNT   100                   /* num_retries */
#define TG_CONFIG_MAX_TOKENS  ((int64_t)1000000000) /* token counts */
#define TG_CONFIG_MAX_PERIOD  (366 * 86400L)        /* retry / retention */

/*
 * Load path.  prices_default is the shipped price file, used unless
 * litellm_settings.model_cost_map_path is set.  Environment lookups use
 * getenv().  Returns TG_OK and a config to free with tg_config_free(), or
 * TG_ERR_CONFIG with err->message "<file>:<line>: <reason>".
 */
enum tg_rc tg_config_load(const char *path, const char *prices_default,
                          struct tg_config **out, struct tg_err *err);
/*
 * tg_config_load() with the price file price_file, whatever the config's
 * model_cost_map_path says: tollgate-prices checks a new map against the
 * config before it replaces the old one.
 */
enum tg_rc tg_config_load_prices(const char *path, const char *price_file,
                                 struct tg_config **out, struct tg_err *err);
void tg_config_free(struct tg_config *cfg);

/*
 * Where the programs and tools find their config: given when it is not
 * NULL or empty, else TOLLGATE_CONFIG, else $sysconfdir/tollgate/config.yaml
 * (written into fallback, len bytes).
 */
const char *tg_config_path(const char *given, char *fallback, size_t len);
/* The price file unless the config names one: TOLLGATE_PRICE_FILE, else
 * the shipped $datadir/tollgate/model_prices.json. */
const char *tg_config_default_prices(void);

/* Deployments named model_name: fills idx (capacity cap) and returns the count.
 */
size_t tg_config_deployments(const struct tg_config *cfg,
                             const char *model_name, size_t *idx, size_t cap);

/*
 * The price of one call of hosted tool t on deployment d: the price data's
 * for the model (search_context_cost_per_query at size for a web search,
 * file_search_cost_per_1k_calls, code_interpreter_cost_per_session), else
 * the config's tool_prices.  false: no price anywhere (tollgate then
 * refuses a call that may use it).
 */
bool tg_config_tool_price(const struct tg_config *cfg,
                          const struct tg_deployment *d, enum tg_tool t,
                          enum tg_search_context size, tg_price *out);

/* Whether any deployment is named model_name. */
bool tg_config_has_model(const struct tg_config *cfg, const char *model_name);

#endif
