/*
 * test-util: SHA-256 vectors, URL-safe base64, UUID shape, constant-time
 * comparison, UTF-8 validation, UTC time text, the monotonic clock and the
 * x-allocators (lib/util.c).
 */
#define _DEFAULT_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../tap.h"
#include "util.h"

#define ROW __LINE__

struct sha_row {
	int line;
	const char *in;
	const char *hex;
};

static const struct sha_row sha_rows[] = {
        {ROW, "",
         "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {ROW, "abc",
         "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {ROW, "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {ROW,
         "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklm"
         "nopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
        {ROW, "sk-1234",
         "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b"},
};

/* RFC 4648 section 10's vectors, in the URL-safe alphabet, unpadded. */
static const struct b64_row {
	int line;
	const char *in;
	size_t len;
	const char *out;
} b64_rows[] = {
        {ROW, "", 0, ""},
        {ROW, "f", 1, "Zg"},
        {ROW, "fo", 2, "Zm8"},
        {ROW, "foo", 3, "Zm9v"},
        {ROW, "foob", 4, "Zm9vYg"},
        {ROW, "fooba", 5, "Zm9vYmE"},
        {ROW, "foobar", 6, "Zm9vYmFy"},
        /* 62 and 63 are "-" and "_", never "+" and "/". */
        {ROW, "\xfb\xff\xbf", 3, "-_-_"},
        {ROW, "\xfb\xef", 2, "--8"},
        {ROW, "\xff", 1, "_w"},
        {ROW, "\0\0\0", 3, "AAAA"},
};

static void
test_base64url(void)
{
	for (size_t i = 0; i < sizeof(b64_rows) / sizeof(b64_rows[0]); i++) {
		const struct b64_row *r = &b64_rows[i];
		char out[TG_BASE64URL_LEN(8)];

		memset(out, 'x', sizeof(out));
		tg_base64url((const unsigned char *)r->in, r->len, out);
		is_string(r->out, out, "base64url of %zu bytes (line %d)",
		          r->len, r->line);
		ok(strlen(out) + 1 == TG_BASE64URL_LEN(r->len),
		   "TG_BASE64URL_LEN(%zu) fits exactly (line %d)", r->len,
		   r->line);
	}
}

/* RFC 4648's test vectors of standard, padded base64 (section 10). */
static void
test_base64(void)
{
	static const struct {
		const char *in, *out;
		size_t len;
	} rows[] = {
	        {"", "", 0},
	        {"f", "Zg==", 1},
	        {"fo", "Zm8=", 2},
	        {"foo", "Zm9v", 3},
	        {"foob", "Zm9vYg==", 4},
	        {"fooba", "Zm9vYmE=", 5},
	        {"foobar", "Zm9vYmFy", 6},
	        {"\xfb\xff\xbf", "+/+/", 3},
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char out[16];

		tg_base64(rows[i].in, rows[i].len, out);
		is_string(rows[i].out, out, "base64 of \"%s\"", rows[i].out);
	}
}

struct hmac_row {
	int line;
	const unsigned char *key;
	size_t klen;
	const void *data;
	size_t dlen;
	const char *want;
};

/* RFC 4231's HMAC-SHA-256 vectors (case 5, a truncated output, is not
 * a property of the function). */
static void
test_hmac(void)
{
	static const char case7[] =
	        "This is a test using a larger than block-size key and a "
	        "larger than block-size data. The key needs to be hashed "
	        "before being used by the HMAC algorithm.";
	unsigned char k20b[20], kaa20[20], k25[25], kaa131[131];
	unsigned char d50dd[50], d50cd[50], mac[32];
	char hex[65];
	struct hmac_row rows[6];

	memset(k20b, 0x0b, sizeof(k20b));
	memset(kaa20, 0xaa, sizeof(kaa20));
	for (int i = 0; i < 25; i++)
		k25[i] = (unsigned char)(i + 1);
	memset(kaa131, 0xaa, sizeof(kaa131));
	memset(d50dd, 0xdd, sizeof(d50dd));
	memset(d50cd, 0xcd, sizeof(d50cd));
	rows[0] = (struct hmac_row){ROW,
	                            k20b,
	                            20,
	                            "Hi There",
	                            8,
	                            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9"
	                            "833da726e9376c2e32cff7"};
	rows[1] = (struct hmac_row){ROW,
	                            (const unsigned char *)"Jefe",
	                            4,
	                            "what do ya want for nothing?",
	                            28,
	                            "5bdcc146bf60754e6a042426089575c75a003f089d"
	                            "2739839dec58b964ec3843"};
	rows[2] = (struct hmac_row){ROW,
	                            kaa20,
	                            20,
	                            d50dd,
	                            50,
	                            "773ea91e36800e46854db8ebd09181a72959098b3e"
	                            "f8c122d9635514ced565fe"};
	rows[3] = (struct hmac_row){ROW,
	                            k25,
	                            25,
	                            d50cd,
	                            50,
	                            "82558a389a443c0ea4cc819899f2083a85f0faa3e5"
	                            "78f8077a2e3ff46729665b"};
	rows[4] = (struct hmac_row){
	        ROW,
	        kaa131,
	        131,
	        "Test Using Larger Than Block-Size Key - Hash Key First",
	        54,
	        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f"
	        "54"};
	rows[5] = (struct hmac_row){ROW,
	                            kaa131,
	                            131,
	                            case7,
	                            sizeof(case7) - 1,
	                            "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f"
	                            "0713938a7f51535c3a35e2"};
	for (size_t i = 0; i < 6; i++) {
		tg_hmac_sha256(rows[i].key, rows[i].klen, rows[i].data,
		               rows[i].dlen, mac);
		tg_hex(mac, sizeof(mac), hex);
		is_string(rows[i].want, hex,
		          "RFC 4231 HMAC-SHA-256 test case %zu (line %d)",
		          i < 4 ? i + 1 : i + 2, rows[i].line);
	}
}

static void
test_sha256(void)
{
	size_t i, len = 1000000;
	char hex[65];
	char *a;

	for (i = 0; i < sizeof(sha_rows) / sizeof(sha_rows[0]); i++) {
		const struct sha_row *r = &sha_rows[i];

		tg_sha256_hex(r->in, strlen(r->in), hex);
		if (!tap_ok(strcmp(hex, r->hex) == 0, __FILE__, r->line,
		            "sha256 of a %zu-byte text", strlen(r->in)))
			diag("  wanted %s\n#    got %s", r->hex, hex);
	}
	a = tg_xmalloc(len);
	memset(a, 'a', len);
	tg_sha256_hex(a, len, hex);
	is_string("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc711"
	          "2cd0",
	          hex, "sha256 of 1,000,000 x 'a'");
	/* Lengths around the padding boundary must all differ and not crash. */
	{
		char prev[65] = "";
		bool distinct = true;

		for (i = 50; i <= 130; i++) {
			tg_sha256_hex(a, i, hex);
			if (strcmp(hex, prev) == 0)
				distinct = false;
			memcpy(prev, hex, sizeof(prev));
		}
		ok(distinct, "sha256 of 50..130 'a's are distinct");
	}
	/* 55 and 56 bytes: the one- and two-block padding cases. */
	tg_sha256_hex(a, 55, hex);
	is_string("9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f73"
	          "4318",
	          hex, "sha256 of 55 x 'a'");
	tg_sha256_hex(a, 56, hex);
	is_string("b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6"
	          "738a",
	          hex, "sha256 of 56 x 'a'");
	free(a);
}

static bool
is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static void
test_uuid(void)
{
	char u[37], v[37];
	bool shape = true;
	int i, n;

	for (n = 0; n < 100; n++) {
		tg_uuid_new(u);
		if (strlen(u) != 36)
			shape = false;
		for (i = 0; i < 36 && shape; i++) {
			if (i == 8 || i == 13 || i == 18 || i == 23) {
				if (u[i] != '-')
					shape = false;
			} else if (!is_hex(u[i])) {
				shape = false;
			}
		}
		if (u[14] != '4')
			shape = false;
		if (u[19] != '8' && u[19] != '9' && u[19] != 'a' &&
		    u[19] != 'b')
			shape = false;
	}
	ok(shape, "100 uuids are lowercase v4, RFC 4122 variant");
	tg_uuid_new(v);
	ok(strcmp(u, v) != 0, "two uuids differ");
}

struct memeq_row {
	int line;
	const char *a, *b;
	bool want;
};

static const struct memeq_row memeq_rows[] = {
        {ROW, "sk-1234", "sk-1234", true},
        {ROW, "sk-1234", "sk-1235", false},
        {ROW, "sk-123", "sk-1234", false},
        {ROW, "sk-1234", "sk-123", false},
        {ROW, "", "", true},
        {ROW, "", "x", false},
        {ROW, "x", "", false},
        {ROW, "abcabc", "abc", false},
        {ROW, "abc", "abcabc", false},
};

static void
test_memeq(void)
{
	size_t i;

	for (i = 0; i < sizeof(memeq_rows) / sizeof(memeq_rows[0]); i++) {
		const struct memeq_row *r = &memeq_rows[i];

		tap_ok(tg_memeq_const_time(r->a, strlen(r->a), r->b,
		                           strlen(r->b)) == r->want,
		       __FILE__, r->line, "memeq \"%s\" \"%s\"", r->a, r->b);
	}
}

struct utf8_row {
	int line;
	const char *s;
	size_t len; /* 0: strlen */
	bool want;
	const char *what;
};

static const struct utf8_row utf8_rows[] = {
        {ROW, "", 0, true, "empty"},
        {ROW, "ishaan3", 0, true, "ascii"},
        {ROW, "caf\xc3\xa9", 0, true, "2-byte"},
        {ROW, "\xe2\x82\xac", 0, true, "3-byte euro"},
        {ROW, "\xf0\x9f\x98\x80", 0, true, "4-byte emoji"},
        {ROW, "\xef\xbf\xbf", 0, true, "U+FFFF"},
        {ROW, "\xf4\x8f\xbf\xbf", 0, true, "U+10FFFF"},
        {ROW, "\xed\x9f\xbf", 0, true, "U+D7FF"},
        {ROW, "a\0b", 3, true, "NUL is valid UTF-8"},
        {ROW, "\xc0\xaf", 0, false, "overlong 2-byte /"},
        {ROW, "\xc1\xbf", 0, false, "overlong 2-byte"},
        {ROW, "\xe0\x80\xaf", 0, false, "overlong 3-byte"},
        {ROW, "\xe0\x9f\xbf", 0, false, "overlong 3-byte max"},
        {ROW, "\xf0\x80\x80\xaf", 0, false, "overlong 4-byte"},
        {ROW, "\xf0\x8f\xbf\xbf", 0, false, "overlong 4-byte max"},
        {ROW, "\xed\xa0\x80", 0, false, "surrogate D800"},
        {ROW, "\xed\xbf\xbf", 0, false, "surrogate DFFF"},
        {ROW, "\xf4\x90\x80\x80", 0, false, "above U+10FFFF"},
        {ROW, "\xf5\x80\x80\x80", 0, false, "F5 lead"},
        {ROW, "\xff", 0, false, "FF"},
        {ROW, "\x80", 0, false, "lone continuation"},
        {ROW, "caf\xc3", 0, false, "truncated 2-byte"},
        {ROW, "\xe2\x82", 0, false, "truncated 3-byte"},
        {ROW, "\xf0\x9f\x98", 0, false, "truncated 4-byte"},
        {ROW, "\xe2\x28\xa1", 0, false, "bad continuation"},
        {ROW, "\xc3\xa9\xa9", 0, false, "extra continuation"},
};

static void
test_utf8(void)
{
	size_t i;

	for (i = 0; i < sizeof(utf8_rows) / sizeof(utf8_rows[0]); i++) {
		const struct utf8_row *r = &utf8_rows[i];
		size_t len = r->len ? r->len : strlen(r->s);

		tap_ok(tg_utf8_valid(r->s, len) == r->want, __FILE__, r->line,
		       "utf8 %s: %s", r->what, r->want ? "valid" : "invalid");
	}
}

/* The offset of the first bad sequence, wherever it falls against the
 * 16-byte steps of the ASCII fast path. */
static void
test_utf8_prefix(void)
{
	static const struct {
		const char *bad;
		size_t len;
	} bads[] = {{"\xff", 1},     {"\x80", 1},         {"\xc3", 1},
	            {"\xe2\x82", 2}, {"\xed\xa0\x80", 3}, {"\xf0\x9f\x98", 3}};
	char buf[80];
	bool all = true;

	for (size_t b = 0; b < sizeof(bads) / sizeof(bads[0]); b++)
		for (size_t at = 0; at + bads[b].len + 8 <= sizeof(buf); at++) {
			size_t len = at + bads[b].len + 8, got;

			memset(buf, 'a', sizeof(buf));
			if (at >= 2) /* a valid character just before */
				memcpy(buf + at - 2, "\xc3\xa9", 2);
			memcpy(buf + at, bads[b].bad, bads[b].len);
			got = tg_utf8_valid_prefix(buf, len);
			if (got != at) {
				all = false;
				diag("bad sequence %zu at %zu: got %zu", b, at,
				     got);
			}
		}
	ok(all, "tg_utf8_valid_prefix gives the offset of the first bad "
	        "sequence at every position");
	memset(buf, 'a', sizeof(buf));
	is_int(sizeof(buf), tg_utf8_valid_prefix(buf, sizeof(buf)),
	       "all ASCII: the whole length");
	is_int(0, tg_utf8_valid_prefix(buf, 0), "empty: 0");
	is_int(9, tg_utf8_valid_prefix("caf\xc3\xa9\xf0\x9f\x98\x80", 9),
	       "multi-byte characters: the whole length");
	is_int(3, tg_utf8_valid_prefix("caf\xc3\xa9", 4),
	       "a character cut by len: its offset");
}

struct surrogate_row {
	int line;
	const char *json;
	long want; /* offset, -1: none */
};

static const struct surrogate_row surrogate_rows[] = {
        {ROW, "{\"s\":\"plain\"}", -1},
        {ROW, "{\"s\":\"\\uD83D\\uDE00\"}", -1},        /* a pair: U+1F600 */
        {ROW, "{\"s\":\"\\ud83d\\ude00\"}", -1},        /* lowercase */
        {ROW, "{\"s\":\"\\u00e9\\uFFFD\\u0000\"}", -1}, /* not surrogates */
        {ROW, "{\"s\":\"\\uD800\"}", 6},
        {ROW, "{\"s\":\"a\\uDC00\"}", 7},              /* low alone */
        {ROW, "{\"s\":\"\\uDBFF\\u0041\"}", 6},        /* high, then no low */
        {ROW, "{\"s\":\"\\uD800\\uD800\\uDC00\"}", 6}, /* high, high-low */
        {ROW, "{\"s\":\"\\uDE00\\uD83D\"}", 6},        /* reversed pair */
        {ROW, "{\"s\":\"x\\uD800", 7},                 /* at the end */
        {ROW, "{\"s\":\"\\\\uD800\"}", -1},            /* escaped backslash */
        {ROW, "{\"s\":\"\\\\\\uD800\"}", 8},           /* then a real one */
        {ROW, "{\"s\":\"\\n\\\"\\/\\uD7FF\\uE000\"}", -1},
        {ROW, "{\"s\":\"\\u12\"}", -1}, /* not an escape json-c takes */
        {ROW, "\\", -1},
};

static void
test_lone_surrogate(void)
{
	for (size_t i = 0;
	     i < sizeof(surrogate_rows) / sizeof(surrogate_rows[0]); i++) {
		const struct surrogate_row *r = &surrogate_rows[i];
		size_t len = strlen(r->json);
		size_t want = r->want < 0 ? len : (size_t)r->want;
		size_t got = tg_json_lone_surrogate(r->json, len);

		tap_ok(got == want, __FILE__, r->line,
		       "lone surrogate in %s at %ld (got %zu)", r->json,
		       r->want, got);
	}
}

struct time_row {
	int line;
	const char *iso; /* input to parse_iso8601 */
	bool ok;
	long long want; /* epoch seconds */
};

static const struct time_row iso_rows[] = {
        {ROW, "1970-01-01T00:00:00Z", true, 0},
        {ROW, "2026-12-01T00:00:00Z", true, 1796083200LL},
        {ROW, "2026-12-01", true, 1796083200LL},
        {ROW, "2026-12-01T00:00:00", true, 1796083200LL},
        {ROW, "2026-12-01 00:00:00", true, 1796083200LL},
        {ROW, "2026-12-01T00:00:00.123456Z", true, 1796083200LL},
        {ROW, "2026-12-01T00:00:00+00:00", true, 1796083200LL},
        {ROW, "2026-12-01T02:00:00+02:00", true, 1796083200LL},
        {ROW, "2026-11-30T19:00:00-05:00", true, 1796083200LL},
        {ROW, "2024-02-29T12:00:00Z", true, 1709208000LL},
        {ROW, "2023-02-29T12:00:00Z", false, 0},
        {ROW, "2026-13-01T00:00:00Z", false, 0},
        {ROW, "2026-12-32T00:00:00Z", false, 0},
        {ROW, "2026-12-01T24:00:00Z", false, 0},
        {ROW, "2026-12-01T00:60:00Z", false, 0},
        {ROW, "2026-12-01T00:00:00ZZ", false, 0},
        {ROW, "2026-12-01T00:00", false, 0},
        {ROW, "2026-12-01T00:00:00.", false, 0},
        {ROW, "2026-12-01T00:00:00+0200", false, 0},
        {ROW, "26-12-01", false, 0},
        {ROW, "", false, 0},
        {ROW, "yesterday", false, 0},
};

static const struct time_row sql_rows[] = {
        {ROW, "2026-12-01 00:00:00", true, 1796083200LL},
        {ROW, "2026-11-27 20:46:00", true, 1795812360LL},
        {ROW, "2026-12-01 00:00:00.000000", true, 1796083200LL},
        {ROW, "2026-12-01T00:00:00", false, 0},
        {ROW, "2026-12-01", false, 0},
        {ROW, "2026-12-01 00:00:00Z", false, 0},
        {ROW, "2026-02-30 00:00:00", false, 0},
};

static void
test_time(void)
{
	size_t i;
	char iso[21], sql[20];
	time_t t;

	for (i = 0; i < sizeof(iso_rows) / sizeof(iso_rows[0]); i++) {
		const struct time_row *r = &iso_rows[i];
		time_t got = (time_t)-42;
		bool ok = tg_time_parse_iso8601(r->iso, &got);

		if (!tap_ok(ok == r->ok &&
		                    (long long)got == (r->ok ? r->want : -42),
		            __FILE__, r->line, "iso8601 \"%s\" %s", r->iso,
		            r->ok ? "parses" : "is refused"))
			diag("  got ok=%d %lld", ok, (long long)got);
	}
	for (i = 0; i < sizeof(sql_rows) / sizeof(sql_rows[0]); i++) {
		const struct time_row *r = &sql_rows[i];
		time_t got = (time_t)-42;
		bool ok = tg_time_parse_sql(r->iso, &got);
		long long want = r->want;

		if (!tap_ok(ok == r->ok &&
		                    (long long)got == (r->ok ? want : -42),
		            __FILE__, r->line, "sql time \"%s\" %s", r->iso,
		            r->ok ? "parses" : "is refused"))
			diag("  got ok=%d %lld", ok, (long long)got);
	}

	tg_time_iso8601((time_t)1796083200LL, iso);
	is_string("2026-12-01T00:00:00Z", iso, "iso8601 format");
	tg_time_sql((time_t)1796083200LL, sql);
	is_string("2026-12-01 00:00:00", sql, "sql format");
	tg_time_iso8601((time_t)0, iso);
	is_string("1970-01-01T00:00:00Z", iso, "iso8601 of the epoch");
	tg_time_iso8601((time_t)1709251199LL, iso);
	is_string("2024-02-29T23:59:59Z", iso, "iso8601 of a leap day");

	/* Round trips over a spread of times. */
	{
		bool round = true;

		for (t = 0; t < (time_t)4102444800LL; t += 7777777) {
			time_t a = 0, b = 0;

			tg_time_iso8601(t, iso);
			tg_time_sql(t, sql);
			if (!tg_time_parse_iso8601(iso, &a) || a != t ||
			    !tg_time_parse_sql(sql, &b) || b != t) {
				diag("  round trip failed at %lld (%s, %s)",
				     (long long)t, iso, sql);
				round = false;
				break;
			}
		}
		ok(round, "format/parse round trips 1970..2100");
	}
}

static void
test_clock_alloc(void)
{
	int64_t a = tg_now_us(), b;
	char *s, *p;
	int *z;

	b = tg_now_us();
	ok(a > 0 && b >= a, "monotonic clock does not go back");
	s = tg_xstrdup("tollgate");
	is_string("tollgate", s, "xstrdup");
	p = tg_xstrndup("tollgate", 4);
	is_string("toll", p, "xstrndup cuts");
	free(p);
	p = tg_xstrndup("ab", 10);
	is_string("ab", p, "xstrndup stops at NUL");
	free(p);
	s = tg_xrealloc(s, 100);
	is_string("tollgate", s, "xrealloc keeps content");
	free(s);
	z = tg_xcalloc(4, sizeof(*z));
	ok(z[0] == 0 && z[3] == 0, "xcalloc zeroes");
	free(z);
	p = tg_xmalloc(0);
	ok(p != NULL, "xmalloc(0) returns a pointer");
	free(p);
}

static void
test_strlcpy_hexval(void)
{
	char buf[4];

	tg_strlcpy(buf, sizeof(buf), "ab");
	is_string("ab", buf, "strlcpy: short string copied");
	tg_strlcpy(buf, sizeof(buf), "abcdef");
	is_string("abc", buf, "strlcpy: long string truncated, terminated");
	tg_strlcpy(buf, sizeof(buf), NULL);
	is_string("", buf, "strlcpy: NULL is the empty string");
	is_int(10, tg_hexval('a'), "hexval a");
	is_int(15, tg_hexval('F'), "hexval F");
	is_int(9, tg_hexval('9'), "hexval 9");
	is_int(-1, tg_hexval('g'), "hexval g is not a digit");
}

int
main(void)
{
	test_strlcpy_hexval();
	test_sha256();
	test_hmac();
	test_base64url();
	test_base64();
	test_uuid();
	test_memeq();
	test_utf8();
	test_utf8_prefix();
	test_lone_surrogate();
	test_time();
	test_clock_alloc();
	return done_testing();
}
