/*
 * upstream: calling the LLM provider of a deployment (SPEC 7).
 *
 * What differs between providers (default base URL, URL shape, auth header,
 * body mappings) is one row of the provider table (lib/provider.c); the
 * call itself is shared.  mock/ answers locally (lib/upstream_mock.c).
 *
 * Connections: a FastCGI process serves many requests, so it keeps one curl
 * easy handle per upstream scheme+host+port in a small cache; curl keeps the
 * handle's connection (and TLS session) open between calls.  The cache is
 * process-wide and not locked: the programs are single-threaded.
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "jsonx.h"
#include "upstream.h"
#include "upstream_mock.h"
#include "util.h"

/* Hard cap on an upstream answer (STYLE: every network buffer has a cap). */
#define BODY_CAP                  ((size_t)64 * 1024 * 1024)
#define CONNECT_TIMEOUT_S         10L
#define DEFAULT_TIMEOUT_S         600L
#define AZURE_DEFAULT_API_VERSION "2024-10-21"
/* Upstream hosts whose handles are kept; the least recently used goes. */
#define CONN_SLOTS 8

const char *
tg_upstream_base(const struct tg_deployment *d)
{
	const struct tg_provider_info *prov = tg_provider(d->provider);

	if (prov->local)
		return "mock";
	return d->api_base          ? d->api_base
	       : prov->default_base ? prov->default_base
	                            : "";
}

/* ---- body mapping ------------------------------------------------------- */

/* Whether d's call asks its upstream for the call's cost (the provider's
 * cost_on_request), which the client's body does not do itself. */
static bool
ask_cost(const struct tg_provider_info *prov, const struct tg_deployment *d,
         struct json_object *body)
{
	return prov->cost_on_request && d->trust_upstream_cost &&
	       !json_object_object_get_ex(body, "usage", NULL);
}

/*
 * The mapped body built from json-c's objects: a deep copy, changed and
 * printed.  For what the walk of the client's text is not sure of.
 */
static char *
body_from_json(const struct tg_provider_info *prov,
               const struct tg_deployment *d, struct json_object *body,
               size_t *len)
{
	struct json_object *copy = NULL, *mct;
	const char *text;
	size_t n;
	char *res;

	/* A deep copy keeps the caller's body (logged, estimated) intact. */
	if (body == NULL || !json_object_is_type(body, json_type_object) ||
	    json_object_deep_copy(body, &copy, NULL) != 0)
		copy = json_object_new_object();
	if (copy == NULL)
		abort();
	json_object_object_add(
	        copy, "model",
	        json_object_new_string(d->upstream_model ? d->upstream_model
	                                                 : ""));
	if (prov->drop_user)
		json_object_object_del(copy, "user");
	if (prov->no_stream_options)
		json_object_object_del(copy, "stream_options");
	if (prov->max_tokens_only &&
	    json_object_object_get_ex(copy, "max_completion_tokens", &mct)) {
		/* The newer field wins, as in the budget estimate. */
		json_object_object_add(copy, "max_tokens",
		                       json_object_get(mct));
		json_object_object_del(copy, "max_completion_tokens");
	}
	if (ask_cost(prov, d, body)) {
		struct json_object *u = json_object_new_object();

		json_object_object_add(u, "include",
		                       json_object_new_boolean(1));
		json_object_object_add(copy, "usage", u);
	}
	text = json_object_to_json_string_length(
	        copy, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
	        &n);
	if (text == NULL)
		abort();
	res = tg_xstrndup(text, n);
	*len = n;
	json_object_put(copy);
	return res;
}

/* The top-level members of a client's body text, as walked; a body with
 * more (the walk takes as many), or a longer key, is printed from its
 * objects. */
#define BODY_MEMBERS 64
#define BODY_KEY_MAX 256

struct body_walk {
	struct {
		const char *key;
		size_t key_len, value, value_len;
	} m[BODY_MEMBERS];
	size_t n;
};

static bool
key_is(const char *key, size_t len, const char *name)
{
	return len == strlen(name) && memcmp(key, name, len) == 0;
}

