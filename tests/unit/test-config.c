/*
 * test-config: loading config.yaml (SPEC 2, 7.2).
 *
 * Each case writes a YAML file into a mkdtemp() directory, sets the
 * environment it needs and loads it against the shipped price file (found
 * through TG_SRCDIR, else ../etc).  Error cases are one table; valid configs
 * each get a small checking function.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../tap.h"
#include "config.h"
#include "money.h"

static char tmpdir[] = "/tmp/tg-test-config-XXXXXX";
static char prices[1024];

/* Variables a case may set; all are cleared before each case. */
static const char *const env_names[] = {
        "LITELLM_MASTER_KEY", "DATABASE_URL",  "WEBHOOK_URL",     "TG_TEST_KEY",
        "TG_TEST_BASE",       "TG_TEST_UNSET", "TG_TEST_TIMEOUT",
};

static void
env_reset(void)
{
	for (size_t i = 0; i < sizeof(env_names) / sizeof(env_names[0]); i++)
		unsetenv(env_names[i]);
	/* And every provider's key and base variables (provider.h), which
	 * the test's own environment may have set. */
	for (int p = 0; p < TG_PROVIDER_COUNT; p++) {
		const struct tg_provider_info *row = tg_provider(p);

		for (size_t k = 0; row->key_env && row->key_env[k]; k++)
			unsetenv(row->key_env[k]);
		if (row->base_env != NULL)
			unsetenv(row->base_env);
	}
}

/* "NAME=value;NAME2=value2" */
static void
env_apply(const char *spec)
{
	char buf[512], *save = NULL, *tok;

	env_reset();
	if (spec == NULL)
		return;
	snprintf(buf, sizeof(buf), "%s", spec);
	for (tok = strtok_r(buf, ";", &save); tok;
	     tok = strtok_r(NULL, ";", &save)) {
		char *eq = strchr(tok, '=');

		*eq = '\0';
		setenv(tok, eq + 1, 1);
	}
}

static const char *
write_tmp(const char *name, const char *text)
{
	static char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	if (f == NULL) {
		perror(path);
		exit(1);
	}
	fputs(text, f);
	fclose(f);
	return path;
}

static tg_price
price_of(const char *text)
{
	tg_price p = -1;

	if (!tg_price_parse(text, &p))
		diag("cannot parse price %s", text);
	return p;
}

/* Load text as config.yaml with env; NULL on failure (err filled). */
static struct tg_config *
load(const char *text, const char *env, const char *prices_default,
     struct tg_err *err)
{
	struct tg_config *cfg = NULL;
	const char *path = write_tmp("config.yaml", text);

	env_apply(env);
	tg_err_clear(err);
	if (tg_config_load(path, prices_default, &cfg, err) != TG_OK)
		cfg = NULL;
	unlink(path);
	return cfg;
}

/* ---------------------------------------------------------------- errors */

static const struct {
	int line;
	const char *yaml;
	const char *env;
	int want_line;    /* line in the message; 0: no line */
	const char *want; /* substring of the reason */
} bad[] = {
        {__LINE__, "model_list:\n  - model_name: a\n    litellm_params: {\n",
         NULL, 4, "invalid YAML"},
        {__LINE__, "model_list:\n  - model_name: a\n   bad: 1\n", NULL, 3,
         "invalid YAML"},
        {__LINE__, "model_list: [\n", NULL, 2, "invalid YAML"},
        {__LINE__, "a: \"\\xZZ\"\n", NULL, 1, "invalid YAML"},
        {__LINE__, "", NULL, 1, "the config is empty"},
        {__LINE__, "just a string\n", NULL, 1, "must be a mapping"},
        {__LINE__, "model_list: {a: 1}\n", NULL, 1, "must be a list"},
        {__LINE__, "model_list:\n  - 12\n", NULL, 2, "entry must be a mapping"},
        {__LINE__, "model_list:\n  - litellm_params:\n      model: gpt-4o\n",
         NULL, 2, "model_list entry without model_name"},
        {__LINE__,
         "model_list:\n  - model_name: \"\"\n    litellm_params:\n"
         "      model: gpt-4o\n",
         NULL, 2, "model_list entry without model_name"},
        {__LINE__, "model_list:\n  - model_name: x\n", NULL, 2,
         "model 'x' has no litellm_params.model"},
        {__LINE__,
         "model_list:\n  - model_name: x\n    litellm_params:\n"
         "      api_key: k\n",
         NULL, 4, "model 'x' has no litellm_params.model"},
        {__LINE__,
         "model_list:\n  - model_name: c\n    litellm_params:\n"
         "      model: cohere/command-r\n",
         NULL, 4, "unsupported provider 'cohere'"},
        {__LINE__,
         "model_list:\n  - model_name: c\n    litellm_params:\n"
         "      model: huggingface/meta/llama\n",
         NULL, 4, "unsupported provider 'huggingface'"},
        {__LINE__,
         "model_list:\n  - model_name: c\n    litellm_params:\n"
         "      model: mistral/\n",
         NULL, 4, "no name after the provider"},
        {__LINE__,
         "model_list:\n  - model_name: nope\n    litellm_params:\n"
         "      model: openai/gpt-nonexistent\n",
         NULL, 2,
         "no price for model 'nope' (looked up: openai/gpt-nonexistent, "
         "gpt-nonexistent)"},
        {__LINE__,
         "model_list:\n  - model_name: m\n    litellm_params:\n"
         "      model: mock/whatever\n",
         NULL, 2,
         "no price for model 'm' (looked up: mock/whatever, whatever)"},
        {__LINE__,
         "model_list:\n  - model_name: az\n    litellm_params:\n"
         "      model: azure/my-dep\n      api_base: https://x.example\n"
         "      api_version: \"2024-10-21\"\n"
         "    model_info:\n      base_model: azure/gpt-nope\n",
         NULL, 2,
         "no price for model 'az' (looked up: azure/gpt-nope, "
         "azure/my-dep, my-dep)"},
        {__LINE__,
         "model_list:\n  - model_name: az\n    litellm_params:\n"
         "      model: azure/gpt-4o\n      api_base: https://x\n",
         NULL, 4, "azure needs litellm_params.api_version"},
        {__LINE__,
         "model_list:\n  - model_name: az\n    litellm_params:\n"
         "      model: azure/gpt-4o\n      api_version: v\n",
         NULL, 4, "azure needs litellm_params.api_base"},
        {__LINE__,
         "model_list:\n  - model_name: a\n    litellm_params:\n"
         "      model: gpt-4o\n      api_key: os.environ/TG_TEST_UNSET\n",
         NULL, 5, "environment variable TG_TEST_UNSET is not set"},
        {__LINE__,
         "general_settings:\n  master_key: os.environ/TG_TEST_UNSET\n", NULL, 2,
         "environment variable TG_TEST_UNSET is not set"},
        {__LINE__, "general_settings:\n  master_key: os.environ/\n", NULL, 2,
         "os.environ/ needs a variable name"},
        {__LINE__,
         "general_settings:\n  master_key: sk-1\n  alerting: [\"webhook\"]\n",
         NULL, 3, "needs the environment variable WEBHOOK_URL"},
        {__LINE__, "general_settings:\n  alerting: [\"webhook\"]\n",
         "WEBHOOK_URL=ftp://hook", 2, "WEBHOOK_URL must start with http"},
        {__LINE__,
         "model_list:\n  - model_name: a\n    litellm_params:\n"
         "      model: gpt-4o\n      api_base: ftp://host/v1\n",
         NULL, 5, "'api_base' must start with http:// or https://"},
        {__LINE__,
         "model_list:\n  - model_name: a\n    litellm_params:\n"
         "      model: gpt-4o\n      api_base: localhost:8000\n",
         NULL, 5, "'api_base' must start with http:// or https://"},
        {__LINE__,
         "model_list:\n  - model_name: a\n    litellm_params:\n"
         "      model: gpt-4o\n      timeout: soon\n",
         NULL, 5, "'timeout' must be a positive number of seconds"},
        {__LINE__,
         "model_list:\n  - model_name: a\n    litellm_params:\n"
         "      model: gpt-4o\n      timeout: 0\n",
         NULL, 5, "'timeout' must be a positive number of seconds"},
        {__LINE__, "litellm_settings:\n  request_timeout: -5\n", NULL, 2,
         "'request_timeout' must be a positive number of seconds"},
        {__LINE__, "litellm_settings:\n  request_timeout: [1]\n", NULL, 2,
         "'request_timeout' must be a single value"},
        {__LINE__, "litellm_settings:\n  num_retries: -1\n", NULL, 2,
         "'num_retries' must be a whole number >= 0"},
        {__LINE__, "litellm_settings:\n  num_retries: 1.5\n", NULL, 2,
         "'num_retries' must be a whole number >= 0"},
        {__LINE__, "litellm_settings:\n  default_max_tokens: 0\n", NULL, 2,
         "'default_max_tokens' must be a whole number > 0"},
        {__LINE__, "litellm_settings:\n  budget_enforcement: maybe\n", NULL, 2,
         "'budget_enforcement' must be \"reserve\" or \"post\""},
        {__LINE__, "tollgate_settings:\n  max_llm_body: 0\n", NULL, 2,
         "'max_llm_body' must be a whole number of bytes > 0"},
        {__LINE__, "tollgate_settings:\n  max_management_body: lots\n", NULL, 2,
         "'max_management_body' must be a whole number of bytes > 0"},
        /* Ceilings: nothing computed from a limit may overflow. */
        {__LINE__, "tollgate_settings:\n  max_llm_body: 1073741825\n", NULL, 2,
         "'max_llm_body' must be a whole number of bytes > 0 and at most "
         "1073741824"},
        {__LINE__, "tollgate_settings:\n  max_llm_body: 18446744073709551615\n",
         NULL, 2,
         "'max_llm_body' must be a whole number of bytes > 0 and at most "
         "1073741824"},
        {__LINE__, "tollgate_settings:\n  max_llm_body: 9223372036854775807\n",
         NULL, 2,
         "'max_llm_body' must be a whole number of bytes > 0 and at most "
         "1073741824"},
        {__LINE__, "tollgate_settings:\n  max_management_body: 4294967296\n",
         NULL, 2,
         "'max_management_body' must be a whole number of bytes > 0 and at "
         "most 1073741824"},
        {__LINE__, "litellm_settings:\n  request_timeout: 86401\n", NULL, 2,
         "'request_timeout' must be a positive number of seconds, at most "
         "86400"},
        {__LINE__,
         "litellm_settings:\n  request_timeout: 9223372036854775807\n", NULL, 2,
         "'request_timeout' must be a positive number of seconds, at most "
         "86400"},
        {__LINE__,
         "model_list:\n  - model_name: a\n    litellm_params:\n"
         "      model: gpt-4o\n      timeout: 86400.001\n",
         NULL, 5,
         "'timeout' must be a positive number of seconds, at most 86400"},
        {__LINE__, "tollgate_settings:\n  spool_batch_ms: 0\n", NULL, 2,
         "'spool_batch_ms' must be a whole number > 0"},
        {__LINE__, "tollgate_settings:\n  budget_leases: maybe\n", NULL, 2,
         "'budget_leases' must be true or false"},
        {__LINE__, "tollgate_settings:\n  hold_grace: 86401\n", NULL, 2,
         "'hold_grace' must be a positive number of seconds, at most 86400"},
        {__LINE__, "litellm_settings:\n  num_retries: 101\n", NULL, 2,
         "'num_retries' must be a whole number >= 0 and at most 100"},
        {__LINE__, "litellm_settings:\n  num_retries: 2147483647\n", NULL, 2,
         "'num_retries' must be a whole number >= 0 and at most 100"},
        {__LINE__, "litellm_settings:\n  default_max_tokens: 1000000001\n",
         NULL, 2,
         "'default_max_tokens' must be a whole number > 0 and at most "
         "1000000000"},
        {__LINE__,
         "model_list:\n  - model_name: a\n    litellm_params:\n"
         "      model: gpt-4o\n    model_info:\n"
         "      max_output_tokens: 9223372036854775807\n",
         NULL, 6,
         "'max_output_tokens' must be a whole number > 0 and at most "
         "1000000000"},
        {__LINE__, "litellm_settings: [1, 2]\n", NULL, 1,
         "'litellm_settings' must be a mapping"},
        {__LINE__,
         "model_list:\n  - model_name: a\n    litellm_params:\n"
         "      model: gpt-4o\n    model_info:\n"
         "      input_cost_per_token: cheap\n",
         NULL, 6, "'input_cost_per_token' must be a price"},
        {__LINE__,
         "model_list:\n  - model_name: a\n    litellm_params:\n"
         "      model: gpt-4o\n    model_info:\n"
         "      input_cost_per_token: -1e-06\n",
         NULL, 6, "'input_cost_per_token' must be a price"},
        {__LINE__,
         "model_list:\n  - model_name: a\n    litellm_params:\n"
         "      model: gpt-4o\n    model_info:\n"
         "      input_cost_per_token: 1.0000000000000001e-06\n",
         NULL, 6, "'input_cost_per_token' must be a price"},
        {__LINE__, "general_settings:\n  master_key: a\n  master_key: b\n",
         NULL, 3, "duplicate key 'master_key' in 'general_settings'"},
        {__LINE__, "general_settings: {}\ngeneral_settings: {}\n", NULL, 2,
         "duplicate section 'general_settings'"},
        {__LINE__,
         "litellm_settings:\n  model_cost_map_path: nowhere.json\n"
         "model_list:\n  - model_name: a\n    litellm_params:\n"
         "      model: gpt-4o\n",
         NULL, 2, "price file: "},
};

