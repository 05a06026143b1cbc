/*
 * fuzz-body: the upstream body spliced from the client's text
 * (tg_upstream_body, over lib/jsonx.c's strict walk).
 *
 * An input is a request body, any bytes.  What the front line accepts
 * (json-c, non-strict, reads one object with only white space after it;
 * valid UTF-8; no lone surrogate escape) goes to tg_upstream_body() twice
 * for each provider's mapping: with the text, where the walk may splice
 * it, and without, where json-c's objects are printed.  Both texts must
 * be JSON that json-c reads as equal values, and a spliced one strict
 * JSON (the upstream may read strictly, as Python's json does; json-c's
 * JSON_TOKENER_STRICT still takes raw control bytes in strings, NaN and
 * "1.", so an oracle of its own checks that): a walk that vouched for text
 * json-c reads otherwise, or for what is not strict JSON, would show here.  The
 * walk itself must also agree with json-c wherever it is sure: the same number
 * of members (when no key repeats), each key and value where json-c has them.
 * The same input gives the call's tags (metadata.tags, and the text as an
 * x-litellm-tags header).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "fields.h"
#include "jsonx.h"
#include "tag.h"
#include "upstream.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond, what)                                                      \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "fuzz-body: %s: %s\n", what, #cond);   \
			abort();                                               \
		}                                                              \
	} while (0)

/* As the front line reads a body (json-c, not strict). */
static struct json_object *
parse(const char *text, size_t len)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *obj;
	size_t end;

	obj = json_tokener_parse_ex(tok, text, (int)len);
	end = json_tokener_get_parse_end(tok);
	if (obj != NULL &&
	    json_tokener_get_error(tok) != json_tokener_success) {
		json_object_put(obj);
		obj = NULL;
	}
	for (; obj != NULL && end < len; end++)
		if (text[end] != ' ' && text[end] != '\t' &&
		    text[end] != '\n' && text[end] != '\r' &&
		    text[end] != '\f' && text[end] != '\v') {
			json_object_put(obj);
			obj = NULL;
		}
	json_tokener_free(tok);
	return obj;
}

/*
 * The oracle of the walk's strictness, written apart from it: a reader of
 * RFC 8259 over pointers, which also refuses a key that repeats in its
 * object.  Returns the end of the value at p, or NULL.
 */
static const char *strict_value(const char *p, const char *e, int depth);

static const char *
strict_ws(const char *p, const char *e)
{
	while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

static bool
is_digit(const char *p, const char *e)
{
	return p < e && *p >= '0' && *p <= '9';
}

static const char *
strict_string(const char *p, const char *e)
{
	if (p >= e || *p++ != '"')
		return NULL;
	while (p < e) {
		unsigned char c = (unsigned char)*p++;

		if (c == '"')
			return p;
		if (c < 0x20)
			return NULL;
		if (c != '\\')
			continue;
		if (p >= e)
			return NULL;
		c = (unsigned char)*p++;
		if (c == 'u') {
			for (int i = 0; i < 4; i++, p++)
				if (p >= e ||
				    strchr("0123456789abcdefABCDEF", *p) ==
				            NULL ||
				    *p == '\0')
					return NULL;
		} else if (c == '\0' || strchr("\"\\/bfnrt", c) == NULL) {
			return NULL;
		}
	}
	return NULL;
}

static const char *
strict_number(const char *p, const char *e)
{
	if (p < e && *p == '-')
		p++;
	if (p < e && *p == '0') {
		p++;
	} else {
		if (!is_digit(p, e))
			return NULL;
		while (is_digit(p, e))
			p++;
	}
	if (p < e && *p == '.') {
		if (!is_digit(++p, e))
			return NULL;
		while (is_digit(p, e))
			p++;
	}
	if (p < e && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < e && (*p == '+' || *p == '-'))
			p++;
		if (!is_digit(p, e))
			return NULL;
		while (is_digit(p, e))
			p++;
	}
	return p;
}

static const char *
strict_literal(const char *p, const char *e, const char *word)
{
	size_t n = strlen(word);

	return (size_t)(e - p) >= n && memcmp(p, word, n) == 0 ? p + n : NULL;
}

#define MAX_KEYS 256

static const char *
strict_value(const char *p, const char *e, int depth)
{
	const char *keys[MAX_KEYS];
	size_t klen[MAX_KEYS];
	char close;

	p = strict_ws(p, e);
	if (p >= e || depth > 64)
		return NULL;
	switch (*p) {
	case '"': return strict_string(p, e);
	case 't': return strict_literal(p, e, "true");
	case 'f': return strict_literal(p, e, "false");
	case 'n': return strict_literal(p, e, "null");
	case '{':
	case '[': break;
	default: return strict_number(p, e);
	}
	close = *p == '{' ? '}' : ']';
	p = strict_ws(p + 1, e);
	if (p < e && *p == close)
		return p + 1;
	for (size_t nkeys = 0;;) {
		if (close == '}') {
			const char *key = strict_ws(p, e);

			if ((p = strict_string(key, e)) == NULL ||
			    nkeys == MAX_KEYS)
				return NULL;
			/* A repeated key is read differently by different
			 * readers: not a text to copy. */
			for (size_t i = 0; i < nkeys; i++)
				if (klen[i] == (size_t)(p - key) &&
				    memcmp(keys[i], key, klen[i]) == 0)
					return NULL;
			keys[nkeys] = key;
			klen[nkeys++] = (size_t)(p - key);
			p = strict_ws(p, e);
			if (p >= e || *p++ != ':')
				return NULL;
		}
		if ((p = strict_value(p, e, depth + 1)) == NULL)
			return NULL;
		p = strict_ws(p, e);
		if (p < e && *p == close)
			return p + 1;
		if (p >= e || *p++ != ',')
			return NULL;
	}
}

