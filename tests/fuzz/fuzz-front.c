/*
 * fuzz-front: the front line of every request (lib/app.c), as a FastCGI
 * request reaches it: routing, the key, the size cap, the JSON parse with
 * its '#'-comment fallback and the field tables of the real programs.
 *
 * An input is an HTTP request as a client writes it:
 *
 *     POST /customer/new?x=1 HTTP/1.1      <- METHOD SP URI [SP anything]
 *     Authorization: Bearer sk-1234        <- "Name: value" lines
 *     Content-Length: 17                   <- optional: else the body's size
 *                                          <- a blank line (LF or CRLF)
 *     {"user_id": "a"}                     <- the body, any bytes
 *
 * It becomes the environment a web server passes (REQUEST_METHOD,
 * REQUEST_URI, QUERY_STRING, CONTENT_LENGTH, CONTENT_TYPE, HTTP_<NAME>) and
 * goes, like in etc/lighttpd.conf.in, to the program that serves its path,
 * else to health (the catch-all that answers 404).  The config is fixed:
 * master key sk-1234, small body caps so 413 is reachable.
 *
 * Properties checked beyond "no crash, no leak, no UB":
 *  - a request that passes has every required field, every given field
 *    well-formed for its kind (ids are valid ids, money and counts >= 0,
 *    ...), a JSON object body within the cap, and was authenticated with
 *    the master key when the route needs a key (no database is configured,
 *    so no other key can pass as a virtual key);
 *  - a request that fails is a client error (never 500: the config is
 *    good), a 422 names one of the route's fields, and its envelope is
 *    valid UTF-8 JSON that reads back with the same message, type and code.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "app.h"
#include "err.h"
#include "fields.h"
#include "front-programs.h"
#include "period.h"
#include "util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MASTER_KEY "sk-1234"
#define MGMT_CAP   4096
#define LLM_CAP    6000
#define MAX_ENV    40

static const char config_text[] =
        "model_list:\n"
        "  - model_name: gpt-4o-mini\n"
        "    litellm_params: {model: mock/gpt-4o-mini}\n"
        "    model_info:\n"
        "      input_cost_per_token: 0.00000015\n"
        "      output_cost_per_token: 0.0000006\n"
        "general_settings:\n"
        "  master_key: " MASTER_KEY "\n"
        "tollgate_settings:\n"
        "  max_management_body: 4096\n"
        "  max_llm_body: 6000\n";

static char tmpdir[64];
static char config_path[96];
static char master_hash[65];

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)))
__attribute__((noreturn));

static void
fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fuzz-front: property violated: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	abort();
}

static void
cleanup(void)
{
	unlink(config_path);
	rmdir(tmpdir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	FILE *f;

	(void)argc;
	(void)argv;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/tg-fuzz-front-XXXXXX");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		exit(1);
	}
	snprintf(config_path, sizeof(config_path), "%s/config.yaml", tmpdir);
	atexit(cleanup);
	f = fopen(config_path, "w");
	if (f == NULL || fputs(config_text, f) == EOF || fclose(f) != 0) {
		perror(config_path);
		exit(1);
	}
	setenv("TOLLGATE_CONFIG", config_path, 1);
	setenv("TOLLGATE_PRICE_FILE", "/nonexistent/model_prices.json", 1);
	unsetenv("LITELLM_MASTER_KEY");
	unsetenv("DATABASE_URL");
	tg_sha256_hex(MASTER_KEY, strlen(MASTER_KEY), master_hash);
	return 0;
}

/* The request being checked, for inspect(). */
struct request {
	const struct tg_program *prog;
	const struct tg_route *route; /* path and method match, or NULL */
	size_t body_len;
	bool inspected;
};

static const struct tg_program *
program_for(const char *path)
{
	const struct tg_program *const progs[] = {
	        fuzz_prog_chat_completions, fuzz_prog_responses,
	        fuzz_prog_embeddings,       fuzz_prog_completions,
	        fuzz_prog_customer_new,     fuzz_prog_customer_info,
	        fuzz_prog_customer,         fuzz_prog_budget_new,
	        fuzz_prog_budget,           fuzz_prog_key,
	        fuzz_prog_models,           fuzz_prog_messages,
	};

	for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]); i++)
		for (size_t r = 0; r < progs[i]->nroutes; r++)
			if (tg_app_path_matches(progs[i]->routes[r].path, path))
				return progs[i];
	return fuzz_prog_health;
}

