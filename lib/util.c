/*
 * util: small helpers every module uses: request ids (UUID v4), SHA-256 (the
 * ledger stores a digest of the key, never the key), constant-time
 * comparison of secrets, strict UTF-8 validation of ids, UTC time text, and
 * allocation that aborts on failure.
 *
 * SHA-256 is written here from FIPS 180-4 rather than taken from OpenSSL so
 * that tollgate links no crypto library for one digest.
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

/* ---- allocation --------------------------------------------------------- */

static void
oom(size_t n)
{
	fprintf(stderr, "tollgate: out of memory (%zu bytes)\n", n);
	abort();
}

void *
tg_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		oom(n);
	return p;
}

void *
tg_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		oom(n * size);
	return p;
}

void *
tg_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (q == NULL)
		oom(n);
	return q;
}

char *
tg_xstrdup(const char *s)
{
	return tg_xstrndup(s, strlen(s));
}

char *
tg_xstrndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p = tg_xmalloc(len + 1);

	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

/* ---- random ids --------------------------------------------------------- */

/*
 * Fill buf from the kernel's CSPRNG.  getrandom(2) first; /dev/urandom for
 * kernels without it.  No source at all is fatal: a predictable request id
 * would be worse than a restart.
 */
void
tg_random_bytes(void *out, size_t len)
{
	unsigned char *buf = out;
	size_t got = 0;
	int fd;

	while (got < len) {
		ssize_t r = getrandom(buf + got, len - got, 0);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		got += (size_t)r;
	}
	if (got == len)
		return;
	fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		abort();
	while (got < len) {
		ssize_t r = read(fd, buf + got, len - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			abort();
		got += (size_t)r;
	}
	close(fd);
}

void
tg_strlcpy(char *dst, size_t cap, const char *src)
{
	size_t n = src != NULL ? strlen(src) : 0;

	if (n >= cap)
		n = cap - 1;
	if (n > 0)
		memcpy(dst, src, n);
	dst[n] = '\0';
}

int
tg_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

void
tg_uuid_new(char buf[37])
{
	static const char hexdig[] = "0123456789abcdef";
	unsigned char b[16];
	size_t i, o = 0;

	tg_random_bytes(b, sizeof(b));
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	for (i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			buf[o++] = '-';
		buf[o++] = hexdig[b[i] >> 4];
		buf[o++] = hexdig[b[i] & 0x0f];
	}
	buf[o] = '\0';
}

/* ---- SHA-256 (FIPS 180-4) ----------------------------------------------- */

static const uint32_t sha256_k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
        0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
        0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
        0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
        0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
        0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
        0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
        0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t
rotr(uint32_t x, unsigned n)
{
	return (x >> n) | (x << (32 - n));
}

static void
sha256_block(uint32_t h[8], const unsigned char blk[64])
{
	uint32_t w[64], a, b, c, d, e, f, g, hh, t1, t2;
	int i;

	for (i = 0; i < 16; i++)
		w[i] = (uint32_t)blk[4 * i] << 24 |
		       (uint32_t)blk[4 * i + 1] << 16 |
		       (uint32_t)blk[4 * i + 2] << 8 | (uint32_t)blk[4 * i + 3];
	for (i = 16; i < 64; i++) {
		uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^
		              (w[i - 15] >> 3);
		uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^
		              (w[i - 2] >> 10);

		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	a = h[0];
	b = h[1];
	c = h[2];
	d = h[3];
	e = h[4];
	f = h[5];
	g = h[6];
	hh = h[7];
	for (i = 0; i < 64; i++) {
		t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) +
		     ((e & f) ^ (~e & g)) + sha256_k[i] + w[i];
		t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) +
		     ((a & b) ^ (a & c) ^ (b & c));
		hh = g;
		g = f;
		f = e;
		e = d + t1;
		d = c;
		c = b;
		b = a;
		a = t1 + t2;
	}
	h[0] += a;
	h[1] += b;
	h[2] += c;
	h[3] += d;
	h[4] += e;
	h[5] += f;
	h[6] += g;
	h[7] += hh;
}

/*
 * SHA-256 of first (64 bytes, or NULL for none) followed by data: the
 * inner and outer hashes of HMAC start with one block of key material.
 */
