/*
 * provider: the provider table (see provider.h).  Adding a provider is a
 * row here and its enum value; the rest of tollgate reads the row.
 */
#include <string.h>

#include "provider.h"

static const char *const anthropic_headers[] = {"anthropic-beta", NULL};

/*
 * The environment variables LiteLLM reads for a provider's key, in its
 * order (BerriAI/litellm: litellm_core_utils/get_llm_provider_logic.py
 * and each provider's _get_openai_compatible_provider_info / get_api_key
 * in llms/<provider>/).
 */
static const char *const deepseek_keys[] = {"DEEPSEEK_API_KEY", NULL};
/* GeminiModelInfo.get_api_key: GOOGLE_API_KEY first, as Google's SDK. */
static const char *const gemini_keys[] = {"GOOGLE_API_KEY", "GEMINI_API_KEY",
                                          NULL};
static const char *const groq_keys[] = {"GROQ_API_KEY", NULL};
static const char *const openrouter_keys[] = {"OPENROUTER_API_KEY",
                                              "OR_API_KEY", NULL};
static const char *const xai_keys[] = {"XAI_API_KEY", NULL};
static const char *const together_keys[] = {
        "TOGETHER_API_KEY", "TOGETHER_AI_API_KEY", "TOGETHERAI_API_KEY",
        "TOGETHER_AI_TOKEN", NULL};
static const char *const fireworks_keys[] = {
        "FIREWORKS_API_KEY", "FIREWORKS_AI_API_KEY", "FIREWORKSAI_API_KEY",
        "FIREWORKS_AI_TOKEN", NULL};
static const char *const perplexity_keys[] = {"PERPLEXITYAI_API_KEY",
                                              "PERPLEXITY_API_KEY", NULL};
static const char *const hosted_vllm_keys[] = {"HOSTED_VLLM_API_KEY", NULL};
static const char *const ollama_keys[] = {"OLLAMA_API_KEY", NULL};
static const char *const cerebras_keys[] = {"CEREBRAS_API_KEY", NULL};
static const char *const deepinfra_keys[] = {"DEEPINFRA_API_KEY", NULL};
static const char *const lm_studio_keys[] = {"LM_STUDIO_API_KEY", NULL};
static const char *const nvidia_nim_keys[] = {"NVIDIA_NIM_API_KEY", NULL};

#define API_CHAT        TG_API_BIT(TG_API_CHAT)
#define API_EMBEDDINGS  TG_API_BIT(TG_API_EMBEDDINGS)
#define API_COMPLETIONS TG_API_BIT(TG_API_COMPLETIONS)

