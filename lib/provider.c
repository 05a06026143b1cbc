/*
 * provider: the provider table (see provider.h).  Adding a provider is a
 * row here and its enum value; the rest of tollgate reads the row.
 */
#include <string.h>

#include "provider.h"

static const char *const anthropic_headers[] = {"anthropic-beta", NULL};

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
};
#define NPROVIDERS (sizeof(providers) / sizeof(providers[0]))

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
	static char names[128];

	if (names[0] == '\0')
		for (size_t i = 0; i < NPROVIDERS; i++) {
			if (i > 0)
				strcat(names, ", ");
			strcat(names, providers[i].name);
		}
	return names;
}
