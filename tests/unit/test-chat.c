/*
 * test-chat: customer id resolution (SPEC 4.1) and the admission estimate
 * bounds (SPEC 4.3).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "fields.h"
#include "upstream.h"
#include "../tap.h"

struct id_row {
	int line;
	const char *hdr_customer, *hdr_end_user, *body;
	enum tg_rc rc;
	bool found;
	const char *id;
};

#define R(...)                                                                 \
	{                                                                      \
		__LINE__, __VA_ARGS__                                          \
	}

static const struct id_row id_rows[] = {
        R("c", "e", "{\"user\":\"u\",\"metadata\":{\"user_id\":\"m\"}}", TG_OK,
          true, "c"),
        R(NULL, "e", "{\"user\":\"u\",\"metadata\":{\"user_id\":\"m\"}}", TG_OK,
          true, "e"),
        R(NULL, NULL, "{\"user\":\"u\",\"metadata\":{\"user_id\":\"m\"}}",
          TG_OK, true, "u"),
        R(NULL, NULL, "{\"metadata\":{\"user_id\":\"m\"}}", TG_OK, true, "m"),
        R("", "  ", "{\"user\":\" \",\"metadata\":{\"user_id\":\"m\"}}", TG_OK,
          true, "m"),
        R(NULL, NULL, "{\"user\":12345}", TG_OK, true, "12345"),
        R(NULL, NULL, "{\"user\":null,\"metadata\":{\"user_id\":7}}", TG_OK,
          true, "7"),
        R(NULL, NULL, "{}", TG_OK, false, NULL),
        R(NULL, NULL, "{\"user\":\"\"}", TG_OK, false, NULL),
        R(NULL, NULL, "{\"metadata\":\"x\"}", TG_OK, false, NULL),
        R(NULL, NULL, "{\"user\":true}", TG_ERR_UNPROCESSABLE, false, NULL),
        R(NULL, NULL, "{\"user\":[\"a\"]}", TG_ERR_UNPROCESSABLE, false, NULL),
        R("\xff", NULL, "{}", TG_ERR_UNPROCESSABLE, false, NULL),
        R(NULL, NULL, "{\"user\":\"Ishaan3\"}", TG_OK, true, "Ishaan3"),
};

static void
test_ids(void)
{
	char longid[400];
	char buf[256];
	bool found;
	struct tg_err err;
	struct json_object *body = json_tokener_parse("{}");

	for (size_t i = 0; i < sizeof(id_rows) / sizeof(id_rows[0]); i++) {
		const struct id_row *r = &id_rows[i];
		struct json_object *b = json_tokener_parse(r->body);
		enum tg_rc rc;

		found = false;
		tg_err_clear(&err);
		rc = tg_chat_customer_id(r->hdr_customer, r->hdr_end_user, b,
		                         buf, sizeof(buf), &found, &err);
		tap_ok(rc == r->rc, __FILE__, r->line, "id rc %s (got %s: %s)",
		       tg_rc_str(r->rc), tg_rc_str(rc), err.message);
		if (rc == TG_OK) {
			tap_ok(found == r->found, __FILE__, r->line,
			       "found = %d", r->found);
			if (r->found)
				tap_ok(strcmp(buf, r->id) == 0, __FILE__,
				       r->line, "id = %s (got %s)", r->id, buf);
		}
		json_object_put(b);
	}
	memset(longid, 'x', sizeof(longid));
	longid[255] = '\0';
	is_int(TG_OK,
	       tg_chat_customer_id(longid, NULL, body, buf, sizeof(buf), &found,
	                           &err),
	       "255-byte header id is taken");
	longid[255] = 'x';
	longid[256] = '\0';
	is_int(TG_ERR_UNPROCESSABLE,
	       tg_chat_customer_id(longid, NULL, body, buf, sizeof(buf), &found,
	                           &err),
	       "256-byte header id is refused");
	json_object_put(body);
}

static void
test_bounds(void)
{
	struct tg_config cfg;
	struct tg_deployment d;
	struct json_object *b;
	int64_t prompt, output;
	const char *text;

	memset(&cfg, 0, sizeof(cfg));
	memset(&d, 0, sizeof(d));
	cfg.default_max_tokens = 4096;

	text = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
	       "\"hi\"}]}";
	b = json_tokener_parse(text);
	tg_chat_bounds(&cfg, &d, b, strlen(text), &prompt, &output);
	is_int((long long)strlen(text), prompt, "prompt bound = body bytes");
	is_int(4096, output, "output bound = default_max_tokens");
	d.price.max_output_tokens = 16384;
	tg_chat_bounds(&cfg, &d, b, strlen(text), &prompt, &output);
	is_int(16384, output, "output bound = model's max_output_tokens");
	json_object_put(b);

	text = "{\"messages\":[],\"max_tokens\":50}";
	b = json_tokener_parse(text);
	tg_chat_bounds(&cfg, &d, b, strlen(text), &prompt, &output);
	is_int(50, output, "output bound = max_tokens");
	json_object_put(b);

	text = "{\"messages\":[],\"max_tokens\":50,\"max_completion_tokens\":"
	       "70}";
	b = json_tokener_parse(text);
	tg_chat_bounds(&cfg, &d, b, strlen(text), &prompt, &output);
	is_int(70, output, "both bounds: the larger (max_completion_tokens)");
	json_object_put(b);

	/* An upstream may honour either: the estimate covers both. */
	text = "{\"messages\":[],\"max_tokens\":90,\"max_completion_tokens\":"
	       "70}";
	b = json_tokener_parse(text);
	tg_chat_bounds(&cfg, &d, b, strlen(text), &prompt, &output);
	is_int(90, output, "both bounds: the larger (max_tokens)");
	json_object_put(b);

	text = "{\"messages\":[{\"role\":\"user\",\"content\":["
	       "{\"type\":\"text\",\"text\":\"what is this\"},"
	       "{\"type\":\"image_url\",\"image_url\":{\"url\":\"u\"}},"
	       "{\"type\":\"image_url\",\"image_url\":{\"url\":\"v\"}}]}]}";
	b = json_tokener_parse(text);
	tg_chat_bounds(&cfg, &d, b, strlen(text), &prompt, &output);
	is_int((long long)strlen(text) + 2 * TG_IMAGE_TOKENS_MAX, prompt,
	       "each image part adds the worst case");
	json_object_put(b);
}

