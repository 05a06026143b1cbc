/*
 * err: the one error type of tollgate.
 *
 * Every fallible function returns an enum tg_rc and, on failure, fills a
 * struct tg_err with a message meant for the client.  The rc decides the HTTP
 * status and the OpenAI envelope "type"; an upstream error may override the
 * status (it is relayed as the upstream sent it).
 */
#ifndef TG_ERR_H
#define TG_ERR_H

#include <stdbool.h>
#include <stddef.h>

/* Stable values: they appear in logs.  Add at the end only. */
enum tg_rc {
	TG_OK = 0,
	TG_ERR_BAD_REQUEST = 1,       /* 400 invalid_request_error */
	TG_ERR_UNPROCESSABLE = 2,     /* 422 invalid_request_error */
	TG_ERR_AUTH = 3,              /* 401 auth_error */
	TG_ERR_FORBIDDEN = 4,         /* 403 permission_error */
	TG_ERR_NOT_FOUND = 5,         /* 404 not_found */
	TG_ERR_METHOD = 6,            /* 405 invalid_request_error */
	TG_ERR_TIMEOUT = 7,           /* 408 timeout_error */
	TG_ERR_TOO_LARGE = 8,         /* 413 invalid_request_error */
	TG_ERR_BUDGET = 9,            /* 429 budget_exceeded */
	TG_ERR_RATE_LIMIT = 10,       /* 429 rate_limit_error */
	TG_ERR_INTERNAL = 11,         /* 500 internal_server_error */
	TG_ERR_CONFIG = 12,           /* 500 internal_server_error */
	TG_ERR_UPSTREAM_CONNECT = 13, /* 502 api_connection_error */
	TG_ERR_UPSTREAM = 14,         /* upstream's own status (err->status) */
	TG_ERR_DB = 15,               /* 503 service_unavailable */
	TG_ERR_CONFLICT = 16, /* 400 invalid_request_error: already exists */
};

struct tg_err {
	enum tg_rc rc;
	int status;         /* HTTP status; 0 means "from rc" */
	char type[40];      /* envelope type; "" means "from rc" */
	char param[64];     /* offending field, "" for null */
	char message[1024]; /* for the client; never holds a secret */
};

/* Short name of an rc, for logs. */
const char *tg_rc_str(enum tg_rc rc);
/* HTTP status of an rc (TG_ERR_UPSTREAM maps to 502 when no status is set). */
int tg_rc_http_status(enum tg_rc rc);
/* Envelope type of an rc. */
const char *tg_rc_type(enum tg_rc rc);

/*
 * Fill err (which may be NULL) and return rc, so callers can write
 * `return tg_err_set(err, TG_ERR_NOT_FOUND, "end_user_id", "...", ...)`.
 * param may be NULL.  The message is truncated to fit, and made valid UTF-8
 * (a byte that is not part of a well-formed sequence becomes '?').
 */
enum tg_rc tg_err_set(struct tg_err *err, enum tg_rc rc, const char *param,
                      const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* Reset err to "no error". */
void tg_err_clear(struct tg_err *err);

/* The HTTP status and envelope type err stands for. */
int tg_err_status(const struct tg_err *err);
const char *tg_err_type(const struct tg_err *err);

/*
 * The status and error type err stands for in Anthropic's API, whose
 * clients know only its own: 400 invalid_request_error (tollgate's 422 and
 * 405 too), 401 authentication_error, 403 permission_error, 404
 * not_found_error, 413 request_too_large, 429 rate_limit_error (a budget
 * refusal too), 504 timeout_error (408 too), 529 overloaded_error, and any
 * other 5xx 500 api_error.
 */
int tg_err_anthropic(const struct tg_err *err, const char **type);

#endif
