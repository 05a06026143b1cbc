/*
 * jsonx: the JSON every answer writes the same way: json-c values built the
 * same way, and a JSON text written directly for answers too big to build
 * as json-c objects first; and JSON text read without building objects.
 *
 * Money is printed as the shortest exact decimal (SPEC 1): json-c keeps the
 * text given here and prints it as is, so no binary floating point comes
 * between the ledger's value and the client.
 */
#ifndef TG_JSONX_H
#define TG_JSONX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <json-c/json.h>

#include "money.h"

/* A JSON number whose text is the exact shortest decimal of m (new ref). */
struct json_object *tg_json_money(tg_money m);

/* A JSON string of s, or NULL (JSON null) when s is NULL (new ref). */
struct json_object *tg_json_str(const char *s);

/*
 * One JSON value read from text[0..len) (json-c's reader), with nothing but
 * white space after it: a new reference, or NULL when the text is not such
 * a value (trailing garbage after a value is not an answer).  A "null"
 * text is NULL too.
 */
struct json_object *tg_json_parse(const char *text, size_t len);

/*
 * A JSON text written into one growing buffer, value by value (lighttpd's
 * buffer, curl's dynbuf): for answers of thousands of objects, where
 * building json-c objects, printing and freeing them costs more than the
 * query (/customer/daily/activity).
 *
 * What it writes is byte for byte what tg_req_respond_json() prints for the
 * same values: no spaces; strings as json-c escapes them (" \ \b \f \n \r
 * \t with a backslash, the other bytes below 0x20 as \u00xx in lower-case
 * hex, '/', DEL and bytes from 0x80 up as they are, so UTF-8 passes
 * through); integers in decimal; money as tg_json_money() prints it.
 *
 * The writer places the commas: a key or value that follows a value in the
 * same object or array gets one.  The caller balances begin and end, and
 * gives each value of an object its key first.
 *
 * The text has a hard cap, max bytes: the append that would pass it marks
 * the text overflowed, is dropped with every later one, and
 * tg_json_text_finish() then fails.
 */
struct tg_json_text {
	char *buf;
	size_t len, cap, max;
	bool comma;    /* the next key or value is preceded by ',' */
	bool overflow; /* an append passed max */
};

/* An empty text of at most max bytes (nothing allocated yet). */
void tg_json_text_init(struct tg_json_text *t, size_t max);
/* Free t's buffer; t is then empty, as after init.  t may be NULL. */
void tg_json_text_free(struct tg_json_text *t);

void tg_json_text_begin_object(struct tg_json_text *t);
void tg_json_text_end_object(struct tg_json_text *t);
void tg_json_text_begin_array(struct tg_json_text *t);
void tg_json_text_end_array(struct tg_json_text *t);

/* The key of the next value: "key": (s NUL-terminated). */
void tg_json_text_key(struct tg_json_text *t, const char *key);
/*
 * The same for a key written as a string literal that needs no escape (no
 * '"', '\\' or control character), copied as it is: the names of a big
 * answer's fields repeat by the thousand, and escaping them each time is a
 * fifth of its cost.  "" lit "" admits only a literal.
 */
#define tg_json_text_key_literal(t, lit)                                       \
	tg_json_text_key_plain((t), "" lit "", sizeof(lit) - 1)
static inline void tg_json_text_key_plain(struct tg_json_text *t,
                                          const char *key, size_t len);
/* A string value, or null when s is NULL (as tg_json_str()). */
void tg_json_text_str(struct tg_json_text *t, const char *s);
void tg_json_text_int(struct tg_json_text *t, int64_t v);
void tg_json_text_money(struct tg_json_text *t, tg_money m);
void tg_json_text_bool(struct tg_json_text *t, bool v);
void tg_json_text_null(struct tg_json_text *t);
/* A value given as JSON text, copied as it is: the caller vouches for it
 * (e.g. a value tg_json_walk_members() walked). */
void tg_json_text_raw(struct tg_json_text *t, const char *json, size_t len);

/*
 * Hand the text over: *out (NUL-terminated, free() it) and *len, and t is
 * left empty.  False when the text overflowed its cap: nothing is handed
 * over and t is freed.
 */
bool tg_json_text_finish(struct tg_json_text *t, char **out, size_t *len);

/*
 * Reading JSON text without building it: a strict walk (RFC 8259) that
 * allocates nothing, for texts read on every call where json-c's objects
 * (a hash table each) would be most of the cost: the usage of an answer,
 * the members of a request body to forward.
 *
 * tg_json_walk_members() walks text, which must be one JSON object with
 * white space only around it, and calls fn for each member in order: the
 * key's bytes without its quotes (it has no escapes), and the offset and
 * length of the value's text in text.  It returns false, and the caller
 * then parses the text with json-c, whenever it is not sure json-c reads
 * the text the same way as any strict reader: an escaped key, a key that
 * repeats in its object (json-c keeps the last value; others keep the
 * first, or refuse), more than 64 keys in one object, an integer of more
 * than 18 digits, nesting deeper than 16, anything that is not strict JSON
 * (json-c also reads comments, single quotes, trailing commas...), or fn
 * returning false.  fn may have been called for the members before the one
 * where it stopped.
 */
typedef bool (*tg_json_member_fn)(void *arg, const char *key, size_t key_len,
                                  size_t value, size_t value_len);
bool tg_json_walk_members(const char *text, size_t len, tg_json_member_fn fn,
                          void *arg);

/* The part of tg_json_text_key_plain() that grows the buffer. */
void tg_json_text_key_plain_grow(struct tg_json_text *t, const char *key,
                                 size_t len);

static inline void
tg_json_text_key_plain(struct tg_json_text *t, const char *key, size_t len)
{
	char *p;

	/* Inline while the buffer has room (it never has room past the
	 * cap), so that a literal's length is a constant here. */
	if (t->overflow || t->cap - t->len <= len + 4) {
		tg_json_text_key_plain_grow(t, key, len);
		return;
	}
	p = t->buf + t->len;
	if (t->comma)
		*p++ = ',';
	*p++ = '"';
	memcpy(p, key, len);
	p += len;
	*p++ = '"';
	*p++ = ':';
	t->len = (size_t)(p - t->buf);
	t->comma = false;
}

#endif
