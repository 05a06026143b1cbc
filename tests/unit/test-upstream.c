/*
 * test-upstream: provider body mappings, the mock provider, usage parsing,
 * and real HTTP calls against a tiny server forked by the test (headers,
 * URL shapes, connection reuse, non-2xx relay, refused connection, timeout)
 * (lib/upstream.c).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdio.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../tap.h"
#include "api.h"
#include "upstream.h"
#include "util.h"

#define ROW __LINE__

static struct tg_deployment
deployment(enum tg_provider p, const char *model, const char *api_base,
           const char *api_key)
{
	struct tg_deployment d;

	memset(&d, 0, sizeof(d));
	d.model_name = (char *)"client-model";
	d.litellm_model = (char *)"provider/model";
	d.provider = p;
	d.upstream_model = (char *)model;
	d.api_base = (char *)api_base;
	d.api_key = (char *)api_key;
	d.timeout_s = 600;
	return d;
}

/* A chat completion's POST of body, as the meter sends it. */
static enum tg_rc
chat_call(const struct tg_deployment *d, const char *body, size_t len,
          long timeout_s, struct tg_upstream_response *out, struct tg_err *err)
{
	struct tg_upstream_request rq;

	memset(&rq, 0, sizeof(rq));
	rq.api = TG_API_CHAT;
	rq.body = body;
	rq.body_len = len;
	rq.timeout_s = timeout_s;
	return tg_upstream_call(d, &rq, out, err);
}

/* A chat completion's usage, as the meter reads it (lib/api_chat.c). */
static bool
usage_parse(const char *text, size_t len, struct tg_usage *out)
{
	struct tg_answer a;

	tg_api_chat.read_answer(text, len, &a);
	if (!a.u.present)
		return false;
	*out = a.u;
	return true;
}

/* ---- tg_upstream_body --------------------------------------------------- */

/*
 * Each body goes through both ways tg_upstream_body() has: spliced from
 * the client's text (want_text), and printed from json-c's objects when
 * the text is not at hand (want_json).  want_text NULL: the text must not
 * be spliced (the walk is unsure, or text and objects differ), so it too
 * gives want_json.  Both must mean the same JSON.
 */
struct body_row {
	int line;
	enum tg_provider provider;
	const char *in;
	const char *want_text;
	const char *want_json;
};