static void
test_errors(void)
{
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct tg_config *cfg;
		struct tg_err err;
		char prefix[600];

		cfg = load(bad[i].yaml, bad[i].env, prices, &err);
		ok(cfg == NULL && err.rc == TG_ERR_CONFIG,
		   "line %d: refused with TG_ERR_CONFIG", bad[i].line);
		tg_config_free(cfg);
		snprintf(prefix, sizeof(prefix), "%s/config.yaml:%d: ", tmpdir,
		         bad[i].want_line);
		if (!ok(strncmp(err.message, prefix, strlen(prefix)) == 0,
		        "line %d: message starts with file:line %d",
		        bad[i].line, bad[i].want_line))
			diag("  message: %s", err.message);
		if (!ok(strstr(err.message, bad[i].want) != NULL,
		        "line %d: message says '%s'", bad[i].line, bad[i].want))
			diag("  message: %s", err.message);
	}
}

static void
test_missing_file(void)
{
	struct tg_config *cfg = (struct tg_config *)&cfg;
	struct tg_err err;
	char path[600];

	snprintf(path, sizeof(path), "%s/absent.yaml", tmpdir);
	tg_err_clear(&err);
	is_int(TG_ERR_CONFIG, tg_config_load(path, prices, &cfg, &err),
	       "missing config refused");
	ok(strstr(err.message, "absent.yaml: cannot read") != NULL,
	   "message names the file: %s", err.message);
	ok(cfg == (struct tg_config *)&cfg, "out untouched on error");
}

/* No secret in an error message: the value of a bad URL is not echoed. */
static void
test_no_secret_in_errors(void)
{
	struct tg_config *cfg;
	struct tg_err err;

	cfg = load("model_list:\n  - model_name: a\n    litellm_params:\n"
	           "      model: gpt-4o\n      api_base: "
	           "os.environ/TG_TEST_BASE\n",
	           "TG_TEST_BASE=ftp://user:s3cret@host", prices, &err);
	ok(cfg == NULL, "bad URL from env refused");
	ok(strstr(err.message, "s3cret") == NULL, "URL not echoed: %s",
	   err.message);
	tg_config_free(cfg);
}

/* ------------------------------------------------------------ valid files */