static void
sha256_after(const unsigned char *first, const void *data, size_t len,
             unsigned char out[32])
{
	uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
	                 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
	const unsigned char *p = data;
	unsigned char tail[128];
	size_t rest, tlen, i;
	uint64_t bits = ((uint64_t)len + (first != NULL ? 64 : 0)) * 8;

	if (first != NULL)
		sha256_block(h, first);
	for (; len >= 64; p += 64, len -= 64)
		sha256_block(h, p);
	/* Padding: 0x80, zeros, then the 64-bit big-endian bit length. */
	rest = len;
	memset(tail, 0, sizeof(tail));
	if (rest > 0)
		memcpy(tail, p, rest);
	tail[rest] = 0x80;
	tlen = rest + 1 + 8 <= 64 ? 64 : 128;
	for (i = 0; i < 8; i++)
		tail[tlen - 1 - i] = (unsigned char)(bits >> (8 * i));
	sha256_block(h, tail);
	if (tlen == 128)
		sha256_block(h, tail + 64);
	for (i = 0; i < 8; i++) {
		out[4 * i] = (unsigned char)(h[i] >> 24);
		out[4 * i + 1] = (unsigned char)(h[i] >> 16);
		out[4 * i + 2] = (unsigned char)(h[i] >> 8);
		out[4 * i + 3] = (unsigned char)h[i];
	}
}

void
tg_sha256(const void *data, size_t len, unsigned char out[32])
{
	sha256_after(NULL, data, len, out);
}

/* HMAC-SHA256 (RFC 2104): H((K ^ opad) || H((K ^ ipad) || msg)). */
void
tg_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen,
               unsigned char out[32])
{
	unsigned char k[64], pad[64], inner[32];
	size_t i;

	memset(k, 0, sizeof(k));
	if (klen > 64)
		tg_sha256(key, klen, k);
	else if (klen > 0)
		memcpy(k, key, klen);
	for (i = 0; i < 64; i++)
		pad[i] = k[i] ^ 0x36;
	sha256_after(pad, msg, mlen, inner);
	for (i = 0; i < 64; i++)
		pad[i] = k[i] ^ 0x5c;
	sha256_after(pad, inner, sizeof(inner), out);
}

void
tg_hex(const unsigned char *d, size_t n, char *hex)
{
	static const char hexdig[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		hex[2 * i] = hexdig[d[i] >> 4];
		hex[2 * i + 1] = hexdig[d[i] & 15];
	}
	hex[2 * n] = '\0';
}

/* Base64 of d[0..n) in alphabet, '=' padded when pad. */
static void
base64(const unsigned char *d, size_t n, char *out, const char *alphabet,
       bool pad)
{
	size_t o = 0, i = 0;

	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 |
		             d[i + 2];
		out[o++] = alphabet[v >> 18];
		out[o++] = alphabet[(v >> 12) & 63];
		out[o++] = alphabet[(v >> 6) & 63];
		out[o++] = alphabet[v & 63];
	}
	if (n - i == 1) {
		out[o++] = alphabet[d[i] >> 2];
		out[o++] = alphabet[(d[i] & 3) << 4];
		if (pad) {
			out[o++] = '=';
			out[o++] = '=';
		}
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)d[i] << 8 | d[i + 1];
		out[o++] = alphabet[v >> 10];
		out[o++] = alphabet[(v >> 4) & 63];
		out[o++] = alphabet[(v & 15) << 2];
		if (pad)
			out[o++] = '=';
	}
	out[o] = '\0';
}

void
tg_base64url(const unsigned char *d, size_t n, char *out)
{
	base64(d, n, out,
	       "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-"
	       "_",
	       false);
}

void
tg_base64(const void *d, size_t n, char *out)
{
	base64(d, n, out,
	       "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+"
	       "/",
	       true);
}

void
tg_sha256_hex(const void *data, size_t len, char hex[65])
{
	unsigned char d[32];

	tg_sha256(data, len, d);
	tg_hex(d, sizeof(d), hex);
}

/* ---- comparison --------------------------------------------------------- */

bool
tg_memeq_const_time(const void *a, size_t alen, const void *b, size_t blen)
{
	const volatile unsigned char *pa = a, *pb = b;
	unsigned char diff = 0;
	size_t i;

	/*
	 * The loop runs over a (the presented value) whatever b is, reading b
	 * cyclically, so neither where they differ nor b's length shows in
	 * the time taken.
	 */
	if (blen == 0)
		return alen == 0;
	for (i = 0; i < alen; i++)
		diff |= (unsigned char)(pa[i] ^ pb[i % blen]);
	return diff == 0 && alen == blen;
}

/* ---- UTF-8 -------------------------------------------------------------- */