static const struct body_row body_rows[] = {
        {ROW, TG_PROVIDER_OPENAI,
         "{\"model\":\"gpt\",\"messages\":[{\"role\":\"user\",\"content\":\"hi/"
         "there\"}],\"user\":\"u1\",\"max_completion_tokens\":5,"
         "\"temperature\":0.7,\"x\":null}",
         "{\"model\":\"up\",\"messages\":[{\"role\":\"user\",\"content\":\"hi/"
         "there\"}],\"user\":\"u1\",\"temperature\":0.7,\"x\":null,"
         "\"max_completion_tokens\":5}",
         "{\"model\":\"up\",\"messages\":[{\"role\":\"user\",\"content\":\"hi/"
         "there\"}],\"user\":\"u1\",\"max_completion_tokens\":5,"
         "\"temperature\":0.7,\"x\":null}"},
        {ROW, TG_PROVIDER_AZURE,
         "{\"model\":\"gpt\",\"user\":\"u1\",\"max_completion_tokens\":5}",
         "{\"model\":\"up\",\"user\":\"u1\",\"max_completion_tokens\":5}",
         "{\"model\":\"up\",\"user\":\"u1\",\"max_completion_tokens\":5}"},
        {ROW, TG_PROVIDER_MISTRAL,
         "{\"model\":\"gpt\",\"user\":\"u1\",\"max_completion_tokens\":5,\"top_"
         "p\":1.0,\"stream_options\":{\"include_usage\":true}}",
         "{\"model\":\"up\",\"top_p\":1.0,\"max_tokens\":5}",
         "{\"model\":\"up\",\"top_p\":1.0,\"max_tokens\":5}"},
        {ROW, TG_PROVIDER_MISTRAL,
         "{\"max_tokens\":9,\"max_completion_tokens\":5}",
         "{\"model\":\"up\",\"max_tokens\":5}",
         "{\"max_tokens\":5,\"model\":\"up\"}"},
        {ROW, TG_PROVIDER_MISTRAL,
         "{\"max_completion_tokens\":5,\"max_tokens\":9}",
         "{\"model\":\"up\",\"max_tokens\":5}",
         "{\"max_tokens\":5,\"model\":\"up\"}"},
        {ROW, TG_PROVIDER_MISTRAL, "{\"max_tokens\":9}",
         "{\"model\":\"up\",\"max_tokens\":9}",
         "{\"max_tokens\":9,\"model\":\"up\"}"},
        {ROW, TG_PROVIDER_MOCK, "{\"user\":\"u1\",\"stream\":true}",
         "{\"model\":\"up\",\"user\":\"u1\",\"stream\":true}",
         "{\"user\":\"u1\",\"stream\":true,\"model\":\"up\"}"},
        /* The client's own spelling goes upstream as it is: escapes,
         * number forms, white space inside values; white space between
         * members goes. */
        {ROW, TG_PROVIDER_OPENAI,
         " {\"messages\" : [ {\"content\":\"caf\\u00e9 \\/ \\\"q\\\"\"} ] ,"
         "\n\"temperature\":7.0E-1,\"seed\":-0,\"model\":\"gpt\"}\r\n",
         "{\"model\":\"up\",\"messages\":[ {\"content\":\"caf\\u00e9 \\/ "
         "\\\"q\\\"\"} ],\"temperature\":7.0E-1,\"seed\":-0}",
         "{\"messages\":[{\"content\":\"café / \\\"q\\\"\"}],"
         "\"temperature\":7.0E-1,\"seed\":0,\"model\":\"up\"}"},
        {ROW, TG_PROVIDER_OPENAI, "{}", "{\"model\":\"up\"}",
         "{\"model\":\"up\"}"},
        /* Not spliced: what json-c reads otherwise than a strict reader,
         * or what the walk does not vouch for. */
        {ROW, TG_PROVIDER_OPENAI,
         "{\"user\":\"a\",\"user\":\"b\",\"model\":\"gpt\"}", NULL,
         "{\"user\":\"b\",\"model\":\"up\"}"},
        {ROW, TG_PROVIDER_OPENAI, "{\"mod\\u0065l\":\"gpt\",\"user\":\"u\"}",
         NULL, "{\"model\":\"up\",\"user\":\"u\"}"},
        {ROW, TG_PROVIDER_OPENAI,
         "{\"model\":\"gpt\",/* a comment */\"user\":\"u\"}", NULL,
         "{\"model\":\"up\",\"user\":\"u\"}"},
        {ROW, TG_PROVIDER_OPENAI, "{\"model\":\"gpt\",\"user\":\"u\",}", NULL,
         "{\"model\":\"up\",\"user\":\"u\"}"},
        {ROW, TG_PROVIDER_OPENAI, "{\"model\":\"gpt\",\"user\":'u'}", NULL,
         "{\"model\":\"up\",\"user\":\"u\"}"},
        {ROW, TG_PROVIDER_OPENAI,
         "{\"model\":\"gpt\",\"seed\":1234567890123456789}", NULL,
         "{\"model\":\"up\",\"seed\":1234567890123456789}"},
        /* A key repeated, or escaped, deeper down: json-c's last value is
         * what the estimate saw (here: a text part, not an image), and
         * the only one that goes. */
        {ROW, TG_PROVIDER_MISTRAL,
         "{\"model\":\"gpt\",\"messages\":[{\"role\":\"user\",\"content\":[{"
         "\"type\":\"image_url\",\"type\":\"text\",\"text\":\"hi\"}]}]}",
         NULL,
         "{\"model\":\"up\",\"messages\":[{\"role\":\"user\",\"content\":[{"
         "\"type\":\"text\",\"text\":\"hi\"}]}]}"},
        {ROW, TG_PROVIDER_OPENAI,
         "{\"model\":\"gpt\",\"messages\":[{\"role\":\"user\",\"rol\\u0065\":"
         "\"system\"}]}",
         NULL, "{\"model\":\"up\",\"messages\":[{\"role\":\"system\"}]}"},
};

/* "{"k0":0,...,"k<n-1>":<n-1>}" (caller frees). */
static char *
many_members(int n)
{
	char *s = tg_xmalloc((size_t)n * 24 + 16);
	size_t len = 0;

	s[len++] = '{';
	for (int i = 0; i < n; i++)
		len += (size_t)sprintf(s + len, "%s\"k%d\":%d", i ? "," : "", i,
		                       i);
	s[len++] = '}';
	s[len] = '\0';
	return s;
}

