/*
 * provider: what tollgate knows of each upstream family (SPEC 7), in one
 * table.  A row says the prefix of litellm_params.model that names it, the
 * base URL used when a deployment gives none, how it authenticates, and how
 * a client's body is mapped for it.  lib/config.c reads the prefix,
 * lib/upstream.c the rest; nothing else knows a provider by name.
 */
#ifndef TG_PROVIDER_H
#define TG_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>

enum tg_provider {
	TG_PROVIDER_OPENAI =
	        0, /* openai/<m>, a bare name, any OpenAI-compatible api_base */
	TG_PROVIDER_AZURE,   /* azure/<deployment> */
	TG_PROVIDER_MISTRAL, /* mistral/<m> */
	TG_PROVIDER_MOCK, /* mock/<m>: answers locally, priced like any other */
	TG_PROVIDER_ANTHROPIC, /* anthropic/<m>: the Messages API */
	/* LiteLLM's OpenAI-compatible providers: OpenAI's shape, their own
	 * base URL, key variables and prices (README, Configuration). */
	TG_PROVIDER_DEEPSEEK,     /* deepseek/<m> */
	TG_PROVIDER_GEMINI,       /* gemini/<m>: Google's OpenAI endpoint */
	TG_PROVIDER_GROQ,         /* groq/<m> */
	TG_PROVIDER_OPENROUTER,   /* openrouter/<vendor>/<m> */
	TG_PROVIDER_XAI,          /* xai/<m> */
	TG_PROVIDER_TOGETHER_AI,  /* together_ai/<org>/<m> */
	TG_PROVIDER_FIREWORKS_AI, /* fireworks_ai/<m> */
	TG_PROVIDER_PERPLEXITY,   /* perplexity/<m> */
	TG_PROVIDER_HOSTED_VLLM,  /* hosted_vllm/<m>: api_base required */
	TG_PROVIDER_OLLAMA_CHAT,  /* ollama_chat/<m> */
	TG_PROVIDER_CEREBRAS,     /* cerebras/<m> */
	TG_PROVIDER_DEEPINFRA,    /* deepinfra/<org>/<m> */
	TG_PROVIDER_LM_STUDIO,    /* lm_studio/<m> */
	TG_PROVIDER_NVIDIA_NIM,   /* nvidia_nim/<org>/<m> */
	TG_PROVIDER_COUNT         /* not a provider: how many there are */
};

/*
 * The LLM APIs a client route speaks and an upstream may serve (SPEC 4,
 * 11), each at its path below the provider's base URL.
 */
enum tg_api {
	TG_API_CHAT,        /* /chat/completions */
	TG_API_RESPONSES,   /* /responses (the OpenAI Responses API) */
	TG_API_EMBEDDINGS,  /* /embeddings */
	TG_API_COMPLETIONS, /* /completions (legacy text completions) */
	TG_API_MESSAGES,    /* /v1/messages (Anthropic's Messages API) */
	TG_API_COUNT
};
#define TG_API_BIT(a) (1u << (a))
#define TG_API_ALL    (TG_API_BIT(TG_API_COUNT) - 1u)
/* The APIs of OpenAI's shape. */
#define TG_API_OPENAI                                                          \
	(TG_API_BIT(TG_API_CHAT) | TG_API_BIT(TG_API_RESPONSES) |              \
	 TG_API_BIT(TG_API_EMBEDDINGS) | TG_API_BIT(TG_API_COMPLETIONS))

/* "/chat/completions", "/responses", ...: the API's path below a base
 * ("/v1/messages": Anthropic's base has no version in it). */
const char *tg_api_path(enum tg_api api);

enum tg_provider_auth {
	TG_PROVIDER_AUTH_NONE,
	TG_PROVIDER_AUTH_BEARER,    /* Authorization: Bearer <key> */
	TG_PROVIDER_AUTH_API_KEY,   /* api-key: <key> (Azure) */
	TG_PROVIDER_AUTH_X_API_KEY, /* x-api-key: <key> (Anthropic) */
};

