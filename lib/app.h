/*
 * app: the front line every program shares (cgit's command table, kcgi's
 * validated input).
 *
 * A program is a table of routes.  tg_app_main() runs the FastCGI accept
 * loop (or serves exactly one request as plain CGI), and for each request:
 * routes on REQUEST_URI (query stripped; 404 unknown path, 405 + Allow for
 * a wrong method), checks the key (SPEC 1), reads the body under its size
 * cap, parses it, validates the route's fields, and only then calls the
 * handler.  Errors from any step are answered in the OpenAI envelope.
 */
#ifndef TG_APP_H
#define TG_APP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "config.h"
#include "db.h"
#include "err.h"
#include "fields.h"
#include "jsonx.h"
#include "key.h"

enum tg_body {
	TG_BODY_NONE, /* GET: fields come from the query string */
	TG_BODY_MGMT, /* a JSON object, management size cap */
	TG_BODY_LLM,  /* a JSON object, LLM size cap */
};

/*
 * Who may call a route: the principals it admits, as bits.  Authentication
 * yields one (SPEC 1, 13): the master key (compared in constant time), or a
 * virtual key (lib/key.h: looked up by its SHA-256, refused when unknown,
 * blocked or expired).  A key that authenticates but is not admitted gets
 * 403 permission_error; a missing or invalid key 401.
 */
enum tg_auth {
	TG_AUTH_NONE = 0,         /* no key needed (health) */
	TG_AUTH_MASTER = 1u << 0, /* the master key of the config */
	TG_AUTH_KEY = 1u << 1,    /* a virtual key (SPEC 13) */
};

struct tg_req;

struct tg_route {
	/* e.g. "/customer/new"; a segment "*" matches any one non-empty
	 * segment ("/v1/responses/ * /cancel"), which the handler reads
	 * with tg_req_path_arg() */
	const char *path;
	const char *method; /* "GET", "POST" or "DELETE" */
	unsigned auth;      /* enum tg_auth bits; TG_AUTH_NONE: open */
	enum tg_body body;
	const struct tg_field *fields;
	size_t nfields;
	/* Answer the request (tg_req_respond_*) and return TG_OK, or return
	 * an error for the front line to answer. */
	enum tg_rc (*handler)(struct tg_req *req, struct tg_err *err);
};

/* The shape a program answers its errors in, from the front line's on. */
enum tg_envelope {
	TG_ENVELOPE_OPENAI = 0, /* {"error": {message, type, param, code}} */
	/* {"type": "error", "error": {type, message}}, at Anthropic's
	 * statuses (tg_err_anthropic) */
	TG_ENVELOPE_ANTHROPIC,
};

struct tg_program {
	const char *name;
	const struct tg_route *routes;
	size_t nroutes;
	enum tg_envelope envelope; /* unset: OpenAI's */
};

/* Whether path is one that route path pattern names (struct tg_route's
 * path: "*" is any one segment of an id's characters). */
bool tg_app_path_matches(const char *pattern, const char *path);

/* Run prog until SIGTERM (FastCGI) or for one request (CGI).  Exit code. */
int tg_app_main(const struct tg_program *prog);

/*
 * The front line alone, on a request held in memory, for the fuzzer
 * (tests/fuzz/fuzz-front.c) and tests: exactly what a request goes through
 * before prog's handler runs (routing, key, size cap, JSON parse, fields).
 * envp is the request's environment as the web server passes it ("NAME=
 * value" strings, NULL-terminated: REQUEST_METHOD, REQUEST_URI,
 * CONTENT_LENGTH, HTTP_*...), body[0..len) the bytes after the headers.  The
 * config is loaded as for a real request (TOLLGATE_CONFIG).  When the front
 * line passes and inspect is not NULL, inspect(req, arg) sees the request as
 * the handler would (it must not answer).  No handler runs, nothing is
 * written, everything is freed.  Returns TG_OK, or the rc the request would
 * be answered with, err filled.
 */
enum tg_rc tg_app_front_line(const struct tg_program *prog, char **envp,
                             const char *body, size_t len,
                             void (*inspect)(const struct tg_req *req,
                                             void *arg),
                             void *arg, struct tg_err *err);

/* ---- what a handler may use ---- */

/* The path segment matched by the route's i-th "*" (decoded: no
 * percent-escapes are in it, the front line refuses them), or NULL. */