static bool
same_json(const char *a, const char *b)
{
	struct json_object *ja = json_tokener_parse(a);
	struct json_object *jb = json_tokener_parse(b);
	bool same = ja != NULL && jb != NULL && json_object_equal(ja, jb);

	json_object_put(ja);
	json_object_put(jb);
	return same;
}

static void
check_body(int line, enum tg_provider provider, const char *in,
           const char *want_text, const char *want_json)
{
	struct tg_deployment d = deployment(provider, "up", NULL, NULL);
	struct json_object *obj = json_tokener_parse(in);
	char *before, *spliced, *printed;
	size_t len = 0, plen = 0;

	before = tg_xstrdup(
	        json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN));
	spliced = tg_upstream_body(&d, obj, in, strlen(in), &len);
	printed = tg_upstream_body(&d, obj, NULL, 0, &plen);
	if (want_text == NULL)
		want_text = want_json;
	if (!tap_ok(strcmp(spliced, want_text) == 0 && len == strlen(spliced),
	            __FILE__, line, "body for provider %d, from the text",
	            (int)provider))
		diag("  wanted %s\n#    got %s", want_text, spliced);
	if (!tap_ok(strcmp(printed, want_json) == 0 && plen == strlen(printed),
	            __FILE__, line, "body for provider %d, from the objects",
	            (int)provider))
		diag("  wanted %s\n#    got %s", want_json, printed);
	tap_ok(same_json(spliced, printed), __FILE__, line,
	       "both mean the same JSON");
	tap_ok(strcmp(before, json_object_to_json_string_ext(
	                              obj, JSON_C_TO_STRING_PLAIN)) == 0,
	       __FILE__, line, "input body unchanged");
	free(before);
	free(spliced);
	free(printed);
	json_object_put(obj);
}

/* OpenRouter's usage accounting: asked for by a deployment that trusts the
 * upstream's cost, never over the client's own "usage", never otherwise. */
static void
test_body_cost(void)
{
	static const struct {
		int line;
		bool trust;
		const char *in, *want;
	} rows[] = {
	        {ROW, true, "{\"model\":\"m\",\"user\":\"u\"}",
	         "{\"model\":\"up\",\"user\":\"u\",\"usage\":{\"include\":"
	         "true}}"},
	        {ROW, true, "{\"model\":\"m\",\"usage\":{\"include\":false}}",
	         "{\"model\":\"up\",\"usage\":{\"include\":false}}"},
	        {ROW, false, "{\"model\":\"m\",\"user\":\"u\"}",
	         "{\"model\":\"up\",\"user\":\"u\"}"},
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct tg_deployment d =
		        deployment(TG_PROVIDER_OPENROUTER, "up", NULL, NULL);
		struct json_object *obj = json_tokener_parse(rows[i].in);
		char *spliced, *printed;
		size_t len = 0, plen = 0;

		d.trust_upstream_cost = rows[i].trust;
		spliced = tg_upstream_body(&d, obj, rows[i].in,
		                           strlen(rows[i].in), &len);
		printed = tg_upstream_body(&d, obj, NULL, 0, &plen);
		if (!tap_ok(same_json(spliced, rows[i].want), __FILE__,
		            rows[i].line, "openrouter body, from the text"))
			diag("  wanted %s\n#    got %s", rows[i].want, spliced);
		if (!tap_ok(same_json(printed, rows[i].want), __FILE__,
		            rows[i].line, "openrouter body, from the objects"))
			diag("  wanted %s\n#    got %s", rows[i].want, printed);
		free(spliced);
		free(printed);
		json_object_put(obj);
	}
}

