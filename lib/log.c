/*
 * log: stderr lines "tollgate[<program> <pid>] <level> [<request id>] msg".
 *
 * One fprintf per line, so lines of several processes sharing the web
 * server's error log do not interleave mid-line.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static char log_program[64] = "tollgate";
static char log_request[40];

void
tg_log_init(const char *program)
{
	snprintf(log_program, sizeof(log_program), "%s", program);
}

void
tg_log_set_request(const char *request_id)
{
	snprintf(log_request, sizeof(log_request), "%s",
	         request_id ? request_id : "");
}

static void log_line(const char *level, const char *fmt, va_list ap)
        __attribute__((format(printf, 2, 0)));

static void
log_line(const char *level, const char *fmt, va_list ap)
{
	char msg[2048];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (log_request[0] != '\0')
		fprintf(stderr, "tollgate[%s %ld] %s [%s] %s\n", log_program,
		        (long)getpid(), level, log_request, msg);
	else
		fprintf(stderr, "tollgate[%s %ld] %s %s\n", log_program,
		        (long)getpid(), level, msg);
	fflush(stderr);
}

void
tg_log_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line("error", fmt, ap);
	va_end(ap);
}

void
tg_log_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line("warn", fmt, ap);
	va_end(ap);
}

void
tg_log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line("info", fmt, ap);
	va_end(ap);
}