const char *tg_req_path_arg(const struct tg_req *req, size_t i);
/* The request's method ("GET", "POST", ...). */
const char *tg_req_method(const struct tg_req *req);
/* The request's path (without the query). */
const char *tg_req_path(const struct tg_req *req);
/* The query string as it came (after '?'), or NULL. */
const char *tg_req_query(const struct tg_req *req);

/* The request's id; also the x-litellm-call-id header and ledger key. */
const char *tg_req_id(const struct tg_req *req);
/* The loaded config (handlers only run when it loaded). */
const struct tg_config *tg_req_config(const struct tg_req *req);
/* The process's database connection, opened on first use. TG_ERR_DB. */
enum tg_rc tg_req_db(struct tg_req *req, struct tg_db **out,
                     struct tg_err *err);
/* Validated field i of the route's table. */
const struct tg_value *tg_req_field(const struct tg_req *req, size_t i);
/* Field i's text (ID, STRING, DURATION, REGION) when given, else NULL. */
const char *tg_req_str(const struct tg_req *req, size_t i);
/* The parsed JSON body (TG_BODY_MGMT/LLM), borrowed. */
struct json_object *tg_req_json(const struct tg_req *req);
/* The raw body and its length. */
const char *tg_req_body(const struct tg_req *req, size_t *len);
/* A request header by its HTTP name ("x-litellm-customer-id"), or NULL. */
const char *tg_req_header(const struct tg_req *req, const char *name);
/* sha256 hex of the key that authenticated the request ("" if none). */
const char *tg_req_key_hash(const struct tg_req *req);
/* The virtual key that authenticated the request, with its budget and
 * limits as loaded (borrowed); NULL for the master key or no key. */
const struct tg_key *tg_req_key(const struct tg_req *req);
/* Whether the request presents the master key (compared in constant
 * time), on any route, an open one too (what it may be told). */
bool tg_req_master(struct tg_req *req);
/* When the request started (Unix epoch microseconds). */
int64_t tg_req_start_us(const struct tg_req *req);
/* Whether the request presents key (a setting's value, such as
 * metrics_key), compared in constant time; false for none. */
bool tg_req_presents(struct tg_req *req, const char *key);
/*
 * The request is an LLM call of route (an API's path) for model (NULL:
 * none yet): once it is answered, it is counted in
 * tollgate_requests_total with the status it got (SPEC 15).  Copied.
 */
void tg_req_note_call(struct tg_req *req, const char *route, const char *model);

/* Add a response header (before responding).  Copied. */
void tg_req_add_header(struct tg_req *req, const char *name, const char *value);
/* Answer with status and obj (ownership taken). */
void tg_req_respond_json(struct tg_req *req, int status,
                         struct json_object *obj);
/* Answer with status and a JSON text as is (e.g. the upstream's body). */
void tg_req_respond_raw(struct tg_req *req, int status, const char *body,
                        size_t len);
/* Answer with status and body of content_type (not JSON). */
void tg_req_respond_body(struct tg_req *req, int status,
                         const char *content_type, const char *body,
                         size_t len);
/*
 * Begin a streamed answer: the status line, content_type and the headers
 * added so far, with no Content-Length.  Then tg_req_stream_write() sends
 * and flushes each piece; it returns false once the client has gone (and
 * drops every later write), so the caller can stop relaying but finish its
 * own work.
 */
void tg_req_stream_begin(struct tg_req *req, int status,
                         const char *content_type);
bool tg_req_stream_write(struct tg_req *req, const char *buf, size_t len);
/* Send out's text as the next piece of a streamed answer of content_type
 * (begun with status 200 if it was not yet) and empty out; false once the
 * client has gone. */
bool tg_req_stream_buf(struct tg_req *req, const char *content_type,
                       struct tg_buf *out);
/* Whether an answer (whole or streamed) has been started. */
bool tg_req_responded(const struct tg_req *req);

/* Answer with err in the program's envelope. */
void tg_req_respond_error(struct tg_req *req, const struct tg_err *err);

/* The program's envelope. */
enum tg_envelope tg_req_envelope(const struct tg_req *req);

/* The envelope {"error":{message,type,param,code}} for err (new ref). */
struct json_object *tg_error_envelope(const struct tg_err *err);

/* Anthropic's {"type":"error","error":{"type","message"}} for err (new
 * ref); *status, when not NULL, the status it goes with. */
struct json_object *tg_error_envelope_anthropic(const struct tg_err *err,
                                                int *status);

/* Whether text[0..len) is an error body in envelope e's shape. */
bool tg_error_envelope_is(enum tg_envelope e, const char *text, size_t len);

#endif