static void
test_body(void)
{
	char *s, *want;

	for (size_t i = 0; i < sizeof(body_rows) / sizeof(body_rows[0]); i++)
		check_body(body_rows[i].line, body_rows[i].provider,
		           body_rows[i].in, body_rows[i].want_text,
		           body_rows[i].want_json);

	/* 64 members are spliced, 65 printed (the same JSON). */
	s = many_members(64);
	want = tg_xmalloc(strlen(s) + 16);
	sprintf(want, "{\"model\":\"up\",%s", s + 1);
	{
		struct tg_deployment d =
		        deployment(TG_PROVIDER_OPENAI, "up", NULL, NULL);
		struct json_object *obj = json_tokener_parse(s);
		size_t len;
		char *got = tg_upstream_body(&d, obj, s, strlen(s), &len);

		tap_ok(strcmp(got, want) == 0, __FILE__, __LINE__,
		       "64 members are spliced");
		free(got);
		json_object_put(obj);
		free(s);
		free(want);
	}
	s = many_members(65);
	{
		struct tg_deployment d =
		        deployment(TG_PROVIDER_OPENAI, "up", NULL, NULL);
		struct json_object *obj = json_tokener_parse(s);
		size_t len, plen;
		char *got = tg_upstream_body(&d, obj, s, strlen(s), &len);
		char *printed = tg_upstream_body(&d, obj, NULL, 0, &plen);

		tap_ok(strcmp(got, printed) == 0 &&
		               strncmp(got, "{\"model\"", 8) != 0,
		       __FILE__, __LINE__, "65 members are printed");
		free(got);
		free(printed);
		json_object_put(obj);
		free(s);
	}

	/* A value the front line replaced (a token count given as a
	 * string goes upstream as the integer it validated) is printed
	 * from the object; the rest still comes from the text. */
	{
		const char *in = "{\"model\":\"gpt\",\"max_tokens\":\"5\","
		                 "\"temperature\":7e-1}";
		struct tg_deployment d =
		        deployment(TG_PROVIDER_OPENAI, "up", NULL, NULL);
		struct json_object *obj = json_tokener_parse(in);
		size_t len;
		char *got;

		json_object_object_add(obj, "max_tokens",
		                       json_object_new_int64(5));
		got = tg_upstream_body(&d, obj, in, strlen(in), &len);
		if (!tap_ok(strcmp(got,
		                   "{\"model\":\"up\",\"temperature\":7e-1,"
		                   "\"max_tokens\":5}") == 0,
		            __FILE__, __LINE__,
		            "a replaced value is printed from the object"))
			diag("  got %s", got);
		free(got);
		json_object_put(obj);
	}

	/* stream_options as the stream asked for it (include_usage), not
	 * as the client wrote it. */
	{
		const char *in = "{\"model\":\"gpt\",\"stream_options\":"
		                 "{\"include_usage\":false},\"stream\":true}";
		struct tg_deployment d =
		        deployment(TG_PROVIDER_OPENAI, "up", NULL, NULL);
		struct json_object *obj = json_tokener_parse(in), *opts;
		size_t len;
		char *got;

		json_object_object_get_ex(obj, "stream_options", &opts);
		json_object_object_add(opts, "include_usage",
		                       json_object_new_boolean(1));
		got = tg_upstream_body(&d, obj, in, strlen(in), &len);
		if (!tap_ok(strcmp(got, "{\"model\":\"up\",\"stream\":true,"
		                        "\"stream_options\":{\"include_usage\":"
		                        "true}}") == 0,
		            __FILE__, __LINE__,
		            "stream_options is printed from the object"))
			diag("  got %s", got);
		free(got);
		json_object_put(obj);
	}

	/* A member the object has and the text has not (or the other way
	 * round): the object is printed. */
	{
		const char *in = "{\"model\":\"gpt\",\"user\":\"u\"}";
		struct tg_deployment d =
		        deployment(TG_PROVIDER_OPENAI, "up", NULL, NULL);
		struct json_object *obj = json_tokener_parse(in);
		size_t len;
		char *got;

		json_object_object_add(obj, "extra", json_object_new_int(1));
		got = tg_upstream_body(&d, obj, in, strlen(in), &len);
		tap_ok(strcmp(got, "{\"model\":\"up\",\"user\":\"u\","
		                   "\"extra\":1}") == 0,
		       __FILE__, __LINE__, "an added member: printed (%s)",
		       got);
		free(got);
		json_object_object_del(obj, "extra");
		json_object_object_del(obj, "user");
		got = tg_upstream_body(&d, obj, in, strlen(in), &len);
		tap_ok(strcmp(got, "{\"model\":\"up\"}") == 0, __FILE__,
		       __LINE__, "a removed member: printed (%s)", got);
		free(got);
		json_object_put(obj);
	}
}

/* ---- tg_usage_parse ----------------------------------------------------- */

struct usage_row {
	int line;
	const char *json;
	bool ok;
	int64_t prompt, completion, total, cached;
};

