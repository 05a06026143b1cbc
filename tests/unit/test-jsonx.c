/*
 * test-jsonx: the JSON text writer (lib/jsonx.c) prints what json-c prints
 * for the same values, as tg_req_respond_json() prints them: every byte in
 * a string (control characters, quote, backslash, slash, DEL, UTF-8 and
 * bytes that are not UTF-8), keys, integers at their limits, money,
 * nesting and commas, literal keys; and its cap.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"
#include "jsonx.h"
#include "money.h"
#include "util.h"

#define ROW        __LINE__
#define NROWS(t)   (sizeof(t) / sizeof((t)[0]))
#define TEXT_MAX   (1u << 20)
#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* What json-c prints for obj (a copy, free() it); obj is put. */
static char *
json_c_text(struct json_object *obj)
{
	char *s = tg_xstrdup(json_object_to_json_string_ext(obj, JSON_FLAGS));
	json_object_put(obj);
	return s;
}

/* The writer's text (a copy, free() it), or NULL when it failed. */
static char *
finish(struct tg_json_text *t)
{
	char *s = NULL;
	size_t len = 0;

	if (!tg_json_text_finish(t, &s, &len))
		return NULL;
	if (strlen(s) != len) {
		free(s);
		return NULL;
	}
	return s;
}

static char *
writer_str(const char *s)
{
	struct tg_json_text t;

	tg_json_text_init(&t, TEXT_MAX);
	tg_json_text_str(&t, s);
	return finish(&t);
}

/* Every byte 1..255 alone, and with text on both sides. */
static void
test_every_byte(void)
{
	int bad_alone = 0, bad_inside = 0;

	for (int c = 1; c < 256; c++) {
		char alone[2] = {(char)c, '\0'};
		char inside[8] = {'a',     (char)c, 'b', (char)c,
		                  (char)c, 'z',     '\0'};
		char *want = json_c_text(json_object_new_string(alone));
		char *got = writer_str(alone);
		if (got == NULL || strcmp(want, got) != 0) {
			if (bad_alone++ < 5)
				diag("byte 0x%02x: json-c %s, writer %s", c,
				     want, got ? got : "(failed)");
		}
		free(want);
		free(got);
		want = json_c_text(json_object_new_string(inside));
		got = writer_str(inside);
		if (got == NULL || strcmp(want, got) != 0) {
			if (bad_inside++ < 5)
				diag("byte 0x%02x in text: json-c %s, writer "
				     "%s",
				     c, want, got ? got : "(failed)");
		}
		free(want);
		free(got);
	}
	is_int(0, bad_alone, "every byte 1..255 alone: as json-c prints it");
	is_int(0, bad_inside, "every byte 1..255 within text: as json-c");
}

/*
 * Every byte at every offset of a string of 1..24 bytes (the writer scans
 * 8 bytes at a time, then byte by byte), among plain bytes and bytes from
 * 0x80 up: as json-c prints it.
 */
static void
test_every_offset(void)
{
	static const char fill[] = "abcdefghij\xc3\xa9klmnop\xe2\x82\xacqrstu";
	int bad = 0, cases = 0;

	for (int c = 1; c < 256; c++)
		for (size_t len = 1; len <= 24; len++)
			for (size_t at = 0; at < len; at++) {
				char s[32];
				char *want, *got;
				memcpy(s, fill, len);
				s[at] = (char)c;
				s[len] = '\0';
				want = json_c_text(json_object_new_string(s));
				got = writer_str(s);
				cases++;
				if (got == NULL || strcmp(want, got) != 0) {
					if (bad++ < 5)
						diag("byte 0x%02x at %zu of "
						     "%zu: "
						     "json-c %s, writer %s",
						     c, at, len, want,
						     got ? got : "(failed)");
				}
				free(want);
				free(got);
			}
	is_int(0, bad, "every byte at every offset (%d strings): as json-c",
	       cases);
}

