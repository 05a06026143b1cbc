/*
 * util: small pure helpers shared by every module: request ids, SHA-256
 * (the ledger stores a digest of the key used, never the key), constant-time
 * comparison, UTC time formatting, UTF-8 validation.
 */
#ifndef TG_UTIL_H
#define TG_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* len bytes from the kernel's CSPRNG (aborts if there is none). */
void tg_random_bytes(void *buf, size_t len);

/* A random RFC 4122 version 4 UUID, lowercase, into buf (37 bytes). */
void tg_uuid_new(char buf[37]);

/* SHA-256 of data as 64 lowercase hex digits and a NUL into hex (65 bytes). */
void tg_sha256_hex(const void *data, size_t len, char hex[65]);
/* Raw SHA-256 digest. */
void tg_sha256(const void *data, size_t len, unsigned char out[32]);
/* HMAC-SHA256 of msg under key (RFC 2104; webhook signatures, SPEC 9). */
void tg_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen,
                    unsigned char out[32]);
/* n bytes as 2n lowercase hex digits and a NUL into hex. */
void tg_hex(const unsigned char *d, size_t n, char *hex);

/*
 * d[0..n) in the URL-safe base64 alphabet of RFC 4648 section 5 ("-" and
 * "_"), without padding: 4 characters per 3 bytes, the last group shorter
 * (ceil(4n/3) characters), and a NUL, into out (TG_BASE64URL_LEN(n) bytes).
 */
#define TG_BASE64URL_LEN(n) (((n)*4 + 2) / 3 + 1)
void tg_base64url(const unsigned char *d, size_t n, char *out);
/* d[0..n) in base64 (RFC 4648 section 4, '=' padded) into out, which has
 * room for 4 * ((n + 2) / 3) + 1 bytes. */
void tg_base64(const void *d, size_t n, char *out);

/* Compare a and b without leaking where they differ; lengths may differ. */
bool tg_memeq_const_time(const void *a, size_t alen, const void *b,
                         size_t blen);

/* Copy src (NULL: "") into dst of cap >= 1 bytes, truncating; always
 * NUL-terminated. */
void tg_strlcpy(char *dst, size_t cap, const char *src);

/* The value of hex digit c, or -1. */
int tg_hexval(int c);

/* true if s[0..len) is valid UTF-8 (no overlongs, no surrogates). */
bool tg_utf8_valid(const char *s, size_t len);
/* The length of the longest valid UTF-8 prefix of s[0..len): len when all
 * of it is valid, else the offset of the first bad sequence.  Linear, with
 * a fast path for ASCII (the front line runs it on 10 MiB bodies). */
size_t tg_utf8_valid_prefix(const char *s, size_t len);
/*
 * The offset in the JSON text s[0..len) of the first \u escape of a lone
 * surrogate (\uD800-\uDFFF not forming a high-low pair), or len if none.
 * Such an escape names no Unicode character (json-c would silently make it
 * U+FFFD).  Escapes are followed from backslash to backslash, so "\\uD800"
 * (an escaped backslash, then text) is not one.
 */
size_t tg_json_lone_surrogate(const char *s, size_t len);

/* "2026-12-01T00:00:00Z" for t (UTC) into buf (21 bytes). */
void tg_time_iso8601(time_t t, char buf[21]);
/* "2026-12-01 00:00:00" (UTC), the form MySQL DATETIME literals take. */
void tg_time_sql(time_t t, char buf[20]);
/* Parse "YYYY-MM-DD HH:MM:SS[.ffffff]" (UTC) as MySQL returns it. */
bool tg_time_parse_sql(const char *s, time_t *out);
/* Parse ISO 8601 "YYYY-MM-DD[THH:MM:SS[.fff]][Z|+00:00]" as UTC. */
bool tg_time_parse_iso8601(const char *s, time_t *out);

/* Microseconds of a monotonic clock. */
int64_t tg_now_us(void);

/* Allocation that aborts on failure (DESIGN: the web server restarts us). */
void *tg_xmalloc(size_t n);
void *tg_xcalloc(size_t n, size_t size);
void *tg_xrealloc(void *p, size_t n);
char *tg_xstrdup(const char *s);
char *tg_xstrndup(const char *s, size_t n);

/* A growing text, always NUL-terminated once anything was added ({NULL,
 * 0} is empty). */
struct tg_buf {
	char *p;
	size_t len;
};

/* Append s[0..n) to b. */
void tg_buf_add(struct tg_buf *b, const char *s, size_t n);
void tg_buf_free(struct tg_buf *b);
/* Append s as one CSV field (RFC 4180): quoted when it holds a comma, a
 * quote or a line end, or is empty; an SQL NULL (s NULL) is nothing. */
void tg_csv_field(struct tg_buf *b, const char *s);

/* fsync() of directory dir (its entries made durable); -1 with errno. */
int tg_fsync_dir(const char *dir);
/* mkdir -p dir, mode 0700; a directory made is made durable in its parent,
 * or a crash could lose it with the files in it.  -1 with errno. */
int tg_make_dirs(const char *dir);
/* write() all of buf, again after EINTR and short writes; -1 with errno. */
int tg_write_all(int fd, const char *buf, size_t len);

#endif