static const struct usage_row usage_rows[] = {
        {ROW,
         "{\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":5,\"total_"
         "tokens\":15}}",
         true, 10, 5, 15, 0},
        {ROW, "{\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":5}}",
         true, 10, 5, 15, 0},
        {ROW,
         "{\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":5,\"total_"
         "tokens\":15,\"prompt_tokens_details\":{\"cached_tokens\":4}}}",
         true, 10, 5, 15, 4},
        {ROW,
         "{\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":0,\"prompt_"
         "tokens_details\":null}}",
         true, 10, 0, 10, 0},
        {ROW,
         "  "
         "{\"id\":1,\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n",
         true, 1, 2, 3, 0},
        {ROW, "{\"usage\":{\"prompt_tokens\":-1,\"completion_tokens\":5}}",
         false, 0, 0, 0, 0},
        {ROW, "{\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":-5}}",
         false, 0, 0, 0, 0},
        {ROW,
         "{\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1,\"total_"
         "tokens\":-2}}",
         false, 0, 0, 0, 0},
        {ROW, "{\"usage\":{\"prompt_tokens\":\"10\",\"completion_tokens\":5}}",
         false, 0, 0, 0, 0},
        {ROW, "{\"usage\":{\"prompt_tokens\":1.5,\"completion_tokens\":5}}",
         false, 0, 0, 0, 0},
        {ROW,
         "{\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":5,\"prompt_"
         "tokens_details\":{\"cached_tokens\":3}}}",
         false, 0, 0, 0, 0},
        {ROW, "{\"usage\":{}}", false, 0, 0, 0, 0},
        {ROW, "{\"usage\":null}", false, 0, 0, 0, 0},
        {ROW, "{\"choices\":[]}", false, 0, 0, 0, 0},
        {ROW, "[1,2]", false, 0, 0, 0, 0},
        {ROW, "{\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}} x",
         false, 0, 0, 0, 0},
        {ROW, "{\"usage\":", false, 0, 0, 0, 0},
        /* The walk that finds "usage" without parsing the rest. */
        {ROW,
         "{\"id\":\"}\\\"usage\\\"{\",\"choices\":[{\"message\":{"
         "\"content\":\"[{\\u0022\"}}],\"created\":-1.5e+3,"
         "\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4},"
         "\"x\":[true,false,null,[],{}]}",
         true, 3, 4, 7, 0},
        {ROW,
         "{\"a\":{\"usage\":{\"prompt_tokens\":1,\"completion_"
         "tokens\":1}}}",
         false, 0, 0, 0, 0},
        {ROW, "{\"\\u0075sage\":{\"prompt_tokens\":5,\"completion_tokens\":1}}",
         true, 5, 1, 6, 0},
        /* Where the walk is not sure it defers to json-c, whose reading
         * stands: it takes an integer beyond 64 bits (clamped) and a
         * trailing comma. */
        {ROW,
         "{\"created\":12345678901234567890123,\"usage\":{\"prompt_tokens\":"
         "2,\"completion_tokens\":2}}",
         true, 2, 2, 4, 0},
        {ROW,
         "{\"c\":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]],\"usage\":{"
         "\"prompt_tokens\":6,\"completion_tokens\":1}}",
         true, 6, 1, 7, 0},
        {ROW,
         "{\"id\":\"x\" \"usage\":{\"prompt_tokens\":1,\"completion_"
         "tokens\":1}}",
         false, 0, 0, 0, 0},
        {ROW, "{\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1},}",
         true, 1, 1, 2, 0},
        {ROW, "{\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}}",
         false, 0, 0, 0, 0},
        {ROW, "{\"usage\":[{\"prompt_tokens\":1,\"completion_tokens\":1}]}",
         false, 0, 0, 0, 0},
        {ROW, "{\"id\":\"x\"}", false, 0, 0, 0, 0},
        {ROW, "{}", false, 0, 0, 0, 0},
        {ROW, "", false, 0, 0, 0, 0},
};

static void
test_usage(void)
{
	size_t i;

	for (i = 0; i < sizeof(usage_rows) / sizeof(usage_rows[0]); i++) {
		const struct usage_row *r = &usage_rows[i];
		struct tg_usage u;
		bool ok;

		memset(&u, 0, sizeof(u));
		u.prompt_tokens = u.completion_tokens = u.total_tokens =
		        u.cached_tokens = -42;
		ok = usage_parse(r->json, strlen(r->json), &u);

		if (r->ok)
			tap_ok(ok && u.present &&
			               u.prompt_tokens == r->prompt &&
			               u.completion_tokens == r->completion &&
			               u.total_tokens == r->total &&
			               u.cached_tokens == r->cached,
			       __FILE__, r->line, "usage parses");
		else
			tap_ok(!ok && !u.present && u.prompt_tokens == -42,
			       __FILE__, r->line, "usage refused");
	}
}

