/*
 * price_table: the price file (LiteLLM's model_prices_and_context_window.json
 * format) as a table of entries by model name (lib/pricing.h's
 * tg_pricing_*).
 *
 * The table is a sorted array searched with bsearch(): it is built once per
 * process (LiteLLM's full file has a few thousand entries) and only consulted
 * while the config is resolved.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "pricing.h"
#include "pricing_priv.h"
#include "util.h"

struct price_row {
	char *name;
	struct tg_price_entry entry;
};

struct tg_pricing {
	struct price_row *rows;
	size_t nrows;
};

static int
row_cmp(const void *a, const void *b)
{
	const struct price_row *ra = a, *rb = b;

	return strcmp(ra->name, rb->name);
}

/*
 * Read the whole file (capped: LiteLLM's full file is a few MB) into a
 * NUL-terminated buffer.  Returns NULL with errno set on failure.
 */
#define PRICE_FILE_MAX (256u * 1024 * 1024)

static char *
read_file(const char *path, size_t *len)
{
	FILE *f;
	char *buf = NULL;
	size_t used = 0, cap = 0, n;
	int saved;

	f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	for (;;) {
		if (cap - used < 65536) {
			if (cap >= PRICE_FILE_MAX) {
				errno = EFBIG;
				goto fail;
			}
			cap = cap ? cap * 2 : 262144;
			buf = tg_xrealloc(buf, cap + 1);
		}
		n = fread(buf + used, 1, cap - used, f);
		used += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		errno = EIO;
		goto fail;
	}
	fclose(f);
	buf[used] = '\0';
	*len = used;
	return buf;
fail:
	saved = errno;
	fclose(f);
	free(buf);
	errno = saved;
	return NULL;
}

/* 1-based line of byte offset off in text. */
static size_t
line_of(const char *text, size_t off)
{
	size_t line = 1;

	for (size_t i = 0; i < off; i++)
		if (text[i] == '\n')
			line++;
	return line;
}

static bool
only_space(const char *s)
{
	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	return *s == '\0';
}

enum tg_rc
tg_pricing_load(const char *path, struct tg_pricing **out, struct tg_err *err)
{
	struct json_object *root = NULL;
	struct json_tokener *tok = NULL;
	struct tg_pricing *p = NULL;
	enum tg_rc rc = TG_ERR_CONFIG;
	char *text = NULL;
	size_t len = 0, cap;

	text = read_file(path, &len);
	if (text == NULL) {
		tg_err_set(err, TG_ERR_CONFIG, NULL, "%s: cannot read: %s",
		           path, strerror(errno));
		goto out;
	}
	if (len > INT_MAX) {
		tg_err_set(err, TG_ERR_CONFIG, NULL, "%s: file too large",
		           path);
		goto out;
	}
	tok = json_tokener_new();
	root = json_tokener_parse_ex(tok, text, (int)len);
	if (root == NULL ||
	    !only_space(text + json_tokener_get_parse_end(tok))) {
		enum json_tokener_error jerr = json_tokener_get_error(tok);
		size_t at = json_tokener_get_parse_end(tok);

		if (jerr == json_tokener_continue)
			tg_err_set(err, TG_ERR_CONFIG, NULL,
			           "%s: invalid JSON: unexpected end of file",
			           path);
		else if (jerr == json_tokener_success)
			tg_err_set(err, TG_ERR_CONFIG, NULL,
			           "%s:%zu: invalid JSON: text after the end",
			           path, line_of(text, at));
		else
			tg_err_set(err, TG_ERR_CONFIG, NULL,
			           "%s:%zu: invalid JSON: %s", path,
			           line_of(text, at),
			           json_tokener_error_desc(jerr));
		goto out;
	}
	if (!json_object_is_type(root, json_type_object)) {
		tg_err_set(err, TG_ERR_CONFIG, NULL,
		           "%s: the price file is not a JSON object", path);
		goto out;
	}

	p = tg_xcalloc(1, sizeof(*p));
	cap = (size_t)json_object_object_length(root);
	p->rows = tg_xcalloc(cap ? cap : 1, sizeof(*p->rows));
	json_object_object_foreach(root, name, entry)
	{
		struct tg_price_entry e;

		if (strcmp(name, "sample_spec") == 0 ||
		    !json_object_is_type(entry, json_type_object) ||
		    !tg_price_entry_from_json(entry, &e))
			continue;
		p->rows[p->nrows].name = tg_xstrdup(name);
		p->rows[p->nrows].entry = e;
		p->nrows++;
	}
	/* json-c keeps one value per key, so names are unique. */
	qsort(p->rows, p->nrows, sizeof(*p->rows), row_cmp);

	*out = p;
	p = NULL;
	rc = TG_OK;
out:
	tg_pricing_free(p);
	json_object_put(root);
	if (tok != NULL)
		json_tokener_free(tok);
	free(text);
	return rc;
}

void
tg_pricing_free(struct tg_pricing *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->nrows; i++)
		free(p->rows[i].name);
	free(p->rows);
	free(p);
}

const struct tg_price_entry *
tg_pricing_find(const struct tg_pricing *p, const char *name)
{
	struct price_row key, *row;

	if (p == NULL || name == NULL || p->nrows == 0)
		return NULL;
	key.name = (char *)(uintptr_t)name;
	row = bsearch(&key, p->rows, p->nrows, sizeof(*p->rows), row_cmp);
	return row ? &row->entry : NULL;
}
