/*
 * test-app-response: what lib/app.c writes as a response head, run the way a
 * web server runs a program (plain CGI: the environment, stdin, stdout).
 *
 * Each case forks, and the child serves one request with a small program
 * whose handlers use the public response API (tg_req_add_header,
 * tg_req_stream_begin, ...); the parent reads the answer and checks the
 * head line by line: a header value or name with CR/LF is dropped (with a
 * line in the log), never split into headers of its own, and values longer
 * than any buffer (a long content type, a long header) are written whole.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../tap.h"
#include "app.h"

#define LONG_LEN 3000

static char long_type[LONG_LEN + 64];
static char long_value[LONG_LEN + 1];

static enum tg_rc
inject(struct tg_req *req, struct tg_err *err)
{
	(void)err;
	tg_req_add_header(req, "X-Ok", "fine\there");
	tg_req_add_header(req, "X-Cr-Lf", "a\r\nSet-Cookie: evil=1");
	tg_req_add_header(req, "X-Lf", "a\nX-Evil: 2");
	tg_req_add_header(req, "X-Cr", "a\rX-Evil: 3");
	tg_req_add_header(req, "X-Ctl", "a\001b");
	tg_req_add_header(req, "X-Evil\r\nX-Name", "4");
	tg_req_add_header(req, "X Space", "5");
	tg_req_add_header(req, "", "6");
	tg_req_add_header(req, "X-Long", long_value);
	tg_req_respond_raw(req, 200, "{}", 2);
	return TG_OK;
}

static enum tg_rc
long_stream(struct tg_req *req, struct tg_err *err)
{
	(void)err;
	tg_req_stream_begin(req, 200, long_type);
	tg_req_stream_write(req, "data: x\n\n", 9);
	return TG_OK;
}

static const struct tg_route routes[] = {
        {"/inject", "GET", TG_AUTH_NONE, TG_BODY_NONE, NULL, 0, inject},
        {"/long", "GET", TG_AUTH_NONE, TG_BODY_NONE, NULL, 0, long_stream},
};

static const struct tg_program program = {.name = "test-app-response",
                                          .routes = routes,
                                          .nroutes = sizeof(routes) /
                                                     sizeof(routes[0])};

struct answer {
	char *out; /* stdout, NUL-terminated */
	size_t out_len;
	char *log; /* stderr */
	int status;
};