static bool
body_member(void *arg, const char *key, size_t key_len, size_t value,
            size_t value_len)
{
	struct body_walk *b = arg;

	if (b->n == BODY_MEMBERS || key_len >= BODY_KEY_MAX)
		return false;
	b->m[b->n].key = key;
	b->m[b->n].key_len = key_len;
	b->m[b->n].value = value;
	b->m[b->n].value_len = value_len;
	b->n++;
	return true;
}

/*
 * The members the proxy itself may have changed in the client's body
 * object, which go upstream as the object has them: model (replaced
 * here), the token bounds and counts of every API's field table
 * (lib/fields.c, TG_FIELD_TOKENS: "5" or 5.0 goes as 5, the bound the
 * estimate used), stream_options (lib/api_chat.c asks for include_usage)
 * and metadata (lib/meter.c takes its tags off).  Whatever else changes
 * the body must be named here;
 * tests/unit/test-api.c checks every TG_FIELD_TOKENS field of every
 * adapter's table.
 */
static const char *const printed_members[] = {"model",
                                              "max_tokens",
                                              "max_completion_tokens",
                                              "n",
                                              "best_of",
                                              "max_output_tokens",
                                              "max_tool_calls",
                                              "stream_options",
                                              "metadata"};

static bool
printed_member(const char *key, size_t len)
{
	for (size_t i = 0;
	     i < sizeof(printed_members) / sizeof(printed_members[0]); i++)
		if (key_is(key, len, printed_members[i]))
			return true;
	return false;
}

/* Member key of body as json-c prints it, under key name (NULL: key). */
static void
print_member(struct tg_json_text *t, struct json_object *body, const char *key,
             const char *name)
{
	struct json_object *v;
	const char *text;
	size_t n;

	if (!json_object_object_get_ex(body, key, &v))
		return;
	text = json_object_to_json_string_length(
	        v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
	tg_json_text_key(t, name ? name : key);
	tg_json_text_raw(t, text, n);
}

/*
 * The mapped body spliced from the client's own text: every member the
 * mapping keeps is copied as the client wrote it (no copy of the objects,
 * no printing of the messages: for a long prompt that was most of the
 * cost of a call), model first, then the printed members.  false when the
 * walk is not sure json-c reads the text as it does
 * (tg_json_walk_members), or when the text and the object do not have the
 * same members.
 */
static bool
body_from_text(const struct tg_provider_info *prov,
               const struct tg_deployment *d, struct json_object *body,
               const char *text, size_t text_len, char **out, size_t *len)
{
	struct body_walk b;
	struct tg_json_text t;
	size_t i, copied = 0, printed = 0;
	bool mct;

	b.n = 0;
	if (body == NULL || !json_object_is_type(body, json_type_object) ||
	    !tg_json_walk_members(text, text_len, body_member, &b))
		return false;
	/* The text's other members must be the object's: each is there,
	 * and no more (the walk refuses a key that repeats). */
	for (i = 0; i < b.n; i++) {
		char key[BODY_KEY_MAX];

		if (printed_member(b.m[i].key, b.m[i].key_len))
			continue;
		/* A walked key has no escapes and no byte below 0x20. */
		memcpy(key, b.m[i].key, b.m[i].key_len);
		key[b.m[i].key_len] = '\0';
		if (!json_object_object_get_ex(body, key, NULL))
			return false;
		copied++;
	}
	for (i = 0; i < sizeof(printed_members) / sizeof(printed_members[0]);
	     i++)
		if (json_object_object_get_ex(body, printed_members[i], NULL))
			printed++;
	if ((size_t)json_object_object_length(body) != copied + printed)
		return false;

	tg_json_text_init(&t, SIZE_MAX);
	tg_json_text_begin_object(&t);
	tg_json_text_key_literal(&t, "model");
	tg_json_text_str(&t, d->upstream_model ? d->upstream_model : "");
	for (i = 0; i < b.n; i++) {
		const char *k = b.m[i].key;
		size_t kn = b.m[i].key_len;

		if (printed_member(k, kn) ||
		    (prov->drop_user && key_is(k, kn, "user")))
			continue;
		tg_json_text_key_plain(&t, k, kn);
		tg_json_text_raw(&t, text + b.m[i].value, b.m[i].value_len);
	}
	mct = prov->max_tokens_only &&
	      json_object_object_get_ex(body, "max_completion_tokens", NULL);
	/* printed_members[0] is the model, written first. */
	for (i = 1; i < sizeof(printed_members) / sizeof(printed_members[0]);
	     i++) {
		const char *name = printed_members[i];

		if ((prov->max_tokens_only &&
		     strcmp(name, "max_completion_tokens") == 0) ||
		    (prov->no_stream_options &&
		     strcmp(name, "stream_options") == 0))
			continue;
		/* The newer field wins, as in the budget estimate. */
		if (mct && strcmp(name, "max_tokens") == 0)
			print_member(&t, body, "max_completion_tokens", name);
		else
			print_member(&t, body, name, NULL);
	}
	if (ask_cost(prov, d, body)) {
		tg_json_text_key_literal(&t, "usage");
		tg_json_text_raw(&t, "{\"include\":true}", 16);
	}
	tg_json_text_end_object(&t);
	if (!tg_json_text_finish(&t, out, len))
		abort(); /* no cap */
	return true;
}

char *
tg_upstream_body(const struct tg_deployment *d, struct json_object *body,
                 const char *text, size_t text_len, size_t *len)
{
	const struct tg_provider_info *prov = tg_provider(d->provider);
	char *res;

	if (text != NULL &&
	    body_from_text(prov, d, body, text, text_len, &res, len))
		return res;
	return body_from_json(prov, d, body, len);
}

/* ---- connection cache --------------------------------------------------- */

struct conn {
	char key[300]; /* scheme://host:port */
	CURL *easy;
	unsigned long last_used;
};

static struct conn conns[CONN_SLOTS];
static unsigned long use_clock;
static bool curl_ready;

enum tg_rc
tg_upstream_init(struct tg_err *err)
{
	if (curl_ready)
		return TG_OK;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                  "Could not initialise libcurl");
	curl_ready = true;
	return TG_OK;
}