/*
 * Issue 6: "max_tokens": "1" was reserved as 1 token but forwarded as the
 * string "1", which an upstream may ignore.  Through the chat field table
 * (the front line) every accepted spelling reaches every provider's body
 * as the JSON integer the estimate used.
 */
static void
test_forwarded_bounds(void)
{
	static const struct {
		int line;
		const char *field, *value; /* the client's spelling */
		long long bound;
	} rows[] = {
	        R("max_tokens", "\"1\"", 1),
	        R("max_tokens", "1.0", 1),
	        R("max_tokens", "\"1e3\"", 1000),
	        R("max_tokens", "7", 7),
	        R("max_completion_tokens", "\"1\"", 1),
	        R("max_completion_tokens", "\"2.5e1\"", 25),
	        R("max_completion_tokens", "2147483647", 2147483647LL),
	};
	static const enum tg_provider providers[] = {
	        TG_PROVIDER_OPENAI, TG_PROVIDER_AZURE, TG_PROVIDER_MISTRAL,
	        TG_PROVIDER_MOCK};
	struct tg_config cfg;
	struct tg_deployment d;

	memset(&cfg, 0, sizeof(cfg));
	cfg.default_max_tokens = 4096;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char text[256];
		struct json_object *body;
		struct tg_value vals[TG_CHAT_NFIELDS];
		struct tg_err err;
		int64_t prompt, output;
		enum tg_rc rc;

		snprintf(text, sizeof(text),
		         "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
		         "\"content\":\"hi\"}],\"%s\":%s}",
		         rows[i].field, rows[i].value);
		body = json_tokener_parse(text);
		tg_err_clear(&err);
		rc = tg_fields_from_json(tg_chat_fields, TG_CHAT_NFIELDS, body,
		                         vals, &err);
		tap_ok(rc == TG_OK, __FILE__, rows[i].line,
		       "%s: %s is accepted (%s)", rows[i].field, rows[i].value,
		       err.message);
		memset(&d, 0, sizeof(d));
		tg_chat_bounds(&cfg, &d, body, strlen(text), &prompt, &output);
		tap_ok(output == rows[i].bound, __FILE__, rows[i].line,
		       "%s: %s is an output bound of %lld (got %lld)",
		       rows[i].field, rows[i].value, rows[i].bound,
		       (long long)output);
		for (size_t p = 0; p < sizeof(providers) / sizeof(providers[0]);
		     p++) {
			/* Mistral knows only max_tokens (SPEC 7). */
			const char *sent = providers[p] == TG_PROVIDER_MISTRAL
			                           ? "max_tokens"
			                           : rows[i].field;
			struct json_object *up, *v = NULL;
			size_t len;
			char *up_text;

			d.provider = providers[p];
			d.upstream_model = (char *)"up";
			up_text = tg_upstream_body(&d, body, text, strlen(text),
			                           &len);
			up = json_tokener_parse(up_text);
			json_object_object_get_ex(up, sent, &v);
			tap_ok(json_object_is_type(v, json_type_int) &&
			               json_object_get_int64(v) == output,
			       __FILE__, rows[i].line,
			       "provider %d gets %s: %lld as a JSON integer "
			       "(got %s)",
			       (int)providers[p], sent, (long long)output,
			       up_text);
			json_object_put(up);
			free(up_text);
		}
		json_object_put(body);
	}
}

