/*
 * err: mapping of return codes to HTTP statuses and envelope types.
 *
 * The switches have no default so that -Wswitch-enum flags a new rc that was
 * not given a status.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "util.h"

const char *
tg_rc_str(enum tg_rc rc)
{
	switch (rc) {
	case TG_OK: return "ok";
	case TG_ERR_BAD_REQUEST: return "bad_request";
	case TG_ERR_UNPROCESSABLE: return "unprocessable";
	case TG_ERR_AUTH: return "auth";
	case TG_ERR_FORBIDDEN: return "forbidden";
	case TG_ERR_NOT_FOUND: return "not_found";
	case TG_ERR_METHOD: return "method";
	case TG_ERR_TIMEOUT: return "timeout";
	case TG_ERR_TOO_LARGE: return "too_large";
	case TG_ERR_BUDGET: return "budget";
	case TG_ERR_RATE_LIMIT: return "rate_limit";
	case TG_ERR_INTERNAL: return "internal";
	case TG_ERR_CONFIG: return "config";
	case TG_ERR_UPSTREAM_CONNECT: return "upstream_connect";
	case TG_ERR_UPSTREAM: return "upstream";
	case TG_ERR_DB: return "db";
	case TG_ERR_CONFLICT: return "conflict";
	}
	return "unknown";
}

int
tg_rc_http_status(enum tg_rc rc)
{
	switch (rc) {
	case TG_OK: return 200;
	case TG_ERR_BAD_REQUEST: return 400;
	case TG_ERR_UNPROCESSABLE: return 422;
	case TG_ERR_AUTH: return 401;
	case TG_ERR_FORBIDDEN: return 403;
	case TG_ERR_NOT_FOUND: return 404;
	case TG_ERR_METHOD: return 405;
	case TG_ERR_TIMEOUT: return 408;
	case TG_ERR_TOO_LARGE: return 413;
	case TG_ERR_BUDGET: return 429;
	case TG_ERR_RATE_LIMIT: return 429;
	case TG_ERR_INTERNAL: return 500;
	case TG_ERR_CONFIG: return 500;
	case TG_ERR_UPSTREAM_CONNECT: return 502;
	case TG_ERR_UPSTREAM: return 502;
	case TG_ERR_DB: return 503;
	case TG_ERR_CONFLICT: return 400;
	}
	return 500;
}

const char *
tg_rc_type(enum tg_rc rc)
{
	switch (rc) {
	case TG_OK: return "ok";
	case TG_ERR_BAD_REQUEST: return "invalid_request_error";
	case TG_ERR_UNPROCESSABLE: return "invalid_request_error";
	case TG_ERR_AUTH: return "auth_error";
	case TG_ERR_FORBIDDEN: return "permission_error";
	case TG_ERR_NOT_FOUND: return "not_found";
	case TG_ERR_METHOD: return "invalid_request_error";
	case TG_ERR_TIMEOUT: return "timeout_error";
	case TG_ERR_TOO_LARGE: return "invalid_request_error";
	case TG_ERR_BUDGET: return "budget_exceeded";
	case TG_ERR_RATE_LIMIT: return "rate_limit_error";
	case TG_ERR_INTERNAL: return "internal_server_error";
	case TG_ERR_CONFIG: return "internal_server_error";
	case TG_ERR_UPSTREAM_CONNECT: return "api_connection_error";
	case TG_ERR_UPSTREAM: return "api_error";
	case TG_ERR_DB: return "service_unavailable";
	case TG_ERR_CONFLICT: return "invalid_request_error";
	}
	return "internal_server_error";
}

/*
 * Make s valid UTF-8 in place: each byte that does not start a well-formed
 * sequence becomes '?'.  The message goes into the JSON envelope, which must
 * be UTF-8 (RFC 8259), yet it quotes what the client sent (a path, a value)
 * and may be cut anywhere by a "%.64s" or by the end of the buffer.
 */
static void
utf8_repair(char *s)
{
	size_t len = strlen(s), i = 0, n;

	while (i < len) {
		if ((unsigned char)s[i] < 0x80) {
			i++;
			continue;
		}
		for (n = 2; n <= 4; n++)
			if (i + n <= len && tg_utf8_valid(s + i, n))
				break;
		if (n <= 4) {
			i += n;
		} else {
			s[i] = '?';
			i++;
		}
	}
}

enum tg_rc
tg_err_set(struct tg_err *err, enum tg_rc rc, const char *param,
           const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return rc;
	err->rc = rc;
	err->status = 0;
	err->type[0] = '\0';
	snprintf(err->param, sizeof(err->param), "%s", param ? param : "");
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	utf8_repair(err->message);
	return rc;
}

void
tg_err_clear(struct tg_err *err)
{
	memset(err, 0, sizeof(*err));
}

int
tg_err_status(const struct tg_err *err)
{
	return err->status ? err->status : tg_rc_http_status(err->rc);
}

const char *
tg_err_type(const struct tg_err *err)
{
	return err->type[0] ? err->type : tg_rc_type(err->rc);
}

int
tg_err_anthropic(const struct tg_err *err, const char **type)
{
	int status = tg_err_status(err);

	switch (status) {
	case 401: *type = "authentication_error"; return 401;
	case 403: *type = "permission_error"; return 403;
	case 404: *type = "not_found_error"; return 404;
	case 413: *type = "request_too_large"; return 413;
	case 429: *type = "rate_limit_error"; return 429;
	case 408:
	case 504: *type = "timeout_error"; return 504;
	case 529: *type = "overloaded_error"; return 529;
	default: break;
	}
	if (status >= 500) {
		*type = "api_error";
		return 500;
	}
	*type = "invalid_request_error";
	return 400;
}