static void
check_value(const struct tg_field *f, const struct tg_value *v)
{
	struct tg_period period;

	if (v->given && v->null)
		fail("%s: both given and null", f->name);
	if ((f->flags & TG_FIELD_REQUIRED) && !v->given)
		fail("%s: required but not given", f->name);
	if (!v->given)
		return;
	switch (f->kind) {
	case TG_FIELD_ID:
		if (v->str == NULL || strlen(v->str) != v->len ||
		    !tg_id_valid(v->str, v->len))
			fail("%s: not a valid id", f->name);
		break;
	case TG_FIELD_STRING:
		if (v->str == NULL || strlen(v->str) != v->len ||
		    !tg_utf8_valid(v->str, v->len))
			fail("%s: not valid UTF-8 text", f->name);
		break;
	case TG_FIELD_MONEY:
	case TG_FIELD_COUNT:
		if (v->num < 0)
			fail("%s: negative (%lld)", f->name, (long long)v->num);
		break;
	case TG_FIELD_BOOL:
		if (v->num != 0 && v->num != 1)
			fail("%s: a bool of %lld", f->name, (long long)v->num);
		break;
	case TG_FIELD_DURATION:
		if (v->str == NULL || !tg_period_parse(v->str, &period))
			fail("%s: not a duration", f->name);
		break;
	case TG_FIELD_REGION:
		if (v->str == NULL ||
		    (strcmp(v->str, "eu") != 0 && strcmp(v->str, "us") != 0))
			fail("%s: not a region", f->name);
		break;
	case TG_FIELD_OBJECT:
		if (!json_object_is_type(v->json, json_type_object))
			fail("%s: not an object", f->name);
		break;
	case TG_FIELD_ID_LIST:
		if (!json_object_is_type(v->json, json_type_array) ||
		    json_object_array_length(v->json) == 0)
			fail("%s: not a list of ids", f->name);
		break;
	case TG_FIELD_ARRAY:
		if (!json_object_is_type(v->json, json_type_array))
			fail("%s: not an array", f->name);
		break;
	case TG_FIELD_TIME: break;
	case TG_FIELD_TOKENS:
		if (v->num < 1 || v->num > TG_FIELD_TOKENS_MAX)
			fail("%s: a bound of %lld", f->name, (long long)v->num);
		break;
	case TG_FIELD_PROMPT:
		if (json_object_is_type(v->json, json_type_string))
			break;
		if (!json_object_is_type(v->json, json_type_array) ||
		    json_object_array_length(v->json) == 0)
			fail("%s: not a prompt", f->name);
		if (v->num < 0)
			fail("%s: a bound of %lld", f->name, (long long)v->num);
		break;
	case TG_FIELD_INPUT:
		if (json_object_is_type(v->json, json_type_string))
			break;
		if (!json_object_is_type(v->json, json_type_array))
			fail("%s: not an input", f->name);
		for (size_t i = 0; i < json_object_array_length(v->json); i++)
			if (!json_object_is_type(
			            json_object_array_get_idx(v->json, i),
			            json_type_object))
				fail("%s[%zu]: not an item", f->name, i);
		break;
	case TG_FIELD_MESSAGES:
		if (!json_object_is_type(v->json, json_type_array) ||
		    json_object_array_length(v->json) == 0)
			fail("%s: not a non-empty array", f->name);
		for (size_t i = 0; i < json_object_array_length(v->json); i++) {
			struct json_object *m, *role;

			m = json_object_array_get_idx(v->json, i);
			if (!json_object_object_get_ex(m, "role", &role) ||
			    !json_object_is_type(role, json_type_string))
				fail("%s[%zu]: no string role", f->name, i);
		}
		break;
	}
}

/* What the handler would see: everything the front line promises. */
static void
inspect(const struct tg_req *req, void *arg)
{
	struct request *rq = arg;
	const struct tg_route *route = rq->route;
	struct json_object *json = tg_req_json(req);
	const char *body;
	size_t len;

	rq->inspected = true;
	if (route == NULL)
		fail("passed without a route");
	for (size_t i = 0; i < route->nfields; i++) {
		const struct tg_field *f = &route->fields[i];
		const struct tg_value *v = tg_req_field(req, i);
		struct json_object *in_body;

		check_value(f, v);
		/* A bound goes upstream as the integer the estimate used. */
		if (f->kind == TG_FIELD_TOKENS && v->given &&
		    (!json_object_object_get_ex(json, f->name, &in_body) ||
		     !json_object_is_type(in_body, json_type_int) ||
		     json_object_get_int64(in_body) != v->num))
			fail("%s: the body does not carry the integer %lld",
			     f->name, (long long)v->num);
	}
	if (route->auth != TG_AUTH_NONE &&
	    strcmp(tg_req_key_hash(req), master_hash) != 0)
		fail("passed auth without the master key");
	body = tg_req_body(req, &len);
	if (route->body != TG_BODY_NONE && !tg_utf8_valid(body, len))
		fail("a body that is not UTF-8 passed");
	if (route->body == TG_BODY_NONE) {
		if (json != NULL)
			fail("a JSON body on a route without one");
		return;
	}
	if (!json_object_is_type(json, json_type_object))
		fail("the body is not a JSON object");
	if (len > (route->body == TG_BODY_LLM ? LLM_CAP : MGMT_CAP))
		fail("a body of %zu bytes passed the cap", len);
}

