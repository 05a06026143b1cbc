/*
 * upstream: calling the LLM provider of a deployment (SPEC 7).
 *
 * The process keeps one libcurl easy handle per upstream host, so the TCP
 * connection (and TLS session) is reused across requests.  Provider
 * specifics (URL, auth header, body mapping) live in a table in
 * upstream.c; mock/ answers locally without network.
 */
#ifndef TG_UPSTREAM_H
#define TG_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "config.h"
#include "err.h"
#include "provider.h"

struct tg_upstream_response {
	long status; /* HTTP status from the upstream (mock: 200) */
	char *body;  /* NUL-terminated, owned; NULL if none */
	size_t body_len;
	char *content_type; /* owned, may be NULL */
	char api_base[512]; /* the base URL used, for the ledger ("mock" for
	                       mock/) */
};

/* The base URL d is called at (api_base or the provider's), "mock" for
 * mock/: what the ledger records, never a key. */
const char *tg_upstream_base(const struct tg_deployment *d);

/* Process-wide state: global curl init and the handle cache. */
enum tg_rc tg_upstream_init(struct tg_err *err);
void tg_upstream_cleanup(void);

/*
 * The upstream body for deployment d from the client's body (of any API):
 * model set to d->upstream_model, and the provider's mappings (mistral: no
 * "user", max_completion_tokens -> max_tokens, no stream_options).  Every other
 * field passes through unchanged.  text[0..text_len) is the client's body
 * as it came (NULL: not at hand), body what json-c read of it: where the
 * text is strict JSON the fields are copied from it byte for byte, else
 * body is printed again.  Returns a malloc'd NUL-terminated JSON text
 * (*len set).  Neither body nor text is modified.
 */
char *tg_upstream_body(const struct tg_deployment *d, struct json_object *body,
                       const char *text, size_t text_len, size_t *len);

/*
 * One request to a deployment's upstream: POST of body to the API's
 * endpoint, or, for the objects an upstream keeps (a stored response), a
 * GET, DELETE or POST at a path below it.
 */
struct tg_upstream_request {
	enum tg_api api;
	const char *method;  /* "POST" (NULL means it), "GET", "DELETE" */
	const char *subpath; /* after the API's path ("/resp_1/cancel"),
	                        URL-escaped by the caller; NULL: none */
	const char *query;   /* a query string to pass on ("limit=5"),
	                        without '?'; NULL: none */
	const char *body;    /* NULL: no body */
	size_t body_len;
	long timeout_s; /* <= 0: the default, 600 s */
	/* Header lines "name: value" to send besides the provider's own
	 * (the client's that the provider row passes on), NULL-terminated;
	 * NULL: none. */
	const char *const *headers;
};

/*
 * The header lines of the client's request that d's provider passes on
 * (its client_headers: Anthropic's anthropic-beta), from get(arg, name)
 * (NULL when the client sent none), into lines[0..n) as "name: value"
 * strings, NULL-terminated (n >= 5).  Free with tg_upstream_headers_free().
 */
void tg_upstream_client_headers(const struct tg_deployment *d,
                                const char *(*get)(const void *arg,
                                                   const char *name),
                                const void *arg, char **lines, size_t n);
void tg_upstream_headers_free(char **lines);

/*
 * Send rq to d's upstream and collect the answer (capped at 64 MiB).  Any
 * HTTP answer is TG_OK with out->status set, 2xx or not.
 * TG_ERR_UPSTREAM_CONNECT when the connection fails (502),
 * TG_ERR_TIMEOUT when the timeout passes (408).  Free out with
 * tg_upstream_response_free().  The api_key never appears in err.
 */
enum tg_rc tg_upstream_call(const struct tg_deployment *d,
                            const struct tg_upstream_request *rq,
                            struct tg_upstream_response *out,
                            struct tg_err *err);
void tg_upstream_response_free(struct tg_upstream_response *r);

/*
 * Receives the bytes of a streamed (2xx) answer as they arrive.  Anything
 * but TG_OK aborts the transfer.
 */
typedef enum tg_rc (*tg_upstream_data_fn)(void *arg, const char *buf,
                                          size_t len);

/*
 * tg_upstream_call for "stream": true: a 2xx answer is passed to fn as it
 * arrives (out->body stays NULL); any other status is collected into out
 * as by tg_upstream_call, so its error can be relayed.  A timeout or a
 * broken connection after the stream began is reported like before it.
 */
enum tg_rc tg_upstream_stream(const struct tg_deployment *d,
                              const struct tg_upstream_request *rq,
                              tg_upstream_data_fn fn, void *arg,
                              struct tg_upstream_response *out,
                              struct tg_err *err);

#endif