static const char full_yaml[] =
        "# every key tollgate reads\n"
        "model_list:\n"
        "  - model_name: azure-gpt-3.5\n" /* 3 */
        "    litellm_params:\n"
        "      model: azure/my-deployment\n"
        "      api_base: os.environ/TG_TEST_BASE\n"
        "      api_key: os.environ/TG_TEST_KEY\n"
        "      api_version: \"2024-10-21\"\n"
        "      region_name: eu\n"
        "      timeout: 30\n"
        "      rpm: 100                 # unknown: logged, ignored\n"
        "    model_info:\n"
        "      base_model: azure/gpt-35-turbo\n"
        "      mode: chat\n"
        "  - model_name: mistral\n" /* 15 */
        "    litellm_params: {model: mistral/mistral-small-latest, api_key: "
        "os.environ/TG_TEST_KEY}\n"
        "  - model_name: cheap\n" /* 17 */
        "    litellm_params:\n"
        "      model: openai/gpt-4o-mini\n"
        "      api_base: http://127.0.0.1:8000/v1/\n"
        "    model_info:\n"
        "      input_cost_per_token: 0.0000005\n"
        "      output_cost_per_token: 1.5e-06\n"
        "      cache_read_input_token_cost: 0.00000025\n"
        "      max_output_tokens: 1000\n"
        "  - model_name: demo\n" /* 26 */
        "    litellm_params:\n"
        "      model: mock/gpt-4o-mini\n"
        "      mock_response: \"Hello from the mock\"\n"
        "      timeout: 0.5\n"
        "  - model_name: cheap\n" /* 31 */
        "    litellm_params:\n"
        "      model: gpt-4.1-nano\n"
        "      api_key: ~\n"
        "litellm_settings:\n"
        "  max_end_user_budget_id: my-free-tier\n"
        "  default_max_tokens: 2048\n"
        "  request_timeout: 120\n"
        "  num_retries: 2\n"
        "  budget_enforcement: post\n"
        "  drop_params: true\n"
        "general_settings:\n"
        "  master_key: sk-1234\n"
        "  database_url: mysql://user:pass@localhost/tollgate?socket=/tmp/s\n"
        "  alerting: [\"webhook\", \"slack\"]\n"
        "  webhook_secret: os.environ/TG_TEST_KEY\n"
        "tollgate_settings:\n"
        "  max_management_body: 1024\n"
        "  max_llm_body: 2097152\n"
        "  spool_settlements: true\n"
        "  spool_batch_ms: 50\n"
        "  budget_leases: true\n"
        "  lease_calls: 8\n"
        "  lease_after_calls: 1\n"
        "  lease_idle_ms: 250\n"
        "  lease_seconds: 3\n"
        "router_settings:\n"
        "  routing_strategy: simple-shuffle\n";

static void
test_full(void)
{
	struct tg_config *cfg;
	struct tg_err err;
	const struct tg_deployment *d;
	size_t idx[4];

	cfg = load(full_yaml,
	           "TG_TEST_BASE=https://example.openai.azure.com/;"
	           "TG_TEST_KEY=key-123;WEBHOOK_URL=https://hooks.example/x;"
	           "SLACK_WEBHOOK_URL=https://hooks.slack.example/T/B/y;"
	           "LITELLM_MASTER_KEY=sk-env;DATABASE_URL=mysql://env/db",
	           prices, &err);
	if (!ok(cfg != NULL, "full config loads")) {
		diag("%s", err.message);
		return;
	}
	is_int(5, cfg->ndeployments, "five deployments");
	ok(strstr(cfg->path, "config.yaml") != NULL, "path kept");

	d = &cfg->deployments[0];
	is_string("azure-gpt-3.5", d->model_name, "model_name");
	is_string("azure/my-deployment", d->litellm_model, "litellm_model");
	is_int(TG_PROVIDER_AZURE, d->provider, "azure provider");
	is_string("my-deployment", d->upstream_model, "upstream model");
	is_string("https://example.openai.azure.com", d->api_base,
	          "api_base from env, trailing slash dropped");
	is_string("key-123", d->api_key, "api_key from env");
	is_string("2024-10-21", d->api_version, "api_version");
	is_string("eu", d->region, "region_name");
	is_int(30, d->timeout_s, "timeout");
	is_string("azure/gpt-35-turbo", d->base_model, "base_model");
	is_string("azure/gpt-35-turbo", d->price_name, "priced by base_model");
	is_int(price_of("5e-07"), d->price.input, "base_model input price");
	is_int(price_of("1.5e-06"), d->price.output, "base_model output");
	is_int(4096, d->price.max_output_tokens, "max_output_tokens from file");
	is_int(3, d->line, "line of the entry");

	d = &cfg->deployments[1];
	is_int(TG_PROVIDER_MISTRAL, d->provider, "mistral provider");
	is_string("mistral-small-latest", d->upstream_model, "mistral name");
	is_string("mistral/mistral-small-latest", d->price_name,
	          "priced by provider/name");
	is_int(price_of("6e-08"), d->price.input, "mistral input price");
	ok(d->api_base == NULL, "no api_base: provider default");
	is_int(120, d->timeout_s, "timeout from request_timeout");

	d = &cfg->deployments[2];
	is_int(TG_PROVIDER_OPENAI, d->provider, "openai/ provider");
	is_string("http://127.0.0.1:8000/v1", d->api_base, "http api_base");
	is_string("model_info", d->price_name, "priced by model_info");
	is_int(price_of("5e-07"), d->price.input, "override input");
	is_int(price_of("1.5e-06"), d->price.output, "override output");
	ok(d->price.has_cache_read, "override cache read");
	is_int(price_of("2.5e-07"), d->price.cache_read, "cache read value");
	is_int(1000, d->price.max_output_tokens, "max_output_tokens override");

	d = &cfg->deployments[3];
	is_int(TG_PROVIDER_MOCK, d->provider, "mock provider");
	is_string("gpt-4o-mini", d->upstream_model, "mock name");
	is_string("Hello from the mock", d->mock_response, "mock_response");
	is_string("gpt-4o-mini", d->price_name, "mock priced by plain name");
	is_int(1, d->timeout_s, "fractional timeout rounds up");

	d = &cfg->deployments[4];
	is_int(TG_PROVIDER_OPENAI, d->provider, "bare name is openai");
	is_string("gpt-4.1-nano", d->upstream_model, "bare upstream name");
	is_string("gpt-4.1-nano", d->price_name, "bare name priced");
	ok(d->api_key == NULL, "null api_key");

	is_string("sk-1234", cfg->master_key, "master_key from the file wins");
	is_string("mysql://user:pass@localhost/tollgate?socket=/tmp/s",
	          cfg->database_url, "database_url from the file wins");
	is_string("https://hooks.example/x", cfg->alerting.webhook_url,
	          "WEBHOOK_URL");
	is_string("key-123", cfg->alerting.webhook_secret, "webhook_secret");
	is_string("https://hooks.slack.example/T/B/y", cfg->alerting.slack_url,
	          "SLACK_WEBHOOK_URL");
	ok(cfg->alerting.events == TG_EVENT_ALL, "every event by default");
	ok(cfg->alerting.retry_for_s >= 86400, "retried for at least a day");
	is_string("my-free-tier", cfg->max_end_user_budget_id, "default tier");
	is_int(2048, cfg->default_max_tokens, "default_max_tokens");
	is_int(120, cfg->request_timeout, "request_timeout");
	is_int(2, cfg->num_retries, "num_retries");
	is_int(TG_ENFORCE_POST, cfg->budget_enforcement, "enforcement post");
	is_int(1024, cfg->max_management_body, "max_management_body");
	is_int(2097152, cfg->max_llm_body, "max_llm_body");
	ok(cfg->spool_settlements && cfg->budget_leases,
	   "spool_settlements, budget_leases");
	is_int(50, cfg->spool_batch_ms, "spool_batch_ms");
	is_int(8, cfg->lease_calls, "lease_calls");
	is_int(1, cfg->lease_after_calls, "lease_after_calls");
	is_int(250, cfg->lease_idle_ms, "lease_idle_ms");
	is_int(3, cfg->lease_seconds, "lease_seconds");

	is_int(2, tg_config_deployments(cfg, "cheap", idx, 4), "two 'cheap'");
	ok(idx[0] == 2 && idx[1] == 4, "their indexes");
	is_int(1, tg_config_deployments(cfg, "cheap", idx, 1),
	       "capacity respected");
	is_int(0, tg_config_deployments(cfg, "Cheap", idx, 4),
	       "names are case-sensitive");
	ok(tg_config_has_model(cfg, "demo"), "has demo");
	ok(!tg_config_has_model(cfg, "gpt-4o-mini"), "upstream name is not a "
	                                             "model name");
	tg_config_free(cfg);
}

