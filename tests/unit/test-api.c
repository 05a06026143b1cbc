/*
 * test-api: what the meter reads of a call through its API's adapter
 * (lib/api.h, lib/meter.c): the customer id (SPEC 4.1), the worst case of
 * each API (SPEC 4.3, 11), the usage of its answers, and that every bound
 * the front line rewrites reaches every provider as the integer the
 * estimate used.  Requests go through the real front line
 * (tg_app_front_line()), as a handler would see them.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../tap.h"
#include "api.h"
#include "app.h"
#include "fields.h"
#include "meter.h"
#include "upstream.h"

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
		buf[0] = '\0';
		tg_err_clear(&err);
		rc = tg_meter_customer_id(r->hdr_customer, r->hdr_end_user, b,
		                          buf, sizeof(buf), &found, &err);
		tap_ok(rc == r->rc && (rc != TG_OK || found == r->found) &&
		               (!r->found || strcmp(buf, r->id) == 0),
		       __FILE__, r->line, "customer id (%s)", r->body);
		json_object_put(b);
	}
	memset(longid, 'x', 300);
	longid[300] = '\0';
	is_int(TG_ERR_UNPROCESSABLE,
	       tg_meter_customer_id(longid, NULL, body, buf, sizeof(buf),
	                            &found, &err),
	       "an id above 255 bytes is refused");
	longid[255] = '\0';
	is_int(TG_OK,
	       tg_meter_customer_id(longid, NULL, body, buf, sizeof(buf),
	                            &found, &err),
	       "255 bytes is taken");
	json_object_put(body);
}

/* ---- requests through the front line ---- */

static char config_path[64];

static void
write_config(void)
{
	int fd;
	FILE *f;

	snprintf(config_path, sizeof(config_path), "/tmp/tg-test-api-XXXXXX");
	fd = mkstemp(config_path);
	if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
		perror("mkstemp");
		exit(1);
	}
	fputs("general_settings:\n  master_key: sk-test\n", f);
	fclose(f);
	setenv("TOLLGATE_CONFIG", config_path, 1);
	unsetenv("DATABASE_URL");
}

/* What a test does with a request the front line passed. */
struct seen {
	const struct tg_api_adapter *api;
	const struct tg_config *cfg;
	struct tg_deployment *d;
	enum tg_rc rc;
	struct tg_err err;
	struct tg_bounds b;
	char *up_text; /* the upstream body, for d */
};

static void
inspect(const struct tg_req *req, void *arg)
{
	struct seen *s = arg;
	size_t len, up_len;
	const char *text = tg_req_body(req, &len);

	tg_err_clear(&s->err);
	s->rc = s->api->bounds(s->cfg, s->d, req, &s->b, &s->err);
	s->up_text =
	        tg_upstream_body(s->d, tg_req_json(req), text, len, &up_len);
}

/*
 * body sent to api's route through the front line; s->rc is the
 * adapter's bounds() (s->b) when the front line passed it, else the front
 * line's refusal.
 */
static enum tg_rc
through(const struct tg_api_adapter *api, const struct tg_config *cfg,
        struct tg_deployment *d, const char *body, struct seen *s)
{
	struct tg_route route = {"/t",        "POST",      TG_AUTH_MASTER,
	                         TG_BODY_LLM, api->fields, api->nfields,
	                         NULL};
	struct tg_program prog = {
	        .name = "test-api", .routes = &route, .nroutes = 1};
	char clen[48], *envp[5];
	enum tg_rc rc;

	memset(s, 0, sizeof(*s));
	s->api = api;
	s->cfg = cfg;
	s->d = d;
	snprintf(clen, sizeof(clen), "CONTENT_LENGTH=%zu", strlen(body));
	envp[0] = (char *)"REQUEST_METHOD=POST";
	envp[1] = (char *)"REQUEST_URI=/t";
	envp[2] = (char *)"HTTP_AUTHORIZATION=Bearer sk-test";
	envp[3] = clen;
	envp[4] = NULL;
	rc = tg_app_front_line(&prog, envp, body, strlen(body), inspect, s,
	                       &s->err);
	return rc != TG_OK ? rc : s->rc;
}

static struct tg_config cfg;

static struct tg_deployment
deployment(enum tg_provider p)
{
	struct tg_deployment d;

	memset(&d, 0, sizeof(d));
	d.provider = p;
	d.model_name = (char *)"m";
	d.litellm_model = (char *)"openai/up";
	d.upstream_model = (char *)"up";
	return d;
}