static const char *
member_string(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* The answer in Anthropic's envelope (the messages program's): one of its
 * client-error statuses and types, the same message. */
static void
check_anthropic(const struct tg_err *err)
{
	static const char *const types[] = {
	        "invalid_request_error", "authentication_error",
	        "permission_error",      "not_found_error",
	        "request_too_large",
	};
	int status = 0;
	struct json_object *env = tg_error_envelope_anthropic(err, &status);
	struct json_object *back, *inner;
	const char *text, *type;
	size_t len;
	bool known = false;

	if (status != 400 && status != 401 && status != 404 && status != 413)
		fail("Anthropic status %d for %d", status, tg_err_status(err));
	text = json_object_to_json_string_length(
	        env, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
	        &len);
	back = json_tokener_parse(text);
	type = back != NULL ? member_string(back, "type") : NULL;
	if (type == NULL || strcmp(type, "error") != 0 ||
	    !json_object_object_get_ex(back, "error", &inner))
		fail("Anthropic's envelope does not read back: %s", text);
	type = member_string(inner, "type");
	for (size_t i = 0; type != NULL && i < sizeof(types) / sizeof(types[0]);
	     i++)
		known |= strcmp(type, types[i]) == 0;
	if (!known)
		fail("Anthropic's envelope has type %s", type ? type : "none");
	if (member_string(inner, "message") == NULL ||
	    strcmp(member_string(inner, "message"), err->message) != 0)
		fail("Anthropic's envelope message differs: %s", text);
	json_object_put(back);
	json_object_put(env);
}

/* The answer a client gets for err. */
static void
check_error(const struct request *rq, const struct tg_err *err)
{
	int status = tg_err_status(err);
	struct json_object *env = tg_error_envelope(err), *back, *inner;
	const char *text, *s;
	char code[8];
	size_t len;
	bool named = false;

	switch (status) {
	case 400:
	case 401:
	case 404:
	case 405:
	case 413:
	case 422: break;
	default:
		fail("status %d (%s): %s", status, tg_rc_str(err->rc),
		     err->message);
	}
	if (status == 422) {
		/* The field itself, or a part of it ("messages[0].role"). */
		for (size_t i = 0; rq->route && i < rq->route->nfields; i++) {
			const char *name = rq->route->fields[i].name;
			size_t n = strlen(name);

			named |= strncmp(name, err->param, n) == 0 &&
			         (err->param[n] == '\0' ||
			          err->param[n] == '[' || err->param[n] == '.');
		}
		if (!named)
			fail("422 with param '%s', not a field of the route",
			     err->param);
	}
	text = json_object_to_json_string_length(
	        env, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
	        &len);
	if (!tg_utf8_valid(text, len))
		fail("the error envelope is not valid UTF-8: %s", text);
	back = json_tokener_parse(text);
	if (back == NULL || !json_object_object_get_ex(back, "error", &inner))
		fail("the error envelope does not read back: %s", text);
	snprintf(code, sizeof(code), "%d", status);
	if ((s = member_string(inner, "message")) == NULL ||
	    strcmp(s, err->message) != 0)
		fail("envelope message differs: %s", text);
	if ((s = member_string(inner, "type")) == NULL ||
	    strcmp(s, tg_err_type(err)) != 0)
		fail("envelope type differs: %s", text);
	if ((s = member_string(inner, "code")) == NULL || strcmp(s, code) != 0)
		fail("envelope code differs: %s", text);
	json_object_put(back);
	json_object_put(env);
	if (rq->prog->envelope == TG_ENVELOPE_ANTHROPIC)
		check_anthropic(err);
}

/* One line of in[*pos..end): its start and length without CR LF / LF. */
static bool
next_line(const char *in, size_t end, size_t *pos, const char **line,
          size_t *len)
{
	const char *nl;

	if (*pos >= end)
		return false;
	*line = in + *pos;
	nl = memchr(*line, '\n', end - *pos);
	*len = nl ? (size_t)(nl - *line) : end - *pos;
	*pos += *len + (nl != NULL);
	if (*len > 0 && (*line)[*len - 1] == '\r')
		(*len)--;
	return true;
}