size_t
tg_utf8_valid_prefix(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	/* Unicode 15, table 3-7: well-formed byte sequences. */
	while (i < len) {
		unsigned char c = p[i];
		unsigned char lo = 0x80, hi = 0xbf;
		size_t n, k;

		if (c < 0x80) {
			/* Bodies are mostly ASCII: skip it 16 bytes at a
			 * time (memcpy is one unaligned load). */
			uint64_t w[2];

			while (len - i >= sizeof(w)) {
				memcpy(w, p + i, sizeof(w));
				if (((w[0] | w[1]) & 0x8080808080808080ULL) !=
				    0)
					break;
				i += sizeof(w);
			}
			while (i < len && p[i] < 0x80)
				i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			if (c == 0xe0)
				lo = 0xa0; /* overlong */
			else if (c == 0xed)
				hi = 0x9f; /* surrogates */
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			if (c == 0xf0)
				lo = 0x90; /* overlong */
			else if (c == 0xf4)
				hi = 0x8f; /* above U+10FFFF */
		} else {
			return i; /* 0x80..0xc1, 0xf5..0xff */
		}
		if (len - i - 1 < n)
			return i; /* truncated */
		if (p[i + 1] < lo || p[i + 1] > hi)
			return i;
		for (k = 2; k <= n; k++)
			if (p[i + k] < 0x80 || p[i + k] > 0xbf)
				return i;
		i += n + 1;
	}
	return len;
}

bool
tg_utf8_valid(const char *s, size_t len)
{
	return tg_utf8_valid_prefix(s, len) == len;
}

/* The value of the 4 hex digits at s, or -1. */
static long
hex4(const char *s)
{
	long v = 0;

	for (int i = 0; i < 4; i++) {
		int h = tg_hexval((unsigned char)s[i]);

		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

size_t
tg_json_lone_surrogate(const char *s, size_t len)
{
	const char *p = s, *end = s + len;

	/* Every backslash of a JSON text starts an escape of two bytes, or
	 * of six for \uXXXX; a pair is \uD8xx-\uDBxx then \uDCxx-\uDFxx. */
	while ((p = memchr(p, '\\', (size_t)(end - p))) != NULL) {
		long u, low;

		if (end - p < 6 || p[1] != 'u' || (u = hex4(p + 2)) < 0) {
			p += end - p < 2 ? 1 : 2;
			continue;
		}
		if (u >= 0xdc00 && u <= 0xdfff)
			return (size_t)(p - s);
		if (u >= 0xd800 && u <= 0xdbff) {
			if (end - p < 12 || p[6] != '\\' || p[7] != 'u' ||
			    (low = hex4(p + 8)) < 0xdc00 || low > 0xdfff)
				return (size_t)(p - s);
			p += 12;
			continue;
		}
		p += 6;
	}
	return len;
}

/* ---- time --------------------------------------------------------------- */

/* 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z: what fits the fixed text. */
#define TIME_MIN (-62135596800LL)
#define TIME_MAX 253402300799LL

/* width decimal digits of v (0 <= v < 10^width) at p. */
static void
put_digits(char *p, unsigned v, int width)
{
	while (width-- > 0) {
		p[width] = (char)('0' + v % 10);
		v /= 10;
	}
}

/*
 * "YYYY-MM-DD?HH:MM:SS" into buf (19 chars, not terminated), sep between
 * date and time.  t is clamped to the years 1..9999 that the text can hold.
 */
static void
format_utc(time_t t, char sep, char *buf)
{
	struct tm tm;

	if ((long long)t < TIME_MIN)
		t = (time_t)TIME_MIN;
	if ((long long)t > TIME_MAX)
		t = (time_t)TIME_MAX;
	if (gmtime_r(&t, &tm) == NULL) {
		memset(&tm, 0, sizeof(tm));
		tm.tm_year = 70;
		tm.tm_mday = 1;
	}
	put_digits(buf, (unsigned)(tm.tm_year + 1900), 4);
	buf[4] = '-';
	put_digits(buf + 5, (unsigned)(tm.tm_mon + 1), 2);
	buf[7] = '-';
	put_digits(buf + 8, (unsigned)tm.tm_mday, 2);
	buf[10] = sep;
	put_digits(buf + 11, (unsigned)tm.tm_hour, 2);
	buf[13] = ':';
	put_digits(buf + 14, (unsigned)tm.tm_min, 2);
	buf[16] = ':';
	put_digits(buf + 17, (unsigned)tm.tm_sec, 2);
}

void
tg_time_iso8601(time_t t, char buf[21])
{
	format_utc(t, 'T', buf);
	buf[19] = 'Z';
	buf[20] = '\0';
}

void
tg_time_sql(time_t t, char buf[20])
{
	format_utc(t, ' ', buf);
	buf[19] = '\0';
}

/* Exactly n digits at *p into *v; advances *p. */
static bool
digits(const char **p, int n, int *v)
{
	int i, x = 0;

	for (i = 0; i < n; i++) {
		char c = (*p)[i];

		if (c < '0' || c > '9')
			return false;
		x = x * 10 + (c - '0');
	}
	*p += n;
	*v = x;
	return true;
}

static bool
leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int
month_days(int y, int m)
{
	static const int md[12] = {31, 28, 31, 30, 31, 30,
	                           31, 31, 30, 31, 30, 31};

	return m == 2 && leap(y) ? 29 : md[m - 1];
}

/* Parse "YYYY-MM-DD" at *p; advances *p. */
static bool
parse_date(const char **p, struct tm *tm)
{
	int y, mo, d;

	if (!digits(p, 4, &y) || *(*p)++ != '-' || !digits(p, 2, &mo) ||
	    *(*p)++ != '-' || !digits(p, 2, &d))
		return false;
	if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > month_days(y, mo))
		return false;
	tm->tm_year = y - 1900;
	tm->tm_mon = mo - 1;
	tm->tm_mday = d;
	return true;
}

/* Parse "HH:MM:SS[.f+]" at *p; advances *p. */
static bool
parse_clock(const char **p, struct tm *tm)
{
	int h, mi, s;

	if (!digits(p, 2, &h) || *(*p)++ != ':' || !digits(p, 2, &mi) ||
	    *(*p)++ != ':' || !digits(p, 2, &s))
		return false;
	if (h > 23 || mi > 59 || s > 59)
		return false;
	if (**p == '.') {
		(*p)++;
		if (**p < '0' || **p > '9')
			return false;
		while (**p >= '0' && **p <= '9')
			(*p)++; /* fractions of a second are dropped */
	}
	tm->tm_hour = h;
	tm->tm_min = mi;
	tm->tm_sec = s;
	return true;
}

bool
tg_time_parse_sql(const char *s, time_t *out)
{
	struct tm tm;
	const char *p = s;

	memset(&tm, 0, sizeof(tm));
	if (s == NULL || !parse_date(&p, &tm) || *p++ != ' ' ||
	    !parse_clock(&p, &tm) || *p != '\0')
		return false;
	*out = timegm(&tm);
	return true;
}

bool
tg_time_parse_iso8601(const char *s, time_t *out)
{
	struct tm tm;
	const char *p = s;
	long offset = 0;

	memset(&tm, 0, sizeof(tm));
	if (s == NULL || !parse_date(&p, &tm))
		return false;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		p++;
		if (!parse_clock(&p, &tm))
			return false;
		if (*p == 'Z' || *p == 'z') {
			p++;
		} else if (*p == '+' || *p == '-') {
			int sign = *p == '-' ? -1 : 1, oh, om;

			p++;
			if (!digits(&p, 2, &oh) || *p++ != ':' ||
			    !digits(&p, 2, &om) || oh > 23 || om > 59)
				return false;
			offset = sign * (oh * 3600L + om * 60L);
		}
	}
	if (*p != '\0')
		return false;
	/* Local time = UTC + offset, so UTC = local - offset. */
	*out = timegm(&tm) - (time_t)offset;
	return true;
}