static void
test_chat_bounds(void)
{
	struct tg_deployment d = deployment(TG_PROVIDER_OPENAI);
	struct seen s;
	const char *text;

	text = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
	       "\"hi\"}]}";
	is_int(TG_OK, through(&tg_api_chat, &cfg, &d, text, &s), "chat");
	is_int((long long)strlen(text), s.b.prompt,
	       "prompt bound = body bytes");
	is_int(4096, s.b.output, "output bound = default_max_tokens");
	free(s.up_text);
	d.price.max_output_tokens = 16384;
	through(&tg_api_chat, &cfg, &d, text, &s);
	is_int(16384, s.b.output, "output bound = model's max_output_tokens");
	free(s.up_text);

	text = "{\"messages\":[{\"role\":\"user\"}],\"max_tokens\":50}";
	through(&tg_api_chat, &cfg, &d, text, &s);
	is_int(50, s.b.output, "output bound = max_tokens");
	is_string("max_tokens", s.b.output_field, "set by max_tokens");
	free(s.up_text);

	text = "{\"messages\":[{\"role\":\"user\"}],\"max_tokens\":50,"
	       "\"max_completion_tokens\":70}";
	through(&tg_api_chat, &cfg, &d, text, &s);
	is_int(70, s.b.output,
	       "both bounds: the larger (max_completion_tokens)");
	is_string("max_completion_tokens", s.b.output_field,
	          "set by max_completion_tokens");
	free(s.up_text);

	/* An upstream may honour either: the estimate covers both. */
	text = "{\"messages\":[{\"role\":\"user\"}],\"max_tokens\":90,"
	       "\"max_completion_tokens\":70}";
	through(&tg_api_chat, &cfg, &d, text, &s);
	is_int(90, s.b.output, "both bounds: the larger (max_tokens)");
	free(s.up_text);

	text = "{\"messages\":[{\"role\":\"user\"}],\"max_tokens\":10,"
	       "\"n\":3}";
	through(&tg_api_chat, &cfg, &d, text, &s);
	is_int(30, s.b.output, "n choices: n times the bound");
	free(s.up_text);

	text = "{\"messages\":[{\"role\":\"user\",\"content\":["
	       "{\"type\":\"text\",\"text\":\"what is this\"},"
	       "{\"type\":\"image_url\",\"image_url\":{\"url\":\"u\"}},"
	       "{\"type\":\"image_url\",\"image_url\":{\"url\":\"v\"}}]}]}";
	through(&tg_api_chat, &cfg, &d, text, &s);
	is_int((long long)strlen(text) + 2 * TG_IMAGE_TOKENS_MAX, s.b.prompt,
	       "each image part adds the worst case");
	free(s.up_text);

	/* Web searches: held (and billed) for one when asked; held for one
	 * on a model that searches unasked (Perplexity), billed as its
	 * usage counts them; else none. */
	d.price.has_search_context = true;
	for (size_t i = 0; i < TG_SEARCH_SIZES; i++)
		d.price.search_context[i] = (tg_price)(i + 1) * 1000000000000LL;
	text = "{\"messages\":[{\"role\":\"user\"}]}";
	through(&tg_api_chat, &cfg, &d, text, &s);
	ok(s.b.tool_calls == 0 && s.b.searches == 0,
	   "no web_search_options: no search held");
	free(s.up_text);
	text = "{\"messages\":[{\"role\":\"user\"}],"
	       "\"web_search_options\":{\"search_context_size\":\"high\"}}";
	through(&tg_api_chat, &cfg, &d, text, &s);
	ok(s.b.tool_calls == 1 && s.b.searches == 1 &&
	           s.b.tool_call_price ==
	                   d.price.search_context[TG_SEARCH_HIGH],
	   "web_search_options: one search held and billed, at its size's "
	   "price");
	free(s.up_text);
	d.provider = TG_PROVIDER_PERPLEXITY;
	text = "{\"messages\":[{\"role\":\"user\"}]}";
	through(&tg_api_chat, &cfg, &d, text, &s);
	ok(s.b.tool_calls == 1 && s.b.searches == 0 &&
	           s.b.tool_call_price ==
	                   d.price.search_context[TG_SEARCH_MEDIUM],
	   "perplexity: one search held (medium), none billed unless counted");
	free(s.up_text);
}