static char *
slurp(FILE *f, size_t *len)
{
	size_t cap = 4096, n = 0, r;
	char *buf = malloc(cap);

	while (buf != NULL && (r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
		n += r;
		if (cap - n < 2) {
			cap *= 2;
			buf = realloc(buf, cap);
		}
	}
	if (buf == NULL)
		abort();
	buf[n] = '\0';
	if (len != NULL)
		*len = n;
	return buf;
}

/* Serve GET uri in a child process, as plain CGI. */
static struct answer
serve(const char *uri)
{
	struct answer a = {NULL, 0, NULL, -1};
	FILE *out = tmpfile(), *log = tmpfile();
	pid_t pid;

	if (out == NULL || log == NULL)
		abort();
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		abort();
	if (pid == 0) {
		FILE *in = fopen("/dev/null", "r");

		if (in == NULL || dup2(fileno(in), 0) < 0 ||
		    dup2(fileno(out), 1) < 0 || dup2(fileno(log), 2) < 0)
			_exit(99);
		setenv("GATEWAY_INTERFACE", "CGI/1.1", 1);
		setenv("REQUEST_METHOD", "GET", 1);
		setenv("REQUEST_URI", uri, 1);
		setenv("QUERY_STRING", "", 1);
		_exit(tg_app_main(&program));
	}
	waitpid(pid, &a.status, 0);
	rewind(out);
	rewind(log);
	a.out = slurp(out, &a.out_len);
	a.log = slurp(log, NULL);
	fclose(out);
	fclose(log);
	return a;
}

/* The head's lines (up to the blank line), each without its CR LF; a line
 * ending in a bare LF or CR is returned with it, so it shows. */
static size_t
head_lines(const char *out, char lines[][LONG_LEN + 128], size_t max)
{
	size_t n = 0;
	const char *p = out, *eol;

	while (n < max && (eol = strstr(p, "\r\n")) != NULL && eol != p) {
		size_t len = (size_t)(eol - p);

		if (len >= sizeof(lines[0]))
			len = sizeof(lines[0]) - 1;
		memcpy(lines[n], p, len);
		lines[n][len] = '\0';
		n++;
		p = eol + 2;
	}
	return n;
}

static char lines[32][LONG_LEN + 128];

static void
test_injection(void)
{
	struct answer a = serve("/inject");
	char want_long[LONG_LEN + 16];
	size_t n = head_lines(a.out, lines, 32);
	const char *want[] = {"Status: 200 OK",
	                      "Content-Type: application/json",
	                      NULL, /* x-litellm-call-id */
	                      "Content-Length: 2",
	                      "X-Ok: fine\there",
	                      want_long};

	snprintf(want_long, sizeof(want_long), "X-Long: %s", long_value);
	ok(WIFEXITED(a.status) && WEXITSTATUS(a.status) == 0,
	   "inject: the program exits with 0");
	is_int(6, n, "inject: six header lines, no injected one");
	for (size_t i = 0; i < 6 && i < n; i++)
		if (want[i] != NULL)
			is_string(want[i], lines[i], "inject: header line %zu",
			          i + 1);
	ok(n > 2 && strncmp(lines[2], "x-litellm-call-id: ", 19) == 0 &&
	           strlen(lines[2]) == 19 + 36,
	   "inject: x-litellm-call-id, a uuid");
	ok(strstr(a.out, "evil") == NULL && strstr(a.out, "Evil") == NULL &&
	           strstr(a.out, "X-Name") == NULL &&
	           strstr(a.out, "X Space") == NULL &&
	           strstr(a.out, "\r\n: 6\r\n") == NULL &&
	           strstr(a.out, "\001") == NULL,
	   "inject: no trace of a refused header in the answer");
	ok(a.out_len >= 6 && strcmp(a.out + a.out_len - 6, "\r\n\r\n{}") == 0,
	   "inject: the body follows the blank line");
	{
		int dropped = 0;

		for (const char *p = a.log;
		     (p = strstr(p, "response header dropped")) != NULL; p++)
			dropped++;
		is_int(7, dropped, "inject: each refused header is logged");
	}
	ok(strstr(a.log, "evil") == NULL,
	   "inject: the log does not repeat the value");
	free(a.out);
	free(a.log);
}

static void
test_long_head(void)
{
	struct answer a = serve("/long");
	char want[sizeof(long_type) + 16];
	size_t n = head_lines(a.out, lines, 32);

	snprintf(want, sizeof(want), "Content-Type: %s", long_type);
	ok(WIFEXITED(a.status) && WEXITSTATUS(a.status) == 0,
	   "long: the program exits with 0");
	is_int(5, n, "long: five header lines");
	if (n >= 2)
		is_string(want, lines[1], "long: a %zu-byte content type whole",
		          strlen(long_type));
	ok(n > 2 && strncmp(lines[2], "x-litellm-call-id: ", 19) == 0 &&
	           strlen(lines[2]) == 19 + 36,
	   "long: then x-litellm-call-id, a uuid");
	ok(a.out_len > 13 &&
	           strcmp(a.out + a.out_len - 13, "\r\n\r\ndata: x\n\n") == 0,
	   "long: the body follows the blank line");
	free(a.out);
	free(a.log);
}

int
main(void)
{
	memset(long_value, 'v', LONG_LEN);
	long_value[LONG_LEN] = '\0';
	snprintf(long_type, sizeof(long_type), "text/event-stream; x=%s",
	         long_value);
	test_injection();
	test_long_head();
	return done_testing();
}