static void
test_defaults(void)
{
	struct tg_config *cfg;
	struct tg_err err;

	cfg = load("model_list:\n  - model_name: gpt-4o\n    litellm_params:\n"
	           "      model: gpt-4o\n",
	           NULL, prices, &err);
	if (!ok(cfg != NULL, "minimal config loads")) {
		diag("%s", err.message);
		return;
	}
	ok(cfg->master_key == NULL, "no master key");
	ok(cfg->database_url == NULL, "no database_url");
	ok(cfg->alerting.webhook_url == NULL && cfg->alerting.slack_url == NULL,
	   "no alerting");
	ok(!tg_alerting_wants(&cfg->alerting, TG_EVENT_SPEND_TRACKED),
	   "no alerting: no event wanted");
	ok(cfg->alerting.webhook_secret == NULL, "no webhook secret");
	ok(cfg->max_end_user_budget_id == NULL, "no default tier");
	is_int(4096, cfg->default_max_tokens, "default_max_tokens 4096");
	is_int(600, cfg->request_timeout, "request_timeout 600");
	is_int(0, cfg->num_retries, "num_retries 0");
	is_int(TG_ENFORCE_RESERVE, cfg->budget_enforcement, "reserve");
	ok(cfg->model_cost_map_path == NULL, "shipped price file");
	is_int(65536, cfg->max_management_body, "64 KiB management bodies");
	is_int(10485760, cfg->max_llm_body, "10 MiB LLM bodies");
	ok(!cfg->spool_settlements && !cfg->budget_leases,
	   "settled in the database before the answer, no leases");
	is_int(20, cfg->spool_batch_ms, "spool_batch_ms 20");
	is_int(32, cfg->lease_calls, "lease_calls 32");
	is_int(2, cfg->lease_after_calls, "lease_after_calls 2");
	is_int(500, cfg->lease_idle_ms, "lease_idle_ms 500");
	is_int(5, cfg->lease_seconds, "lease_seconds 5");
	is_int(600, cfg->deployments[0].timeout_s, "deployment timeout 600");
	is_string("gpt-4o", cfg->deployments[0].price_name, "plain name");
	ok(cfg->deployments[0].price.has_cache_read, "gpt-4o cache read");
	is_int(price_of("1.25e-06"), cfg->deployments[0].price.cache_read,
	       "gpt-4o cache read price");
	tg_config_free(cfg);

	/* No model_list at all: management endpoints still work. */
	cfg = load("general_settings:\n  master_key: sk-1\n", NULL, prices,
	           &err);
	ok(cfg != NULL && cfg->ndeployments == 0, "config without models");
	tg_config_free(cfg);
}

/* Every limit at its ceiling loads, and a hold computed from them fits. */
static void
test_ceilings(void)
{
	struct tg_config *cfg;
	struct tg_err err;

	cfg = load("litellm_settings:\n  request_timeout: 86400\n"
	           "  num_retries: 100\n  default_max_tokens: 1000000000\n"
	           "tollgate_settings:\n  max_llm_body: 1073741824\n"
	           "  max_management_body: 1073741824\n  hold_grace: 86400\n"
	           "model_list:\n  - model_name: a\n    litellm_params:\n"
	           "      model: gpt-4o\n      timeout: 86400\n",
	           NULL, prices, &err);
	if (!ok(cfg != NULL, "limits at their ceilings load")) {
		diag("%s", err.message);
		return;
	}
	is_int(86400, cfg->request_timeout, "request_timeout 86400");
	is_int(100, cfg->num_retries, "num_retries 100");
	is_int(1000000000, cfg->default_max_tokens, "default_max_tokens 1e9");
	is_int(1073741824, cfg->max_llm_body, "max_llm_body 1 GiB");
	is_int(86400, cfg->deployments[0].timeout_s, "timeout 86400");
	/* What lib/app.c and lib/chat.c compute from them. */
	ok(cfg->max_llm_body + 1 <= (size_t)INT32_MAX,
	   "a body at the cap and its NUL fit json-c's int length");
	is_int(86400, cfg->hold_grace_s, "hold_grace 86400");
	ok((int64_t)cfg->deployments[0].timeout_s * (cfg->num_retries + 1) +
	                   cfg->hold_grace_s <=
	           INT32_MAX,
	   "timeout x (num_retries + 1) + hold_grace fits a long");
	tg_config_free(cfg);
}

static void
test_env_fallbacks(void)
{
	struct tg_config *cfg;
	struct tg_err err;

	cfg = load("litellm_settings:\n  num_retries: 1\n",
	           "LITELLM_MASTER_KEY=sk-from-env;DATABASE_URL=mysql://r@h/db",
	           prices, &err);
	if (!ok(cfg != NULL, "config with env fallbacks loads")) {
		diag("%s", err.message);
		return;
	}
	is_string("sk-from-env", cfg->master_key, "LITELLM_MASTER_KEY");
	is_string("mysql://r@h/db", cfg->database_url, "DATABASE_URL");
	tg_config_free(cfg);

	cfg = load("general_settings:\n  master_key: \"\"\n", "", prices, &err);
	ok(cfg != NULL && cfg->master_key == NULL,
	   "empty master key means none");
	tg_config_free(cfg);

	cfg = load("general_settings:\n  master_key: os.environ/TG_TEST_KEY\n"
	           "  database_url: os.environ/TG_TEST_BASE\n"
	           "litellm_settings:\n  request_timeout: os.environ/"
	           "TG_TEST_TIMEOUT\n",
	           "TG_TEST_KEY=sk-sub;TG_TEST_BASE=mysql://x/y;"
	           "TG_TEST_TIMEOUT=42",
	           prices, &err);
	ok(cfg != NULL, "os.environ/ in several places");
	if (cfg != NULL) {
		is_string("sk-sub", cfg->master_key, "master_key substituted");
		is_string("mysql://x/y", cfg->database_url,
		          "database_url substituted");
		is_int(42, cfg->request_timeout, "number substituted");
	}
	tg_config_free(cfg);

	/* "os.environ/" only counts as the whole value. */
	cfg = load("general_settings:\n  master_key: \"x "
	           "os.environ/TG_TEST_UNSET\"\n",
	           NULL, prices, &err);
	ok(cfg != NULL &&
	           strcmp(cfg->master_key, "x os.environ/TG_TEST_UNSET") == 0,
	   "os.environ/ inside a value is literal");
	tg_config_free(cfg);
}

/* SPEC 7.2 lookup order. */
static const struct {
	int line;
	const char *model;      /* litellm_params.model */
	const char *model_info; /* extra model_info lines, or NULL */
	const char *want_name;  /* price_name */
	const char *want_in, *want_out;
} lookups[] = {
        {__LINE__, "gpt-4o-mini", NULL, "gpt-4o-mini", "1.5e-07", "6e-07"},
        {__LINE__, "openai/gpt-4o-mini", NULL, "gpt-4o-mini", "1.5e-07",
         "6e-07"},
        {__LINE__, "azure/gpt-4o-mini", NULL, "azure/gpt-4o-mini", "1.65e-07",
         "6.6e-07"},
        {__LINE__, "azure/gpt-35-turbo", NULL, "azure/gpt-35-turbo", "5e-07",
         "1.5e-06"},
        {__LINE__, "azure/gpt-4.1", NULL, "azure/gpt-4.1", "2e-06", "8e-06"},
        /* no azure/chatgpt-4o-latest in the map: the name without its
         * provider */
        {__LINE__, "azure/chatgpt-4o-latest", NULL, "chatgpt-4o-latest",
         "5e-06", "1.5e-05"},
        /* azure/o3 is in LiteLLM's whole map, at o3's price */
        {__LINE__, "azure/o3", NULL, "azure/o3", "2e-06", "8e-06"},
        {__LINE__, "mistral/mistral-large-latest", NULL,
         "mistral/mistral-large-latest", "5e-07", "1.5e-06"},
        {__LINE__, "mistral/open-mistral-nemo", NULL,
         "mistral/open-mistral-nemo", "3e-07", "3e-07"},
        {__LINE__, "mock/o4-mini", NULL, "o4-mini", "1.1e-06", "4.4e-06"},
        /* base_model before the model's own name */
        {__LINE__, "azure/gpt-4o-mini", "      base_model: gpt-4o\n", "gpt-4o",
         "2.5e-06", "1e-05"},
        {__LINE__, "openai/my-finetune",
         "      base_model: mistral/mistral-medium-latest\n",
         "mistral/mistral-medium-latest", "1.5e-06", "7.5e-06"},
        /* a base_model not in the file falls through (with a warning) */
        {__LINE__, "gpt-4", "      base_model: gpt-unknown\n", "gpt-4", "3e-05",
         "6e-05"},
        /* overrides before everything, and no lookup needed */
        {__LINE__, "openai/local-llama",
         "      input_cost_per_token: 0\n      output_cost_per_token: 0\n",
         "model_info", "0", "0"},
        {__LINE__, "gpt-4o",
         "      base_model: gpt-4\n      input_cost_per_token: 1e-06\n"
         "      output_cost_per_token: \"2e-06\"\n",
         "model_info", "1e-06", "2e-06"},
        /* one override replaces half of the looked-up price */
        {__LINE__, "gpt-4o", "      output_cost_per_token: 0.00002\n", "gpt-4o",
         "2.5e-06", "2e-05"},
};