/*
 * Issue 6: "max_tokens": "1" was reserved as 1 token but forwarded as the
 * string "1", which an upstream may ignore.  Through the front line every
 * accepted spelling of every adapter's TG_FIELD_TOKENS field reaches
 * every provider's body as the JSON integer the front line made of it;
 * for the chat bounds, that is the output bound the estimate used.
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

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char text[256];

		snprintf(text, sizeof(text),
		         "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
		         "\"content\":\"hi\"}],\"%s\":%s}",
		         rows[i].field, rows[i].value);
		for (size_t p = 0; p < sizeof(providers) / sizeof(providers[0]);
		     p++) {
			/* Mistral knows only max_tokens (SPEC 7). */
			const char *sent = providers[p] == TG_PROVIDER_MISTRAL
			                           ? "max_tokens"
			                           : rows[i].field;
			struct tg_deployment d = deployment(providers[p]);
			struct json_object *up, *v = NULL;
			struct seen s;
			enum tg_rc rc;

			rc = through(&tg_api_chat, &cfg, &d, text, &s);
			tap_ok(rc == TG_OK && s.b.output == rows[i].bound,
			       __FILE__, rows[i].line,
			       "%s: %s is accepted, an output bound of %lld "
			       "(got %lld: %s)",
			       rows[i].field, rows[i].value, rows[i].bound,
			       (long long)s.b.output, s.err.message);
			up = s.up_text ? json_tokener_parse(s.up_text) : NULL;
			json_object_object_get_ex(up, sent, &v);
			tap_ok(json_object_is_type(v, json_type_int) &&
			               json_object_get_int64(v) == s.b.output,
			       __FILE__, rows[i].line,
			       "provider %d gets %s: %lld as a JSON integer "
			       "(got %s)",
			       (int)providers[p], sent, (long long)s.b.output,
			       s.up_text ? s.up_text : "nothing");
			json_object_put(up);
			free(s.up_text);
		}
	}
}

/*
 * Every field the front line may rewrite in the body (TG_FIELD_TOKENS) of
 * every adapter reaches the upstream as rewritten, also when the body is
 * spliced from the client's text (lib/upstream.c's printed_members).
 */
static void
test_rewritten_fields_forwarded(void)
{
	static const struct tg_api_adapter *const apis[] = {
	        &tg_api_chat, &tg_api_responses, &tg_api_embeddings,
	        &tg_api_completions};
	/* The rest of a body of each API, before the field. */
	static const char *const bodies[] = {
	        ("\"model\":\"m\",\"messages\":[{\"role\":\"user\","
	         "\"content\":\"hi\"}]"),
	        "\"model\":\"m\",\"input\":\"hi\"",
	        "\"model\":\"m\",\"input\":\"hi\"",
	        "\"model\":\"m\",\"prompt\":\"hi\"",
	};
	struct tg_deployment d = deployment(TG_PROVIDER_OPENAI);

	for (size_t a = 0; a < sizeof(apis) / sizeof(apis[0]); a++)
		for (size_t i = 0; i < apis[a]->nfields; i++) {
			const char *name = apis[a]->fields[i].name;
			struct json_object *up, *v = NULL;
			struct seen s;
			char text[256];

			if (apis[a]->fields[i].kind != TG_FIELD_TOKENS)
				continue;
			snprintf(text, sizeof(text), "{%s,\"%s\":\"2\"}",
			         bodies[a], name);
			tap_ok(through(apis[a], &cfg, &d, text, &s) == TG_OK,
			       __FILE__, __LINE__,
			       "%s of %s: \"2\" is accepted (%s)", name,
			       apis[a]->call_type, s.err.message);
			up = s.up_text ? json_tokener_parse(s.up_text) : NULL;
			json_object_object_get_ex(up, name, &v);
			tap_ok(json_object_is_type(v, json_type_int) &&
			               json_object_get_int64(v) == 2 &&
			               strstr(s.up_text, "\"2\"") == NULL,
			       __FILE__, __LINE__,
			       "%s of %s: the spliced body has the integer 2, "
			       "and only it (got %s)",
			       name, apis[a]->call_type,
			       s.up_text ? s.up_text : "nothing");
			json_object_put(up);
			free(s.up_text);
		}
}