int64_t
tg_now_us(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		abort(); /* cannot fail with a valid clock id */
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
tg_buf_add(struct tg_buf *b, const char *s, size_t n)
{
	b->p = tg_xrealloc(b->p, b->len + n + 1);
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void
tg_buf_free(struct tg_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = 0;
}

void
tg_csv_field(struct tg_buf *b, const char *s)
{
	if (s == NULL)
		return;
	if (s[0] != '\0' && strpbrk(s, ",\"\r\n") == NULL) {
		tg_buf_add(b, s, strlen(s));
		return;
	}
	tg_buf_add(b, "\"", 1);
	for (const char *p = s; *p != '\0'; p++) {
		if (*p == '"')
			tg_buf_add(b, "\"\"", 2);
		else
			tg_buf_add(b, p, 1);
	}
	tg_buf_add(b, "\"", 1);
}

int
tg_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	int rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* mkdir -p dir, mode 0700; a directory made is made durable in its
 * parent, or a crash could lose it with the files in it. */
int
tg_make_dirs(const char *dir)
{
	char path[4096];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(path, dir, n + 1);
	for (size_t i = 1; i <= n; i++) {
		char *slash;

		if (path[i] != '/' && path[i] != '\0')
			continue;
		path[i] = '\0';
		if (mkdir(path, 0700) == 0) {
			slash = strrchr(path, '/');
			if (slash != NULL && slash != path) {
				*slash = '\0';
				if (tg_fsync_dir(path) != 0)
					return -1;
				*slash = '/';
			}
		} else if (errno != EEXIST) {
			return -1;
		}
		path[i] = i < n ? '/' : '\0';
	}
	return 0;
}

int
tg_write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}