void
tg_upstream_cleanup(void)
{
	size_t i;

	for (i = 0; i < CONN_SLOTS; i++) {
		if (conns[i].easy != NULL)
			curl_easy_cleanup(conns[i].easy);
		memset(&conns[i], 0, sizeof(conns[i]));
	}
	if (curl_ready)
		curl_global_cleanup();
	curl_ready = false;
}

/* The cached handle for key, or a new one in the least recently used slot. */
static CURL *
conn_get(const char *key)
{
	struct conn *c = NULL;
	size_t i;

	for (i = 0; i < CONN_SLOTS; i++)
		if (conns[i].easy != NULL && strcmp(conns[i].key, key) == 0) {
			c = &conns[i];
			break;
		}
	if (c == NULL) {
		c = &conns[0];
		for (i = 0; i < CONN_SLOTS; i++) {
			if (conns[i].easy == NULL) {
				c = &conns[i];
				break;
			}
			if (conns[i].last_used < c->last_used)
				c = &conns[i];
		}
		if (c->easy != NULL)
			curl_easy_cleanup(c->easy);
		c->easy = curl_easy_init();
		if (c->easy == NULL)
			abort();
		snprintf(c->key, sizeof(c->key), "%s", key);
	} else {
		/* Options go, the live connection and TLS session stay. */
		curl_easy_reset(c->easy);
	}
	c->last_used = ++use_clock;
	return c->easy;
}

/* ---- the call ----------------------------------------------------------- */

struct sink {
	char *buf;
	size_t len, cap;
	bool over;
	/* Streaming: a 2xx answer goes to fn as it arrives; any other
	 * answer is collected, so its error can be relayed whole. */
	CURL *easy;
	tg_upstream_data_fn fn;
	void *arg;
	enum tg_rc fn_rc;
};

