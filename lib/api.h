/*
 * api: the LLM APIs clients speak, as the meter (lib/meter.c) sees them.
 *
 * Every LLM route is one metered call (DESIGN "The metered call"): the
 * same authentication, accounts, limits, hold, upstream attempts, charge
 * and settlement.  What differs between the APIs is an adapter: a table
 * row of what the route's body holds and means for the meter.  The meter
 * never looks at an API's fields itself, and an adapter never holds,
 * charges or answers: it reads.
 *
 *   lib/api_chat.c         /chat/completions (SPEC 4)
 *   lib/api_responses.c    /responses (the Responses API, SPEC 11)
 *   lib/api_embeddings.c   /embeddings
 *   lib/api_completions.c  /completions (legacy text completions)
 *   lib/api_messages.c     /v1/messages (Anthropic's Messages API)
 */
#ifndef TG_API_H
#define TG_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "app.h"
#include "config.h"
#include "err.h"
#include "fields.h"
#include "pricing.h"
#include "provider.h"
#include "sse.h"

/* Worst-case tokens of one image part (SPEC 4.3): the largest image bill
 * of the priced models (gpt-4o-mini's 8-tile high-detail image, 48,169). */
#define TG_IMAGE_TOKENS_MAX 48169

/* The most choices ("n", "best_of") a request may ask for: OpenAI's limit. */
#define TG_API_N_MAX 128

/* The longest upstream response id recorded (an id beyond it is not). */
#define TG_RESPONSE_ID_MAX 128

/* A field index of an adapter's table that it does not have. */
#define TG_API_NO_FIELD ((size_t)-1)

/*
 * The worst case of a call on one deployment (SPEC 4.3), and the prices it
 * is charged at there.
 */
struct tg_bounds {
	int64_t prompt; /* tokens: an upper bound of the input */
	/* The field that holds the input: the param of a "too large"
	 * refusal. */
	const char *prompt_field;
	int64_t output; /* tokens: an upper bound of the output */
	/* The field that set the output bound (or would lower it): the
	 * param of a "too costly" refusal. */
	const char *output_field;
	/* Hosted tool calls the hold covers, at the dearest price among the
	 * call's hosted tools. */
	int64_t tool_calls;
	tg_price tool_call_price;
	/* Each hosted tool's price per call for this request (a web search's
	 * depends on its search_context_size). */
	tg_price tool_price[TG_TOOL_COUNT];
	/* The service tiers the call may be billed at (TG_SERVICE_BIT()s,
	 * from the request's service_tier); 0: any. */
	unsigned service_tiers;
	/* Web searches the call is billed for whatever its answer says
	 * (chat's web_search_options: one per call), at
	 * tool_price[TG_TOOL_WEB_SEARCH]; also in tool_calls. */
	int64_t searches;
};

/*
 * The service tiers a request's service_tier lets it be billed at (the
 * default's always among them: an upstream may fall back to it): "default"
 * or Anthropic's "standard_only" none other, "flex" and "priority" that one
 * too, anything else ("auto", none) any (a project's default may be
 * priority).
 */
unsigned tg_api_service_tiers(struct json_object *body);

/* A web search's search_context_size in o ("low", "medium", "high";
 * medium when absent, as OpenAI's default). */
enum tg_search_context tg_api_search_context(struct json_object *o);

/* The service tier an answer reports, from its service_tier member. */
enum tg_service_tier tg_api_service_tier_of(struct json_object *v);

/* What an answer says of itself: its usage (u.present false when it
 * said nothing), its id and the bytes of text it produced. */
struct tg_answer {
	struct tg_usage u;
	char response_id[TG_RESPONSE_ID_MAX + 1]; /* "" when none */
	int64_t text_bytes; /* bounds the output when usage is missing */
};

/* What the relay does with an event the dialect looked at. */
enum tg_relay_action {
	TG_RELAY_FORWARD, /* to the client now, as it came */
	TG_RELAY_DROP,    /* not to the client (or written by the dialect) */
	TG_RELAY_HOLD,    /* to the client once the call is settled */
};

struct tg_relay; /* lib/relay.h */

/*
 * How an API streams (server-sent events), read event by event by the
 * relay (lib/relay.c), which the dialect tells what to do with each.
 */
