/*
 * jsonx: shared JSON values and the JSON text writer (see jsonx.h).
 *
 * The writer matches json-c's printer (JSON_C_TO_STRING_PLAIN |
 * JSON_C_TO_STRING_NOSLASHESCAPE, as tg_req_respond_json() prints) so that
 * an answer does not change when it moves from json-c objects to the
 * writer; tests/unit/test-jsonx.c compares the two byte by byte.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "jsonx.h"
#include "util.h"

struct json_object *
tg_json_money(tg_money m)
{
	char text[TG_MONEY_STRLEN];

	tg_money_format(m, text, sizeof(text));
	/* The double is only json-c's idea of the value; the text printed is
	 * the exact one. */
	return json_object_new_double_s(strtod(text, NULL), text);
}

struct json_object *
tg_json_str(const char *s)
{
	return s != NULL ? json_object_new_string(s) : NULL;
}

struct json_object *
tg_json_parse(const char *text, size_t len)
{
	struct json_tokener *tok;
	struct json_object *obj;

	if (len > INT_MAX)
		return NULL;
	tok = json_tokener_new();
	if (tok == NULL)
		abort();
	obj = json_tokener_parse_ex(tok, text, (int)len);
	if (obj != NULL &&
	    (json_tokener_get_error(tok) != json_tokener_success ||
	     json_tokener_get_parse_end(tok) < len)) {
		size_t i;

		for (i = json_tokener_get_parse_end(tok); i < len; i++)
			if (text[i] != ' ' && text[i] != '\n' &&
			    text[i] != '\r' && text[i] != '\t')
				break;
		if (i < len) {
			json_object_put(obj);
			obj = NULL;
		}
	}
	json_tokener_free(tok);
	return obj;
}

/* ---- the text writer ---- */

/* Smallest buffer allocated: most answers fit in it at once. */
#define TEXT_MIN_CAP 4096

void
tg_json_text_init(struct tg_json_text *t, size_t max)
{
	memset(t, 0, sizeof(*t));
	t->max = max;
}

void
tg_json_text_free(struct tg_json_text *t)
{
	if (t == NULL)
		return;
	free(t->buf);
	tg_json_text_init(t, t->max);
}

/*
 * Room for n more bytes and the NUL; false (and t marked overflowed) when
 * the n bytes pass the cap.  Growth doubles, so appends cost O(1)
 * amortized; the buffer never exceeds max + 1 bytes.
 */
static bool
reserve(struct tg_json_text *t, size_t n)
{
	size_t want, cap;

	if (t->overflow)
		return false;
	if (t->cap - t->len > n) /* len < cap once allocated: the NUL */
		return true;
	if (n > t->max || t->len > t->max - n) {
		t->overflow = true;
		return false;
	}
	want = t->len + n + 1;
	cap = t->cap ? t->cap : TEXT_MIN_CAP;
	while (cap < want)
		cap = cap > SIZE_MAX / 2 ? want : cap * 2;
	/* Never room past the cap, so the test above keeps to it too. */
	if (t->max < SIZE_MAX && cap > t->max + 1)
		cap = t->max + 1;
	t->buf = tg_xrealloc(t->buf, cap);
	t->cap = cap;
	return true;
}

static void
put(struct tg_json_text *t, const char *s, size_t n)
{
	if (!reserve(t, n))
		return;
	memcpy(t->buf + t->len, s, n);
	t->len += n;
}

static void
put_char(struct tg_json_text *t, char c)
{
	if (!reserve(t, 1))
		return;
	t->buf[t->len++] = c;
}

/* The ',' owed before a key or value that follows another value. */
static void
separate(struct tg_json_text *t)
{
	if (t->comma)
		put_char(t, ',');
}

/*
 * How json-c writes each byte in a string: 0 as is, a letter for a
 * backslash escape (\" \\ \b \f \n \r \t), 'u' for \u00xx.
 */