static void
test_responses_bounds(void)
{
	struct tg_deployment d = deployment(TG_PROVIDER_OPENAI);
	struct tg_config c = cfg;
	struct seen s;
	const char *text;
	tg_price cent;

	tg_price_parse("0.01", &cent);
	c.default_max_tool_calls = 10;
	c.has_tool_price[TG_TOOL_WEB_SEARCH] = true;
	c.tool_price[TG_TOOL_WEB_SEARCH] = cent;
	text = "{\"model\":\"m\",\"input\":\"hi\",\"max_output_tokens\":9}";
	is_int(TG_OK, through(&tg_api_responses, &c, &d, text, &s),
	       "responses");
	is_int((long long)strlen(text), s.b.prompt, "prompt bound: the body");
	is_int(9, s.b.output, "output bound: max_output_tokens");
	is_int(0, s.b.tool_calls, "no hosted tool, no tool calls held");
	free(s.up_text);

	text = "{\"model\":\"m\",\"input\":\"hi\","
	       "\"previous_response_id\":\"resp_1\"}";
	is_int(TG_ERR_UNPROCESSABLE,
	       through(&tg_api_responses, &c, &d, text, &s),
	       "a chained response on a model without max_input_tokens: 422");
	is_string("previous_response_id", s.err.param, "naming the field");
	free(s.up_text);
	d.price.max_input_tokens = 128000;
	is_int(TG_OK, through(&tg_api_responses, &c, &d, text, &s),
	       "chained: served");
	is_int(128000, s.b.prompt,
	       "chained: the prompt bound is the context window");
	free(s.up_text);
	text = "{\"model\":\"m\",\"conversation\":\"conv_1\"}";
	through(&tg_api_responses, &c, &d, text, &s);
	is_int(128000, s.b.prompt, "a conversation: the context window too");
	free(s.up_text);
	text = "{\"model\":\"m\",\"input\":[{\"type\":\"item_reference\","
	       "\"id\":\"msg_1\"}]}";
	through(&tg_api_responses, &c, &d, text, &s);
	is_int(128000, s.b.prompt, "an item reference: the context window too");
	free(s.up_text);

	text = "{\"model\":\"m\",\"input\":\"hi\",\"tools\":[{\"type\":"
	       "\"web_search\"},{\"type\":\"function\",\"name\":\"f\"}]}";
	through(&tg_api_responses, &c, &d, text, &s);
	ok(s.b.tool_calls == 10 && s.b.tool_call_price == cent,
	   "a web search: default_max_tool_calls calls at its price held");
	free(s.up_text);
	text = "{\"model\":\"m\",\"input\":\"hi\",\"max_tool_calls\":\"3\","
	       "\"tools\":[{\"type\":\"web_search\"}]}";
	through(&tg_api_responses, &c, &d, text, &s);
	is_int(3, s.b.tool_calls, "max_tool_calls bounds the calls held");
	free(s.up_text);
	text = "{\"model\":\"m\",\"input\":\"hi\",\"tools\":[{\"type\":"
	       "\"image_generation\"}]}";
	is_int(TG_ERR_UNPROCESSABLE,
	       through(&tg_api_responses, &c, &d, text, &s),
	       "a hosted tool without a price: 422");
	ok(strcmp(s.err.param, "tools") == 0 &&
	           strstr(s.err.message, "image_generation") != NULL,
	   "naming it: %s", s.err.message);
	free(s.up_text);
}

static void
test_embeddings_completions_bounds(void)
{
	struct tg_deployment d = deployment(TG_PROVIDER_OPENAI);
	struct seen s;

	through(&tg_api_embeddings, &cfg, &d,
	        "{\"model\":\"m\",\"input\":[\"ab\",\"\\u00e9\"]}", &s);
	ok(s.b.prompt == 4 && s.b.output == 0,
	   "embeddings: the text's bytes, no output (%lld, %lld)",
	   (long long)s.b.prompt, (long long)s.b.output);
	free(s.up_text);
	through(&tg_api_embeddings, &cfg, &d,
	        "{\"model\":\"m\",\"input\":[[1,2,3],[4]]}", &s);
	is_int(4, s.b.prompt, "embeddings: one per token");
	free(s.up_text);
	through(&tg_api_completions, &cfg, &d,
	        "{\"model\":\"m\",\"prompt\":\"hi\"}", &s);
	is_int(16, s.b.output, "completions: max_tokens 16 by default");
	free(s.up_text);
	through(&tg_api_completions, &cfg, &d,
	        "{\"model\":\"m\",\"prompt\":[\"a\",\"b\",\"c\"],"
	        "\"max_tokens\":5,\"n\":2,\"best_of\":4}",
	        &s);
	is_int(60, s.b.output, "completions: 5 x best_of 4 x 3 prompts");
	free(s.up_text);
	through(&tg_api_completions, &cfg, &d,
	        "{\"model\":\"m\",\"prompt\":[1,2,3],\"max_tokens\":5,"
	        "\"n\":2}",
	        &s);
	is_int(10, s.b.output, "completions: tokens are one prompt");
	free(s.up_text);
}