static bool
strict_json(const char *text, size_t len)
{
	const char *end = strict_value(text, text + len, 0);

	return end != NULL && strict_ws(end, text + len) == text + len;
}

struct seen {
	struct json_object *obj;
	const char *text;
	size_t n;
	bool compare; /* no key repeats: each value is json-c's */
};

static bool
member(void *arg, const char *key, size_t key_len, size_t value,
       size_t value_len)
{
	struct seen *s = arg;
	char *k = tg_xstrndup(key, key_len);
	struct json_object *v = NULL, *walked;

	CHECK(json_object_object_get_ex(s->obj, k, &v), "a walked key");
	if (s->compare) {
		/* In an array: json-c cannot tell where a bare number at
		 * the end of its input ends. */
		char *wrapped = tg_xmalloc(value_len + 3);
		struct json_object *array;

		wrapped[0] = '[';
		memcpy(wrapped + 1, s->text + value, value_len);
		wrapped[value_len + 1] = ']';
		wrapped[value_len + 2] = '\0';
		array = parse(wrapped, value_len + 2);
		CHECK(array != NULL && json_object_array_length(array) == 1,
		      "a walked value is one value");
		walked = json_object_array_get_idx(array, 0);
		CHECK(json_object_equal(walked, v), "a walked value");
		json_object_put(array);
		free(wrapped);
	}
	free(k);
	s->n++;
	return true;
}

/*
 * The tags of a call (lib/tag.c): the body's metadata.tags, and its text
 * as an x-litellm-tags header.  Whatever it says, at most TG_TAG_MAX, each
 * once, each a valid id; or an error, never a crash.
 */
static void
tags(struct json_object *obj, const char *text, size_t size)
{
	const char *names[TG_TAG_MAX];
	char buf[4096];
	char *header = tg_xstrndup(text, size);
	size_t n = 0;
	struct tg_err err;
	enum tg_rc rc;

	tg_err_clear(&err);
	rc = tg_tag_names(obj, header, buf, sizeof(buf), names, &n, &err);
	free(header);
	if (rc != TG_OK) {
		CHECK(err.message[0] != '\0', "a refusal says why");
		return;
	}
	CHECK(n <= TG_TAG_MAX, "at most TG_TAG_MAX tags");
	for (size_t i = 0; i < n; i++) {
		CHECK(tg_id_valid(names[i], strlen(names[i])), "a valid id");
		for (size_t j = 0; j < i; j++)
			CHECK(strcmp(names[i], names[j]) != 0, "each once");
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum tg_provider providers[] = {TG_PROVIDER_OPENAI,
	                                             TG_PROVIDER_MISTRAL};
	const char *text = (const char *)data;
	struct json_object *obj;
	struct seen seen;

	if (size == 0 || size > 65536 || !tg_utf8_valid(text, size) ||
	    tg_json_lone_surrogate(text, size) < size)
		return 0;
	obj = parse(text, size);
	if (obj == NULL || !json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		return 0;
	}
	seen.obj = obj;
	seen.text = text;
	seen.n = 0;
	seen.compare = false;
	if (tg_json_walk_members(text, size, member, &seen)) {
		CHECK(strict_json(text, size),
		      "the walk vouches for strict JSON");
		CHECK(seen.n >= (size_t)json_object_object_length(obj),
		      "every member walked");
		if (seen.n == (size_t)json_object_object_length(obj)) {
			seen.n = 0;
			seen.compare = true;
			CHECK(tg_json_walk_members(text, size, member, &seen),
			      "the same walk twice");
		}
	}

	for (size_t p = 0; p < sizeof(providers) / sizeof(providers[0]); p++) {
		struct tg_deployment d;
		struct json_object *a, *b;
		char *spliced, *printed;
		size_t alen, blen;

		memset(&d, 0, sizeof(d));
		d.provider = providers[p];
		d.upstream_model = (char *)"up";
		spliced = tg_upstream_body(&d, obj, text, size, &alen);
		printed = tg_upstream_body(&d, obj, NULL, 0, &blen);
		CHECK(alen == strlen(spliced) && blen == strlen(printed),
		      "lengths");
		a = parse(spliced, alen);
		b = parse(printed, blen);
		CHECK(a != NULL && b != NULL, "both are JSON");
		CHECK(strcmp(spliced, printed) == 0 ||
		              strict_json(spliced, alen),
		      "a spliced body is strict JSON");
		/* The same text is the same (NaN, which json-c reads and
		 * the walk does not, is not equal to itself). */
		CHECK(strcmp(spliced, printed) == 0 || json_object_equal(a, b),
		      "both mean the same");
		json_object_put(a);
		json_object_put(b);
		free(spliced);
		free(printed);
	}
	tags(obj, text, size);
	json_object_put(obj);
	return 0;
}
