/*
 * fuzz-config: the config loader (lib/config.c) and, through it, the price
 * file loader (lib/pricing.c).
 *
 * An input is a config.yaml, optionally followed by a NUL and a price file
 * (model_prices.json).  Both are written to a private directory and loaded
 * with tg_config_load() as a process does at start; the price file is the
 * default one and is also reachable as model_cost_map_path: prices.json.
 * The environment holds the variables os.environ/ lookups of the seeds
 * name (AZURE_API_BASE, ...), some of them unset on purpose.
 *
 * Properties beyond "no crash, no leak, no UB":
 *  - a failure is TG_ERR_CONFIG with the message "<file>:<line>: <reason>"
 *    (SPEC 2: file, line and reason);
 *  - a loaded config is whole and usable: every deployment has a name, a
 *    model, a provider and upstream name that match the model text, a
 *    price, a positive timeout; azure has its api_base and api_version;
 *    an api_base is an http(s) URL without a trailing '/'; caps are > 0;
 *    every model name is found by tg_config_has_model/deployments.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "err.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond, what)                                                      \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "fuzz-config: %s: %s\n", what, #cond); \
			abort();                                               \
		}                                                              \
	} while (0)

static char tmpdir[64];
static char config_path[96];
static char prices_path[96];
static FILE *quiet;

static void
cleanup(void)
{
	unlink(config_path);
	unlink(prices_path);
	rmdir(tmpdir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char *const dirs[] = {"/dev/shm", "/tmp"};

	(void)argc;
	(void)argv;
	/* In memory where the system has it: a file is written per input. */
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(tmpdir, sizeof(tmpdir), "%s/tg-fuzz-config-XXXXXX",
		         dirs[i]);
		if (mkdtemp(tmpdir) != NULL)
			break;
		tmpdir[0] = '\0';
	}
	if (tmpdir[0] == '\0') {
		perror("mkdtemp");
		exit(1);
	}
	snprintf(config_path, sizeof(config_path), "%s/config.yaml", tmpdir);
	snprintf(prices_path, sizeof(prices_path), "%s/prices.json", tmpdir);
	atexit(cleanup);
	setenv("AZURE_API_BASE", "https://example-resource.openai.azure.com/",
	       1);
	setenv("AZURE_API_KEY", "azure-key", 1);
	setenv("OPENAI_API_KEY", "sk-openai", 1);
	setenv("MISTRAL_API_KEY", "mistral-key", 1);
	setenv("EMPTY_VALUE", "", 1);
	setenv("NOT_A_URL", "ftp://example.com", 1);
	setenv("WEBHOOK_URL", "http://127.0.0.1:9/hook", 1);
	setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.example/T/B/x", 1);
	setenv("WEBHOOK_SECRET", "whsec-fuzz", 1);
	unsetenv("UNSET_VARIABLE");
	unsetenv("LITELLM_MASTER_KEY");
	unsetenv("DATABASE_URL");
	/* The loader warns on stderr about each unknown key; that would be
	 * most of the output.  Only tg_log writes through this FILE: the
	 * sanitizers and libFuzzer report on fd 2 directly. */
	quiet = fopen("/dev/null", "w");
	if (quiet != NULL)
		stderr = quiet;
	return 0;
}

static bool
write_file(const char *path, const uint8_t *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	bool ok;

	if (f == NULL)
		return false;
	ok = fwrite(data, 1, len, f) == len;
	return fclose(f) == 0 && ok;
}

static void
check_config(const struct tg_config *cfg)
{
	CHECK(cfg->max_management_body > 0 && cfg->max_llm_body > 0,
	      "caps > 0");
	CHECK(cfg->request_timeout > 0, "request_timeout > 0");
	CHECK(cfg->default_max_tokens > 0, "default_max_tokens > 0");
	CHECK(cfg->num_retries >= 0, "num_retries >= 0");
	CHECK(cfg->alerting.retry_for_s > 0 && cfg->alerting.timeout_s > 0,
	      "webhook periods > 0");
	for (size_t i = 0; i < cfg->ndeployments; i++) {
		const struct tg_deployment *d = &cfg->deployments[i];
		const char *slash;
		size_t idx[8];

		CHECK(d->model_name != NULL && d->model_name[0] != '\0',
		      "a model_name");
		CHECK(d->litellm_model != NULL && d->upstream_model != NULL,
		      "a model");
		slash = strchr(d->litellm_model, '/');
		CHECK(strcmp(d->upstream_model,
		             slash ? slash + 1 : d->litellm_model) == 0,
		      "the upstream name follows the provider");
		CHECK(d->upstream_model[0] != '\0' || slash == NULL,
		      "a name after the provider");
		CHECK(slash == NULL ||
		              (strlen(tg_provider_name(d->provider)) ==
		                       (size_t)(slash - d->litellm_model) &&
		               strncmp(tg_provider_name(d->provider),
		                       d->litellm_model,
		                       (size_t)(slash - d->litellm_model)) ==
		                       0),
		      "the provider is the model's prefix");
		CHECK(d->provider != TG_PROVIDER_AZURE ||
		              (d->api_base != NULL && d->api_version != NULL),
		      "azure has api_base and api_version");
		if (d->api_base != NULL) {
			size_t n = strlen(d->api_base);

			CHECK((strncmp(d->api_base, "http://", 7) == 0 &&
			       n > 7) ||
			              (strncmp(d->api_base, "https://", 8) ==
			                       0 &&
			               n > 8),
			      "api_base is an http(s) URL");
			CHECK(d->api_base[n - 1] != '/',
			      "api_base without a trailing '/'");
		}
		CHECK(d->timeout_s > 0, "timeout > 0");
		CHECK(d->price.input >= 0 && d->price.output >= 0,
		      "prices >= 0");
		CHECK(d->price_name != NULL, "the price's name");
		CHECK(tg_config_has_model(cfg, d->model_name), "has_model");
		CHECK(tg_config_deployments(cfg, d->model_name, idx, 8) > 0,
		      "deployments");
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, '\0', size);
	size_t ylen = nul ? (size_t)(nul - data) : size;
	struct tg_config *cfg = NULL;
	struct tg_err err;
	enum tg_rc rc;
	char prefix[128];

	if (!write_file(config_path, data, ylen))
		return 0;
	unlink(prices_path);
	if (nul != NULL && !write_file(prices_path, nul + 1, size - ylen - 1))
		return 0;
	tg_err_clear(&err);
	rc = tg_config_load(config_path, prices_path, &cfg, &err);
	if (rc != TG_OK) {
		CHECK(rc == TG_ERR_CONFIG && err.rc == TG_ERR_CONFIG,
		      "TG_ERR_CONFIG");
		CHECK(cfg == NULL, "nothing handed out");
		snprintf(prefix, sizeof(prefix), "%s:", config_path);
		CHECK(strncmp(err.message, prefix, strlen(prefix)) == 0,
		      "the message names the file");
		CHECK(err.message[strlen(prefix)] >= '0' &&
		              err.message[strlen(prefix)] <= '9',
		      "then the line");
		return 0;
	}
	CHECK(cfg != NULL, "a config");
	check_config(cfg);
	tg_config_free(cfg);
	return 0;
}