static const struct tg_provider_info providers[] = {
        [TG_PROVIDER_OPENAI] = {.id = TG_PROVIDER_OPENAI,
                                .name = "openai",
                                .default_base = "https://api.openai.com/v1",
                                .auth = TG_PROVIDER_AUTH_BEARER,
                                .apis = TG_API_OPENAI},
        [TG_PROVIDER_AZURE] = {.id = TG_PROVIDER_AZURE,
                               .name = "azure",
                               .auth = TG_PROVIDER_AUTH_API_KEY,
                               .apis = TG_API_OPENAI,
                               .azure_path = true},
        [TG_PROVIDER_MISTRAL] = {.id = TG_PROVIDER_MISTRAL,
                                 .name = "mistral",
                                 .default_base = "https://api.mistral.ai/v1",
                                 .auth = TG_PROVIDER_AUTH_BEARER,
                                 /* Mistral has no Responses API and no
                                  * legacy completions (its /fim is
                                  * another API). */
                                 .apis = TG_API_BIT(TG_API_CHAT) |
                                         TG_API_BIT(TG_API_EMBEDDINGS),
                                 .drop_user = true,
                                 .max_tokens_only = true,
                                 .no_stream_options = true},
        [TG_PROVIDER_MOCK] = {.id = TG_PROVIDER_MOCK,
                              .name = "mock",
                              .auth = TG_PROVIDER_AUTH_NONE,
                              .apis = TG_API_ALL,
                              .local = true},
        [TG_PROVIDER_ANTHROPIC] = {.id = TG_PROVIDER_ANTHROPIC,
                                   .name = "anthropic",
                                   .default_base = "https://api.anthropic.com",
                                   .auth = TG_PROVIDER_AUTH_X_API_KEY,
                                   .apis = TG_API_BIT(TG_API_MESSAGES),
                                   .version_header = "anthropic-version",
                                   .default_version = "2023-06-01",
                                   .client_headers = anthropic_headers,
                                   .count_tokens = true},
        /*
         * LiteLLM's OpenAI-compatible providers.  Base URLs and variables
         * are LiteLLM's; the APIs each row serves are those its provider
         * documents an OpenAI-compatible path for.  No row drops user or
         * stream_options: no provider here documents refusing them.
         * max_tokens_only follows LiteLLM's map_openai_params, which
         * sends max_completion_tokens as max_tokens for xai, fireworks_ai
         * and deepinfra.
         */
        [TG_PROVIDER_DEEPSEEK] = {.id = TG_PROVIDER_DEEPSEEK,
                                  .name = "deepseek",
                                  /* LiteLLM's default is .../beta, which
                                   * DeepSeek keeps for beta features; /v1
                                   * is its documented base. */
                                  .default_base = "https://api.deepseek.com/v1",
                                  .auth = TG_PROVIDER_AUTH_BEARER,
                                  .apis = API_CHAT,
                                  .key_env = deepseek_keys,
                                  .base_env = "DEEPSEEK_API_BASE"},
        [TG_PROVIDER_GEMINI] =
                {.id = TG_PROVIDER_GEMINI,
                 .name = "gemini",
                 /* Google's OpenAI-compatible endpoint (Bearer <Gemini
                  * key>), where LiteLLM speaks Gemini's own API below
                  * the same root: GEMINI_API_BASE is that root. */
                 .default_base = "https://generativelanguage.googleapis.com/"
                                 "v1beta/openai",
                 .auth = TG_PROVIDER_AUTH_BEARER,
                 .apis = API_CHAT | API_EMBEDDINGS,
                 .key_env = gemini_keys,
                 .base_env = "GEMINI_API_BASE",
                 .base_path = "/v1beta/openai"},
        [TG_PROVIDER_GROQ] = {.id = TG_PROVIDER_GROQ,
                              .name = "groq",
                              .default_base = "https://api.groq.com/openai/v1",
                              .auth = TG_PROVIDER_AUTH_BEARER,
                              .apis = API_CHAT,
                              .key_env = groq_keys,
                              .base_env = "GROQ_API_BASE"},
        [TG_PROVIDER_OPENROUTER] = {.id = TG_PROVIDER_OPENROUTER,
                                    .name = "openrouter",
                                    .default_base =
                                            "https://openrouter.ai/api/v1",
                                    .auth = TG_PROVIDER_AUTH_BEARER,
                                    .apis = API_CHAT | API_COMPLETIONS,
                                    .key_env = openrouter_keys,
                                    .base_env = "OPENROUTER_API_BASE",
                                    .cost_on_request = true},
        [TG_PROVIDER_XAI] = {.id = TG_PROVIDER_XAI,
                             .name = "xai",
                             .default_base = "https://api.x.ai/v1",
                             .auth = TG_PROVIDER_AUTH_BEARER,
                             .apis = API_CHAT,
                             .max_tokens_only = true,
                             .key_env = xai_keys,
                             .base_env = "XAI_API_BASE",
                             .reasoning_apart = true},
        [TG_PROVIDER_TOGETHER_AI] = {.id = TG_PROVIDER_TOGETHER_AI,
                                     .name = "together_ai",
                                     .default_base =
                                             "https://api.together.xyz/v1",
                                     .auth = TG_PROVIDER_AUTH_BEARER,
                                     .apis = API_CHAT | API_EMBEDDINGS |
                                             API_COMPLETIONS,
                                     .key_env = together_keys,
                                     .base_env = "TOGETHER_AI_API_BASE"},
        [TG_PROVIDER_FIREWORKS_AI] =
                {.id = TG_PROVIDER_FIREWORKS_AI,
                 .name = "fireworks_ai",
                 .default_base = "https://api.fireworks.ai/inference/v1",
                 .auth = TG_PROVIDER_AUTH_BEARER,
                 .apis = API_CHAT | API_EMBEDDINGS | API_COMPLETIONS,
                 .max_tokens_only = true,
                 .key_env = fireworks_keys,
                 .base_env = "FIREWORKS_API_BASE",
                 .model_prefix = "accounts/fireworks/models/"},
        [TG_PROVIDER_PERPLEXITY] = {.id = TG_PROVIDER_PERPLEXITY,
                                    .name = "perplexity",
                                    .default_base = "https://api.perplexity.ai",
                                    .auth = TG_PROVIDER_AUTH_BEARER,
                                    .apis = API_CHAT,
                                    .key_env = perplexity_keys,
                                    .base_env = "PERPLEXITY_API_BASE",
                                    .searches_unasked = true},
        [TG_PROVIDER_HOSTED_VLLM] =
                {.id = TG_PROVIDER_HOSTED_VLLM,
                 .name = "hosted_vllm",
                 /* No default: api_base or HOSTED_VLLM_API_BASE.  A key
                  * only if one is given (vLLM's --api-key). */
                 .auth = TG_PROVIDER_AUTH_BEARER,
                 .apis = API_CHAT | API_EMBEDDINGS | API_COMPLETIONS,
                 .key_env = hosted_vllm_keys,
                 .base_env = "HOSTED_VLLM_API_BASE"},
        [TG_PROVIDER_OLLAMA_CHAT] =
                {.id = TG_PROVIDER_OLLAMA_CHAT,
                 .name = "ollama_chat",
                 /* Ollama's OpenAI-compatible API below the server root
                  * that LiteLLM's api_base and OLLAMA_API_BASE name.  No
                  * key unless given (OLLAMA_API_KEY: ollama.com). */
                 .default_base = "http://localhost:11434/v1",
                 .auth = TG_PROVIDER_AUTH_BEARER,
                 .apis = API_CHAT | API_EMBEDDINGS | API_COMPLETIONS,
                 .key_env = ollama_keys,
                 .base_env = "OLLAMA_API_BASE",
                 .base_path = "/v1",
                 .price_prefix = "ollama"},
        [TG_PROVIDER_CEREBRAS] = {.id = TG_PROVIDER_CEREBRAS,
                                  .name = "cerebras",
                                  .default_base = "https://api.cerebras.ai/v1",
                                  .auth = TG_PROVIDER_AUTH_BEARER,
                                  .apis = API_CHAT,
                                  .key_env = cerebras_keys,
                                  .base_env = "CEREBRAS_API_BASE"},
        [TG_PROVIDER_DEEPINFRA] =
                {.id = TG_PROVIDER_DEEPINFRA,
                 .name = "deepinfra",
                 .default_base = "https://api.deepinfra.com/v1/openai",
                 .auth = TG_PROVIDER_AUTH_BEARER,
                 .apis = API_CHAT | API_EMBEDDINGS | API_COMPLETIONS,
                 .max_tokens_only = true,
                 .key_env = deepinfra_keys,
                 .base_env = "DEEPINFRA_API_BASE"},
        [TG_PROVIDER_LM_STUDIO] =
                {.id = TG_PROVIDER_LM_STUDIO,
                 .name = "lm_studio",
                 /* LM Studio's own default port; no key unless given. */
                 .default_base = "http://localhost:1234/v1",
                 .auth = TG_PROVIDER_AUTH_BEARER,
                 .apis = API_CHAT | API_EMBEDDINGS | API_COMPLETIONS,
                 .key_env = lm_studio_keys,
                 .base_env = "LM_STUDIO_API_BASE"},
        [TG_PROVIDER_NVIDIA_NIM] =
                {.id = TG_PROVIDER_NVIDIA_NIM,
                 .name = "nvidia_nim",
                 .default_base = "https://integrate.api.nvidia.com/v1",
                 .auth = TG_PROVIDER_AUTH_BEARER,
                 .apis = API_CHAT | API_EMBEDDINGS,
                 .key_env = nvidia_nim_keys,
                 .base_env = "NVIDIA_NIM_API_BASE"},
};
#define NPROVIDERS (sizeof(providers) / sizeof(providers[0]))
/* A row for every enum value (a missing last row would shorten the table;
 * a missing middle one has no name, which test-config checks). */