/* ---- mock --------------------------------------------------------------- */

struct mock_row {
	int line;
	const char *mock_response; /* NULL: echo */
	const char *body;
	const char *content;
	const char *finish;
	int64_t prompt, completion;
};

static const struct mock_row mock_rows[] = {
        /* "Hello!" = 6 bytes -> 2 tokens; prompt "hi" -> 1 */
        {ROW, "Hello!",
         "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}"
         "]}",
         "Hello!", "stop", 1, 2},
        /* echo of the last user message; prompt = 12 + 5 + 3 bytes -> 5 */
        {ROW, NULL,
         "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"be "
         "brief "
         "ok.\"},{\"role\":\"user\",\"content\":\"first\"},{\"role\":\"user\","
         "\"content\":[{\"type\":\"text\",\"text\":\"abc\"}]}]}",
         "abc", "stop", 5, 1},
        /* truncated to max_tokens 2 -> 8 bytes */
        {ROW, "The quick brown fox",
         "{\"model\":\"m\",\"max_tokens\":2,\"messages\":[{\"role\":\"user\","
         "\"content\":\"x\"}]}",
         "The quic", "length", 1, 2},
        {ROW, "The quick brown fox",
         "{\"model\":\"m\",\"max_completion_tokens\":1,\"max_tokens\":50,"
         "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
         "The ", "length", 1, 1},
        /* a cut never splits a UTF-8 character: "ab" + e-acute x3 */
        {ROW, "ab\xc3\xa9\xc3\xa9\xc3\xa9",
         "{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\","
         "\"content\":\"x\"}]}",
         "ab\xc3\xa9", "length", 1, 1},
        {ROW, "Hello!",
         "{\"model\":\"m\",\"max_tokens\":0,\"messages\":[{\"role\":\"user\","
         "\"content\":\"x\"}]}",
         "", "length", 1, 0},
        /* no user message: empty answer, still one token */
        {ROW, NULL, "{\"model\":\"m\",\"messages\":[]}", "", "stop", 1, 1},
};

static void
test_mock(void)
{
	size_t i;

	for (i = 0; i < sizeof(mock_rows) / sizeof(mock_rows[0]); i++) {
		const struct mock_row *r = &mock_rows[i];
		struct tg_deployment d =
		        deployment(TG_PROVIDER_MOCK, "m", NULL, "sk-secret");
		struct tg_upstream_response resp;
		struct tg_usage u;
		struct tg_err err;
		struct json_object *root, *v;
		const char *content = NULL, *finish = NULL, *id = "";
		enum tg_rc rc;

		d.mock_response = (char *)r->mock_response;
		rc = chat_call(&d, r->body, strlen(r->body), 5, &resp, &err);
		tap_ok(rc == TG_OK && resp.status == 200 &&
		               strcmp(resp.api_base, "mock") == 0 &&
		               strcmp(resp.content_type, "application/json") ==
		                       0,
		       __FILE__, r->line, "mock answers 200 json");
		root = json_tokener_parse(resp.body);
		if (json_object_object_get_ex(root, "id", &v))
			id = json_object_get_string(v);
		if (json_object_object_get_ex(root, "choices", &v) &&
		    (v = json_object_array_get_idx(v, 0)) != NULL) {
			struct json_object *m, *c, *f;

			if (json_object_object_get_ex(v, "message", &m) &&
			    json_object_object_get_ex(m, "content", &c))
				content = json_object_get_string(c);
			if (json_object_object_get_ex(v, "finish_reason", &f))
				finish = json_object_get_string(f);
		}
		tap_ok(strncmp(id, "chatcmpl-", 9) == 0 && strlen(id) == 45,
		       __FILE__, r->line, "mock id is chatcmpl-<uuid>");
		if (!tap_ok(content && strcmp(content, r->content) == 0 &&
		                    finish && strcmp(finish, r->finish) == 0,
		            __FILE__, r->line, "mock content and finish"))
			diag("  got %s", resp.body);
		if (!tap_ok(usage_parse(resp.body, resp.body_len, &u) &&
		                    u.prompt_tokens == r->prompt &&
		                    u.completion_tokens == r->completion &&
		                    u.total_tokens == r->prompt + r->completion,
		            __FILE__, r->line, "mock usage %lld + %lld",
		            (long long)r->prompt, (long long)r->completion))
			diag("  got %s", resp.body);
		json_object_put(root);
		tg_upstream_response_free(&resp);
	}
}

