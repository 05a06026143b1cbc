/*
 * test-app: the front line (lib/app.c) through tg_app_front_line(), on
 * requests held in memory; the regressions tests/fuzz/fuzz-front found.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../tap.h"
#include "app.h"
#include "util.h"

#define ROW __LINE__

static const struct tg_field fields[] = {
        {"a", TG_FIELD_STRING, 0},
        {"m", TG_FIELD_MONEY, 0},
};

static const struct tg_route routes[] = {
        {"/t", "POST", TG_AUTH_MASTER, TG_BODY_MGMT, fields, 2, NULL},
        {"/k", "GET", TG_AUTH_MASTER | TG_AUTH_KEY, TG_BODY_NONE, NULL, 0,
         NULL},
        {"/r/*", "GET", TG_AUTH_MASTER, TG_BODY_NONE, NULL, 0, NULL},
        {"/r/*/items", "GET", TG_AUTH_MASTER, TG_BODY_NONE, NULL, 0, NULL},
        {"/r/*", "DELETE", TG_AUTH_MASTER, TG_BODY_NONE, NULL, 0, NULL},
};

static const struct tg_program program = {.name = "test-app",
                                          .routes = routes,
                                          .nroutes = sizeof(routes) /
                                                     sizeof(routes[0])};

#define KEY "HTTP_AUTHORIZATION=Bearer sk-test"
/* Any other key is a virtual key or none; without a database, none. */
#define OTHER_KEY "HTTP_AUTHORIZATION=Bearer sk-virtual"
#define INVALID   "Authentication Error, Invalid proxy server token passed."
/* A body and its length (it may hold NULs). */
#define BODY(s) s, sizeof(s) - 1

static const struct row {
	int line;
	const char *what;
	const char *method;
	const char *uri;
	const char *key; /* an env entry or NULL */
	const char *body;
	size_t body_len;
	enum tg_rc want;
	const char *want_msg; /* the message when not TG_OK, or NULL */
} rows[] = {
        {ROW, "a path that is not UTF-8 gets a 404 in UTF-8", "GET",
         "/nope\xa0", KEY, BODY(""), TG_ERR_NOT_FOUND, "Not Found: /nope?"},
        {ROW, "wrong method", "GET", "/t", KEY, BODY(""), TG_ERR_METHOD, NULL},
        /* A "*" segment: one id, nothing more or less. */
        {ROW, "a * segment", "GET", "/r/resp_1-a.b", KEY, BODY(""), TG_OK,
         NULL},
        {ROW, "a * segment, then more", "GET", "/r/resp_1/items", KEY, BODY(""),
         TG_OK, NULL},
        {ROW, "a * segment, another method", "DELETE", "/r/x", KEY, BODY(""),
         TG_OK, NULL},
        {ROW, "a * segment, a method it lacks", "POST", "/r/x", KEY, BODY("{}"),
         TG_ERR_METHOD, NULL},
        {ROW, "an empty * segment", "GET", "/r/", KEY, BODY(""),
         TG_ERR_NOT_FOUND, NULL},
        {ROW, "two segments for one *", "GET", "/r/a/b", KEY, BODY(""),
         TG_ERR_NOT_FOUND, NULL},
        {ROW, "an escape in a * segment", "GET", "/r/a%2Fb", KEY, BODY(""),
         TG_ERR_NOT_FOUND, NULL},
        {ROW, "a * segment of other characters", "GET", "/r/a:b", KEY, BODY(""),
         TG_ERR_NOT_FOUND, NULL},
        {ROW, "no key", "POST", "/t", NULL, BODY("{}"), TG_ERR_AUTH, NULL},
        {ROW, "another key, master only", "POST", "/t", OTHER_KEY, BODY("{}"),
         TG_ERR_AUTH, INVALID},
        {ROW, "the master key where keys are admitted", "GET", "/k", KEY,
         BODY(""), TG_OK, NULL},
        {ROW, "another key where keys are admitted, no database", "GET", "/k",
         OTHER_KEY, BODY(""), TG_ERR_AUTH, INVALID},
        {ROW, "a '#' note is read as a comment", "POST", "/t", KEY,
         BODY("{\"a\": \"x#y\" # note\n}"), TG_OK, NULL},
        /* The '#' fallback copied the body with strndup(), which stops at
         * the NUL, then read and wrote body_len bytes of the copy. */
        {ROW, "a NUL before a '#' note: 400, no overflow", "POST", "/t", KEY,
         BODY("{\"a\": 1,\0 # note\n \"m\": 1}"), TG_ERR_BAD_REQUEST, NULL},
        {ROW, "a NUL and a '#' at the end", "POST", "/t", KEY,
         BODY("{\0\0\0\0\0\0\0\0\0\0\0\0\0\0#"), TG_ERR_BAD_REQUEST, NULL},
        /* "Received: %.64s" cut a two-byte character in half. */
        {ROW, "a bad value quoted and cut stays UTF-8", "POST", "/t", KEY,
         BODY("{\"m\": "
              "\"x\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
              "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
              "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
              "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
              "\xc3\xa9\xc3\xa9\xc3\xa9\"}"),
         TG_ERR_UNPROCESSABLE, NULL},
};

static char config_path[64];

static void
write_config(void)
{
	int fd;
	FILE *f;

	snprintf(config_path, sizeof(config_path), "/tmp/tg-test-app-XXXXXX");
	fd = mkstemp(config_path);
	if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
		perror("mkstemp");
		exit(1);
	}
	fputs("general_settings:\n  master_key: sk-test\n", f);
	fclose(f);
	setenv("TOLLGATE_CONFIG", config_path, 1);
}

int
main(void)
{
	unsetenv("DATABASE_URL");
	write_config();
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		char method[64], uri[128], clen[64];
		char *envp[5];
		size_t n = 0;
		struct tg_err err;
		enum tg_rc rc;

		snprintf(method, sizeof(method), "REQUEST_METHOD=%s",
		         r->method);
		snprintf(uri, sizeof(uri), "REQUEST_URI=%s", r->uri);
		snprintf(clen, sizeof(clen), "CONTENT_LENGTH=%zu", r->body_len);
		envp[n++] = method;
		envp[n++] = uri;
		envp[n++] = clen;
		if (r->key != NULL)
			envp[n++] = (char *)(uintptr_t)r->key;
		envp[n] = NULL;
		tg_err_clear(&err);
		rc = tg_app_front_line(&program, envp, r->body, r->body_len,
		                       NULL, NULL, &err);
		if (!tap_ok(rc == r->want, __FILE__, r->line, "%s: %s", r->what,
		            tg_rc_str(r->want)))
			diag("got %s: %s", tg_rc_str(rc), err.message);
		if (rc != TG_OK)
			tap_ok(tg_utf8_valid(err.message, strlen(err.message)),
			       __FILE__, r->line, "%s: message is UTF-8",
			       r->what);
		if (r->want_msg != NULL)
			tap_ok(strcmp(err.message, r->want_msg) == 0, __FILE__,
			       r->line, "%s: message \"%s\"", r->what,
			       r->want_msg);
	}
	unlink(config_path);
	return done_testing();
}