static void
read_text(const struct tg_api_adapter *api, const char *text,
          struct tg_answer *a)
{
	api->read_answer(text, strlen(text), a);
}

/* What the meter reads of a Responses answer. */
static void
test_responses_answer(void)
{
	static const char answer[] =
	        "{\"id\":\"resp_1\",\"object\":\"response\",\"output\":["
	        "{\"type\":\"web_search_call\",\"id\":\"ws_1\"},"
	        "{\"type\":\"web_search_call\",\"id\":\"ws_2\"},"
	        "{\"type\":\"code_interpreter_call\",\"container_id\":\"c1\"},"
	        "{\"type\":\"code_interpreter_call\",\"container_id\":\"c1\"},"
	        "{\"type\":\"code_interpreter_call\",\"container_id\":\"c2\"},"
	        "{\"type\":\"file_search_call\"},"
	        "{\"type\":\"function_call\",\"arguments\":\"{}\"},"
	        "{\"type\":\"message\",\"content\":[{\"type\":"
	        "\"output_text\",\"text\":\"hello\"}]}],"
	        "\"usage\":{\"input_tokens\":100,\"input_tokens_details\":"
	        "{\"cached_tokens\":40},\"output_tokens\":50,"
	        "\"output_tokens_details\":{\"reasoning_tokens\":30},"
	        "\"total_tokens\":150}}";
	struct tg_answer a;

	tg_api_responses.read_answer(answer, strlen(answer), &a);
	ok(a.u.present && a.u.prompt_tokens == 100 && a.u.cached_tokens == 40 &&
	           a.u.completion_tokens == 50 && a.u.total_tokens == 150,
	   "responses: input, cached, output (reasoning included) tokens");
	is_string("resp_1", a.response_id, "responses: the id");
	ok(a.u.tool_calls[TG_TOOL_WEB_SEARCH] == 2 &&
	           a.u.tool_calls[TG_TOOL_FILE_SEARCH] == 1 &&
	           a.u.tool_calls[TG_TOOL_CODE_INTERPRETER] == 2 &&
	           a.u.tool_calls[TG_TOOL_IMAGE_GENERATION] == 0,
	   "responses: the hosted calls, a code interpreter once per "
	   "container");
	read_text(&tg_api_responses,
	          "{\"output\":[{\"type\":\"message\",\"content\":[{\"text\":"
	          "\"abc\"}]}]}",
	          &a);
	ok(!a.u.present && a.text_bytes == 3,
	   "responses without usage: the text bounds it (%lld)",
	   (long long)a.text_bytes);
	read_text(&tg_api_embeddings,
	          "{\"data\":[],\"usage\":{\"prompt_tokens\":7,"
	          "\"total_tokens\":7}}",
	          &a);
	ok(a.u.present && a.u.prompt_tokens == 7 && a.u.completion_tokens == 0,
	   "embeddings: prompt_tokens");
	read_text(&tg_api_completions,
	          "{\"id\":\"cmpl-1\",\"choices\":[{\"text\":\"hey\"}]}", &a);
	ok(!a.u.present && a.text_bytes == 3 &&
	           strcmp(a.response_id, "cmpl-1") == 0,
	   "completions without usage: its text bounds it, and its id");
	/* A tool call answers with "content": null (this crashed the
	 * program); without usage, its name and arguments bound it as a
	 * stream's deltas do. */
	read_text(&tg_api_chat,
	          "{\"choices\":[{\"message\":{\"content\":null,"
	          "\"tool_calls\":[{\"type\":\"function\",\"function\":{"
	          "\"name\":\"get\",\"arguments\":\"{\\\"a\\\":1}\"}}]}},"
	          "{\"message\":{\"content\":\"hi\",\"refusal\":null}}]}",
	          &a);
	ok(!a.u.present && a.text_bytes == 3 + 7 + 2,
	   "chat without usage: a tool call's name and arguments, a null "
	   "content none (%lld)",
	   (long long)a.text_bytes);
}

/* The usage shapes of the providers of OpenAI's shape: each class of
 * tokens read where that provider puts it. */
