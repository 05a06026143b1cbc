/*
 * api_completions: POST /v1/completions, the legacy text completions, as
 * the meter sees them (SPEC 11).  The prompt is a string, strings, tokens
 * or arrays of tokens (TG_FIELD_PROMPT); every prompt of a batch gets its
 * own choices, so the output bound is max_tokens (16 when not given, the
 * API's default) times the choices asked for (n, or best_of, which the
 * upstream generates and bills though it returns n) times the prompts.
 * Its stream is chat's in the text_completion shape: the usage chunk is
 * asked for and dropped unless the client asked for it too.
 */
#define _POSIX_C_SOURCE 200809L

#include <string.h>

#include "api.h"
#include "relay.h"

enum {
	F_MODEL,
	F_STREAM,
	F_MAX_TOKENS,
	F_PROMPT,
	F_N,
	F_BEST_OF,
	F_ECHO,
	NFIELDS
};
_Static_assert(NFIELDS == TG_API_COMPLETIONS_NFIELDS, "api.h says the count");

const struct tg_field tg_api_completions_fields[NFIELDS] = {
        [F_MODEL] = {"model", TG_FIELD_STRING, 0},
        [F_STREAM] = {"stream", TG_FIELD_BOOL, 0},
        [F_MAX_TOKENS] = {"max_tokens", TG_FIELD_TOKENS, 0},
        [F_PROMPT] = {"prompt", TG_FIELD_PROMPT, 0},
        [F_N] = {"n", TG_FIELD_TOKENS, 0},
        [F_BEST_OF] = {"best_of", TG_FIELD_TOKENS, 0},
        [F_ECHO] = {"echo", TG_FIELD_BOOL, 0},
};

/* The API's default max_tokens. */
#define DEFAULT_MAX_TOKENS 16

static enum tg_rc
check(const struct tg_req *req, struct tg_err *err)
{
	if (!tg_req_field(req, F_PROMPT)->given)
		return tg_err_set(err, TG_ERR_BAD_REQUEST, "prompt",
		                  "Missing required parameter: 'prompt'.");
	if (tg_api_field_int(req, F_N) > TG_API_N_MAX)
		return tg_err_set(
		        err, TG_ERR_UNPROCESSABLE, "n",
		        "Invalid 'n': integer above the maximum value, "
		        "expected a value <= %d",
		        TG_API_N_MAX);
	if (tg_api_field_int(req, F_BEST_OF) > TG_API_N_MAX)
		return tg_err_set(
		        err, TG_ERR_UNPROCESSABLE, "best_of",
		        "Invalid 'best_of': integer above the maximum "
		        "value, expected a value <= %d",
		        TG_API_N_MAX);
	return TG_OK;
}

/* How many prompts a batch holds: a string or a flat array of tokens is
 * one, an array of strings or of token arrays one each. */
static int64_t
prompts(struct json_object *prompt)
{
	size_t n;

	if (!json_object_is_type(prompt, json_type_array) ||
	    (n = json_object_array_length(prompt)) == 0 ||
	    json_object_is_type(json_object_array_get_idx(prompt, 0),
	                        json_type_int))
		return 1;
	return (int64_t)n;
}

static enum tg_rc
bounds(const struct tg_config *cfg, const struct tg_deployment *d,
       const struct tg_req *req, struct tg_bounds *b, struct tg_err *err)
{
	int64_t choices = tg_api_field_int(req, F_N);
	int64_t best_of = tg_api_field_int(req, F_BEST_OF);
	int64_t max_tokens = tg_api_field_int(req, F_MAX_TOKENS);
	size_t body_len;

	(void)cfg;
	(void)d;
	(void)err;
	memset(b, 0, sizeof(*b));
	b->prompt_field = "prompt";
	tg_req_body(req, &body_len);
	b->prompt = (int64_t)body_len;
	b->output = max_tokens > 0 ? max_tokens : DEFAULT_MAX_TOKENS;
	b->output_field = "max_tokens";
	if (best_of > choices)
		choices = best_of;
	if (choices < 1)
		choices = 1;
	/* At most TG_API_N_MAX choices of at most TG_FIELD_TOKENS_MAX
	 * tokens each, times the prompts of a body of at most
	 * TG_CONFIG_MAX_BYTES: the product fits an int64_t. */
	b->output *= choices * prompts(tg_req_field(req, F_PROMPT)->json);
	return TG_OK;
}

/* Bytes of a choice's text, whole or streamed. */
static int64_t
choice_bytes(struct json_object *choice)
{
	return tg_api_string_len(choice, "text");
}

static void
read_answer(const char *body, size_t len, struct tg_answer *a)
{
	tg_api_choices_answer(body, len, a, choice_bytes);
}

static enum tg_relay_action
stream_event(struct tg_relay *r, const struct tg_sse_event *ev,
             struct json_object *obj)
{
	return tg_api_choices_event(r, ev, obj, choice_bytes);
}

static const struct tg_stream_dialect dialect = {
        .event = stream_event,
        .whole = tg_api_choices_whole,
        .closing = "data: [DONE]\n\n",
        .error_event = tg_api_choices_error_event,
};

const struct tg_api_adapter tg_api_completions = {
        .api = TG_API_COMPLETIONS,
        .call_type = "atext_completion",
        .fields = tg_api_completions_fields,
        .nfields = NFIELDS,
        .f_model = F_MODEL,
        .f_stream = F_STREAM,
        .check = check,
        .bounds = bounds,
        .prepare = tg_api_choices_prepare,
        .read_answer = read_answer,
        .stream = &dialect,
};
