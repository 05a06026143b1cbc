/*
 * log: one line per event on stderr, which the web server puts in its error
 * log.  Lines carry the program name and, when there is one, the request
 * id.  Never pass a key, a prompt or a completion.
 */
#ifndef TG_LOG_H
#define TG_LOG_H

/* Set once at start: the program name shown in every line. */
void tg_log_init(const char *program);

/* The request id of the request being served ("" for none); copied. */
void tg_log_set_request(const char *request_id);

void tg_log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void tg_log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void tg_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