static void
test_lookups(void)
{
	for (size_t i = 0; i < sizeof(lookups) / sizeof(lookups[0]); i++) {
		char yaml[1024];
		struct tg_config *cfg;
		struct tg_err err;
		const struct tg_deployment *d;
		bool azure = strncmp(lookups[i].model, "azure/", 6) == 0;

		snprintf(yaml, sizeof(yaml),
		         "model_list:\n  - model_name: m\n    litellm_params:\n"
		         "      model: %s\n%s%s%s",
		         lookups[i].model,
		         azure ? "      api_base: https://a.example\n"
		                 "      api_version: v1\n"
		               : "",
		         lookups[i].model_info ? "    model_info:\n" : "",
		         lookups[i].model_info ? lookups[i].model_info : "");
		cfg = load(yaml, NULL, prices, &err);
		if (!ok(cfg != NULL, "line %d: %s loads", lookups[i].line,
		        lookups[i].model)) {
			diag("%s", err.message);
			continue;
		}
		d = &cfg->deployments[0];
		is_string(lookups[i].want_name, d->price_name,
		          "line %d: priced by %s", lookups[i].line,
		          lookups[i].want_name);
		is_int(price_of(lookups[i].want_in), d->price.input,
		       "line %d: input %s", lookups[i].line,
		       lookups[i].want_in);
		is_int(price_of(lookups[i].want_out), d->price.output,
		       "line %d: output %s", lookups[i].line,
		       lookups[i].want_out);
		tg_config_free(cfg);
	}
}

/* Overrides need no price file; other lookups need one. */
static void
test_price_file_use(void)
{
	struct tg_config *cfg;
	struct tg_err err;
	char custom[600];

	cfg = load("model_list:\n  - model_name: m\n    litellm_params:\n"
	           "      model: openai/x\n    model_info:\n"
	           "      input_cost_per_token: 1e-06\n"
	           "      output_cost_per_token: 2e-06\n",
	           NULL, NULL, &err);
	ok(cfg != NULL, "overrides load without a price file");
	tg_config_free(cfg);

	cfg = load("model_list:\n  - model_name: m\n    litellm_params:\n"
	           "      model: gpt-4o\n",
	           NULL, NULL, &err);
	ok(cfg == NULL && strstr(err.message, "no price file") != NULL,
	   "lookup without a price file is an error: %s", err.message);
	tg_config_free(cfg);

	/* model_cost_map_path, relative to the config's directory */
	snprintf(custom, sizeof(custom), "%s",
	         write_tmp("custom.json",
	                   "{\"my-model\": {\"input_cost_per_token\": 3e-09,"
	                   " \"output_cost_per_token\": 4e-09}}"));
	cfg = load("litellm_settings:\n  model_cost_map_path: custom.json\n"
	           "model_list:\n  - model_name: m\n    litellm_params:\n"
	           "      model: my-model\n",
	           NULL, prices, &err);
	if (ok(cfg != NULL, "model_cost_map_path used")) {
		is_string("custom.json", cfg->model_cost_map_path,
		          "model_cost_map_path kept");
		is_int(price_of("3e-09"), cfg->deployments[0].price.input,
		       "price from the custom file");
	} else {
		diag("%s", err.message);
	}
	tg_config_free(cfg);

	cfg = load("litellm_settings:\n  model_cost_map_path: custom.json\n"
	           "model_list:\n  - model_name: m\n    litellm_params:\n"
	           "      model: gpt-4o\n",
	           NULL, prices, &err);
	ok(cfg == NULL && strstr(err.message, "no price for model 'm'") != NULL,
	   "the custom file replaces the shipped one");
	tg_config_free(cfg);
	unlink(custom);
}

static void
test_misc(void)
{
	struct tg_config *cfg;
	struct tg_err err;

	is_string("openai", tg_provider_name(TG_PROVIDER_OPENAI), "openai");
	is_string("azure", tg_provider_name(TG_PROVIDER_AZURE), "azure");
	is_string("mistral", tg_provider_name(TG_PROVIDER_MISTRAL), "mistral");
	is_string("mock", tg_provider_name(TG_PROVIDER_MOCK), "mock");
	tg_config_free(NULL);

	/* Alerting given as one value; unknown targets ignored. */
	cfg = load("general_settings:\n  alerting: webhook\n",
	           "WEBHOOK_URL=http://127.0.0.1:9/hook", prices, &err);
	ok(cfg && cfg->alerting.webhook_url != NULL,
	   "alerting as a single value");
	tg_config_free(cfg);
	unsetenv("SLACK_WEBHOOK_URL");
	cfg = load("general_settings:\n  alerting: [\"slack\"]\n", NULL, prices,
	           &err);
	ok(cfg == NULL && strstr(err.message, "SLACK_WEBHOOK_URL") != NULL,
	   "slack without SLACK_WEBHOOK_URL: an error naming it");
	tg_config_free(cfg);
	cfg = load("general_settings:\n  alerting: [\"slack\", \"email\"]\n",
	           "SLACK_WEBHOOK_URL=https://hooks.slack.example/T/B/x",
	           prices, &err);
	ok(cfg && cfg->alerting.webhook_url == NULL &&
	           cfg->alerting.slack_url != NULL,
	   "slack only: no webhook, unknown target ignored");
	ok(cfg && tg_alerting_wants(&cfg->alerting, TG_EVENT_BUDGET_CROSSED) &&
	           !tg_alerting_wants(&cfg->alerting, TG_EVENT_SPEND_TRACKED),
	   "slack gets budget alerts, not spend_tracked");
	tg_config_free(cfg);
	cfg = load("general_settings:\n  alerting: [\"webhook\"]\n"
	           "  alert_types: [\"budget_alerts\", \"llm_too_slow\"]\n",
	           "WEBHOOK_URL=http://127.0.0.1:9/hook", prices, &err);
	ok(cfg && cfg->alerting.events == TG_EVENT_BUDGET_ALERTS,
	   "alert_types budget_alerts: the three budget events");
	tg_config_free(cfg);
	cfg = load("general_settings:\n  alerting: [\"webhook\"]\n"
	           "  alert_types: spend_tracked\n",
	           "WEBHOOK_URL=http://127.0.0.1:9/hook", prices, &err);
	ok(cfg && cfg->alerting.events == TG_EVENT_SPEND_TRACKED &&
	           !tg_alerting_wants(&cfg->alerting,
	                              TG_EVENT_THRESHOLD_CROSSED),
	   "alert_types as one value");
	tg_config_free(cfg);
	cfg = load("general_settings:\n  alerting: [\"webhook\"]\n"
	           "  alert_types: [\"llm_too_slow\"]\n",
	           "WEBHOOK_URL=http://127.0.0.1:9/hook", prices, &err);
	ok(cfg != NULL && cfg->alerting.events == 0 &&
	           !tg_alerting_wants(&cfg->alerting, TG_EVENT_BUDGET_CROSSED),
	   "alert_types naming no tollgate event: loads, sends nothing");
	tg_config_free(cfg);
	cfg = load("tollgate_settings:\n  webhook_retry_for: 2592000\n"
	           "  webhook_retention: 40000000\n",
	           NULL, prices, &err);
	ok(cfg == NULL && strstr(err.message, "webhook_retention") != NULL,
	   "webhook_retention over a year: an error");
	tg_config_free(cfg);

	/* LiteLLM's custom pricing in litellm_params; model_info wins. */
	cfg = load("model_list:\n  - model_name: a\n    litellm_params:\n"
	           "      model: openai/x\n      input_cost_per_token: 1e-06\n"
	           "      output_cost_per_token: 2e-06\n"
	           "  - model_name: b\n    litellm_params:\n"
	           "      model: openai/x\n      input_cost_per_token: 1e-06\n"
	           "      output_cost_per_token: 2e-06\n"
	           "    model_info:\n      input_cost_per_token: 3e-06\n",
	           NULL, NULL, &err);
	ok(cfg != NULL, "prices in litellm_params");
	if (cfg != NULL) {
		is_string("litellm_params", cfg->deployments[0].price_name,
		          "priced by litellm_params");
		is_int(price_of("2e-06"), cfg->deployments[0].price.output,
		       "litellm_params output price");
		is_int(price_of("3e-06"), cfg->deployments[1].price.input,
		       "model_info input wins");
		is_int(price_of("2e-06"), cfg->deployments[1].price.output,
		       "litellm_params output kept");
	} else {
		diag("%s", err.message);
	}
	tg_config_free(cfg);

	/* Anchors and aliases are plain YAML. */
	cfg = load("x-defaults: &def\n  model: gpt-4o-mini\n"
	           "model_list:\n  - model_name: a\n    litellm_params: *def\n"
	           "  - model_name: b\n    litellm_params: *def\n",
	           NULL, prices, &err);
	ok(cfg && cfg->ndeployments == 2 &&
	           strcmp(cfg->deployments[1].upstream_model, "gpt-4o-mini") ==
	                   0,
	   "aliases resolve");
	tg_config_free(cfg);

	/* Null sections are empty. */
	cfg = load("model_list:\nlitellm_settings:\ngeneral_settings: ~\n",
	           NULL, prices, &err);
	ok(cfg && cfg->ndeployments == 0, "null sections are empty");
	tg_config_free(cfg);

	/* Many deployments load quickly and in order. */
	{
		size_t cap = 400 * 120, used = 0;
		char *yaml = malloc(cap);
		size_t idx[2];

		used += (size_t)snprintf(yaml, cap, "model_list:\n");
		for (int i = 0; i < 400; i++)
			used += (size_t)snprintf(
			        yaml + used, cap - used,
			        "  - model_name: m%d\n    litellm_params: "
			        "{model: mistral/mistral-small-latest}\n",
			        i % 200);
		cfg = load(yaml, NULL, prices, &err);
		free(yaml);
		ok(cfg && cfg->ndeployments == 400, "400 deployments");
		ok(cfg && tg_config_deployments(cfg, "m199", idx, 2) == 2 &&
		           idx[0] == 199 && idx[1] == 399,
		   "shared names found");
		tg_config_free(cfg);
	}
}