static size_t
on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct sink *s = ud;
	size_t n = size * nmemb;

	if (s->fn != NULL) {
		long status = 0;

		curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
		if (status >= 200 && status < 300) {
			s->fn_rc = s->fn(s->arg, ptr, n);
			return s->fn_rc == TG_OK ? n : 0;
		}
	}

	if (n > BODY_CAP - s->len) {
		s->over = true;
		return 0; /* curl stops with CURLE_WRITE_ERROR */
	}
	if (s->len + n + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 16384;

		while (cap < s->len + n + 1)
			cap *= 2;
		if (cap > BODY_CAP + 1)
			cap = BODY_CAP + 1;
		s->buf = tg_xrealloc(s->buf, cap);
		s->cap = cap;
	}
	memcpy(s->buf + s->len, ptr, n);
	s->len += n;
	s->buf[s->len] = '\0';
	return n;
}

/*
 * Split url into the cache key (scheme://host:port) and a host:port for
 * messages.  false if the URL cannot be parsed.
 */
static bool
url_host(const char *url, char *key, size_t klen, char *host, size_t hlen)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *h = NULL, *port = NULL;
	bool ok = false;

	if (u == NULL)
		abort();
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) !=
	            CURLUE_OK)
		goto out;
	snprintf(key, klen, "%s://%s:%s", scheme, h, port);
	snprintf(host, hlen, "%s:%s", h, port);
	ok = true;
out:
	curl_free(scheme);
	curl_free(h);
	curl_free(port);
	curl_url_cleanup(u);
	return ok;
}

/* base without trailing slashes, into a new string. */
static char *
trim_base(const char *base)
{
	size_t n = strlen(base);

	while (n > 0 && base[n - 1] == '/')
		n--;
	return tg_xstrndup(base, n);
}

/*
 * The URL of rq for deployment d; NULL (err set) if it has none.  The
 * API's path below the base, then rq's subpath and query; Azure's keep the
 * deployment in the path (the Responses API has none there: the body's
 * model names it) and the api-version in the query.
 */
static char *
endpoint_url(const struct tg_deployment *d, const struct tg_provider_info *prov,
             const char *base, const struct tg_upstream_request *rq,
             struct tg_err *err)
{
	const char *path = tg_api_path(rq->api);
	const char *sub = rq->subpath != NULL ? rq->subpath : "";
	const char *query = rq->query != NULL ? rq->query : "";
	char *url = NULL, *dep = NULL, *ver = NULL;
	size_t n;

	if (!prov->azure_path) {
		n = strlen(base) + strlen(path) + strlen(sub) + strlen(query) +
		    2;
		url = tg_xmalloc(n);
		snprintf(url, n, "%s%s%s%s%s", base, path, sub,
		         query[0] ? "?" : "", query);
		goto out;
	}
	/* Escaped so that a deployment name cannot reshape the URL. */
	dep = curl_easy_escape(NULL, d->upstream_model ? d->upstream_model : "",
	                       0);
	ver = curl_easy_escape(
	        NULL,
	        d->api_version ? d->api_version : AZURE_DEFAULT_API_VERSION, 0);
	if (dep == NULL || ver == NULL) {
		tg_err_set(err, TG_ERR_INTERNAL, NULL,
		           "Could not build the upstream URL");
		goto out;
	}
	n = strlen(base) + strlen(dep) + strlen(path) + strlen(sub) +
	    strlen(ver) + strlen(query) + 64;
	url = tg_xmalloc(n);
	if (rq->api == TG_API_RESPONSES)
		snprintf(url, n, "%s/openai%s%s?api-version=%s%s%s", base, path,
		         sub, ver, query[0] ? "&" : "", query);
	else
		snprintf(url, n,
		         "%s/openai/deployments/%s%s%s?api-version=%s%s%s",
		         base, dep, path, sub, ver, query[0] ? "&" : "", query);
out:
	curl_free(dep);
	curl_free(ver);
	return url;
}

/* A header line "name: value" for curl, in a new string. */
static char *
header_line(const char *name, const char *prefix, const char *value)
{
	size_t n = strlen(name) + strlen(prefix) + strlen(value) + 3;
	char *h = tg_xmalloc(n);

	snprintf(h, n, "%s: %s%s", name, prefix, value);
	return h;
}

