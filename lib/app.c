/*
 * app: the FastCGI/CGI loop and the front line of every request.
 *
 * One request at a time per process (the web server decides how many
 * processes run).  What survives between requests: the config, the
 * database connection, the upstream connections.  Everything about one
 * request lives in struct tg_req and is freed when it is answered.
 */
#define _POSIX_C_SOURCE 200809L

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "app.h"
#include "ledger.h"
#include "log.h"
#include "metrics.h"
#include "money.h"
#include "outbox.h"
#include "journal.h"
#include "lease.h"
#include "spool.h"
#include "upstream.h"
#include "util.h"

extern char **environ;

#define MAX_HEADERS 16
/* The most "*" segments a route's path has. */
#define TG_ROUTE_ARGS 2
/* How long one replay of the spool may take, after a response, and how
 * long a process waits before trying again when the database was out of
 * reach (a replay's first settlement can take as long as the database's
 * timeouts: not after every response of an outage). */
#define SPOOL_REPLAY_US  (200 * 1000LL)
#define SPOOL_BACKOFF_US (5 * 1000000LL)
/*
 * Webhook delivery after a response: at most OUTBOX_INLINE_US per request.
 * Meanwhile the web server may already queue the next request on this
 * process, so a receiver that fails or hangs makes the process hold off
 * delivering for a while, doubling up to a few minutes, and one that is
 * merely slow (a round longer than OUTBOX_SLOW_US) for OUTBOX_BACKOFF_US:
 * such a receiver costs one bounded delay per process and period, never
 * one per request, and tools/tollgate-deliver (with the whole
 * webhook_timeout) carries on.
 */
#define OUTBOX_INLINE_US      (200 * 1000LL)
#define OUTBOX_SLOW_US        (100 * 1000LL)
#define OUTBOX_BACKOFF_US     (5 * 1000000LL)
#define OUTBOX_BACKOFF_MAX_US (300 * 1000000LL)
/* How long a failed config load is remembered before trying again. */
#define CONFIG_RETRY_US (5 * 1000000LL)
/* How often a long-lived process looks for a new config or price file. */
#define CONFIG_CHECK_US (1000000LL)

struct tg_hdr {
	char *name;
	char *value;
};

struct tg_req {
	/* I/O: FastCGI streams, or stdin/stdout as plain CGI. */
	FCGX_Request *fcgx;
	char **envp;
	/* The body from memory instead (tg_app_front_line()). */
	const char *mem_body;
	size_t mem_body_left;

	const struct tg_route *route;
	enum tg_envelope envelope; /* the program's */
	const char *method;
	char *path;
	const char *query;
	char *path_args[TG_ROUTE_ARGS]; /* what the route's "*"s matched */
	char call_id[37];
	int64_t start_us;
	char key_hash[65];
	struct tg_key key; /* the virtual key, when has_key */
	bool has_key;

	char *body;
	size_t body_len;
	struct json_object *json;
	struct tg_value *values;
	char *query_storage;

	struct tg_hdr headers[MAX_HEADERS];
	size_t nheaders;
	bool responded;
	bool client_gone; /* a streamed write failed: the client left */
	int status;       /* the status answered */
	/* An LLM call (tg_req_note_call()): counted once answered. */
	bool metered;
	char call_route[32];
	char call_model[256];
};

/* Process-wide state. */
static struct tg_config *app_config;
static struct tg_err app_config_err;
static int64_t app_config_tried_us;
/* The config file as it was loaded, and when it was last looked at; the
 * files as they were when a reload failed (app_refresh_config()). */
static struct tg_file_stamp app_config_stamp;
static int64_t app_config_checked_us;
static bool app_reload_failed;
static struct tg_file_stamp app_failed_config, app_failed_prices;
static struct tg_db *app_db;
static int64_t app_reclaim_us;
static int64_t app_spool_retry_us; /* no replay before this */

static void move_journal(bool all);
static int64_t app_outbox_retry_us; /* no delivery before this */
static int64_t app_outbox_backoff_us;
static volatile sig_atomic_t app_stop;
static bool app_cgi; /* one request per process: keep the log quiet */
/* The SHA-256 of the master key, made once per key rather than per call:
 * the master key it is of (a copy: a reloaded config may put another at
 * the same address), and the hex. */
static char *app_master_hashed;
static char app_master_hash[65];
static unsigned long long app_cgi_body_read; /* CGI: bytes read from stdin */

/*
 * SIGTERM (and SIGINT): finish the request in flight, then exit.  Both are
 * blocked for the life of the process except inside the wait for the next
 * connection (wait_for_request()), so a read of the body, a write of a
 * stream, libcurl and the database client are never interrupted, and the
 * threads libcurl may start inherit the mask: the signal always reaches
 * that wait.  FCGX_ShutdownPending() makes libfcgi's accept give up too.
 */
static void
on_term(int sig)
{
	(void)sig;
	app_stop = 1;
	FCGX_ShutdownPending();
}

const char *
tg_req_path_arg(const struct tg_req *req, size_t i)
{
	return i < TG_ROUTE_ARGS ? req->path_args[i] : NULL;
}

const char *
tg_req_method(const struct tg_req *req)
{
	return req->method;
}

const char *
tg_req_path(const struct tg_req *req)
{
	return req->path;
}

const char *
tg_req_query(const struct tg_req *req)
{
	return req->query;
}

const char *
tg_req_id(const struct tg_req *req)
{
	return req->call_id;
}

static void app_load_config(void);

const struct tg_config *
tg_req_config(const struct tg_req *req)
{
	(void)req;
	app_load_config();
	return app_config;
}

const struct tg_value *
tg_req_field(const struct tg_req *req, size_t i)
{
	return &req->values[i];
}

const char *
tg_req_str(const struct tg_req *req, size_t i)
{
	const struct tg_value *v = &req->values[i];

	return v->given ? v->str : NULL;
}

struct json_object *
tg_req_json(const struct tg_req *req)
{
	return req->json;
}

const char *
tg_req_body(const struct tg_req *req, size_t *len)
{
	*len = req->body_len;
	return req->body;
}

const char *
tg_req_key_hash(const struct tg_req *req)
{
	return req->key_hash;
}

const struct tg_key *
tg_req_key(const struct tg_req *req)
{
	return req->has_key ? &req->key : NULL;
}

int64_t
tg_req_start_us(const struct tg_req *req)
{
	return req->start_us;
}