/*
 * The hosted tools' prices (SPEC 11): the price data's for the model
 * (search_context_cost_per_query by size, file_search_cost_per_1k_calls,
 * code_interpreter_cost_per_session, or model_info's), else
 * tollgate_settings.tool_prices, else OpenAI's list prices; a tool with
 * none has no price.
 */
static void
test_tool_prices(void)
{
	struct tg_config *cfg;
	struct tg_err err;
	tg_price p = -1;
	const char *priced =
	        "{\"priced\": {\"input_cost_per_token\": 1e-06,"
	        " \"output_cost_per_token\": 2e-06, \"max_input_tokens\": 1000,"
	        " \"search_context_cost_per_query\": "
	        "{\"search_context_size_low\":"
	        " 0.03, \"search_context_size_medium\": 0.035,"
	        " \"search_context_size_high\": 0.05},"
	        " \"file_search_cost_per_1k_calls\": 2.5,"
	        " \"code_interpreter_cost_per_session\": 0.03}}";
	char text[1024];

	cfg = load("model_list:\n  - model_name: m\n    litellm_params:\n"
	           "      model: gpt-4o\n",
	           NULL, prices, &err);
	ok(cfg != NULL, "a model without tool prices (%s)", err.message);
	if (cfg != NULL) {
		const struct tg_deployment *d = &cfg->deployments[0];

		ok(tg_config_tool_price(cfg, d, TG_TOOL_WEB_SEARCH,
		                        TG_SEARCH_HIGH, &p) &&
		           p == price_of("0.01"),
		   "web_search: OpenAI's 0.01 by default");
		ok(tg_config_tool_price(cfg, d, TG_TOOL_WEB_SEARCH_PREVIEW,
		                        TG_SEARCH_MEDIUM, &p) &&
		           p == price_of("0.025"),
		   "web_search_preview: 0.025 by default");
		ok(tg_config_tool_price(cfg, d, TG_TOOL_FILE_SEARCH,
		                        TG_SEARCH_MEDIUM, &p) &&
		           p == price_of("0.0025"),
		   "file_search: 0.0025 by default");
		ok(tg_config_tool_price(cfg, d, TG_TOOL_CODE_INTERPRETER,
		                        TG_SEARCH_MEDIUM, &p) &&
		           p == price_of("0.03"),
		   "code_interpreter: 0.03 by default");
		ok(!tg_config_tool_price(cfg, d, TG_TOOL_IMAGE_GENERATION,
		                         TG_SEARCH_MEDIUM, &p),
		   "image_generation: no price by default");
		is_int(10, cfg->default_max_tool_calls,
		       "default_max_tool_calls: 10");
		is_int(128000, d->price.max_input_tokens,
		       "max_input_tokens from the price file");
	}
	tg_config_free(cfg);

	snprintf(text, sizeof(text), "%s", priced);
	write_tmp("tools.json", text);
	snprintf(text, sizeof(text),
	         "model_list:\n  - model_name: m\n    litellm_params:\n"
	         "      model: priced\n"
	         "litellm_settings:\n  model_cost_map_path: %s/tools.json\n"
	         "tollgate_settings:\n  default_max_tool_calls: 4\n"
	         "  tool_prices:\n    web_search: 0.02\n"
	         "    image_generation: 0.04\n    file_search: null\n",
	         tmpdir);
	cfg = load(text, NULL, prices, &err);
	ok(cfg != NULL, "tool prices in the price data and the config (%s)",
	   err.message);
	if (cfg != NULL) {
		const struct tg_deployment *d = &cfg->deployments[0];

		ok(tg_config_tool_price(cfg, d, TG_TOOL_WEB_SEARCH,
		                        TG_SEARCH_LOW, &p) &&
		           p == price_of("0.03"),
		   "the model's search_context_cost_per_query, low");
		ok(tg_config_tool_price(cfg, d, TG_TOOL_WEB_SEARCH,
		                        TG_SEARCH_HIGH, &p) &&
		           p == price_of("0.05"),
		   "... high: the size asked for");
		ok(tg_config_tool_price(cfg, d, TG_TOOL_FILE_SEARCH,
		                        TG_SEARCH_MEDIUM, &p) &&
		           p == price_of("0.0025"),
		   "the model's file_search_cost_per_1k_calls / 1000 before "
		   "the config's null");
		ok(tg_config_tool_price(cfg, d, TG_TOOL_IMAGE_GENERATION,
		                        TG_SEARCH_MEDIUM, &p) &&
		           p == price_of("0.04"),
		   "image_generation from tool_prices");
		is_int(4, cfg->default_max_tool_calls,
		       "default_max_tool_calls from the config");
		is_int(1000, d->price.max_input_tokens,
		       "max_input_tokens from the price data");
	}
	tg_config_free(cfg);

	cfg = load("model_list:\n  - model_name: m\n    litellm_params:\n"
	           "      model: gpt-4o\n    model_info:\n"
	           "      max_input_tokens: 500\n"
	           "      file_search_cost_per_1k_calls: 1\n"
	           "      code_interpreter_cost_per_session: 0.5\n"
	           "tollgate_settings:\n  tool_prices:\n"
	           "    file_search: null\n",
	           NULL, prices, &err);
	ok(cfg != NULL, "tool prices in model_info (%s)", err.message);
	if (cfg != NULL) {
		const struct tg_deployment *d = &cfg->deployments[0];

		ok(tg_config_tool_price(cfg, d, TG_TOOL_FILE_SEARCH,
		                        TG_SEARCH_MEDIUM, &p) &&
		           p == price_of("0.001"),
		   "model_info.file_search_cost_per_1k_calls / 1000");
		ok(tg_config_tool_price(cfg, d, TG_TOOL_CODE_INTERPRETER,
		                        TG_SEARCH_MEDIUM, &p) &&
		           p == price_of("0.5"),
		   "model_info.code_interpreter_cost_per_session");
		is_int(500, d->price.max_input_tokens,
		       "model_info.max_input_tokens");
	}
	tg_config_free(cfg);

	cfg = load("tollgate_settings:\n  tool_prices:\n    web_serch: 1\n",
	           NULL, prices, &err);
	ok(cfg == NULL &&
	           strstr(err.message, "unknown hosted tool 'web_serch'"),
	   "an unknown tool is an error naming it: %s", err.message);
	tg_config_free(cfg);
	cfg = load("tollgate_settings:\n  tool_prices:\n    web_search: -1\n",
	           NULL, prices, &err);
	ok(cfg == NULL && strstr(err.message, "USD per call"),
	   "a negative tool price is an error: %s", err.message);
	tg_config_free(cfg);
	cfg = load("tollgate_settings:\n  tool_prices: 5\n", NULL, prices,
	           &err);
	ok(cfg == NULL && strstr(err.message, "must be a mapping"),
	   "tool_prices must be a mapping: %s", err.message);
	tg_config_free(cfg);
	unlink(write_tmp("tools.json", "{}"));
}