static void
test_mock_stream(void)
{
	struct tg_deployment d = deployment(TG_PROVIDER_MOCK, "m", NULL, NULL);
	struct tg_upstream_response resp;
	struct tg_err err;
	const char *body = "{\"model\":\"m\",\"stream\":true,\"stream_"
	                   "options\":{\"include_usage\":true},\"messages\":[{"
	                   "\"role\":\"user\",\"content\":\"hello world\"}]}";
	const char *last;

	ok(chat_call(&d, body, strlen(body), 5, &resp, &err) == TG_OK,
	   "mock stream answers");
	is_string("text/event-stream", resp.content_type, "as SSE");
	ok(strncmp(resp.body, "data: {", 7) == 0, "starts with a data line");
	ok(strstr(resp.body, "\"content\":\"hello world\"") != NULL,
	   "carries the echo");
	ok(strstr(resp.body, "\"finish_reason\":\"stop\"") != NULL,
	   "has a finish reason");
	ok(strstr(resp.body,
	          "\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":3,"
	          "\"total_tokens\":6}") != NULL,
	   "has a usage chunk");
	last = resp.body + resp.body_len - 14;
	is_string("data: [DONE]\n\n", last, "ends with [DONE]");
	is_int(strlen(resp.body), resp.body_len, "body_len is right");
	tg_upstream_response_free(&resp);
}

/* ---- HTTP against a forked server -------------------------------------- */

/*
 * The server answers each request with "conn=<n>\n" and the request head,
 * so the test sees the URL, the headers and whether the connection was
 * reused.  A path containing "/slow" sleeps 3 s first; "/teapot" answers
 * 418.
 */
static void
serve(int lfd)
{
	int nconn = 0;

	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		char req[65536];
		size_t have = 0;

		if (fd < 0)
			continue;
		nconn++;
		for (;;) {
			char *end, *cl, reply[70000];
			long clen = 0;
			size_t head, want;
			ssize_t r;
			int n;

			while ((end = memmem(req, have, "\r\n\r\n", 4)) ==
			       NULL) {
				r = read(fd, req + have, sizeof(req) - have);
				if (r <= 0)
					goto next;
				have += (size_t)r;
			}
			head = (size_t)(end - req) + 4;
			req[head - 2] = '\0';
			cl = strcasestr(req, "Content-Length:");
			if (cl)
				clen = strtol(cl + 15, NULL, 10);
			want = head + (size_t)clen;
			while (have < want) {
				r = read(fd, req + have, sizeof(req) - have);
				if (r <= 0)
					goto next;
				have += (size_t)r;
			}
			if (strstr(req, "/slow"))
				sleep(3);
			n = snprintf(
			        reply, sizeof(reply),
			        "HTTP/1.1 %s\r\nContent-Type: text/plain\r\n"
			        "Content-Length: %zu\r\n\r\nconn=%d\n%s",
			        strstr(req, "/teapot") ? "418 I'm a teapot"
			                               : "200 OK",
			        strlen(req) + 7 + (nconn > 9), nconn, req);
			if (write(fd, reply, (size_t)n) != n)
				goto next;
			memmove(req, req + want, have - want);
			have -= want;
		}
	next:
		close(fd);
	}
}

static pid_t
start_server(int *port)
{
	struct sockaddr_in sa;
	socklen_t salen = sizeof(sa);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	pid_t pid;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(lfd, 8) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &salen) != 0)
		return -1;
	*port = ntohs(sa.sin_port);
	pid = fork();
	if (pid == 0) {
		serve(lfd);
		_exit(0);
	}
	close(lfd);
	return pid;
}