const char *
tg_req_header(const struct tg_req *req, const char *name)
{
	char var[128] = "HTTP_";
	size_t n = strlen(name);

	if (n + 6 > sizeof(var))
		return NULL;
	for (size_t i = 0; i < n; i++)
		var[5 + i] = name[i] == '-'
		                     ? '_'
		                     : (char)toupper((unsigned char)name[i]);
	var[5 + n] = '\0';
	return FCGX_GetParam(var, req->envp);
}

enum tg_rc
tg_req_db(struct tg_req *req, struct tg_db **out, struct tg_err *err)
{
	enum tg_rc rc;

	(void)req;
	if (app_db == NULL) {
		if (app_config->database_url == NULL)
			return tg_err_set(err, TG_ERR_CONFIG, NULL,
			                  "Configuration error: no database "
			                  "configured (general_settings."
			                  "database_url or DATABASE_URL)");
		rc = tg_db_open(app_config->database_url, &app_db, err);
		if (rc == TG_ERR_CONFIG) {
			char reason[sizeof(err->message)];

			snprintf(reason, sizeof(reason), "%s", err->message);
			return tg_err_set(err, TG_ERR_CONFIG, NULL,
			                  "Configuration error: %.900s",
			                  reason);
		}
		if (rc != TG_OK)
			return rc;
	}
	*out = app_db;
	return TG_OK;
}

/* An HTTP token (RFC 9110 5.6.2): what a header name may be. */
static bool
is_header_name(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) &&
		    !strchr("!#$%&'*+-.^_`|~", *s))
			return false;
	return true;
}

/* Visible characters, spaces and tabs: never CR or LF, which would end
 * the header and let the rest of the value pass for more headers. */
static bool
is_header_value(const char *s)
{
	for (; *s != '\0'; s++)
		if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
			return false;
	return true;
}

void
tg_req_add_header(struct tg_req *req, const char *name, const char *value)
{
	/* Refused, not repaired: a header that would need repair is a bug
	 * or a hostile value, and neither should reach the client. */
	if (!is_header_name(name) || !is_header_value(value)) {
		tg_log_error("response header dropped: control character or "
		             "separator in its %s",
		             is_header_name(name) ? "value" : "name");
		return;
	}
	if (req->nheaders == MAX_HEADERS) {
		tg_log_error("too many response headers; dropped %s", name);
		return;
	}
	req->headers[req->nheaders].name = tg_xstrdup(name);
	req->headers[req->nheaders].value = tg_xstrdup(value);
	req->nheaders++;
}

/* libfcgi counts in int: larger buffers go in pieces of this size. */
#define FCGX_PIECE ((size_t)1 << 30)

/* Write all of buf; false when the FastCGI stream failed. */
static bool
fcgx_put(FCGX_Stream *out, const char *buf, size_t len)
{
	while (len > 0) {
		size_t n = len < FCGX_PIECE ? len : FCGX_PIECE;

		if (FCGX_PutStr(buf, (int)n, out) < 0)
			return false;
		buf += n;
		len -= n;
	}
	return true;
}

static void
req_write(struct tg_req *req, const char *buf, size_t len)
{
	if (req->fcgx != NULL)
		fcgx_put(req->fcgx->out, buf, len);
	else
		fwrite(buf, 1, len, stdout);
}

static void
req_puts(struct tg_req *req, const char *s)
{
	req_write(req, s, strlen(s));
}

static size_t
req_read(struct tg_req *req, char *buf, size_t len)
{
	if (req->mem_body != NULL) {
		size_t n = len < req->mem_body_left ? len : req->mem_body_left;

		memcpy(buf, req->mem_body, n);
		req->mem_body += n;
		req->mem_body_left -= n;
		return n;
	}
	if (req->fcgx != NULL) {
		int n = FCGX_GetStr(buf,
		                    (int)(len < FCGX_PIECE ? len : FCGX_PIECE),
		                    req->fcgx->in);
		return n > 0 ? (size_t)n : 0;
	}
	{
		size_t n = fread(buf, 1, len, stdin);

		app_cgi_body_read += n;
		return n;
	}
}

/*
 * Plain CGI: read and drop what the request body still holds (a body
 * refused before it was read: a wrong key, a size over the cap).  A web
 * server that talks to its CGI programs over a socket (Apache's mod_cgid)
 * sees that socket reset when the program ends with input unread, and the
 * answer is lost.  Reads no more than CONTENT_LENGTH announced, so it never
 * waits for input that is not coming.
 */
static void
cgi_drain_body(void)
{
	const char *clen = getenv("CONTENT_LENGTH");
	unsigned long long want = clen ? strtoull(clen, NULL, 10) : 0;
	char buf[16384];

	while (app_cgi_body_read < want) {
		unsigned long long left = want - app_cgi_body_read;
		size_t n = fread(
		        buf, 1, left < sizeof(buf) ? (size_t)left : sizeof(buf),
		        stdin);

		if (n == 0)
			break;
		app_cgi_body_read += n;
	}
}

static const char *
reason_phrase(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Payload Too Large";
	case 422: return "Unprocessable Entity";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Status";
	}
}

/* The status line and headers; content_length < 0 for none (streams). */
static bool
write_head(struct tg_req *req, int status, const char *content_type,
           long long content_length)
{
	char num[24];

	if (req->responded) {
		tg_log_error("second response to one request dropped");
		return false;
	}
	req->responded = true;
	req->status = status;
	/* Piece by piece: no value's length is bounded by a buffer here. */
	snprintf(num, sizeof(num), "%d", status);
	req_puts(req, "Status: ");
	req_puts(req, num);
	req_puts(req, " ");
	req_puts(req, reason_phrase(status));
	req_puts(req, "\r\nContent-Type: ");
	req_puts(req, content_type);
	req_puts(req, "\r\nx-litellm-call-id: ");
	req_puts(req, req->call_id);
	req_puts(req, "\r\n");
	if (content_length >= 0) {
		snprintf(num, sizeof(num), "%lld", content_length);
		req_puts(req, "Content-Length: ");
		req_puts(req, num);
		req_puts(req, "\r\n");
	}
	for (size_t i = 0; i < req->nheaders; i++) {
		req_write(req, req->headers[i].name,
		          strlen(req->headers[i].name));
		req_write(req, ": ", 2);
		req_write(req, req->headers[i].value,
		          strlen(req->headers[i].value));
		req_write(req, "\r\n", 2);
	}
	req_write(req, "\r\n", 2);
	return true;
}

void
tg_req_respond_body(struct tg_req *req, int status, const char *content_type,
                    const char *body, size_t len)
{
	if (write_head(req, status, content_type, (long long)len))
		req_write(req, body, len);
}