/* ------------------------------------------- LiteLLM's OpenAI-compatible */

/* Entries of LiteLLM's model_prices_and_context_window.json, named and
 * priced as there (USD per token). */
static const char litellm_prices[] =
        "{\"deepseek/deepseek-chat\": {\"input_cost_per_token\": 2.8e-07,"
        " \"output_cost_per_token\": 4.2e-07,"
        " \"litellm_provider\": \"deepseek\", \"mode\": \"chat\"},"
        " \"gemini/gemini-2.5-flash\": {\"input_cost_per_token\": 3e-07,"
        " \"output_cost_per_token\": 2.5e-06,"
        " \"litellm_provider\": \"gemini\", \"mode\": \"chat\"},"
        " \"groq/llama-3.1-8b-instant\": {\"input_cost_per_token\": 5e-08,"
        " \"output_cost_per_token\": 8e-08,"
        " \"litellm_provider\": \"groq\", \"mode\": \"chat\"},"
        " \"openrouter/openai/gpt-4o\": {\"input_cost_per_token\": 2.5e-06,"
        " \"output_cost_per_token\": 1e-05,"
        " \"litellm_provider\": \"openrouter\", \"mode\": \"chat\"},"
        " \"xai/grok-3-mini\": {\"input_cost_per_token\": 3e-07,"
        " \"output_cost_per_token\": 5e-07,"
        " \"litellm_provider\": \"xai\", \"mode\": \"chat\"},"
        " \"together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo\":"
        " {\"input_cost_per_token\": 8.8e-07,"
        " \"output_cost_per_token\": 8.8e-07,"
        " \"litellm_provider\": \"together_ai\", \"mode\": \"chat\"},"
        " \"fireworks_ai/accounts/fireworks/models/llama-v3p1-8b-instruct\":"
        " {\"input_cost_per_token\": 1e-07, \"output_cost_per_token\": 1e-07,"
        " \"litellm_provider\": \"fireworks_ai\", \"mode\": \"chat\"},"
        " \"perplexity/sonar\": {\"input_cost_per_token\": 1e-06,"
        " \"output_cost_per_token\": 1e-06,"
        " \"litellm_provider\": \"perplexity\", \"mode\": \"chat\"},"
        " \"ollama/llama3\": {\"input_cost_per_token\": 0.0,"
        " \"output_cost_per_token\": 0.0,"
        " \"litellm_provider\": \"ollama\", \"mode\": \"chat\"},"
        " \"cerebras/llama3.1-8b\": {\"input_cost_per_token\": 1e-07,"
        " \"output_cost_per_token\": 1e-07,"
        " \"litellm_provider\": \"cerebras\", \"mode\": \"chat\"},"
        " \"deepinfra/meta-llama/Meta-Llama-3.1-8B-Instruct\":"
        " {\"input_cost_per_token\": 3e-08, \"output_cost_per_token\": 5e-08,"
        " \"litellm_provider\": \"deepinfra\", \"mode\": \"chat\"}}";

#define INFO_PRICES                                                            \
	"    model_info:\n      input_cost_per_token: 1e-06\n"                 \
	"      output_cost_per_token: 2e-06\n"

/* The rows as LiteLLM's defaults and the providers' documentation state
 * them (README, Configuration). */
#define CHAT (1u << TG_API_CHAT)
#define EMB  (1u << TG_API_EMBEDDINGS)
#define CMPL (1u << TG_API_COMPLETIONS)
static const struct {
	const char *name, *base;
	unsigned apis;
	const char *first_key_env, *base_env;
} compat_rows[] = {
        {"deepseek", "https://api.deepseek.com/v1", CHAT, "DEEPSEEK_API_KEY",
         "DEEPSEEK_API_BASE"},
        {"gemini", "https://generativelanguage.googleapis.com/v1beta/openai",
         CHAT | EMB, "GOOGLE_API_KEY", "GEMINI_API_BASE"},
        {"groq", "https://api.groq.com/openai/v1", CHAT, "GROQ_API_KEY",
         "GROQ_API_BASE"},
        {"openrouter", "https://openrouter.ai/api/v1", CHAT | CMPL,
         "OPENROUTER_API_KEY", "OPENROUTER_API_BASE"},
        {"xai", "https://api.x.ai/v1", CHAT, "XAI_API_KEY", "XAI_API_BASE"},
        {"together_ai", "https://api.together.xyz/v1", CHAT | EMB | CMPL,
         "TOGETHER_API_KEY", "TOGETHER_AI_API_BASE"},
        {"fireworks_ai", "https://api.fireworks.ai/inference/v1",
         CHAT | EMB | CMPL, "FIREWORKS_API_KEY", "FIREWORKS_API_BASE"},
        {"perplexity", "https://api.perplexity.ai", CHAT,
         "PERPLEXITYAI_API_KEY", "PERPLEXITY_API_BASE"},
        {"hosted_vllm", NULL, CHAT | EMB | CMPL, "HOSTED_VLLM_API_KEY",
         "HOSTED_VLLM_API_BASE"},
        {"ollama_chat", "http://localhost:11434/v1", CHAT | EMB | CMPL,
         "OLLAMA_API_KEY", "OLLAMA_API_BASE"},
        {"cerebras", "https://api.cerebras.ai/v1", CHAT, "CEREBRAS_API_KEY",
         "CEREBRAS_API_BASE"},
        {"deepinfra", "https://api.deepinfra.com/v1/openai", CHAT | EMB | CMPL,
         "DEEPINFRA_API_KEY", "DEEPINFRA_API_BASE"},
        {"lm_studio", "http://localhost:1234/v1", CHAT | EMB | CMPL,
         "LM_STUDIO_API_KEY", "LM_STUDIO_API_BASE"},
        {"nvidia_nim", "https://integrate.api.nvidia.com/v1", CHAT | EMB,
         "NVIDIA_NIM_API_KEY", "NVIDIA_NIM_API_BASE"},
};

/* A deployment of each prefix: what it is sent as, to where, with which
 * key, and the name it is priced under. */
