/*
 * api_embeddings: POST /v1/embeddings as the meter sees it (SPEC 11).
 * The input is a string, strings, tokens or arrays of tokens; its bound is
 * the bytes of its text plus the count of its tokens (TG_FIELD_PROMPT), the
 * output nothing, and the answer's usage.prompt_tokens is charged at the
 * input price.  encoding_format ("base64") and dimensions pass through
 * untouched; embeddings do not stream.
 */
#define _POSIX_C_SOURCE 200809L

#include <string.h>

#include "api.h"

enum { F_MODEL, F_INPUT, F_ENCODING_FORMAT, NFIELDS };
_Static_assert(NFIELDS == TG_API_EMBEDDINGS_NFIELDS, "api.h says the count");

const struct tg_field tg_api_embeddings_fields[NFIELDS] = {
        [F_MODEL] = {"model", TG_FIELD_STRING, 0},
        [F_INPUT] = {"input", TG_FIELD_PROMPT, 0},
        [F_ENCODING_FORMAT] = {"encoding_format", TG_FIELD_STRING, 0},
};

static enum tg_rc
check(const struct tg_req *req, struct tg_err *err)
{
	if (!tg_req_field(req, F_INPUT)->given)
		return tg_err_set(err, TG_ERR_BAD_REQUEST, "input",
		                  "Missing required parameter: 'input'.");
	return TG_OK;
}

static enum tg_rc
bounds(const struct tg_config *cfg, const struct tg_deployment *d,
       const struct tg_req *req, struct tg_bounds *b, struct tg_err *err)
{
	(void)cfg;
	(void)d;
	(void)err;
	memset(b, 0, sizeof(*b));
	b->prompt_field = "input";
	b->prompt = tg_req_field(req, F_INPUT)->num;
	b->output = 0;
	b->output_field = "input";
	return TG_OK;
}

static void
read_answer(const char *body, size_t len, struct tg_answer *a)
{
	static const char *const names[] = {"usage"};
	struct json_object *usage;

	memset(a, 0, sizeof(*a));
	if (tg_api_members(body, len, names, 1, &usage)) {
		if (usage != NULL)
			tg_api_usage(usage, &tg_usage_chat, &a->u);
		json_object_put(usage);
	}
}

const struct tg_api_adapter tg_api_embeddings = {
        .api = TG_API_EMBEDDINGS,
        .call_type = "aembedding",
        .fields = tg_api_embeddings_fields,
        .nfields = NFIELDS,
        .f_model = F_MODEL,
        .f_stream = TG_API_NO_FIELD,
        .check = check,
        .bounds = bounds,
        .prepare = NULL,
        .read_answer = read_answer,
        .stream = NULL,
};