void
tg_req_respond_raw(struct tg_req *req, int status, const char *body, size_t len)
{
	tg_req_respond_body(req, status, "application/json", body, len);
}

bool
tg_req_responded(const struct tg_req *req)
{
	return req->responded;
}

void
tg_req_stream_begin(struct tg_req *req, int status, const char *content_type)
{
	/* Proxies in front must not buffer an event stream. */
	tg_req_add_header(req, "Cache-Control", "no-cache");
	tg_req_add_header(req, "X-Accel-Buffering", "no");
	write_head(req, status, content_type, -1);
	tg_req_stream_write(req, NULL, 0);
}

bool
tg_req_stream_buf(struct tg_req *req, const char *content_type,
                  struct tg_buf *out)
{
	bool alive;

	if (!req->responded)
		tg_req_stream_begin(req, 200, content_type);
	alive = tg_req_stream_write(req, out->p != NULL ? out->p : "",
	                            out->len);
	out->len = 0;
	return alive;
}

bool
tg_req_stream_write(struct tg_req *req, const char *buf, size_t len)
{
	if (req->client_gone)
		return false;
	if (req->fcgx != NULL) {
		if (!fcgx_put(req->fcgx->out, buf, len) ||
		    FCGX_FFlush(req->fcgx->out) < 0 ||
		    FCGX_GetError(req->fcgx->out) != 0)
			req->client_gone = true;
	} else {
		if ((len > 0 && fwrite(buf, 1, len, stdout) != len) ||
		    fflush(stdout) != 0)
			req->client_gone = true;
	}
	return !req->client_gone;
}

void
tg_req_respond_json(struct tg_req *req, int status, struct json_object *obj)
{
	size_t len;
	const char *text = json_object_to_json_string_length(
	        obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
	        &len);

	tg_req_respond_raw(req, status, text, len);
	json_object_put(obj);
}

struct json_object *
tg_error_envelope(const struct tg_err *err)
{
	struct json_object *inner = json_object_new_object();
	struct json_object *outer = json_object_new_object();
	char code[8];

	snprintf(code, sizeof(code), "%d", tg_err_status(err));
	json_object_object_add(inner, "message",
	                       json_object_new_string(err->message));
	json_object_object_add(inner, "type",
	                       json_object_new_string(tg_err_type(err)));
	json_object_object_add(
	        inner, "param",
	        err->param[0] ? json_object_new_string(err->param) : NULL);
	json_object_object_add(inner, "code", json_object_new_string(code));
	json_object_object_add(outer, "error", inner);
	return outer;
}

struct json_object *
tg_error_envelope_anthropic(const struct tg_err *err, int *status)
{
	struct json_object *inner = json_object_new_object();
	struct json_object *outer = json_object_new_object();
	const char *type;
	int st = tg_err_anthropic(err, &type);

	json_object_object_add(outer, "type", json_object_new_string("error"));
	json_object_object_add(inner, "type", json_object_new_string(type));
	json_object_object_add(inner, "message",
	                       json_object_new_string(err->message));
	json_object_object_add(outer, "error", inner);
	if (status != NULL)
		*status = st;
	return outer;
}

bool
tg_error_envelope_is(enum tg_envelope e, const char *text, size_t len)
{
	struct json_object *obj = tg_json_parse(text, len), *v;
	bool yes = obj != NULL && json_object_is_type(obj, json_type_object) &&
	           json_object_object_get_ex(obj, "error", &v) &&
	           json_object_is_type(v, json_type_object);

	/* Anthropic's says "type": "error" beside it; OpenAI's does not. */
	if (yes)
		yes = (json_object_object_get_ex(obj, "type", &v) &&
		       json_object_is_type(v, json_type_string) &&
		       strcmp(json_object_get_string(v), "error") == 0) ==
		      (e == TG_ENVELOPE_ANTHROPIC);
	json_object_put(obj);
	return yes;
}

enum tg_envelope
tg_req_envelope(const struct tg_req *req)
{
	return req->envelope;
}

void
tg_req_respond_error(struct tg_req *req, const struct tg_err *err)
{
	int status = tg_err_status(err);
	struct json_object *body;

	/* Server-side failures are logged once, here where they are handled;
	 * client mistakes are not worth a log line each. */
	if (status >= 500)
		tg_log_error("%d %s: %s", status, tg_rc_str(err->rc),
		             err->message);
	if (req->envelope == TG_ENVELOPE_ANTHROPIC)
		body = tg_error_envelope_anthropic(err, &status);
	else
		body = tg_error_envelope(err);
	tg_req_respond_json(req, status, body);
}

/* Load the config once; after a failure, try again only now and then so
 * a broken file costs a stat, not a parse, per request. */
static void
app_load_config(void)
{
	const char *path, *prices = tg_config_default_prices();
	char fallback[512];
	int64_t now = tg_now_us();

	if (app_config != NULL || (app_config_tried_us != 0 &&
	                           now - app_config_tried_us < CONFIG_RETRY_US))
		return;
	app_config_tried_us = now;
	path = tg_config_path(NULL, fallback, sizeof(fallback));
	/* Before the load: a change while it reads is seen at the next look
	 * (app_refresh_config()), never missed. */
	tg_file_stamp_get(path, &app_config_stamp);
	app_config_checked_us = now;
	tg_err_clear(&app_config_err);
	if (tg_config_load(path, prices, &app_config, &app_config_err) !=
	    TG_OK) {
		app_config = NULL;
		tg_log_error("config: %s", app_config_err.message);
	} else if (!app_cgi) {
		tg_log_info("config loaded: %zu models from %s",
		            app_config->ndeployments, path);
	}
}