static const struct {
	int line;
	const char *model;
	const char *more; /* further litellm_params and model_info lines */
	const char *env;
	const char *want_upstream, *want_base, *want_key, *want_price;
	const char *want_in; /* input price, when want_price is the map's */
} compat[] = {
        {__LINE__, "deepseek/deepseek-chat", "", "DEEPSEEK_API_KEY=ds-env",
         "deepseek-chat", NULL, "ds-env", "deepseek/deepseek-chat", "2.8e-07"},
        {__LINE__, "deepseek/deepseek-chat", "      api_key: given\n",
         "DEEPSEEK_API_KEY=ds-env", "deepseek-chat", NULL, "given",
         "deepseek/deepseek-chat", "2.8e-07"},
        {__LINE__, "deepseek/deepseek-chat", "",
         "DEEPSEEK_API_BASE=http://127.0.0.1:9/v1", "deepseek-chat",
         "http://127.0.0.1:9/v1", NULL, "deepseek/deepseek-chat", "2.8e-07"},
        {__LINE__, "gemini/gemini-2.5-flash", "", "GEMINI_API_KEY=gem",
         "gemini-2.5-flash", NULL, "gem", "gemini/gemini-2.5-flash", "3e-07"},
        {__LINE__, "gemini/gemini-2.5-flash", "",
         "GEMINI_API_KEY=gem;GOOGLE_API_KEY=goo", "gemini-2.5-flash", NULL,
         "goo", "gemini/gemini-2.5-flash", "3e-07"},
        {__LINE__, "gemini/gemini-2.5-flash", "",
         "GEMINI_API_BASE=https://gl.example", "gemini-2.5-flash",
         "https://gl.example/v1beta/openai", NULL, "gemini/gemini-2.5-flash",
         "3e-07"},
        {__LINE__, "gemini/gemini-2.5-flash",
         "      api_base: https://gl.example/v1beta/openai/\n", NULL,
         "gemini-2.5-flash", "https://gl.example/v1beta/openai", NULL,
         "gemini/gemini-2.5-flash", "3e-07"},
        {__LINE__, "groq/llama-3.1-8b-instant", "", "GROQ_API_KEY=gq",
         "llama-3.1-8b-instant", NULL, "gq", "groq/llama-3.1-8b-instant",
         "5e-08"},
        {__LINE__, "openrouter/openai/gpt-4o", "", "OR_API_KEY=or",
         "openai/gpt-4o", NULL, "or", "openrouter/openai/gpt-4o", "2.5e-06"},
        {__LINE__, "xai/grok-3-mini", "", "XAI_API_KEY=xk", "grok-3-mini", NULL,
         "xk", "xai/grok-3-mini", "3e-07"},
        {__LINE__, "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo", "",
         "TOGETHERAI_API_KEY=t3", "meta-llama/Llama-3.3-70B-Instruct-Turbo",
         NULL, "t3", "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo",
         "8.8e-07"},
        {__LINE__, "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo", "",
         "TOGETHER_API_KEY=t1;TOGETHERAI_API_KEY=t3",
         "meta-llama/Llama-3.3-70B-Instruct-Turbo", NULL, "t1",
         "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo", "8.8e-07"},
        {__LINE__, "fireworks_ai/llama-v3p1-8b-instruct", "",
         "FIREWORKS_AI_API_KEY=fw",
         "accounts/fireworks/models/llama-v3p1-8b-instruct", NULL, "fw",
         "fireworks_ai/accounts/fireworks/models/llama-v3p1-8b-instruct",
         "1e-07"},
        {__LINE__,
         "fireworks_ai/accounts/fireworks/models/llama-v3p1-8b-instruct", "",
         NULL, "accounts/fireworks/models/llama-v3p1-8b-instruct", NULL, NULL,
         "fireworks_ai/accounts/fireworks/models/llama-v3p1-8b-instruct",
         "1e-07"},
        {__LINE__, "perplexity/sonar", "", "PERPLEXITY_API_KEY=px", "sonar",
         NULL, "px", "perplexity/sonar", "1e-06"},
        {__LINE__, "hosted_vllm/my-llm", INFO_PRICES,
         "HOSTED_VLLM_API_BASE=http://127.0.0.1:8000/v1", "my-llm",
         "http://127.0.0.1:8000/v1", NULL, "model_info", NULL},
        {__LINE__, "hosted_vllm/my-llm",
         "      api_base: http://vllm.example/v1\n" INFO_PRICES,
         "HOSTED_VLLM_API_KEY=hv", "my-llm", "http://vllm.example/v1", "hv",
         "model_info", NULL},
        {__LINE__, "ollama_chat/llama3", "", NULL, "llama3", NULL, NULL,
         "ollama/llama3", "0"},
        {__LINE__, "ollama_chat/llama3",
         "      api_base: http://127.0.0.1:11434\n", NULL, "llama3",
         "http://127.0.0.1:11434/v1", NULL, "ollama/llama3", "0"},
        {__LINE__, "ollama_chat/llama3", "",
         "OLLAMA_API_BASE=http://gpu.example:11434/", "llama3",
         "http://gpu.example:11434/v1", NULL, "ollama/llama3", "0"},
        {__LINE__, "cerebras/llama3.1-8b", "", "CEREBRAS_API_KEY=cb",
         "llama3.1-8b", NULL, "cb", "cerebras/llama3.1-8b", "1e-07"},
        {__LINE__, "deepinfra/meta-llama/Meta-Llama-3.1-8B-Instruct", "",
         "DEEPINFRA_API_KEY=di", "meta-llama/Meta-Llama-3.1-8B-Instruct", NULL,
         "di", "deepinfra/meta-llama/Meta-Llama-3.1-8B-Instruct", "3e-08"},
        {__LINE__, "lm_studio/qwen2.5-7b-instruct", INFO_PRICES, NULL,
         "qwen2.5-7b-instruct", NULL, NULL, "model_info", NULL},
        {__LINE__, "nvidia_nim/meta/llama3-8b-instruct", INFO_PRICES,
         "NVIDIA_NIM_API_KEY=nv", "meta/llama3-8b-instruct", NULL, "nv",
         "model_info", NULL},
};

static void
test_compat_providers(void)
{
	char yaml[2048];
	struct tg_config *cfg;
	struct tg_err err;

	for (int p = 0; p < TG_PROVIDER_COUNT; p++) {
		const struct tg_provider_info *row = tg_provider(p);

		ok(row->id == (enum tg_provider)p && row->name != NULL &&
		           tg_provider_by_name(row->name, strlen(row->name)) ==
		                   row,
		   "provider %d: a row with its id and name %s", p,
		   row->name ? row->name : "(none)");
	}
	for (size_t i = 0; i < sizeof(compat_rows) / sizeof(compat_rows[0]);
	     i++) {
		const char *name = compat_rows[i].name;
		const struct tg_provider_info *row =
		        tg_provider_by_name(name, strlen(name));

		if (!ok(row != NULL, "%s/ is a provider", name))
			continue;
		is_string(compat_rows[i].base, row->default_base,
		          "%s: default base", name);
		is_int(TG_PROVIDER_AUTH_BEARER, row->auth, "%s: Bearer", name);
		is_int(compat_rows[i].apis, row->apis, "%s: APIs served", name);
		is_string(compat_rows[i].first_key_env,
		          row->key_env ? row->key_env[0] : NULL,
		          "%s: key variable", name);
		is_string(compat_rows[i].base_env, row->base_env,
		          "%s: base variable", name);
		ok(strstr(tg_provider_names(), name) != NULL,
		   "%s: named in the supported list", name);
	}

	write_tmp("litellm.json", litellm_prices);
	for (size_t i = 0; i < sizeof(compat) / sizeof(compat[0]); i++) {
		const struct tg_deployment *d;
		int line = compat[i].line;

		snprintf(yaml, sizeof(yaml),
		         "model_list:\n  - model_name: m\n    litellm_params:\n"
		         "      model: %s\n%s"
		         "litellm_settings:\n  model_cost_map_path: "
		         "litellm.json\n",
		         compat[i].model, compat[i].more);
		cfg = load(yaml, compat[i].env, prices, &err);
		if (!ok(cfg != NULL, "line %d: %s loads", line,
		        compat[i].model)) {
			diag("%s", err.message);
			continue;
		}
		d = &cfg->deployments[0];
		is_string(compat[i].want_upstream, d->upstream_model,
		          "line %d: upstream model", line);
		is_string(compat[i].want_base, d->api_base, "line %d: api_base",
		          line);
		is_string(compat[i].want_key, d->api_key, "line %d: api_key",
		          line);
		is_string(compat[i].want_price, d->price_name,
		          "line %d: priced as %s", line, compat[i].want_price);
		if (compat[i].want_in != NULL)
			is_int(price_of(compat[i].want_in), d->price.input,
			       "line %d: input price %s", line,
			       compat[i].want_in);
		tg_config_free(cfg);
	}

	/* hosted_vllm has no default base: api_base or its variable. */
	cfg = load("model_list:\n  - model_name: v\n    litellm_params:\n"
	           "      model: hosted_vllm/m\n" INFO_PRICES,
	           NULL, prices, &err);
	ok(cfg == NULL && strstr(err.message,
	                         ":4: model 'v': hosted_vllm needs "
	                         "litellm_params.api_base or the environment "
	                         "variable HOSTED_VLLM_API_BASE") != NULL,
	   "hosted_vllm without api_base: %s", err.message);
	tg_config_free(cfg);
	cfg = load("model_list:\n  - model_name: v\n    litellm_params:\n"
	           "      model: lm_studio/m\n" INFO_PRICES,
	           "LM_STUDIO_API_BASE=localhost:1234", prices, &err);
	ok(cfg == NULL && strstr(err.message, "LM_STUDIO_API_BASE must start "
	                                      "with http") != NULL,
	   "a base variable that is no URL: %s", err.message);
	tg_config_free(cfg);
	/* An empty variable is unset, and the next name is tried. */
	cfg = load("model_list:\n  - model_name: v\n    litellm_params:\n"
	           "      model: fireworks_ai/m\n" INFO_PRICES,
	           "FIREWORKS_API_KEY=;FIREWORKS_AI_TOKEN=tok", prices, &err);
	ok(cfg != NULL && tap_streq("tok", cfg->deployments[0].api_key),
	   "an empty key variable is skipped");
	tg_config_free(cfg);
	unlink(write_tmp("litellm.json", "{}"));
}

int
main(void)
{
	const char *src = getenv("TG_SRCDIR");

	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(prices, sizeof(prices), "%s/etc/model_prices.json",
	         src && src[0] ? src : "..");
	test_errors();
	test_missing_file();
	test_no_secret_in_errors();
	test_full();
	test_defaults();
	test_ceilings();
	test_env_fallbacks();
	test_lookups();
	test_price_file_use();
	test_misc();
	test_tool_prices();
	test_compat_providers();
	env_reset();
	rmdir(tmpdir);
	return done_testing();
}