/* The deployment picker: a permutation every time, every order seen,
 * and each deployment first about equally often. */
static void
test_shuffle(void)
{
	enum { RUNS = 6000 };
	int first[3] = {0, 0, 0}, orders[6] = {0};
	bool perm = true;
	size_t one[1] = {7};

	for (int run = 0; run < RUNS; run++) {
		size_t idx[3] = {0, 1, 2};
		int seen = 0;

		tg_chat_shuffle(idx, 3);
		for (int i = 0; i < 3; i++)
			seen |= 1 << idx[i];
		perm = perm && seen == 7;
		first[idx[0]]++;
		/* Number the 6 orders by their first two elements. */
		orders[idx[0] * 2 + (idx[1] > idx[2] ? 1 : 0)]++;
	}
	ok(perm, "shuffle always yields a permutation");
	for (int i = 0; i < 3; i++)
		ok(first[i] > RUNS / 3 - RUNS / 10 &&
		           first[i] < RUNS / 3 + RUNS / 10,
		   "deployment %d first in %d of %d runs (about a third)", i,
		   first[i], RUNS);
	for (int i = 0; i < 6; i++)
		ok(orders[i] > 0, "order %d of 6 occurs (%d times)", i,
		   orders[i]);
	tg_chat_shuffle(one, 1);
	is_int(7, one[0], "a single deployment stays");
	tg_chat_shuffle(one, 0);
	ok(true, "an empty list is accepted");
}

/*
 * Every field the front line may rewrite in the body (TG_FIELD_TOKENS)
 * reaches the upstream as rewritten, also when the body is spliced from
 * the client's text (lib/upstream.c's printed_members).
 */
static void
test_rewritten_fields_forwarded(void)
{
	struct tg_deployment d;

	memset(&d, 0, sizeof(d));
	d.provider = TG_PROVIDER_OPENAI;
	d.upstream_model = (char *)"up";
	for (size_t i = 0; i < TG_CHAT_NFIELDS; i++) {
		const char *name = tg_chat_fields[i].name;
		struct tg_value vals[TG_CHAT_NFIELDS];
		struct json_object *body, *up, *v = NULL;
		struct tg_err err;
		char text[256], *up_text;
		size_t len;

		if (tg_chat_fields[i].kind != TG_FIELD_TOKENS)
			continue;
		snprintf(text, sizeof(text),
		         "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
		         "\"content\":\"hi\"}],\"%s\":\"2\"}",
		         name);
		body = json_tokener_parse(text);
		tg_err_clear(&err);
		tap_ok(tg_fields_from_json(tg_chat_fields, TG_CHAT_NFIELDS,
		                           body, vals, &err) == TG_OK,
		       __FILE__, __LINE__, "%s: \"2\" is accepted (%s)", name,
		       err.message);
		up_text = tg_upstream_body(&d, body, text, strlen(text), &len);
		up = json_tokener_parse(up_text);
		json_object_object_get_ex(up, name, &v);
		tap_ok(json_object_is_type(v, json_type_int) &&
		               json_object_get_int64(v) == 2 &&
		               strstr(up_text, "\"2\"") == NULL,
		       __FILE__, __LINE__,
		       "%s: the spliced body has the integer 2, and only it "
		       "(got %s)",
		       name, up_text);
		json_object_put(up);
		free(up_text);
		json_object_put(body);
	}
}

int
main(void)
{
	test_ids();
	test_bounds();
	test_forwarded_bounds();
	test_rewritten_fields_forwarded();
	test_shuffle();
	return done_testing();
}