/* Strings with what each must print as, independently of json-c. */
static const struct {
	int line;
	const char *in;
	const char *want;
} string_rows[] = {
        {ROW, "", "\"\""},
        {ROW, "plain", "\"plain\""},
        {ROW, "say \"hi\"", "\"say \\\"hi\\\"\""},
        {ROW, "back\\slash", "\"back\\\\slash\""},
        {ROW, "a/b", "\"a/b\""},
        {ROW, "\b\f\n\r\t", "\"\\b\\f\\n\\r\\t\""},
        {ROW, "\x01\x1f", "\"\\u0001\\u001f\""},
        {ROW, "x\x0by", "\"x\\u000by\""},
        {ROW, "\x1b[0m", "\"\\u001b[0m\""},
        {ROW, "del\x7f", "\"del\x7f\""},
        {ROW, "caf\xc3\xa9", "\"caf\xc3\xa9\""},
        {ROW, "\xe6\x97\xa5\xe6\x9c\xac", "\"\xe6\x97\xa5\xe6\x9c\xac\""},
        {ROW, "\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\""},
        {ROW, "\xff\xfe not UTF-8", "\"\xff\xfe not UTF-8\""},
        {ROW, "\"\\\"", "\"\\\"\\\\\\\"\""},
};

static void
test_strings(void)
{
	for (size_t i = 0; i < NROWS(string_rows); i++) {
		char *got = writer_str(string_rows[i].in);
		char *jc =
		        json_c_text(json_object_new_string(string_rows[i].in));
		tap_ok(got != NULL && strcmp(got, string_rows[i].want) == 0,
		       __FILE__, string_rows[i].line, "string %s",
		       string_rows[i].want);
		tap_ok(got != NULL && strcmp(got, jc) == 0, __FILE__,
		       string_rows[i].line, "string %s: json-c prints the same",
		       string_rows[i].want);
		free(got);
		free(jc);
	}
	{
		char *got = writer_str(NULL);
		is_string("null", got,
		          "a NULL string is null (as tg_json_str)");
		free(got);
	}
}

static const int64_t int_rows[] = {
        0,         1,         -1,
        9,         10,        99,
        100,       -100,      1234567890,
        INT32_MAX, INT32_MIN, (int64_t)INT32_MAX + 1,
        INT64_MAX, INT64_MIN, INT64_MIN + 1,
};

static void
test_numbers(void)
{
	/* Money rows in 1e-10 USD, as the ledger holds them. */
	static const tg_money money_rows[] = {
	        0,       1,         10,        5600000,     -5000000000,
	        1413000, INT64_MAX, INT64_MIN, 10000000000,
	};

	for (size_t i = 0; i < NROWS(int_rows); i++) {
		struct tg_json_text t;
		char *want, *got;
		tg_json_text_init(&t, TEXT_MAX);
		tg_json_text_int(&t, int_rows[i]);
		got = finish(&t);
		want = json_c_text(json_object_new_int64(int_rows[i]));
		is_string(want, got, "integer %lld", (long long)int_rows[i]);
		free(want);
		free(got);
	}
	for (size_t i = 0; i < NROWS(money_rows); i++) {
		struct tg_json_text t;
		char *want, *got;
		tg_json_text_init(&t, TEXT_MAX);
		tg_json_text_money(&t, money_rows[i]);
		got = finish(&t);
		want = json_c_text(tg_json_money(money_rows[i]));
		is_string(want, got, "money %s", want);
		free(want);
		free(got);
	}
}

/*
 * The same document both ways: objects, arrays, empty ones, nesting,
 * escaped keys, every kind of value, and the commas between them.
 */