static void
test_http(void)
{
	struct tg_upstream_response resp;
	struct tg_err err;
	struct tg_deployment d;
	char base[128], azure_base[128];
	const char *body = "{\"model\":\"up\"}";
	int port = 0;
	pid_t pid = start_server(&port);
	enum tg_rc rc;

	if (!ok(pid > 0, "test server started"))
		return;
	ok(tg_upstream_init(&err) == TG_OK, "upstream init");
	snprintf(base, sizeof(base), "http://127.0.0.1:%d/v1/", port);

	d = deployment(TG_PROVIDER_OPENAI, "up", base, "sk-test");
	rc = chat_call(&d, body, strlen(body), 10, &resp, &err);
	ok(rc == TG_OK && resp.status == 200, "openai call answers 200");
	if (rc != TG_OK)
		return;
	ok(strncmp(resp.body, "conn=1\nPOST /v1/chat/completions HTTP/1.1",
	           41) == 0,
	   "POST {api_base}/chat/completions on connection 1");
	ok(strstr(resp.body, "Authorization: Bearer sk-test\r\n") != NULL,
	   "Bearer auth");
	ok(strstr(resp.body, "Content-Type: application/json\r\n") != NULL,
	   "JSON content type");
	ok(strstr(resp.body, "Expect:") == NULL, "no Expect header");
	is_string("text/plain", resp.content_type, "content type relayed");
	{
		char want[160];

		snprintf(want, sizeof(want), "http://127.0.0.1:%d/v1", port);
		is_string(want, resp.api_base, "api_base recorded");
	}
	tg_upstream_response_free(&resp);

	rc = chat_call(&d, body, strlen(body), 10, &resp, &err);
	ok(rc == TG_OK && strncmp(resp.body, "conn=1\n", 7) == 0,
	   "second call reuses the connection");
	tg_upstream_response_free(&resp);

	d = deployment(TG_PROVIDER_MISTRAL, "up", base, "sk-m");
	rc = chat_call(&d, body, strlen(body), 10, &resp, &err);
	ok(rc == TG_OK && strncmp(resp.body, "conn=1\n", 7) == 0 &&
	           strstr(resp.body, "Authorization: Bearer sk-m\r\n"),
	   "mistral: same host, same connection, Bearer");
	tg_upstream_response_free(&resp);

	snprintf(azure_base, sizeof(azure_base), "http://127.0.0.1:%d/", port);
	d = deployment(TG_PROVIDER_AZURE, "my dep", azure_base, "az-key");
	d.api_version = (char *)"2024-10-21";
	rc = chat_call(&d, body, strlen(body), 10, &resp, &err);
	ok(rc == TG_OK &&
	           strstr(resp.body, "POST /openai/deployments/my%20dep/chat/"
	                             "completions?api-version=2024-10-21 ") &&
	           strstr(resp.body, "api-key: az-key\r\n") &&
	           !strstr(resp.body, "Authorization:"),
	   "azure URL and api-key header");
	tg_upstream_response_free(&resp);

	snprintf(base, sizeof(base), "http://127.0.0.1:%d/teapot", port);
	d = deployment(TG_PROVIDER_OPENAI, "up", base, NULL);
	rc = chat_call(&d, body, strlen(body), 10, &resp, &err);
	ok(rc == TG_OK && resp.status == 418, "a 418 is relayed as TG_OK");
	ok(rc == TG_OK && strstr(resp.body, "Authorization:") == NULL,
	   "no key, no auth header");
	tg_upstream_response_free(&resp);

	snprintf(base, sizeof(base), "http://127.0.0.1:%d/slow", port);
	d = deployment(TG_PROVIDER_OPENAI, "up", base, "sk-test");
	rc = chat_call(&d, body, strlen(body), 1, &resp, &err);
	is_int(TG_ERR_TIMEOUT, rc, "slow upstream times out");
	is_string("Request timed out after 1 seconds", err.message,
	          "timeout message");

	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);

	/* Nothing listens there any more. */
	snprintf(base, sizeof(base), "http://127.0.0.1:%d/v1?x=secretq", port);
	d = deployment(TG_PROVIDER_OPENAI, "up", base, "sk-secret");
	rc = chat_call(&d, body, strlen(body), 10, &resp, &err);
	is_int(TG_ERR_UPSTREAM_CONNECT, rc, "refused connection");
	{
		char want[128];

		snprintf(want, sizeof(want),
		         "Connection error: could not connect to upstream "
		         "127.0.0.1:%d",
		         port);
		is_string(want, err.message, "connection error names the host");
	}
	ok(strstr(err.message, "sk-secret") == NULL &&
	           strstr(err.message, "secretq") == NULL,
	   "no key or query in the message");

	d = deployment(TG_PROVIDER_AZURE, "dep", NULL, "k");
	rc = chat_call(&d, body, strlen(body), 10, &resp, &err);
	is_int(TG_ERR_CONFIG, rc, "azure without api_base is a config error");
	tg_upstream_cleanup();
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	test_body();
	test_body_cost();
	test_usage();
	test_mock();
	test_mock_stream();
	test_http();
	return done_testing();
}