struct tg_stream_dialect {
	/*
	 * Look at one event: note in r what it says (the usage, the end, a
	 * failure, text produced) and say where it goes.  obj is its data
	 * parsed (NULL when it is not a JSON object).
	 */
	enum tg_relay_action (*event)(struct tg_relay *r,
	                              const struct tg_sse_event *ev,
	                              struct json_object *obj);
	/* Whether what r saw is a whole stream (else it was cut off). */
	bool (*whole)(const struct tg_relay *r);
	/* Written after the held events of a whole stream, once the call
	 * is settled (chat: "data: [DONE]"), or NULL. */
	const char *closing;
	/* Write err to the client as this API's error event. */
	void (*error_event)(struct tg_relay *r, const struct tg_err *err);
};

struct tg_api_adapter {
	enum tg_api api;
	const char *call_type; /* LiteLLM's, in spend_logs and the webhook */
	const struct tg_field *fields;
	size_t nfields;
	size_t f_model;  /* the "model" field */
	size_t f_stream; /* the "stream" field, or TG_API_NO_FIELD */
	/*
	 * What the field table cannot say (required fields, ranges, options
	 * tollgate cannot charge): a 4xx, before anything is held or sent.
	 */
	enum tg_rc (*check)(const struct tg_req *req, struct tg_err *err);
	/*
	 * The worst case of the request on deployment d.  Fails (a 4xx,
	 * naming the field) when the call cannot be charged there: a hosted
	 * tool without a price.
	 */
	enum tg_rc (*bounds)(const struct tg_config *cfg,
	                     const struct tg_deployment *d,
	                     const struct tg_req *req, struct tg_bounds *b,
	                     struct tg_err *err);
	/*
	 * Before the first attempt: change the client's body where the meter
	 * needs the upstream to do something (a chat stream asks for its
	 * usage); *client_usage says whether the client asked for what was
	 * added.  NULL: nothing.
	 */
	void (*prepare)(struct json_object *body, bool streamed,
	                bool *client_usage);
	/* Read a whole (2xx) answer. */
	void (*read_answer)(const char *body, size_t len, struct tg_answer *a);
	/* How it streams; NULL: it does not. */
	const struct tg_stream_dialect *stream;
};

/*
 * The adapters, and their field tables (also in the adapter: the route
 * tables of the programs need them as constants, lib/meter.h).
 */
extern const struct tg_api_adapter tg_api_chat;
#define TG_API_CHAT_NFIELDS 6
extern const struct tg_field tg_api_chat_fields[TG_API_CHAT_NFIELDS];
extern const struct tg_api_adapter tg_api_responses;
#define TG_API_RESPONSES_NFIELDS 10
extern const struct tg_field tg_api_responses_fields[TG_API_RESPONSES_NFIELDS];
extern const struct tg_api_adapter tg_api_embeddings;
#define TG_API_EMBEDDINGS_NFIELDS 3
extern const struct tg_field
        tg_api_embeddings_fields[TG_API_EMBEDDINGS_NFIELDS];
extern const struct tg_api_adapter tg_api_completions;
#define TG_API_COMPLETIONS_NFIELDS 7
extern const struct tg_field
        tg_api_completions_fields[TG_API_COMPLETIONS_NFIELDS];
extern const struct tg_api_adapter tg_api_messages;
#define TG_API_MESSAGES_NFIELDS 5
extern const struct tg_field tg_api_messages_fields[TG_API_MESSAGES_NFIELDS];

/*
 * POST /v1/messages/count_tokens: the request (model, messages, and what
 * else the client gives) goes to an anthropic/ deployment of the model,
 * which counts its tokens; uncharged.  A model without one is 400.
 */
#define TG_API_COUNT_TOKENS_NFIELDS 2
extern const struct tg_field
        tg_api_count_tokens_fields[TG_API_COUNT_TOKENS_NFIELDS];
enum tg_rc tg_api_messages_count_tokens(struct tg_req *req, struct tg_err *err);

/*
 * Read an Anthropic usage object over *u (the counts it gives replace
 * u's, those it lacks stay: a stream's message_delta over its
 * message_start): prompt_tokens is input + cache writes + cache reads,
 * cached_tokens the reads, the writes split into the 5-minute and 1-hour
 * caches by its cache_creation, web searches into tool_calls.  false, *u
 * untouched, when it is not a usage object.
 */
bool tg_api_anthropic_usage(struct json_object *usage, struct tg_usage *u);

/*
 * The handler of the routes of a response an upstream keeps: GET
 * /v1/responses/{id}, GET .../{id}/input_items, DELETE .../{id}, POST
 * .../{id}/cancel (the route's method and path say which).  The call goes
 * to the deployment that made the response (its ledger row says which),
 * uncharged, and only for the key that made it or the master key: anyone
 * else gets 404, as for a response that does not exist.
 */