static void
test_document(void)
{
	struct json_object *o = json_object_new_object();
	struct json_object *arr = json_object_new_array();
	struct json_object *inner = json_object_new_object();
	struct tg_json_text t;
	char *want, *got;

	json_object_object_add(o, "results", arr);
	json_object_array_add(arr, json_object_new_int64(1));
	json_object_array_add(arr, inner);
	json_object_object_add(inner, "date",
	                       json_object_new_string("2026-03-01"));
	json_object_object_add(inner, "k\"ey\n\x01\xc3\xa9", NULL);
	json_object_object_add(inner, "yes", json_object_new_boolean(1));
	json_object_object_add(inner, "no", json_object_new_boolean(0));
	json_object_array_add(arr, json_object_new_array());
	json_object_array_add(arr, json_object_new_object());
	json_object_array_add(arr, json_object_new_string("x"));
	json_object_object_add(o, "empty", json_object_new_object());
	json_object_object_add(o, "money", tg_json_money(1413000));
	json_object_object_add(o, "last", json_object_new_int64(-7));
	want = json_c_text(o);

	tg_json_text_init(&t, TEXT_MAX);
	tg_json_text_begin_object(&t);
	tg_json_text_key_literal(&t, "results");
	tg_json_text_begin_array(&t);
	tg_json_text_int(&t, 1);
	tg_json_text_begin_object(&t);
	tg_json_text_key(&t, "date");
	tg_json_text_str(&t, "2026-03-01");
	tg_json_text_key(&t, "k\"ey\n\x01\xc3\xa9");
	tg_json_text_null(&t);
	tg_json_text_key_literal(&t, "yes");
	tg_json_text_bool(&t, true);
	tg_json_text_key(&t, "no");
	tg_json_text_bool(&t, false);
	tg_json_text_end_object(&t);
	tg_json_text_begin_array(&t);
	tg_json_text_end_array(&t);
	tg_json_text_begin_object(&t);
	tg_json_text_end_object(&t);
	tg_json_text_str(&t, "x");
	tg_json_text_end_array(&t);
	tg_json_text_key(&t, "empty");
	tg_json_text_begin_object(&t);
	tg_json_text_end_object(&t);
	tg_json_text_key_literal(&t, "money");
	tg_json_text_money(&t, 1413000);
	tg_json_text_key(&t, "last");
	tg_json_text_int(&t, -7);
	tg_json_text_end_object(&t);
	got = finish(&t);
	is_string(want, got, "a nested document: as json-c prints it");
	free(want);
	free(got);
}

/* A long text grows past the first buffer and keeps every byte. */
static void
test_growth(void)
{
	struct json_object *arr = json_object_new_array();
	struct tg_json_text t;
	char *want, *got;

	tg_json_text_init(&t, TEXT_MAX);
	tg_json_text_begin_array(&t);
	for (int i = 0; i < 20000; i++) {
		char s[32];
		snprintf(s, sizeof(s), "id-%d\t\"%d\"", i, i * 7);
		json_object_array_add(arr, json_object_new_string(s));
		tg_json_text_str(&t, s);
	}
	tg_json_text_end_array(&t);
	want = json_c_text(arr);
	got = finish(&t);
	ok(got != NULL && strcmp(want, got) == 0,
	   "20,000 strings (%zu bytes): as json-c prints them", strlen(want));
	free(want);
	free(got);
}

static void
test_cap(void)
{
	struct tg_json_text t;
	char *got;
	size_t len = 99;

	/* ["abc"] is 7 bytes: a cap of 7 holds it, 6 does not. */
	tg_json_text_init(&t, 7);
	tg_json_text_begin_array(&t);
	tg_json_text_str(&t, "abc");
	tg_json_text_end_array(&t);
	got = finish(&t);
	is_string("[\"abc\"]", got, "a text of exactly its cap is whole");
	free(got);

	tg_json_text_init(&t, 6);
	tg_json_text_begin_array(&t);
	tg_json_text_str(&t, "abc");
	tg_json_text_end_array(&t);
	got = NULL;
	ok(!tg_json_text_finish(&t, &got, &len) && got == NULL && len == 99,
	   "one byte over the cap: finish fails, outputs untouched");
	ok(t.buf == NULL && t.len == 0, "and the text is freed");

	/* "\u0001" with its quotes is 8 bytes: escapes count to the cap. */
	tg_json_text_init(&t, 8);
	tg_json_text_str(&t, "\x01");
	got = finish(&t);
	is_string("\"\\u0001\"", got, "an escaped string of exactly the cap");
	free(got);
	tg_json_text_init(&t, 7);
	tg_json_text_str(&t, "\x01");
	ok(!tg_json_text_finish(&t, &got, &len), "and one byte less fails");

	/* An append dropped for the cap drops every later one. */
	tg_json_text_init(&t, 4);
	tg_json_text_str(&t, "abcdef");
	tg_json_text_int(&t, 1);
	ok(t.overflow && t.len == 0, "after an overflow nothing is appended");
	tg_json_text_free(&t);

	tg_json_text_init(&t, 16);
	got = finish(&t);
	is_string("", got, "an empty text is the empty string");
	free(got);
	tg_json_text_free(NULL);
	ok(true, "tg_json_text_free(NULL) is harmless");
}

int
main(void)
{
	test_every_byte();
	test_every_offset();
	test_strings();
	test_numbers();
	test_document();
	test_growth();
	test_cap();
	return done_testing();
}