static bool
same_string(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

/*
 * Between two requests of a long-lived process, at most once a second: a
 * look (one stat() each) at the config file and at the price file its
 * prices came from.  When either changed (another inode, size or
 * modification time: `tollgate-prices update` renames a new map into
 * place), the config is loaded again and, if it loads, replaces the old
 * one.  No request holds the old one then (the last has finished, the next
 * has not begun), so a call is priced by the old map or the new, never a
 * mix.  A config that does not load leaves the old one in use; the error is
 * logged once, and the load tried again only when a file changes again.
 */
static void
app_refresh_config(void)
{
	struct tg_file_stamp config_now, prices_now;
	struct tg_config *fresh = NULL;
	struct tg_err err;
	const char *path;
	char fallback[512];
	bool prices_used;
	int64_t now = tg_now_us();

	if (app_config == NULL || now - app_config_checked_us < CONFIG_CHECK_US)
		return;
	app_config_checked_us = now;
	path = tg_config_path(NULL, fallback, sizeof(fallback));
	tg_file_stamp_get(path, &config_now);
	prices_used = app_config->price_file_stamp.present;
	memset(&prices_now, 0, sizeof(prices_now));
	if (prices_used)
		tg_file_stamp_get(app_config->price_file, &prices_now);
	if (tg_file_stamp_eq(&config_now, &app_config_stamp) &&
	    (!prices_used ||
	     tg_file_stamp_eq(&prices_now, &app_config->price_file_stamp)))
		return;
	if (app_reload_failed &&
	    tg_file_stamp_eq(&config_now, &app_failed_config) &&
	    tg_file_stamp_eq(&prices_now, &app_failed_prices))
		return;
	tg_err_clear(&err);
	if (tg_config_load(path, tg_config_default_prices(), &fresh, &err) !=
	    TG_OK) {
		app_reload_failed = true;
		app_failed_config = config_now;
		app_failed_prices = prices_now;
		tg_log_error("config: a changed file does not load, the "
		             "config loaded before stays in use: %s",
		             err.message);
		return;
	}
	app_reload_failed = false;
	if (app_db != NULL &&
	    !same_string(fresh->database_url, app_config->database_url)) {
		/* What this process holds of the old database goes back to
		 * it first: its leases, its journal (SPEC 4.6). */
		tg_lease_work(app_db, app_config, true);
		move_journal(true);
		tg_journal_close();
		tg_lease_forget();
		tg_db_close(app_db);
		app_db = NULL;
	}
	tg_config_free(app_config);
	app_config = fresh;
	app_config_stamp = config_now;
	tg_log_info("config reloaded: %zu models from %s, prices from %s",
	            app_config->ndeployments, path,
	            app_config->price_file_stamp.present
	                    ? app_config->price_file
	                    : "the config");
}

/*
 * Parse text as one JSON value with nothing but white space after it.
 * NULL on failure, with the reason and the byte where parsing stopped.
 */
static struct json_object *
parse_json(const char *text, size_t len, enum json_tokener_error *jerr,
           size_t *at)
{
	struct json_tokener *tok;
	struct json_object *obj;

	/* json-c counts in int; the body caps (lib/config.c) stay below. */
	if (len > INT_MAX) {
		*jerr = json_tokener_error_size;
		*at = 0;
		return NULL;
	}
	tok = json_tokener_new();
	obj = json_tokener_parse_ex(tok, text, (int)len);
	*jerr = json_tokener_get_error(tok);
	*at = json_tokener_get_parse_end(tok);
	if (obj != NULL && *jerr == json_tokener_success) {
		for (size_t i = *at; i < len; i++)
			if (!isspace((unsigned char)text[i])) {
				*jerr = json_tokener_error_parse_unexpected;
				*at = i;
				json_object_put(obj);
				obj = NULL;
				break;
			}
	} else if (obj != NULL) {
		json_object_put(obj);
		obj = NULL;
	}
	json_tokener_free(tok);
	return obj;
}

/* Blank out "#" to the end of the line wherever it is outside a string. */
static void
blank_hash_comments(char *s, size_t len)
{
	bool in_string = false, escaped = false, comment = false;

	for (size_t i = 0; i < len; i++) {
		if (comment) {
			if (s[i] == '\n')
				comment = false;
			else
				s[i] = ' ';
		} else if (in_string) {
			if (escaped)
				escaped = false;
			else if (s[i] == '\\')
				escaped = true;
			else if (s[i] == '"')
				in_string = false;
		} else if (s[i] == '"') {
			in_string = true;
		} else if (s[i] == '#') {
			s[i] = ' ';
			comment = true;
		}
	}
}

/*
 * The key a request presents (SPEC 1): "Authorization: Bearer <key>",
 * else x-litellm-api-key, api-key or x-api-key (each may say "Bearer ");
 * NULL for none or a malformed Authorization.
 */
static const char *
presented_key(const struct tg_req *req)
{
	const char *key;

	if ((key = tg_req_header(req, "authorization")) != NULL)
		return strncasecmp(key, "Bearer ", 7) == 0 ? key + 7 : NULL;
	if ((key = tg_req_header(req, "x-litellm-api-key")) ||
	    (key = tg_req_header(req, "api-key")) ||
	    (key = tg_req_header(req, "x-api-key"))) {
		if (strncasecmp(key, "Bearer ", 7) == 0)
			key += 7;
	}
	return key;
}

bool
tg_req_presents(struct tg_req *req, const char *want)
{
	const char *key = presented_key(req);

	if (key == NULL || key[0] == '\0' || want == NULL || want[0] == '\0')
		return false;
	return tg_memeq_const_time(key, strlen(key), want, strlen(want));
}

void
tg_req_note_call(struct tg_req *req, const char *route, const char *model)
{
	req->metered = true;
	tg_strlcpy(req->call_route, sizeof(req->call_route), route);
	tg_strlcpy(req->call_model, sizeof(req->call_model),
	           model != NULL ? model : "");
}

/* An LLM call answered: tollgate_requests_total{route,model,status}. */
static void
count_call(const struct tg_req *req)
{
	char status[8], labels[TG_METRICS_LABELS_MAX];
	const char *kv[6] = {"route",         req->call_route, "model",
	                     req->call_model, "status",        status};

	snprintf(status, sizeof(status), "%d", req->status);
	if (tg_metrics_labels(labels, sizeof(labels), 3, kv))
		tg_metrics_count("tollgate_requests_total", labels, 1);
}

bool
tg_req_master(struct tg_req *req)
{
	const char *key = presented_key(req);

	app_load_config();
	if (key == NULL || key[0] == '\0' || app_config == NULL ||
	    app_config->master_key == NULL || app_config->master_key[0] == '\0')
		return false;
	return tg_memeq_const_time(key, strlen(key), app_config->master_key,
	                           strlen(app_config->master_key));
}

/*
 * Which principal key is, and whether req->route admits it (SPEC 1, 13).
 * The master key first, in constant time; any other key is a virtual key
 * or nothing (no database configured: no virtual keys either).
 */
static enum tg_rc
authenticate(struct tg_req *req, const char *key, struct tg_err *err)
{
	unsigned admits = req->route->auth;
	struct tg_db *db;
	enum tg_rc rc;

	if (tg_memeq_const_time(key, strlen(key), app_config->master_key,
	                        strlen(app_config->master_key))) {
		if ((admits & TG_AUTH_MASTER) == 0)
			return tg_err_set(err, TG_ERR_FORBIDDEN, NULL,
			                  "This route is for virtual keys, not "
			                  "the master key. Route=%s",
			                  req->path);
		return TG_OK;
	}
	if (app_config->database_url == NULL)
		return tg_err_set(err, TG_ERR_AUTH, NULL,
		                  "Authentication Error, Invalid proxy server "
		                  "token passed.");
	if ((rc = tg_req_db(req, &db, err)) != TG_OK)
		return rc;
	if ((rc = tg_key_authenticate(db, key, &req->key, err)) != TG_OK)
		return rc;
	req->has_key = true;
	if ((admits & TG_AUTH_KEY) == 0)
		return tg_err_set(err, TG_ERR_FORBIDDEN, NULL,
		                  "Only proxy admin can be used to call this "
		                  "route. Route=%s. A virtual key may call the "
		                  "LLM routes, /models and /key/info.",
		                  req->path);
	return TG_OK;
}

/*
 * req->key_hash: the SHA-256 hex of key, which authenticate() admitted.  A
 * virtual key's is its token; the master key's is computed once.
 */
static void
key_hash(struct tg_req *req, const char *key)
{
	const char *master = app_config->master_key;

	if (req->has_key) {
		memcpy(req->key_hash, req->key.token, sizeof(req->key_hash));
		return;
	}
	if (strcmp(key, master) != 0) {
		tg_sha256_hex(key, strlen(key), req->key_hash);
		return;
	}
	if (app_master_hashed == NULL ||
	    strcmp(app_master_hashed, master) != 0) {
		free(app_master_hashed);
		app_master_hashed = tg_xstrdup(master);
		tg_sha256_hex(master, strlen(master), app_master_hash);
	}
	memcpy(req->key_hash, app_master_hash, sizeof(req->key_hash));
}

/*
 * Whether path matches the route's pattern: its segments, where "*" is
 * one non-empty segment of an id's characters (letters, digits, "-", "_",
 * "."): what an upstream names its objects with, and nothing that would
 * need decoding.  args (may be NULL) gets copies of what the "*"s
 * matched.
 */
static bool
path_matches(const char *pattern, const char *path, char **args)
{
	size_t nargs = 0;

	while (*pattern != '\0' && *path != '\0') {
		if (pattern[0] == '*' &&
		    (pattern[1] == '/' || pattern[1] == '\0')) {
			size_t n = 0;

			while (path[n] != '\0' && path[n] != '/') {
				char ch = path[n];

				if (!isalnum((unsigned char)ch) && ch != '-' &&
				    ch != '_' && ch != '.')
					return false;
				n++;
			}
			if (n == 0 || nargs == TG_ROUTE_ARGS)
				return false;
			if (args != NULL)
				args[nargs] = tg_xstrndup(path, n);
			nargs++;
			path += n;
			pattern++;
			continue;
		}
		if (*pattern != *path)
			return false;
		pattern++;
		path++;
	}
	return *pattern == '\0' && *path == '\0';
}

bool
tg_app_path_matches(const char *pattern, const char *path)
{
	return path_matches(pattern, path, NULL);
}

/* Route, authenticate, read and validate; then run the handler. */
static enum tg_rc
front_line(const struct tg_program *prog, struct tg_req *req,
           struct tg_err *err)
{
	const struct tg_route *route = NULL;
	char allow[64] = "";
	const char *key = NULL, *auth;
	const char *clen;
	size_t cap, want;
	bool path_known = false;
	enum tg_rc rc;

	req->envelope = prog->envelope;
	for (size_t i = 0; i < prog->nroutes; i++) {
		if (!path_matches(prog->routes[i].path, req->path, NULL))
			continue;
		path_known = true;
		if (strcmp(prog->routes[i].method, req->method) == 0) {
			route = &prog->routes[i];
			break;
		}
		if (strstr(allow, prog->routes[i].method) == NULL)
			snprintf(allow + strlen(allow),
			         sizeof(allow) - strlen(allow), "%s%s",
			         allow[0] ? ", " : "", prog->routes[i].method);
	}
	if (!path_known)
		return tg_err_set(err, TG_ERR_NOT_FOUND, NULL, "Not Found: %s",
		                  req->path);
	if (route == NULL) {
		tg_req_add_header(req, "Allow", allow);
		return tg_err_set(err, TG_ERR_METHOD, NULL,
		                  "Method Not Allowed: %s %s (allowed: %s)",
		                  req->method, req->path, allow);
	}
	req->route = route;
	path_matches(route->path, req->path, req->path_args);

	if (route->auth != TG_AUTH_NONE) {
		app_load_config();
		if (app_config == NULL)
			return tg_err_set(err, TG_ERR_CONFIG, NULL,
			                  "Configuration error: %s",
			                  app_config_err.message);
		if (app_config->master_key == NULL ||
		    app_config->master_key[0] == '\0')
			return tg_err_set(err, TG_ERR_CONFIG, NULL,
			                  "No master key configured");
		auth = tg_req_header(req, "authorization");
		if (auth != NULL && strncasecmp(auth, "Bearer ", 7) != 0)
			return tg_err_set(err, TG_ERR_AUTH, NULL,
			                  "Malformed API Key passed in. "
			                  "Ensure Key has `Bearer ` prefix.");
		key = presented_key(req);
		if (key == NULL || key[0] == '\0')
			return tg_err_set(err, TG_ERR_AUTH, NULL,
			                  "Authentication Error, No api key "
			                  "passed in.");
		if ((rc = authenticate(req, key, err)) != TG_OK)
			return rc;
		key_hash(req, key);
	}

	req->values = tg_xcalloc(route->nfields ? route->nfields : 1,
	                         sizeof(*req->values));
	if (route->body == TG_BODY_NONE)
		return tg_fields_from_query(route->fields, route->nfields,
		                            req->query, req->values,
		                            &req->query_storage, err);

	app_load_config();
	if (app_config == NULL)
		return tg_err_set(err, TG_ERR_CONFIG, NULL,
		                  "Configuration error: %s",
		                  app_config_err.message);
	/* Size cap first, from Content-Length, then while reading: the
	 * body is never held beyond the cap. */
	cap = route->body == TG_BODY_LLM ? app_config->max_llm_body
	                                 : app_config->max_management_body;
	clen = FCGX_GetParam("CONTENT_LENGTH", req->envp);
	want = clen ? strtoull(clen, NULL, 10) : 0;
	if (want > cap)
		return tg_err_set(err, TG_ERR_TOO_LARGE, NULL,
		                  "Request body too large: %zu bytes (limit "
		                  "%zu)",
		                  want, cap);
	req->body = tg_xmalloc(want + 1);
	while (req->body_len < want) {
		size_t n = req_read(req, req->body + req->body_len,
		                    want - req->body_len);
		if (n == 0)
			break;
		req->body_len += n;
	}
	req->body[req->body_len] = '\0';
	if (req->body_len < want)
		return tg_err_set(err, TG_ERR_BAD_REQUEST, NULL,
		                  "Request body ended after %zu of %zu bytes",
		                  req->body_len, want);

	if (req->body_len == 0)
		return tg_err_set(err, TG_ERR_BAD_REQUEST, NULL,
		                  "Invalid JSON body: the body is empty");
	{
		enum json_tokener_error jerr;
		size_t at;

		/* json-c passes invalid UTF-8 through into strings, which
		 * would then be forwarded and stored: refuse it here, once,
		 * for every body. */
		at = tg_utf8_valid_prefix(req->body, req->body_len);
		if (at < req->body_len)
			return tg_err_set(
			        err, TG_ERR_BAD_REQUEST, NULL,
			        "Invalid UTF-8 in the request body at "
			        "byte %zu",
			        at);

		req->json = parse_json(req->body, req->body_len, &jerr, &at);
		if (req->json == NULL &&
		    memchr(req->body, '#', req->body_len)) {
			/* Documentation (the LiteLLM pages among them) marks up
			 * its curl examples with "# <- note" inside the JSON;
			 * people paste them as they are.  A '#' outside a
			 * string is never valid JSON, so reading it as a
			 * comment changes the meaning of no valid body. */
			/* Not strndup(): the body may hold NULs. */
			char *copy = tg_xmalloc(req->body_len + 1);
			enum json_tokener_error ignored;
			size_t ignored_at;

			memcpy(copy, req->body, req->body_len + 1);
			blank_hash_comments(copy, req->body_len);
			req->json = parse_json(copy, req->body_len, &ignored,
			                       &ignored_at);
			free(copy);
		}
		if (req->json == NULL)
			return tg_err_set(
			        err, TG_ERR_BAD_REQUEST, NULL,
			        "Invalid JSON body: %s at byte %zu",
			        jerr == json_tokener_success
			                ? "incomplete JSON"
			                : json_tokener_error_desc(jerr),
			        at);
		/* A lone surrogate escape is valid JSON text but no
		 * character: json-c would make it U+FFFD, changing the
		 * prompt (or merging two ids) without a word. */
		at = tg_json_lone_surrogate(req->body, req->body_len);
		if (at < req->body_len)
			return tg_err_set(err, TG_ERR_BAD_REQUEST, NULL,
			                  "Invalid JSON body: \\u escape of a "
			                  "lone UTF-16 surrogate at byte %zu",
			                  at);
	}
	if (!json_object_is_type(req->json, json_type_object))
		return tg_err_set(err, TG_ERR_BAD_REQUEST, NULL,
		                  "Invalid JSON body: expected a JSON object");
	return tg_fields_from_json(route->fields, route->nfields, req->json,
	                           req->values, err);
}

/* Start req from the request's environment: id, method, path, query. */
static void
req_begin(struct tg_req *req, FCGX_Request *fcgx, char **envp)
{
	const char *uri;
	const char *q;

	memset(req, 0, sizeof(*req));
	req->fcgx = fcgx;
	req->envp = envp;
	req->start_us = 0;
	{
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		req->start_us =
		        (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
	}
	tg_uuid_new(req->call_id);
	tg_log_set_request(req->call_id);

	req->method = FCGX_GetParam("REQUEST_METHOD", envp);
	if (req->method == NULL)
		req->method = "GET";
	uri = FCGX_GetParam("REQUEST_URI", envp);
	if (uri == NULL || uri[0] == '\0')
		uri = FCGX_GetParam("SCRIPT_NAME", envp);
	if (uri == NULL)
		uri = "/";
	q = strchr(uri, '?');
	req->path = q ? tg_xstrndup(uri, (size_t)(q - uri)) : tg_xstrdup(uri);
	req->query = q ? q + 1 : FCGX_GetParam("QUERY_STRING", envp);
}

/* Free what req holds. */
static void
req_end(struct tg_req *req)
{
	if (req->json != NULL)
		json_object_put(req->json);
	for (size_t i = 0; i < req->nheaders; i++) {
		free(req->headers[i].name);
		free(req->headers[i].value);
	}
	if (req->has_key)
		tg_key_free(&req->key);
	free(req->values);
	free(req->query_storage);
	free(req->body);
	free(req->path);
	for (size_t i = 0; i < TG_ROUTE_ARGS; i++)
		free(req->path_args[i]);
	tg_log_set_request("");
}

/*
 * True for a variable that the web server sets per request (the CGI
 * variables, the client's headers as HTTP_*), as opposed to one its
 * configuration sets (SetEnv).
 */
static bool
is_request_variable(const char *name, size_t len)
{
	static const char *const prefixes[] = {
	        "HTTP_",   "CONTENT_", "REQUEST_",  "SCRIPT_",   "SERVER_",
	        "REMOTE_", "CONTEXT_", "DOCUMENT_", "REDIRECT_", "SSL_",
	};
	static const char *const names[] = {
	        "QUERY_STRING",    "PATH_INFO",
	        "PATH_TRANSLATED", "GATEWAY_INTERFACE",
	        "AUTH_TYPE",       "UNIQUE_ID",
	        "HTTPS",
	};

	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (strncmp(name, prefixes[i], strlen(prefixes[i])) == 0)
			return true;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (len == strlen(names[i]) && memcmp(name, names[i], len) == 0)
			return true;
	return false;
}

/*
 * FastCGI programs read their settings (TOLLGATE_CONFIG, DATABASE_URL, the
 * config's os.environ/NAME ...) from their environment, as they start.
 * Apache's SetEnv, the only way an .htaccess file can set them (shared
 * hosting under mod_fcgid), hands them over with each request instead.  So,
 * once, before the config is first loaded, every variable of the first
 * request that the environment lacks is put into it, except the request's
 * own (is_request_variable()).  What the environment already has wins
 * (FcgidInitialEnv, lighttpd's bin-environment).
 */
static void
import_server_env(char **envp)
{
	static bool imported;

	if (imported)
		return;
	imported = true;
	for (char **e = envp; e != NULL && *e != NULL; e++) {
		const char *eq = strchr(*e, '=');
		size_t len;
		char *name;

		if (eq == NULL || eq == *e)
			continue;
		len = (size_t)(eq - *e);
		if (is_request_variable(*e, len))
			continue;
		name = tg_xstrndup(*e, len);
		if (getenv(name) == NULL)
			setenv(name, eq + 1, 0);
		free(name);
	}
}

static void
serve(const struct tg_program *prog, FCGX_Request *fcgx, char **envp)
{
	struct tg_req req;
	struct tg_err err;
	enum tg_rc rc;

	if (fcgx != NULL) {
		import_server_env(envp);
		app_refresh_config();
	}
	tg_err_clear(&err);
	req_begin(&req, fcgx, envp);
	rc = front_line(prog, &req, &err);
	if (rc == TG_OK) {
		rc = req.route->handler(&req, &err);
		if (rc == TG_OK && !req.responded) {
			tg_err_set(&err, TG_ERR_INTERNAL, NULL,
			           "handler gave no answer");
			rc = TG_ERR_INTERNAL;
		}
	}
	if (rc != TG_OK && !req.responded)
		tg_req_respond_error(&req, &err);
	if (req.metered && req.responded)
		count_call(&req);
	req_end(&req);
}

enum tg_rc
tg_app_front_line(const struct tg_program *prog, char **envp, const char *body,
                  size_t len,
                  void (*inspect)(const struct tg_req *req, void *arg),
                  void *arg, struct tg_err *err)
{
	struct tg_req req;
	enum tg_rc rc;

	req_begin(&req, NULL, envp);
	req.mem_body = body != NULL ? body : "";
	req.mem_body_left = body != NULL ? len : 0;
	rc = front_line(prog, &req, err);
	if (rc == TG_OK && inspect != NULL)
		inspect(&req, arg);
	req_end(&req);
	return rc;
}

/*
 * Send webhook events: those this request wrote, and now and then (due)
 * whatever retries have come due.  Bounded by OUTBOX_INLINE_US; see there
 * for how a slow or dead receiver is kept from costing every request.
 */
static void
deliver_events(bool due)
{
	const struct tg_alerting *a = &app_config->alerting;
	struct tg_outbox_stats st;
	struct tg_err err;
	bool wrote = tg_outbox_take_hint();
	int pruned = 0;

	if (a->webhook_url == NULL && a->slack_url == NULL)
		return;
	if ((wrote || due) && tg_now_us() >= app_outbox_retry_us) {
		int64_t began = tg_now_us();

		tg_err_clear(&err);
		if (tg_outbox_deliver(app_db, a, OUTBOX_INLINE_US, 0, true, &st,
		                      &err) != TG_OK)
			tg_log_warn("webhook delivery stopped: %s",
			            err.message);
		if (st.failed > 0 || st.dead > 0 || st.cut_short > 0) {
			app_outbox_backoff_us =
			        app_outbox_backoff_us == 0
			                ? OUTBOX_BACKOFF_US
			                : app_outbox_backoff_us * 2;
			if (app_outbox_backoff_us > OUTBOX_BACKOFF_MAX_US)
				app_outbox_backoff_us = OUTBOX_BACKOFF_MAX_US;
			app_outbox_retry_us =
			        tg_now_us() + app_outbox_backoff_us;
		} else if (tg_now_us() - began > OUTBOX_SLOW_US) {
			/* Delivered, slowly: a pause, not a growing one. */
			app_outbox_backoff_us = 0;
			app_outbox_retry_us = tg_now_us() + OUTBOX_BACKOFF_US;
		} else if (st.delivered > 0) {
			app_outbox_backoff_us = 0;
		}
	}
	if (!due)
		return;
	tg_err_clear(&err);
	if (tg_outbox_prune(app_db, a, &pruned, &err) != TG_OK)
		tg_log_warn("pruning delivered webhook events failed: %s",
		            err.message);
}

/* Add this process's counts to the database's (SPEC 15). */
static void
flush_metrics(void)
{
	struct tg_err err;

	if (app_db == NULL || tg_metrics_due_us() == 0)
		return;
	tg_err_clear(&err);
	if (tg_metrics_flush(app_db, &err) != TG_OK)
		tg_log_warn("metrics: adding this process's counts failed "
		            "(tried again later): %s",
		            err.message);
}

/*
 * This process's settlements into the database when their batch is due
 * (SPEC 4.6), or all of them (at exit).  Out of reach: they stay in the
 * journal, and the next try waits as the spool's does.
 */
static void
move_journal(bool all)
{
	struct tg_err err;
	int64_t due;
	int n = 0;

	if (app_db == NULL || app_config == NULL)
		return;
	due = tg_journal_due_us(app_config);
	if (due == 0 ||
	    (!all && (tg_now_us() < due || tg_now_us() < app_spool_retry_us)))
		return;
	tg_err_clear(&err);
	if (tg_journal_move(app_db, &app_config->alerting, &n, &err) != TG_OK) {
		tg_log_warn("moving %ld journalled settlements failed (kept "
		            "for the next try): %s",
		            tg_journal_pending(), err.message);
		app_spool_retry_us = tg_now_us() + SPOOL_BACKOFF_US;
	}
}

/* Work the client need not wait for: after the answer is sent. */
static void
after_response(void)
{
	struct tg_err err;
	const char *spool;
	int n = 0;
	int64_t now = tg_now_us();
	bool due;

	if (app_db == NULL || app_config == NULL)
		return;
	move_journal(app_cgi);
	/* Leases taken for the accounts that became busy, returned for
	 * those gone quiet (a CGI process has no later: all of them). */
	tg_lease_work(app_db, app_config, app_cgi);
	due = now - app_reclaim_us >=
	      (int64_t)app_config->reclaim_interval_s * 1000000;
	spool = tg_spool_dir(app_config);
	/* Settlements that waited for the database go first: a hold whose
	 * settlement is spooled here should not be charged as unsettled.
	 * Now and then the spool is read even when it looks unchanged. */
	if (now >= app_spool_retry_us &&
	    (due || tg_spool_maybe_pending(spool))) {
		tg_err_clear(&err);
		if (tg_spool_replay(app_db, spool, &app_config->alerting,
		                    SPOOL_REPLAY_US, &n, &err) != TG_OK) {
			tg_log_warn("spool replay stopped, the database is "
			            "out of reach: %s",
			            err.message);
			app_spool_retry_us = tg_now_us() + SPOOL_BACKOFF_US;
		}
		if (n > 0)
			tg_log_info("replayed %d spooled settlements", n);
	}
	/* The journals of processes that died (spool_settlements): their
	 * settlements before their holds are charged as unsettled. */
	if (due && tg_journal_on(app_config) && now >= app_spool_retry_us) {
		tg_err_clear(&err);
		if (tg_journal_recover(app_db, spool, &app_config->alerting, &n,
		                       &err) != TG_OK) {
			tg_log_warn(
			        "moving a dead process's journal stopped: %s",
			        err.message);
			app_spool_retry_us = tg_now_us() + SPOOL_BACKOFF_US;
		}
	}
	if (due) {
		app_reclaim_us = now;
		tg_err_clear(&err);
		if (tg_ledger_reclaim(
		            app_db, NULL, app_config->max_end_user_budget_id,
		            &app_config->alerting, 100, &n, &err) != TG_OK)
			tg_log_warn("reclaiming stale holds failed: %s",
			            err.message);
		else if (n > 0)
			tg_log_warn("charged %d holds of requests that never "
			            "settled (status unsettled)",
			            n);
	}
	deliver_events(due);
	/* The counts of /metrics: at most a few seconds old (a CGI process
	 * has no later). */
	if (app_cgi ||
	    (tg_metrics_due_us() != 0 && tg_now_us() >= tg_metrics_due_us()))
		flush_metrics();
}

static void
app_cleanup(void)
{
	tg_lease_work(app_db, app_config, true);
	move_journal(true);
	tg_journal_close();
	if (app_db != NULL)
		flush_metrics();
	tg_metrics_reset();
	if (app_db != NULL)
		tg_db_close(app_db);
	app_db = NULL;
	if (app_config != NULL)
		tg_config_free(app_config);
	app_config = NULL;
	free(app_master_hashed);
	app_master_hashed = NULL;
	tg_outbox_cleanup();
	tg_upstream_cleanup();
}

/*
 * Wait until a connection is pending on the listening socket; false when
 * SIGTERM came.  The signal is blocked everywhere else, and pselect()
 * unblocks it atomically: one that arrived while the last request was
 * served is pending and ends the wait at once, and none can slip in
 * between the look at app_stop and the wait.  Left open: when several
 * processes share one listening socket (spawn-fcgi -F; lighttpd and
 * mod_fcgid give each process its own), another may take the connection
 * first, and FCGX_Accept_r() then blocks in accept() until the next one,
 * so a SIGTERM then takes effect after one more request.
 */
static bool
wait_for_request(int listen_sock, const sigset_t *unblocked)
{
	fd_set readable;

	while (!app_stop) {
		int64_t due = tg_metrics_due_us(), left;
		/* Without a database (not opened yet, or lost on a reload)
		 * there is nothing to move: the next request opens it. */
		int64_t batch =
		        app_db != NULL ? tg_journal_due_us(app_config) : 0;
		int64_t lease =
		        app_db != NULL ? tg_lease_due_us(app_config) : 0;
		struct timespec ts;
		int n;

		FD_ZERO(&readable);
		FD_SET(listen_sock, &readable);
		/* Counts waiting for /metrics, settlements waiting in the
		 * journal: flushed, moved when due, even if no request
		 * comes. */
		if (batch != 0 && batch < app_spool_retry_us)
			batch = app_spool_retry_us;
		if (batch != 0 && (due == 0 || batch < due))
			due = batch;
		if (lease != 0 && (due == 0 || lease < due))
			due = lease;
		left = due != 0 ? due - tg_now_us() : 0;
		if (left < 0)
			left = 0;
		ts.tv_sec = (time_t)(left / 1000000);
		ts.tv_nsec = (long)(left % 1000000) * 1000;
		n = pselect(listen_sock + 1, &readable, NULL, NULL,
		            due != 0 ? &ts : NULL, unblocked);
		if (n == 0) {
			move_journal(false);
			tg_lease_work(app_db, app_config, false);
			if (tg_metrics_due_us() != 0 &&
			    tg_now_us() >= tg_metrics_due_us())
				flush_metrics();
			continue;
		}
		if (n > 0 || errno != EINTR)
			break;
	}
	return !app_stop;
}

int
tg_app_main(const struct tg_program *prog)
{
	struct sigaction sa;
	sigset_t term, unblocked;
	struct tg_err err;
	FCGX_Request fcgx;

	tg_log_init(prog->name);
	tg_metrics_enable();
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	/* Blocked before any thread exists; delivered only in
	 * wait_for_request() (SA_RESTART should one slip through). */
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigaddset(&term, SIGINT);
	sigprocmask(SIG_BLOCK, &term, &unblocked);
	sigdelset(&unblocked, SIGTERM);
	sigdelset(&unblocked, SIGINT);
	sa.sa_handler = on_term;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	tg_err_clear(&err);
	if (tg_upstream_init(&err) != TG_OK) {
		tg_log_error("%s", err.message);
		return 1;
	}
	if (FCGX_Init() != 0) {
		tg_log_error("FCGX_Init failed");
		return 1;
	}

	if (FCGX_IsCGI()) {
		app_cgi = true;
		serve(prog, NULL, environ);
		/* The end of stdout ends the answer for the web server; the
		 * spool and the holds of dead processes are then looked at
		 * as after any FastCGI answer. */
		fflush(stdout);
		cgi_drain_body();
		fclose(stdout);
		/* fd 1 stays taken, so that nothing opened later (a socket, a
		 * lock file) becomes "stdout" for a stray write. */
		{
			int null_fd = open("/dev/null", O_WRONLY);
			if (null_fd >= 0 && null_fd != STDOUT_FILENO) {
				dup2(null_fd, STDOUT_FILENO);
				close(null_fd);
			}
		}
		after_response();
		app_cleanup();
		return 0;
	}

	FCGX_InitRequest(&fcgx, 0, 0);
	/* Several processes may share one listening socket (tollgate-spawn,
	 * spawn-fcgi; lighttpd and mod_fcgid give each its own): all of them
	 * wake when a connection comes, and one takes it.  A blocking accept
	 * would hold the others, SIGTERM blocked, until the next connection,
	 * deaf to a stop; non-blocking, they go back to waiting.  (Linux does
	 * not pass O_NONBLOCK on to the accepted connection, which libfcgi
	 * reads blocking.) */
	{
		int fl = fcntl(fcgx.listen_sock, F_GETFL);

		if (fl >= 0)
			fcntl(fcgx.listen_sock, F_SETFL, fl | O_NONBLOCK);
	}
	while (wait_for_request(fcgx.listen_sock, &unblocked)) {
		int accepted = FCGX_Accept_r(&fcgx);

		if (accepted == -EAGAIN || accepted == -EWOULDBLOCK)
			continue; /* another process took it */
		if (accepted < 0)
			break;
		serve(prog, &fcgx, fcgx.envp);
		FCGX_Finish_r(&fcgx);
		after_response();
	}
	FCGX_Free(&fcgx, 1);
	app_cleanup();
	return 0;
}