enum tg_rc tg_api_responses_stored(struct tg_req *req, struct tg_err *err);

/* ---- what the adapters share (lib/api_common.c) ---- */

/* The adapter of api. */
const struct tg_api_adapter *tg_api_adapter(enum tg_api api);
/* The path of the API whose LiteLLM call_type this is (a ledger row's;
 * "acompletion": "/chat/completions"), or "" for none. */
const char *tg_api_path_of_call_type(const char *call_type);

/*
 * The output bound of SPEC 4.3 from the given bound (0: none): else the
 * deployment's max_output_tokens, else default_max_tokens.
 */
int64_t tg_api_output_bound(const struct tg_config *cfg,
                            const struct tg_deployment *d, int64_t given);

/* A validated field's integer (TG_FIELD_TOKENS, COUNT), 0 when not given. */
int64_t tg_api_field_int(const struct tg_req *req, size_t i);

/* Bytes of the string member key of o (0 when it is not a string). */
int64_t tg_api_string_len(struct json_object *o, const char *key);

/*
 * Read a count: a non-negative integer member of o.  Absent is *v = 0 and
 * *present false; anything else than such an integer is false.
 */
bool tg_api_get_count(struct json_object *o, const char *key, int64_t *v,
                      bool *present);

/*
 * The values of the top-level members names[0..n) (n <= 8) of the JSON
 * object text into out[] (new references, NULL for a member that is
 * absent): each parsed alone where the walk of the text vouches for it
 * (tg_json_walk_members: an answer's usage is read without parsing its
 * choices), else from the whole text parsed.  false, out[] all NULL, when
 * the text is not a JSON object.
 */
bool tg_api_members(const char *text, size_t len, const char *const *names,
                    size_t n, struct json_object **out);

/*
 * The names a usage object's counts go by: chat's (and legacy completions'
 * and embeddings') prompt_tokens, completion_tokens,
 * prompt_tokens_details.cached_tokens; the Responses API's input_tokens,
 * output_tokens, input_tokens_details.cached_tokens.
 */
struct tg_usage_names {
	const char *prompt, *completion, *details, *out_details;
};
extern const struct tg_usage_names tg_usage_chat, tg_usage_responses;

/*
 * Read a usage object into *out (its tool calls and service tier left as
 * they were): the prompt and completion counts (one of them at least),
 * total_tokens (their sum when absent), and the parts of them by class
 * that every provider of OpenAI's shape reports in its own way: the
 * cached part of the prompt (<details>.cached_tokens, DeepSeek's
 * prompt_cache_hit_tokens), its audio (<details>.audio_tokens), the
 * completion's reasoning and audio (<out_details>.reasoning_tokens,
 * .audio_tokens), web searches (Perplexity's num_search_queries), and the
 * cost the upstream reports (OpenRouter's usage.cost, exact from its
 * text).  false, *out unchanged, when absent or invalid.
 */
bool tg_api_usage(struct json_object *usage, const struct tg_usage_names *k,
                  struct tg_usage *out);

/* Copy id into a->response_id when it is a usable id (printable ASCII, at
 * most TG_RESPONSE_ID_MAX bytes). */
void tg_api_set_response_id(struct tg_answer *a, const char *id);

/*
 * OpenAI's "choices" answers (chat and legacy completions), whose
 * choice_bytes counts the bytes of text one choice carries (a whole
 * answer's choice, or a chunk's): each token produced is at least one.
 */
typedef int64_t (*tg_api_choice_bytes)(struct json_object *choice);

/* Read a whole answer: its usage and id, and (only without usage) the
 * bytes of its choices' text (of the whole body when it has none). */
void tg_api_choices_answer(const char *body, size_t len, struct tg_answer *a,
                           tg_api_choice_bytes choice_bytes);
/* The stream dialect's parts. */
enum tg_relay_action tg_api_choices_event(struct tg_relay *r,
                                          const struct tg_sse_event *ev,
                                          struct json_object *obj,
                                          tg_api_choice_bytes choice_bytes);
bool tg_api_choices_whole(const struct tg_relay *r);
void tg_api_choices_error_event(struct tg_relay *r, const struct tg_err *err);
/* Chat's and completions' prepare: a stream asks for its usage. */
void tg_api_choices_prepare(struct json_object *body, bool streamed,
                            bool *client_usage);

#endif