_Static_assert(NPROVIDERS == (size_t)TG_PROVIDER_COUNT,
               "one provider row per enum tg_provider value");

const struct tg_provider_info *
tg_provider(enum tg_provider p)
{
	if ((size_t)p >= NPROVIDERS)
		return &providers[TG_PROVIDER_OPENAI];
	return &providers[p];
}

const struct tg_provider_info *
tg_provider_by_name(const char *prefix, size_t len)
{
	for (size_t i = 0; i < NPROVIDERS; i++)
		if (strlen(providers[i].name) == len &&
		    memcmp(providers[i].name, prefix, len) == 0)
			return &providers[i];
	return NULL;
}

const char *
tg_api_path(enum tg_api api)
{
	switch (api) {
	case TG_API_CHAT: return "/chat/completions";
	case TG_API_RESPONSES: return "/responses";
	case TG_API_EMBEDDINGS: return "/embeddings";
	case TG_API_COMPLETIONS: return "/completions";
	case TG_API_MESSAGES: return "/v1/messages";
	case TG_API_COUNT: break;
	}
	return "/chat/completions";
}

bool
tg_provider_serves(enum tg_provider p, enum tg_api api)
{
	return (tg_provider(p)->apis & TG_API_BIT(api)) != 0;
}

const char *
tg_provider_name(enum tg_provider p)
{
	return tg_provider(p)->name;
}

const char *
tg_provider_names(void)
{
	/* Room for every name and its ", " (checked below). */
	static char names[512];
	size_t used = 0;

	if (names[0] != '\0')
		return names;
	for (size_t i = 0; i < NPROVIDERS; i++) {
		size_t n = strlen(providers[i].name);

		if (used + 2 + n + 1 > sizeof(names))
			break; /* not with this table: never overrun */
		if (i > 0) {
			memcpy(names + used, ", ", 2);
			used += 2;
		}
		memcpy(names + used, providers[i].name, n);
		used += n;
		names[used] = '\0';
	}
	return names;
}