static void
test_usage_shapes(void)
{
	struct tg_answer a;

	read_text(&tg_api_chat,
	          "{\"id\":\"c1\",\"service_tier\":\"priority\","
	          "\"usage\":{\"prompt_tokens\":100,\"completion_tokens\":"
	          "50,\"prompt_tokens_details\":{\"cached_tokens\":20,"
	          "\"audio_tokens\":30},\"completion_tokens_details\":{"
	          "\"reasoning_tokens\":10,\"audio_tokens\":5}}}",
	          &a);
	ok(a.u.present && a.u.cached_tokens == 20 &&
	           a.u.audio_prompt_tokens == 30 &&
	           a.u.reasoning_tokens == 10 &&
	           a.u.audio_completion_tokens == 5 &&
	           a.u.service_tier == TG_SERVICE_PRIORITY && !a.u.has_cost,
	   "chat: cached, audio in, reasoning, audio out, service tier");
	read_text(&tg_api_chat,
	          "{\"usage\":{\"prompt_tokens\":100,\"completion_tokens\":"
	          "5,\"prompt_cache_hit_tokens\":64,"
	          "\"prompt_cache_miss_tokens\":36}}",
	          &a);
	ok(a.u.present && a.u.cached_tokens == 64 &&
	           a.u.service_tier == TG_SERVICE_DEFAULT,
	   "DeepSeek: prompt_cache_hit_tokens are the cached part");
	read_text(&tg_api_chat,
	          "{\"usage\":{\"prompt_tokens\":100,\"completion_tokens\":"
	          "5,\"prompt_tokens_details\":{\"cached_tokens\":10},"
	          "\"prompt_cache_hit_tokens\":64}}",
	          &a);
	ok(a.u.cached_tokens == 10,
	   "cached_tokens given: prompt_cache_hit_tokens not read as well");
	read_text(&tg_api_chat,
	          "{\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":"
	          "5,\"cost\":0.0000123}}",
	          &a);
	ok(a.u.has_cost && a.u.cost == 123000, /* 1e-10 units */
	   "OpenRouter: usage.cost, exact from its text (%lld)",
	   (long long)a.u.cost);
	read_text(&tg_api_chat,
	          "{\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":"
	          "5,\"cost\":-1}}",
	          &a);
	ok(a.u.present && !a.u.has_cost, "a negative usage.cost is no cost");
	read_text(&tg_api_chat,
	          "{\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":"
	          "5,\"num_search_queries\":2}}",
	          &a);
	ok(a.u.tool_calls[TG_TOOL_WEB_SEARCH] == 2,
	   "Perplexity: num_search_queries are web searches");
	read_text(&tg_api_chat,
	          "{\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":"
	          "5,\"completion_tokens_details\":{\"reasoning_tokens\":"
	          "\"x\"}}}",
	          &a);
	ok(!a.u.present, "a reasoning count that is not a count: no usage");
	read_text(&tg_api_responses,
	          "{\"service_tier\":\"flex\",\"usage\":{\"input_tokens\":"
	          "10,\"output_tokens\":40,\"output_tokens_details\":{"
	          "\"reasoning_tokens\":30}}}",
	          &a);
	ok(a.u.present && a.u.reasoning_tokens == 30 &&
	           a.u.service_tier == TG_SERVICE_FLEX,
	   "responses: reasoning tokens and the service tier");
	read_text(&tg_api_messages,
	          "{\"id\":\"msg_1\",\"content\":[],\"usage\":{"
	          "\"input_tokens\":10,\"output_tokens\":4,"
	          "\"service_tier\":\"priority\"}}",
	          &a);
	ok(a.u.present && a.u.service_tier == TG_SERVICE_PRIORITY,
	   "messages: Anthropic's service tier, in its usage");
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

		tg_meter_shuffle(idx, 3);
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
	tg_meter_shuffle(one, 1);
	is_int(7, one[0], "a single deployment stays");
	tg_meter_shuffle(one, 0);
	ok(true, "an empty list is accepted");
}

int
main(void)
{
	memset(&cfg, 0, sizeof(cfg));
	cfg.default_max_tokens = 4096;
	write_config();
	test_ids();
	test_chat_bounds();
	test_forwarded_bounds();
	test_rewritten_fields_forwarded();
	test_responses_bounds();
	test_embeddings_completions_bounds();
	test_responses_answer();
	test_usage_shapes();
	test_shuffle();
	unlink(config_path);
	return done_testing();
}