/* The call behind tg_upstream_call (fn NULL) and tg_upstream_stream. */
static enum tg_rc
perform(const struct tg_deployment *d, const struct tg_upstream_request *rq,
        tg_upstream_data_fn fn, void *arg, struct tg_upstream_response *out,
        struct tg_err *err)
{
	const struct tg_provider_info *prov = tg_provider(d->provider);
	struct tg_upstream_response r;
	struct curl_slist *headers = NULL;
	struct sink sink = {NULL, 0, 0, false, NULL, fn, arg, TG_OK};
	char *base = NULL, *url = NULL, *auth = NULL, *version = NULL;
	char *ct = NULL;
	char key[300], host[280];
	enum tg_rc rc = TG_OK;
	const char *method = rq->method != NULL ? rq->method : "POST";
	long timeout_s = rq->timeout_s;
	CURLcode cc;
	CURL *easy = NULL;

	if (prov->local) {
		tg_upstream_mock(d, rq, out);
		if (fn != NULL && out->status == 200) {
			/* The mock's stream arrives in one piece; the relay
			 * still flushes it event by event. */
			rc = fn(arg, out->body, out->body_len);
			free(out->body);
			out->body = NULL;
			out->body_len = 0;
			if (rc != TG_OK)
				tg_err_set(err, rc, NULL,
				           "the stream could not be relayed");
		}
		return rc;
	}
	memset(&r, 0, sizeof(r));
	if (timeout_s <= 0)
		timeout_s = DEFAULT_TIMEOUT_S;
	if (d->api_base == NULL && prov->default_base == NULL) {
		rc = tg_err_set(err, TG_ERR_CONFIG, NULL,
		                "Model %s (%s) has no api_base", d->model_name,
		                d->litellm_model);
		goto out;
	}
	base = trim_base(d->api_base ? d->api_base : prov->default_base);
	url = endpoint_url(d, prov, base, rq, err);
	if (url == NULL) {
		rc = TG_ERR_INTERNAL;
		goto out;
	}
	if (!url_host(url, key, sizeof(key), host, sizeof(host))) {
		rc = tg_err_set(err, TG_ERR_CONFIG, NULL,
		                "Model %s has an invalid api_base",
		                d->model_name);
		goto out;
	}
	rc = tg_upstream_init(err);
	if (rc != TG_OK)
		goto out;
	easy = conn_get(key);
	sink.easy = easy;

	if (rq->body != NULL)
		headers = curl_slist_append(headers,
		                            "Content-Type: application/json");
	/* No "Expect: 100-continue": it costs a round trip per request. */
	headers = curl_slist_append(headers, "Expect:");
	if (d->api_key != NULL && prov->auth != TG_PROVIDER_AUTH_NONE) {
		auth = prov->auth == TG_PROVIDER_AUTH_BEARER
		               ? header_line("Authorization", "Bearer ",
		                             d->api_key)
		       : prov->auth == TG_PROVIDER_AUTH_X_API_KEY
		               ? header_line("x-api-key", "", d->api_key)
		               : header_line("api-key", "", d->api_key);
		headers = curl_slist_append(headers, auth);
	}
	if (prov->version_header != NULL) {
		version = header_line(prov->version_header, "",
		                      d->api_version ? d->api_version
		                                     : prov->default_version);
		headers = curl_slist_append(headers, version);
	}
	for (size_t i = 0; rq->headers != NULL && rq->headers[i] != NULL; i++)
		headers = curl_slist_append(headers, rq->headers[i]);
	if (headers == NULL)
		abort();