static const char escape_of[256] = {
        ['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', ['\f'] = 'f',  ['\r'] = 'r',
        [0x00] = 'u', [0x01] = 'u', [0x02] = 'u', [0x03] = 'u',  [0x04] = 'u',
        [0x05] = 'u', [0x06] = 'u', [0x07] = 'u', [0x0b] = 'u',  [0x0e] = 'u',
        [0x0f] = 'u', [0x10] = 'u', [0x11] = 'u', [0x12] = 'u',  [0x13] = 'u',
        [0x14] = 'u', [0x15] = 'u', [0x16] = 'u', [0x17] = 'u',  [0x18] = 'u',
        [0x19] = 'u', [0x1a] = 'u', [0x1b] = 'u', [0x1c] = 'u',  [0x1d] = 'u',
        [0x1e] = 'u', [0x1f] = 'u', ['"'] = '"',  ['\\'] = '\\',
};

#define BYTES_01 0x0101010101010101ULL
#define BYTES_80 0x8080808080808080ULL

/*
 * The bytes of x that need an escape (below 0x20, '"', '\\'), as their
 * high bits: the "has a byte less than n" and "has a zero byte" tests of
 * Bit Twiddling Hacks.  Zero exactly when none does; otherwise the lowest
 * set bit is exact (a borrow can only mark bytes above a true one), so on
 * a little-endian machine it gives the first such byte of the 8 in
 * memory.  Strings are scanned 8 bytes at a time.
 */
static uint64_t
block_escapes(uint64_t x)
{
	uint64_t quote = x ^ (BYTES_01 * '"');
	uint64_t backslash = x ^ (BYTES_01 * '\\');

	return (((x - BYTES_01 * 0x20) & ~x) | ((quote - BYTES_01) & ~quote) |
	        ((backslash - BYTES_01) & ~backslash)) &
	       BYTES_80;
}

static bool
block_needs_escape(uint64_t x)
{
	return block_escapes(x) != 0;
}

/* s[0..n) as a quoted, escaped JSON string. */
static void
put_string(struct tg_json_text *t, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t room = t->max - t->len, out = n + 2, i = 0;
	char *p;

	/* Room for the worst case (every byte \u00xx) when the cap allows
	 * it, so that one pass writes without checks; else the exact length
	 * first, so that the cap is kept to the byte. */
	if (room >= 2 && n <= (room - 2) / 6) {
		out = 6 * n + 2;
	} else {
		for (size_t k = 0; k < n; k++) {
			char e = escape_of[(unsigned char)s[k]];
			if (e != 0)
				out += e == 'u' ? 5 : 1;
		}
	}
	if (!reserve(t, out))
		return;
	p = t->buf + t->len;
	*p++ = '"';
	while (i < n) {
		unsigned char c;
		char e;
		if (n - i >= 8) {
			uint64_t x;
			memcpy(&x, s + i, 8);
			if (!block_needs_escape(x)) {
				memcpy(p, &x, 8);
				p += 8;
				i += 8;
				continue;
			}
		}
		c = (unsigned char)s[i++];
		e = escape_of[c];
		if (e == 0) {
			*p++ = (char)c;
		} else if (e != 'u') {
			*p++ = '\\';
			*p++ = e;
		} else {
			*p++ = '\\';
			*p++ = 'u';
			*p++ = '0';
			*p++ = '0';
			*p++ = hex[c >> 4];
			*p++ = hex[c & 0xf];
		}
	}
	*p++ = '"';
	t->len = (size_t)(p - t->buf);
}

void
tg_json_text_begin_object(struct tg_json_text *t)
{
	separate(t);
	put_char(t, '{');
	t->comma = false;
}

void
tg_json_text_end_object(struct tg_json_text *t)
{
	put_char(t, '}');
	t->comma = true;
}

void
tg_json_text_begin_array(struct tg_json_text *t)
{
	separate(t);
	put_char(t, '[');
	t->comma = false;
}

void
tg_json_text_end_array(struct tg_json_text *t)
{
	put_char(t, ']');
	t->comma = true;
}

void
tg_json_text_key(struct tg_json_text *t, const char *key)
{
	separate(t);
	put_string(t, key, strlen(key));
	put_char(t, ':');
	t->comma = false;
}

void
tg_json_text_key_plain_grow(struct tg_json_text *t, const char *key, size_t len)
{
	separate(t);
	if (len > SIZE_MAX - 3 || !reserve(t, len + 3))
		return;
	t->buf[t->len++] = '"';
	memcpy(t->buf + t->len, key, len);
	t->len += len;
	t->buf[t->len++] = '"';
	t->buf[t->len++] = ':';
	t->comma = false;
}

void
tg_json_text_str(struct tg_json_text *t, const char *s)
{
	if (s == NULL) {
		tg_json_text_null(t);
		return;
	}
	separate(t);
	put_string(t, s, strlen(s));
	t->comma = true;
}

void
tg_json_text_int(struct tg_json_text *t, int64_t v)
{
	char digits[24];
	char *end = digits + sizeof(digits), *p = end;
	/* The magnitude as unsigned: -INT64_MIN does not fit an int64. */
	uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

	/* By hand: snprintf() costs more than the rest of an entry. */
	do {
		*--p = (char)('0' + mag % 10);
		mag /= 10;
	} while (mag > 0);
	if (v < 0)
		*--p = '-';
	separate(t);
	put(t, p, (size_t)(end - p));
	t->comma = true;
}

void
tg_json_text_money(struct tg_json_text *t, tg_money m)
{
	char text[TG_MONEY_STRLEN];
	size_t n = tg_money_format(m, text, sizeof(text));

	separate(t);
	put(t, text, n);
	t->comma = true;
}

void
tg_json_text_bool(struct tg_json_text *t, bool v)
{
	separate(t);
	if (v)
		put(t, "true", 4);
	else
		put(t, "false", 5);
	t->comma = true;
}

void
tg_json_text_null(struct tg_json_text *t)
{
	separate(t);
	put(t, "null", 4);
	t->comma = true;
}

void
tg_json_text_raw(struct tg_json_text *t, const char *json, size_t len)
{
	separate(t);
	put(t, json, len);
	t->comma = true;
}

bool
tg_json_text_finish(struct tg_json_text *t, char **out, size_t *len)
{
	if (t->overflow) {
		tg_json_text_free(t);
		return false;
	}
	/* An empty text still hands over a string. */
	if (!reserve(t, 0)) {
		tg_json_text_free(t);
		return false;
	}
	t->buf[t->len] = '\0';
	*out = t->buf;
	*len = t->len;
	tg_json_text_init(t, t->max);
	return true;
}

/* ---- the strict walk (tg_json_walk_members) ---------------------------- */

/* Each step returns false for anything it is not sure json-c reads the
 * same way (see jsonx.h). */
struct walk {
	const char *s;
	size_t len, p;
};

#define WALK_MAX_DEPTH 16 /* json-c allows 32 */

static void
walk_ws(struct walk *w)
{
	while (w->p < w->len && (w->s[w->p] == ' ' || w->s[w->p] == '\t' ||
	                         w->s[w->p] == '\n' || w->s[w->p] == '\r'))
		w->p++;
}

/* A string at w->p ('"'); *escaped tells whether it had escapes. */
static bool
walk_string(struct walk *w, bool *escaped)
{
	*escaped = false;
	if (w->p >= w->len || w->s[w->p] != '"')
		return false;
	for (w->p++; w->p < w->len; w->p++) {
		unsigned char c;

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
		/* Plain text 8 bytes at a time, on to the next byte that is
		 * not: prompts are most of a body's bytes. */
		while (w->len - w->p >= 8) {
			uint64_t x, m;

			memcpy(&x, w->s + w->p, 8);
			if ((m = block_escapes(x)) != 0) {
				w->p += (size_t)__builtin_ctzll(m) / 8;
				break;
			}
			w->p += 8;
		}
		if (w->p >= w->len)
			break;
#endif
		c = (unsigned char)w->s[w->p];
		if (c == '"') {
			w->p++;
			return true;
		}
		if (c < 0x20)
			return false;
		if (c != '\\')
			continue;
		*escaped = true;
		if (++w->p >= w->len)
			return false;
		c = (unsigned char)w->s[w->p];
		if (c == 'u') {
			for (int i = 0; i < 4; i++)
				if (++w->p >= w->len ||
				    tg_hexval((unsigned char)w->s[w->p]) < 0)
					return false;
		} else if (strchr("\"\\/bfnrt", c) == NULL || c == '\0') {
			return false;
		}
	}
	return false;
}

static bool
walk_digits(struct walk *w, size_t *n)
{
	*n = 0;
	while (w->p < w->len && w->s[w->p] >= '0' && w->s[w->p] <= '9') {
		w->p++;
		(*n)++;
	}
	return *n > 0;
}

static bool
walk_number(struct walk *w)
{
	size_t n, total;

	if (w->p < w->len && w->s[w->p] == '-')
		w->p++;
	if (w->p < w->len && w->s[w->p] == '0') {
		w->p++;
		total = 1;
	} else if (!walk_digits(w, &total)) {
		return false;
	}
	/* Beyond int64: how json-c reads it is not this walk's business. */
	if (total > 18)
		return false;
	if (w->p < w->len && w->s[w->p] == '.') {
		w->p++;
		if (!walk_digits(w, &n))
			return false;
	}
	if (w->p < w->len && (w->s[w->p] == 'e' || w->s[w->p] == 'E')) {
		w->p++;
		if (w->p < w->len && (w->s[w->p] == '+' || w->s[w->p] == '-'))
			w->p++;
		if (!walk_digits(w, &n))
			return false;
	}
	return true;
}

static bool
walk_word(struct walk *w, const char *word)
{
	size_t n = strlen(word);

	if (w->len - w->p < n || memcmp(w->s + w->p, word, n) != 0)
		return false;
	w->p += n;
	return true;
}

static bool walk_value(struct walk *w, int depth);

/*
 * The keys of one object so far, to refuse one that repeats: json-c keeps
 * the last value, a strict reader may keep the first or refuse the text,
 * and a copied text would carry both.  More keys than this: not sure.
 */
#define WALK_MAX_KEYS 64

struct walk_keys {
	size_t at[WALK_MAX_KEYS], len[WALK_MAX_KEYS];
	size_t n;
};

/* The key at w->p (its quotes included) into k; false when it has escapes
 * (json-c's unescaping decides which key it is), repeats or is one too
 * many.  w->p is then after it. */
static bool
walk_key(struct walk *w, struct walk_keys *k)
{
	size_t at = w->p, len;
	bool escaped;

	if (!walk_string(w, &escaped) || escaped || k->n == WALK_MAX_KEYS)
		return false;
	len = w->p - at;
	for (size_t i = 0; i < k->n; i++)
		if (k->len[i] == len &&
		    memcmp(w->s + k->at[i], w->s + at, len) == 0)
			return false;
	k->at[k->n] = at;
	k->len[k->n] = len;
	k->n++;
	return true;
}

/* An object or an array at w->p, nested depth deep. */
static bool
walk_container(struct walk *w, int depth)
{
	bool object = w->s[w->p] == '{';
	char close = object ? '}' : ']';
	struct walk_keys keys;

	if (depth > WALK_MAX_DEPTH)
		return false;
	keys.n = 0;
	w->p++;
	walk_ws(w);
	if (w->p < w->len && w->s[w->p] == close) {
		w->p++;
		return true;
	}
	for (;;) {
		if (object) {
			if (!walk_key(w, &keys))
				return false;
			walk_ws(w);
			if (w->p >= w->len || w->s[w->p] != ':')
				return false;
			w->p++;
		}
		if (!walk_value(w, depth + 1))
			return false;
		walk_ws(w);
		if (w->p >= w->len)
			return false;
		if (w->s[w->p] == close) {
			w->p++;
			return true;
		}
		if (w->s[w->p] != ',')
			return false;
		w->p++;
		walk_ws(w);
	}
}

static bool
walk_value(struct walk *w, int depth)
{
	bool escaped;

	walk_ws(w);
	if (w->p >= w->len)
		return false;
	switch (w->s[w->p]) {
	case '{':
	case '[': return walk_container(w, depth);
	case '"': return walk_string(w, &escaped);
	case 't': return walk_word(w, "true");
	case 'f': return walk_word(w, "false");
	case 'n': return walk_word(w, "null");
	default: return walk_number(w);
	}
}

bool
tg_json_walk_members(const char *text, size_t len, tg_json_member_fn fn,
                     void *arg)
{
	struct walk w = {text, len, 0};
	struct walk_keys keys;

	keys.n = 0;
	walk_ws(&w);
	if (w.p >= w.len || w.s[w.p] != '{')
		return false;
	w.p++;
	walk_ws(&w);
	if (w.p < w.len && w.s[w.p] == '}') {
		w.p++;
		goto end;
	}
	for (;;) {
		size_t key = w.p, key_len, start;

		if (!walk_key(&w, &keys))
			return false;
		key_len = w.p - key - 2;
		walk_ws(&w);
		if (w.p >= w.len || w.s[w.p] != ':')
			return false;
		w.p++;
		walk_ws(&w);
		start = w.p;
		if (!walk_value(&w, 2))
			return false;
		if (!fn(arg, text + key + 1, key_len, start, w.p - start))
			return false;
		walk_ws(&w);
		if (w.p >= w.len)
			return false;
		if (w.s[w.p] == '}') {
			w.p++;
			break;
		}
		if (w.s[w.p] != ',')
			return false;
		w.p++;
		walk_ws(&w);
	}
end:
	walk_ws(&w);
	return w.p == w.len;
}