struct tg_provider_info {
	enum tg_provider id;
	const char *name;         /* the prefix: "openai", "azure", ... */
	const char *default_base; /* NULL: api_base is required */
	enum tg_provider_auth auth;
	unsigned apis;        /* TG_API_BIT()s of the APIs it serves */
	bool azure_path;      /* /openai/deployments/<m>/...?api-version= */
	bool drop_user;       /* "user" is not forwarded */
	bool max_tokens_only; /* max_completion_tokens -> max_tokens */
	/* stream_options is refused (422): usage always comes in the last
	 * chunk instead. */
	bool no_stream_options;
	bool local; /* no network: answered by lib/upstream_mock.c */
	/* A header naming the API version, sent on every call with the
	 * deployment's api_version, else default_version (Anthropic's
	 * anthropic-version); NULL: none. */
	const char *version_header;
	const char *default_version;
	/* The client's headers passed on to the upstream when present
	 * (Anthropic's anthropic-beta), NULL-terminated; NULL: none. */
	const char *const *client_headers;
	/* Answers /v1/messages/count_tokens. */
	bool count_tokens;
	/*
	 * Where a deployment without litellm_params.api_key takes its key
	 * (read at load, like os.environ/): the first of these environment
	 * variables that is set and not empty, the names LiteLLM reads;
	 * NULL-terminated, NULL: none (no key unless api_key is given).
	 */
	const char *const *key_env;
	/* The same for api_base (LiteLLM's <PROVIDER>_API_BASE); NULL: none.
	 * The variable's value must be an http(s) URL. */
	const char *base_env;
	/*
	 * A path appended to an api_base that does not already end with it
	 * (trailing '/' aside), for providers whose LiteLLM api_base is the
	 * server's root while tollgate speaks its OpenAI-compatible API
	 * below it: Ollama's "/v1", Gemini's "/v1beta/openai".  NULL: the
	 * api_base is used as given.  default_base already includes it.
	 */
	const char *base_path;
	/*
	 * Prepended to an upstream model name that has no '/' (Fireworks'
	 * "accounts/fireworks/models/"), as LiteLLM does: the name sent
	 * upstream and the one priced.  NULL: the name as given.
	 */
	const char *model_prefix;
	/*
	 * Another prefix the price file names this provider's models under
	 * (LiteLLM prices ollama_chat/<m> as ollama/<m>), tried after
	 * "<name>/<m>" and before the bare "<m>" (SPEC 7.2).  NULL: none.
	 */
	const char *price_prefix;
	/*
	 * The usage counts reasoning tokens apart from completion_tokens
	 * (xAI's completion_tokens_details.reasoning_tokens), where OpenAI's
	 * include them: they are added to the completion before pricing.
	 */
	bool reasoning_apart;
	/*
	 * The upstream reports a call's cost in its usage only when asked
	 * ("usage": {"include": true}, OpenRouter's usage accounting): asked
	 * for a deployment with model_info.trust_upstream_cost, unless the
	 * client's body has a "usage" of its own.
	 */
	bool cost_on_request;
	/*
	 * Its chat models search the web on every call, unasked, and bill
	 * the searches the usage counts (Perplexity's num_search_queries):
	 * the hold covers one, as for a call with web_search_options.
	 */
	bool searches_unasked;
};

/* The row of p (never NULL). */
const struct tg_provider_info *tg_provider(enum tg_provider p);

/* The row whose name is prefix[0..len), or NULL. */
const struct tg_provider_info *tg_provider_by_name(const char *prefix,
                                                   size_t len);

/* Whether deployments of p can serve api. */
bool tg_provider_serves(enum tg_provider p, enum tg_api api);

/* The row's name: "openai", "azure", "deepseek", ... */
const char *tg_provider_name(enum tg_provider p);

/* The names of every provider, ", "-separated, for messages. */
const char *tg_provider_names(void);

#endif
