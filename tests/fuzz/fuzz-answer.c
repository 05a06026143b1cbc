/*
 * fuzz-answer: what the meter reads of an upstream's whole answer, for each
 * API (the adapters' read_answer, lib/api_*.c: chat, responses, embeddings,
 * completions, messages), and what the translations make of it
 * (lib/translate_*.c).  An input is one byte that picks the API (its value
 * modulo the number of APIs) and the body the upstream sent, any bytes.
 *
 * Whatever the body, the reader must not crash and its answer must be one
 * the meter can charge: counts that are not negative (none without usage),
 * cached tokens a part of the prompt, an id that is printable ASCII of at
 * most TG_RESPONSE_ID_MAX bytes, and text bytes (the bound used without
 * usage) no more than the body's length, since each is a byte of a string
 * in it.  Reading the same body twice gives the same answer.  A
 * translation's answer for the body is none or a JSON object.
 */
#define _POSIX_C_SOURCE 200809L /* strnlen */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "translate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond, what)                                                      \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "fuzz-answer: %s: %s\n", what, #cond); \
			abort();                                               \
		}                                                              \
	} while (0)

static const struct tg_api_adapter *const apis[] = {
        &tg_api_chat,        &tg_api_responses, &tg_api_embeddings,
        &tg_api_completions, &tg_api_messages,
};

static const struct tg_translation *const translations[] = {
        &tg_translate_chat_to_messages,
        &tg_translate_messages_to_chat,
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct tg_api_adapter *api;
	struct tg_answer a, again;
	const char *body;
	size_t len, idlen;

	if (size < 1)
		return 0;
	api = apis[data[0] % (sizeof(apis) / sizeof(apis[0]))];
	body = (const char *)data + 1;
	len = size - 1;

	memset(&a, 0xa5, sizeof(a)); /* the reader must set every field */
	api->read_answer(body, len, &a);

	idlen = strnlen(a.response_id, sizeof(a.response_id));
	CHECK(idlen <= TG_RESPONSE_ID_MAX, "the id is NUL-terminated");
	for (size_t i = 0; i < idlen; i++)
		CHECK(a.response_id[i] > ' ' && a.response_id[i] < 0x7f,
		      "the id is printable ASCII");
	CHECK(a.text_bytes >= 0 && (uint64_t)a.text_bytes <= len,
	      "text bytes within the body");
	for (size_t t = 0; t < TG_TOOL_COUNT; t++)
		CHECK(a.u.tool_calls[t] >= 0, "tool calls not negative");
	if (a.u.present) {
		CHECK(a.u.prompt_tokens >= 0 && a.u.completion_tokens >= 0 &&
		              a.u.total_tokens >= 0 && a.u.cached_tokens >= 0,
		      "counts not negative");
		CHECK(a.u.cached_tokens <= a.u.prompt_tokens,
		      "cached tokens are a part of the prompt");
		CHECK(a.u.audio_prompt_tokens >= 0 &&
		              a.u.reasoning_tokens >= 0 &&
		              a.u.audio_completion_tokens >= 0,
		      "audio and reasoning counts not negative");
		CHECK(a.u.service_tier >= TG_SERVICE_DEFAULT &&
		              a.u.service_tier < TG_SERVICE_TIERS,
		      "a known service tier");
		CHECK(!a.u.has_cost || a.u.cost >= 0,
		      "a reported cost is not negative");
		/* Whatever the counts, they can be priced: never refused
		 * as negative, at worst too large for the ledger. */
		{
			struct tg_price_entry e;
			struct tg_err err;
			tg_money m;
			enum tg_rc rc;

			memset(&e, 0, sizeof(e));
			e.input = 1000;
			e.output = 3000;
			e.has_reasoning = true;
			e.reasoning = 5000;
			e.has_audio_input = true;
			e.audio_input = 7000;
			tg_err_clear(&err);
			rc = tg_pricing_cost(&e, &a.u, &m, &err);
			CHECK(rc == TG_OK || rc == TG_ERR_INTERNAL,
			      "the usage can be priced");
			CHECK(rc != TG_OK || m >= 0, "a cost is not negative");
		}
		CHECK(a.u.cache_write_tokens >= 0 &&
		              a.u.cache_write_1h_tokens >= 0 &&
		              a.u.cached_tokens + a.u.cache_write_tokens +
		                              a.u.cache_write_1h_tokens <=
		                      a.u.prompt_tokens,
		      "cache reads and writes are parts of the prompt");
	} else {
		CHECK(a.u.prompt_tokens == 0 && a.u.completion_tokens == 0 &&
		              a.u.total_tokens == 0 && a.u.cached_tokens == 0,
		      "no counts without usage");
	}

	memset(&again, 0x5a, sizeof(again));
	api->read_answer(body, len, &again);
	CHECK(a.u.present == again.u.present &&
	              a.u.prompt_tokens == again.u.prompt_tokens &&
	              a.u.completion_tokens == again.u.completion_tokens &&
	              a.u.total_tokens == again.u.total_tokens &&
	              a.u.cached_tokens == again.u.cached_tokens &&
	              a.u.reasoning_tokens == again.u.reasoning_tokens &&
	              a.u.service_tier == again.u.service_tier &&
	              memcmp(a.u.tool_calls, again.u.tool_calls,
	                     sizeof(a.u.tool_calls)) == 0 &&
	              strcmp(a.response_id, again.response_id) == 0 &&
	              a.text_bytes == again.text_bytes,
	      "the same body, the same answer");

	/* A translation's answer for it: none, or a JSON object that
	 * prints. */
	for (size_t i = 0; i < sizeof(translations) / sizeof(translations[0]);
	     i++) {
		struct json_object *out = translations[i]->answer(body, len);

		CHECK(out == NULL || json_object_is_type(out, json_type_object),
		      "a translated answer is an object");
		CHECK(out == NULL ||
		              json_object_to_json_string_ext(
		                      out, JSON_C_TO_STRING_PLAIN) != NULL,
		      "a translated answer prints");
		json_object_put(out);
	}
	return 0;
}