/* "NAME=value" as a NUL-terminated string (NULs in value cut it short). */
static char *
env_entry(const char *name, size_t nlen, const char *value, size_t vlen)
{
	char *e = tg_xmalloc(nlen + vlen + 2);

	memcpy(e, name, nlen);
	e[nlen] = '=';
	memcpy(e + nlen + 1, value, vlen);
	e[nlen + 1 + vlen] = '\0';
	return e;
}

/* A header name as CGI spells it: HTTP_ + upper case, '-' as '_'. */
static char *
header_entry(const char *name, size_t nlen, const char *value, size_t vlen,
             bool *is_length)
{
	char var[128];
	size_t n = 0;

	if (nlen == 14 && strncasecmp(name, "content-length", 14) == 0) {
		*is_length = true;
		return env_entry("CONTENT_LENGTH", 14, value, vlen);
	}
	if (nlen == 12 && strncasecmp(name, "content-type", 12) == 0)
		return env_entry("CONTENT_TYPE", 12, value, vlen);
	if (nlen > sizeof(var) - 6)
		nlen = sizeof(var) - 6;
	memcpy(var, "HTTP_", 5);
	n = 5;
	for (size_t i = 0; i < nlen; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c >= 'a' && c <= 'z')
			c = (unsigned char)(c - 'a' + 'A');
		else if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
			c = '_';
		var[n++] = (char)c;
	}
	return env_entry(var, n, value, vlen);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	char *envp[MAX_ENV + 1];
	size_t nenv = 0, pos = 0, len, mlen, ulen;
	const char *line, *sp, *uri, *q, *body;
	char *path, lenbuf[32];
	bool have_length = false;
	struct request rq = {0};
	struct tg_err err;
	enum tg_rc rc;

	if (!next_line(in, size, &pos, &line, &len))
		return 0;
	/* The request line. */
	sp = memchr(line, ' ', len);
	mlen = sp ? (size_t)(sp - line) : len;
	envp[nenv++] = env_entry("REQUEST_METHOD", 14, line, mlen);
	uri = sp ? sp + 1 : line + len;
	ulen = len - (size_t)(uri - line);
	sp = memchr(uri, ' ', ulen);
	if (sp != NULL)
		ulen = (size_t)(sp - uri);
	envp[nenv++] = env_entry("REQUEST_URI", 11, uri, ulen);
	q = memchr(uri, '?', ulen);
	envp[nenv++] = q ? env_entry("QUERY_STRING", 12, q + 1,
	                             ulen - (size_t)(q + 1 - uri))
	                 : env_entry("QUERY_STRING", 12, "", 0);
	envp[nenv++] = env_entry("SERVER_PROTOCOL", 15, "HTTP/1.1", 8);
	/* Headers, up to a blank line. */
	while (next_line(in, size, &pos, &line, &len) && len > 0) {
		const char *colon = memchr(line, ':', len);
		const char *value;
		size_t vlen;

		if (colon == NULL || colon == line || nenv == MAX_ENV - 1)
			continue;
		value = colon + 1;
		vlen = len - (size_t)(value - line);
		while (vlen > 0 && (*value == ' ' || *value == '\t')) {
			value++;
			vlen--;
		}
		envp[nenv++] = header_entry(line, (size_t)(colon - line), value,
		                            vlen, &have_length);
	}
	body = in + pos;
	len = size - pos;
	/* Servers pass the length of the body they read. */
	if (!have_length && len > 0) {
		snprintf(lenbuf, sizeof(lenbuf), "%zu", len);
		envp[nenv++] =
		        env_entry("CONTENT_LENGTH", 14, lenbuf, strlen(lenbuf));
	}
	envp[nenv] = NULL;

	/* The program and route the request is for (serve() strips the
	 * query the same way). */
	path = tg_xstrdup(envp[1] + strlen("REQUEST_URI="));
	if (path[0] == '\0') {
		free(path);
		path = tg_xstrdup("/");
	}
	path[strcspn(path, "?")] = '\0';
	rq.prog = program_for(path);
	for (size_t r = 0; r < rq.prog->nroutes && rq.route == NULL; r++)
		if (tg_app_path_matches(rq.prog->routes[r].path, path) &&
		    strcmp(rq.prog->routes[r].method,
		           envp[0] + strlen("REQUEST_METHOD=")) == 0)
			rq.route = &rq.prog->routes[r];
	rq.body_len = len;

	tg_err_clear(&err);
	rc = tg_app_front_line(rq.prog, envp, body, len, inspect, &rq, &err);
	if (rc == TG_OK && !rq.inspected)
		fail("passed but the request was not inspected");
	if (rc != TG_OK) {
		if (err.rc != rc)
			fail("rc %d but err says %d", rc, err.rc);
		check_error(&rq, &err);
	}

	free(path);
	for (size_t i = 0; i < nenv; i++)
		free(envp[i]);
	return 0;
}