	curl_easy_setopt(easy, CURLOPT_URL, url);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
	if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(easy, CURLOPT_POST, 1L);
		curl_easy_setopt(easy, CURLOPT_POSTFIELDS,
		                 rq->body != NULL ? rq->body : "");
		curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
		                 (curl_off_t)rq->body_len);
	} else if (strcmp(method, "GET") == 0) {
		curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
	} else {
		curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method);
	}
	curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT, timeout_s);
	curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(easy, CURLOPT_USERAGENT, "tollgate");
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, &sink);

	cc = curl_easy_perform(easy);
	/* The error texts below name the host only: never the key or query. */
	if (cc == CURLE_OPERATION_TIMEDOUT) {
		rc = tg_err_set(err, TG_ERR_TIMEOUT, NULL,
		                "Request timed out after %ld seconds",
		                timeout_s);
		goto out;
	}
	if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
	    cc == CURLE_COULDNT_RESOLVE_PROXY) {
		rc = tg_err_set(err, TG_ERR_UPSTREAM_CONNECT, NULL,
		                "Connection error: could not connect to "
		                "upstream %s",
		                host);
		goto out;
	}
	if (cc == CURLE_WRITE_ERROR && sink.fn_rc != TG_OK) {
		rc = tg_err_set(err, sink.fn_rc, NULL,
		                "the stream of upstream %s could not be "
		                "relayed",
		                host);
		goto out;
	}
	if (cc == CURLE_WRITE_ERROR && sink.over) {
		rc = tg_err_set(err, TG_ERR_UPSTREAM_CONNECT, NULL,
		                "Connection error: the answer of upstream %s "
		                "exceeds %zu MiB",
		                host, BODY_CAP / (1024 * 1024));
		goto out;
	}
	if (cc != CURLE_OK) {
		rc = tg_err_set(err, TG_ERR_UPSTREAM_CONNECT, NULL,
		                "Connection error: %s (upstream %s)",
		                curl_easy_strerror(cc), host);
		goto out;
	}
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &r.status);
	if (curl_easy_getinfo(easy, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK &&
	    ct != NULL)
		r.content_type = tg_xstrdup(ct);
	r.body = sink.buf ? sink.buf : tg_xstrdup("");
	r.body_len = sink.len;
	sink.buf = NULL;
	snprintf(r.api_base, sizeof(r.api_base), "%s", base);
	*out = r;
out:
	/* The easy handle keeps a pointer to these: detach before freeing. */
	if (headers != NULL) {
		curl_easy_setopt(easy, CURLOPT_HTTPHEADER, NULL);
		curl_easy_setopt(easy, CURLOPT_POSTFIELDS, NULL);
		curl_easy_setopt(easy, CURLOPT_WRITEDATA, NULL);
	}
	curl_slist_free_all(headers);
	if (auth != NULL) {
		memset(auth, 0, strlen(auth));
		free(auth);
	}
	free(version);
	free(sink.buf);
	free(url);
	free(base);
	return rc;
}

void
tg_upstream_client_headers(const struct tg_deployment *d,
                           const char *(*get)(const void *arg,
                                              const char *name),
                           const void *arg, char **lines, size_t n)
{
	const char *const *names = tg_provider(d->provider)->client_headers;
	size_t used = 0;

	for (size_t i = 0; names != NULL && names[i] != NULL && used + 1 < n;
	     i++) {
		const char *v = get(arg, names[i]);

		/* The web server gave the value; a line break in it could
		 * only be an attack on the header block. */
		if (v != NULL && v[0] != '\0' && strpbrk(v, "\r\n") == NULL)
			lines[used++] = header_line(names[i], "", v);
	}
	lines[used] = NULL;
}

void
tg_upstream_headers_free(char **lines)
{
	for (size_t i = 0; lines[i] != NULL; i++)
		free(lines[i]);
}

enum tg_rc
tg_upstream_call(const struct tg_deployment *d,
                 const struct tg_upstream_request *rq,
                 struct tg_upstream_response *out, struct tg_err *err)
{
	return perform(d, rq, NULL, NULL, out, err);
}

enum tg_rc
tg_upstream_stream(const struct tg_deployment *d,
                   const struct tg_upstream_request *rq, tg_upstream_data_fn fn,
                   void *arg, struct tg_upstream_response *out,
                   struct tg_err *err)
{
	return perform(d, rq, fn, arg, out, err);
}

void
tg_upstream_response_free(struct tg_upstream_response *r)
{
	if (r == NULL)
		return;
	free(r->body);
	free(r->content_type);
	r->body = NULL;
	r->content_type = NULL;
	r->body_len = 0;
}
