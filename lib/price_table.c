/*
 * price_table: the price file (LiteLLM's model_prices_and_context_window.json
 * format) as a table of entries by model name (lib/pricing.h's
 * tg_pricing_*), read whole or through its index (lib/price_table.h has the
 * index's format and why it exists).
 *
 * Read whole, the table is a sorted array searched with bsearch().  Through
 * the index, it is the index mapped into memory and the price file left
 * open: a lookup binary-searches the index, reads that one entry's bytes,
 * parses them and keeps the result until tg_pricing_free().  Either way the
 * table is only consulted while the config is resolved (lib/config.c), so a
 * load through the index costs a few system calls and a few small parses
 * whatever the size of the file.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "price_table.h"
#include "pricing.h"
#include "pricing_priv.h"
#include "util.h"

/* LiteLLM's full file is a few MB; offsets in the index are 32 bits. */
#define PRICE_FILE_MAX (256u * 1024 * 1024)
/* An index is about 50 bytes a name; anything far above is not one. */
#define INDEX_MAX (256u * 1024 * 1024)
/* LiteLLM's largest entry is a few kB: one above this is not read. */
#define ENTRY_MAX    (16u * 1024 * 1024)
#define IDX_HEADER   64
#define IDX_ENTRY    16
#define IDX_VERSION  1
#define IDX_CHECKSUM 56 /* where the checksum sits in the header */

static const unsigned char idx_magic[8] = {'T', 'G', 'P', 'R',
                                           'I', 'D', 'X', '\n'};

struct price_row {
	char *name;
	struct tg_price_entry entry;
};

struct cached {
	uint32_t place;
	struct tg_price_entry *entry;
};

/* The table through the index. */
struct price_index {
	char *path; /* the price file, for the fallback */
	int fd;     /* the price file, open for reading */
	const unsigned char *map;
	size_t map_len;
	uint32_t count;
	uint32_t names_size;
	uint64_t json_size;
	/* Entries parsed so far, with their place in the index (a config
	 * looks up a few names: a list is enough). */
	struct cached *cache;
	size_t ncache, cache_cap;
	/* An entry's bytes did not fit the index (the file was changed in
	 * place since it was indexed): from then on the file read whole
	 * answers, or nothing if it does not load. */
	bool broken;
	struct tg_pricing *whole;
};

struct tg_pricing {
	struct price_row *rows; /* read whole: sorted by name */
	size_t nrows;
	struct price_index *idx; /* or through the index */
	struct tg_file_stamp stamp;
};

/* ---- little-endian integers, whatever the machine ---- */

static uint32_t
get_le32(const unsigned char *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
	       (uint32_t)b[3] << 24;
}

static uint64_t
get_le64(const unsigned char *b)
{
	return (uint64_t)get_le32(b) | (uint64_t)get_le32(b + 4) << 32;
}

static void
put_le32(unsigned char *b, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b[i] = (unsigned char)(v >> (8 * i));
}

static void
put_le64(unsigned char *b, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(v >> (8 * i));
}

/*
 * The index's checksum (lib/price_table.h): a 64-bit multiply-xor hash of
 * every byte but the checksum's own, eight at a time.  It runs on every
 * load: a few tens of microseconds for LiteLLM's map.
 */
static uint64_t
hash_bytes(uint64_t h, const unsigned char *b, size_t len)
{
	const uint64_t k = 0xff51afd7ed558ccdu;
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		h = (h ^ get_le64(b + i)) * k;
		h ^= h >> 32;
	}
	if (i < len) {
		uint64_t w = 0;

		for (size_t j = 0; i + j < len; j++)
			w |= (uint64_t)b[i + j] << (8 * j);
		h = (h ^ w) * k;
		h ^= h >> 32;
	}
	return h;
}

static uint64_t
idx_checksum(const unsigned char *m, size_t len)
{
	uint64_t h = 0x9e3779b97f4a7c15u ^ (uint64_t)len;

	h = hash_bytes(h, m, IDX_CHECKSUM);
	return hash_bytes(h, m + IDX_HEADER, len - IDX_HEADER);
}

/* ---- file identity ---- */

static void
stamp_of(const struct stat *st, struct tg_file_stamp *out)
{
	memset(out, 0, sizeof(*out));
	out->present = true;
	out->dev = (uint64_t)st->st_dev;
	out->ino = (uint64_t)st->st_ino;
	out->size = (int64_t)st->st_size;
	out->mtime_s = (int64_t)st->st_mtim.tv_sec;
	out->mtime_ns = st->st_mtim.tv_nsec;
}

void
tg_file_stamp_get(const char *path, struct tg_file_stamp *out)
{
	struct stat st;

	if (path != NULL && stat(path, &st) == 0)
		stamp_of(&st, out);
	else
		memset(out, 0, sizeof(*out));
}

bool
tg_file_stamp_eq(const struct tg_file_stamp *a, const struct tg_file_stamp *b)
{
	if (!a->present || !b->present)
		return a->present == b->present;
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime_s == b->mtime_s && a->mtime_ns == b->mtime_ns;
}

void
tg_pricing_stamp(const struct tg_pricing *p, struct tg_file_stamp *out)
{
	if (p != NULL)
		*out = p->stamp;
	else
		memset(out, 0, sizeof(*out));
}

bool
tg_pricing_uses_index(const struct tg_pricing *p)
{
	return p != NULL && p->idx != NULL && !p->idx->broken;
}

char *
tg_pricing_index_path(const char *path)
{
	size_t n = strlen(path);
	char *idx = tg_xmalloc(n + 5);

	memcpy(idx, path, n);
	memcpy(idx + n, ".idx", 5);
	return idx;
}

/* ---- reading ---- */

/*
 * Read all of fd (capped at cap bytes) into a NUL-terminated buffer.
 * Returns NULL with errno set on failure.
 */
static char *
read_fd(int fd, size_t cap, size_t *len)
{
	char *buf = NULL;
	size_t used = 0, size = 0;
	ssize_t n;
	int saved;

	for (;;) {
		if (size - used < 65536) {
			if (size >= cap) {
				errno = EFBIG;
				goto fail;
			}
			size = size ? size * 2 : 262144;
			buf = tg_xrealloc(buf, size + 1);
		}
		n = read(fd, buf + used, size - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		if (n == 0)
			break;
		used += (size_t)n;
	}
	buf[used] = '\0';
	*len = used;
	return buf;
fail:
	saved = errno;
	free(buf);
	errno = saved;
	return NULL;
}

/* len bytes at off of fd into buf; false on an error or a short file. */
static bool
pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, (char *)buf + got, len - got,
		                  (off_t)(off + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		got += (size_t)n;
	}
	return true;
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

static int
row_cmp(const void *a, const void *b)
{
	const struct price_row *ra = a, *rb = b;

	return strcmp(ra->name, rb->name);
}

/*
 * The table of text[0..len), the whole price file path, into *out.  The
 * messages are those of tg_pricing_load().
 */
static enum tg_rc
table_from_text(const char *path, const char *text, size_t len,
                struct tg_pricing **out, struct tg_err *err)
{
	struct json_object *root = NULL;
	struct json_tokener *tok = NULL;
	struct tg_pricing *p = NULL;
	enum tg_rc rc = TG_ERR_CONFIG;
	size_t cap;

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
	return rc;
}

/* Open path for reading; its stat into *st.  -1 with err set on failure. */
static int
open_price_file(const char *path, struct stat *st, struct tg_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd >= 0 && fstat(fd, st) != 0) {
		int saved = errno;

		close(fd);
		errno = saved;
		fd = -1;
	}
	if (fd < 0)
		tg_err_set(err, TG_ERR_CONFIG, NULL, "%s: cannot read: %s",
		           path, strerror(errno));
	return fd;
}

/* The table of the price file open as fd, read whole. */
static enum tg_rc
load_whole(const char *path, int fd, const struct stat *st,
           struct tg_pricing **out, struct tg_err *err)
{
	char *text;
	size_t len = 0;
	enum tg_rc rc;

	text = read_fd(fd, PRICE_FILE_MAX, &len);
	if (text == NULL)
		return tg_err_set(err, TG_ERR_CONFIG, NULL,
		                  "%s: cannot read: %s", path, strerror(errno));
	rc = table_from_text(path, text, len, out, err);
	free(text);
	if (rc == TG_OK)
		stamp_of(st, &(*out)->stamp);
	return rc;
}

/* ---- the index: reading ---- */

/*
 * Whether the index m[0..len) is whole and was made from the file whose
 * stat is js (NULL: not looked at).  The state and, in why, the reason.
 */
static enum tg_index_state
header_check(const unsigned char *m, size_t len, const struct stat *js,
             char *why, size_t whylen)
{
	uint64_t count, names, want;

	if (len < IDX_HEADER || memcmp(m, idx_magic, sizeof(idx_magic)) != 0) {
		snprintf(why, whylen, "not a tollgate price index");
		return TG_INDEX_CORRUPT;
	}
	if (get_le32(m + 8) != IDX_VERSION || get_le32(m + 12) != IDX_HEADER) {
		snprintf(why, whylen,
		         "index version %lu, this build reads version %d",
		         (unsigned long)get_le32(m + 8), IDX_VERSION);
		return TG_INDEX_CORRUPT;
	}
	count = get_le32(m + 36);
	names = get_le32(m + 48);
	want = IDX_HEADER + count * IDX_ENTRY + names;
	if (want != len || get_le64(m + 16) > PRICE_FILE_MAX) {
		snprintf(why, whylen,
		         "%zu bytes where the header says %llu: cut short or "
		         "damaged",
		         len, (unsigned long long)want);
		return TG_INDEX_CORRUPT;
	}
	if (get_le64(m + IDX_CHECKSUM) != idx_checksum(m, len)) {
		snprintf(why, whylen, "checksum mismatch: damaged");
		return TG_INDEX_CORRUPT;
	}
	if (js != NULL &&
	    (get_le64(m + 16) != (uint64_t)js->st_size ||
	     (int64_t)get_le64(m + 24) != (int64_t)js->st_mtim.tv_sec ||
	     get_le32(m + 32) != (uint32_t)js->st_mtim.tv_nsec ||
	     get_le64(m + 40) != (uint64_t)js->st_ino)) {
		snprintf(why, whylen,
		         "made from another file, or before the file changed "
		         "(size, modification time or inode differ)");
		return TG_INDEX_STALE;
	}
	snprintf(why, whylen, "valid");
	return TG_INDEX_VALID;
}

/*
 * The index of the price file open as fd (stat st), mapped, when there is
 * one that fits it.  NULL otherwise: the caller reads the file whole.
 */
static struct price_index *
index_open(const char *path, int fd, const struct stat *st)
{
	struct price_index *x;
	struct stat ist;
	char *idx_path = tg_pricing_index_path(path), why[160];
	void *map;
	int ifd;

	ifd = open(idx_path, O_RDONLY | O_CLOEXEC);
	free(idx_path);
	if (ifd < 0)
		return NULL;
	if (fstat(ifd, &ist) != 0 || !S_ISREG(ist.st_mode) ||
	    ist.st_size < IDX_HEADER || (uint64_t)ist.st_size > INDEX_MAX) {
		close(ifd);
		return NULL;
	}
	map = mmap(NULL, (size_t)ist.st_size, PROT_READ, MAP_PRIVATE, ifd, 0);
	close(ifd);
	if (map == MAP_FAILED)
		return NULL;
	if (header_check(map, (size_t)ist.st_size, st, why, sizeof(why)) !=
	    TG_INDEX_VALID) {
		munmap(map, (size_t)ist.st_size);
		return NULL;
	}
	x = tg_xcalloc(1, sizeof(*x));
	x->path = tg_xstrdup(path);
	x->fd = fd;
	x->map = map;
	x->map_len = (size_t)ist.st_size;
	x->count = get_le32(x->map + 36);
	x->names_size = get_le32(x->map + 48);
	x->json_size = get_le64(x->map + 16);
	return x;
}

/*
 * Parse text[0..len), one member of the file ("name": {...}), as the
 * object {"name": {...}}.  The object (one reference), or NULL when the
 * text is not exactly one member whose value is an object.  The key is
 * then the member's name, as json-c reads it (escapes decoded).
 */
static struct json_object *
parse_member(const char *text, size_t len, const char **name,
             struct json_object **value)
{
	struct json_tokener *tok;
	struct json_object *o = NULL;

	if (len > INT_MAX - 2)
		return NULL;
	tok = json_tokener_new();
	/* Fed in three pieces, the wrapping braces around the file's own
	 * bytes: the member must leave the object open until the last one. */
	o = json_tokener_parse_ex(tok, "{", 1);
	if (o == NULL && json_tokener_get_error(tok) == json_tokener_continue)
		o = json_tokener_parse_ex(tok, text, (int)len);
	if (o == NULL && json_tokener_get_error(tok) == json_tokener_continue)
		o = json_tokener_parse_ex(tok, "}", 1);
	else {
		json_object_put(o);
		o = NULL;
	}
	if (o != NULL && (json_tokener_get_parse_end(tok) != 1 ||
	                  !json_object_is_type(o, json_type_object) ||
	                  json_object_object_length(o) != 1)) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	if (o == NULL)
		return NULL;
	{
		json_object_object_foreach(o, k, v)
		{
			*name = k;
			*value = v;
		}
	}
	if (!json_object_is_type(*value, json_type_object)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/*
 * Name i of the index, with its length; NULL when its bounds are not
 * within the names or it is not followed by a NUL.
 */
static const char *
index_name(const struct price_index *x, uint32_t i, size_t *len)
{
	const unsigned char *e = x->map + IDX_HEADER + (size_t)i * IDX_ENTRY;
	const unsigned char *names =
	        x->map + IDX_HEADER + (size_t)x->count * IDX_ENTRY;
	uint32_t off = get_le32(e), n = get_le32(e + 4);

	if ((uint64_t)off + n >= x->names_size || names[off + n] != '\0')
		return NULL;
	*len = n;
	return (const char *)names + off;
}

static int
name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c != 0)
		return c;
	return alen < blen ? -1 : alen > blen;
}

/* The entry at place i of the index, parsed from the file; NULL if it is
 * not a usable price (broken set when the bytes do not fit the index). */
static const struct tg_price_entry *
index_entry(struct price_index *x, uint32_t i, const char *name)
{
	const unsigned char *e = x->map + IDX_HEADER + (size_t)i * IDX_ENTRY;
	uint64_t off = get_le32(e + 8), len = get_le32(e + 12);
	struct json_object *o, *value = NULL;
	struct tg_price_entry entry;
	const char *key = NULL;
	char *text;
	bool usable;

	for (size_t k = 0; k < x->ncache; k++)
		if (x->cache[k].place == i)
			return x->cache[k].entry;
	if (len < 2 || len > ENTRY_MAX || off + len > x->json_size) {
		x->broken = true;
		return NULL;
	}
	text = tg_xmalloc((size_t)len);
	if (!pread_all(x->fd, text, (size_t)len, off)) {
		free(text);
		x->broken = true;
		return NULL;
	}
	o = parse_member(text, (size_t)len, &key, &value);
	free(text);
	if (o == NULL || strcmp(key, name) != 0) {
		json_object_put(o);
		x->broken = true;
		return NULL;
	}
	usable = tg_price_entry_from_json(value, &entry);
	json_object_put(o);
	if (!usable)
		return NULL;
	if (x->ncache == x->cache_cap) {
		x->cache_cap = x->cache_cap ? 2 * x->cache_cap : 16;
		x->cache =
		        tg_xrealloc(x->cache, x->cache_cap * sizeof(*x->cache));
	}
	x->cache[x->ncache].place = i;
	x->cache[x->ncache].entry = tg_xmalloc(sizeof(entry));
	*x->cache[x->ncache].entry = entry;
	return x->cache[x->ncache++].entry;
}

static const struct tg_price_entry *
index_find(struct price_index *x, const char *name)
{
	size_t nlen = strlen(name);
	uint32_t lo = 0, hi = x->count;
	const struct tg_price_entry *found = NULL;

	while (!x->broken && lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		size_t mlen = 0;
		const char *m = index_name(x, mid, &mlen);
		int c;

		if (m == NULL) {
			x->broken = true;
			break;
		}
		c = name_cmp(name, nlen, m, mlen);
		if (c == 0) {
			found = index_entry(x, mid, name);
			break;
		}
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	if (!x->broken)
		return found;
	/* The index does not fit the file after all: read it whole, once. */
	if (x->whole == NULL && x->fd >= 0) {
		struct stat st;
		struct tg_err err;

		if (lseek(x->fd, 0, SEEK_SET) != 0 || fstat(x->fd, &st) != 0 ||
		    load_whole(x->path, x->fd, &st, &x->whole, &err) != TG_OK)
			x->whole = NULL;
		close(x->fd);
		x->fd = -1;
	}
	return x->whole ? tg_pricing_find(x->whole, name) : NULL;
}

static void
index_free(struct price_index *x)
{
	if (x == NULL)
		return;
	for (size_t i = 0; i < x->ncache; i++)
		free(x->cache[i].entry);
	free(x->cache);
	munmap((void *)(uintptr_t)x->map, x->map_len);
	if (x->fd >= 0)
		close(x->fd);
	tg_pricing_free(x->whole);
	free(x->path);
	free(x);
}

enum tg_rc
tg_pricing_load(const char *path, struct tg_pricing **out, struct tg_err *err)
{
	struct tg_pricing *p;
	struct price_index *x;
	struct stat st;
	enum tg_rc rc;
	int fd;

	fd = open_price_file(path, &st, err);
	if (fd < 0)
		return TG_ERR_CONFIG;
	x = S_ISREG(st.st_mode) ? index_open(path, fd, &st) : NULL;
	if (x != NULL) {
		p = tg_xcalloc(1, sizeof(*p));
		p->idx = x;
		stamp_of(&st, &p->stamp);
		*out = p;
		return TG_OK;
	}
	rc = load_whole(path, fd, &st, out, err);
	close(fd);
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
	index_free(p->idx);
	free(p);
}

const struct tg_price_entry *
tg_pricing_find(const struct tg_pricing *p, const char *name)
{
	struct price_row key, *row;

	if (p == NULL || name == NULL)
		return NULL;
	if (p->idx != NULL)
		return index_find(p->idx, name);
	if (p->nrows == 0)
		return NULL;
	key.name = (char *)(uintptr_t)name;
	row = bsearch(&key, p->rows, p->nrows, sizeof(*p->rows), row_cmp);
	return row ? &row->entry : NULL;
}

bool
tg_pricing_index_seal(unsigned char *m, size_t len, const char *json_path)
{
	struct stat st;

	if (len < IDX_HEADER || stat(json_path, &st) != 0)
		return false;
	put_le64(m + 16, (uint64_t)st.st_size);
	put_le64(m + 24, (uint64_t)(int64_t)st.st_mtim.tv_sec);
	put_le32(m + 32, (uint32_t)st.st_mtim.tv_nsec);
	put_le64(m + 40, (uint64_t)st.st_ino);
	put_le64(m + IDX_CHECKSUM, idx_checksum(m, len));
	return true;
}

/* ---- the index: making it ---- */

/* A top-level member of the file: the bytes of "name": value. */
struct member {
	char *name;
	size_t off, len;
	bool object;
};

static size_t
skip_space(const char *t, size_t i, size_t n)
{
	while (i < n &&
	       (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r'))
		i++;
	return i;
}

/* Past the string that starts at t[i] ('"'); n when it does not end. */
static size_t
skip_string(const char *t, size_t i, size_t n)
{
	for (i++; i < n; i++) {
		if (t[i] == '\\')
			i++;
		else if (t[i] == '"')
			return i + 1;
	}
	return n;
}

/* Past the value that starts at t[i]: an object or array to its closing
 * bracket, a string to its quote, a scalar to the next delimiter. */
static size_t
skip_value(const char *t, size_t i, size_t n)
{
	size_t depth = 0;

	if (i < n && t[i] == '"')
		return skip_string(t, i, n);
	if (i < n && t[i] != '{' && t[i] != '[') {
		while (i < n && strchr(",}] \t\r\n", t[i]) == NULL)
			i++;
		return i;
	}
	while (i < n) {
		if (t[i] == '"') {
			i = skip_string(t, i, n);
			continue;
		}
		if (t[i] == '{' || t[i] == '[')
			depth++;
		else if ((t[i] == '}' || t[i] == ']') && --depth == 0)
			return i + 1;
		i++;
	}
	return n;
}

static int
member_cmp(const void *a, const void *b)
{
	const struct member *ma = a, *mb = b;
	int c = strcmp(ma->name, mb->name);

	if (c != 0)
		return c;
	return ma->off < mb->off ? -1 : ma->off > mb->off;
}

/*
 * The top-level members of text, a JSON object json-c has accepted, into
 * *out (sorted by name, then place), their count into *n.  TG_ERR_CONFIG
 * when the text has what the scan does not follow (json-c also takes
 * comments and other extensions of JSON that LiteLLM's file never has).
 */
static enum tg_rc
scan_members(const char *path, const char *text, size_t len,
             struct member **out, size_t *n, struct tg_err *err)
{
	struct member *ms = NULL;
	size_t cap = 0, count = 0, i;
	enum tg_rc rc = TG_OK;

	i = skip_space(text, 0, len);
	if (i >= len || text[i] != '{')
		goto bad;
	i = skip_space(text, i + 1, len);
	if (i < len && text[i] == '}')
		goto done;
	for (;;) {
		struct json_object *o, *value = NULL;
		const char *key = NULL;
		size_t start = i, kend, v;

		if (i >= len || text[i] != '"')
			goto bad;
		kend = skip_string(text, i, len);
		i = skip_space(text, kend, len);
		if (i >= len || text[i] != ':')
			goto bad;
		v = skip_space(text, i + 1, len);
		i = skip_value(text, v, len);
		if (i >= len || i == v)
			goto bad;
		if (count == cap) {
			cap = cap ? cap * 2 : 1024;
			ms = tg_xrealloc(ms, cap * sizeof(*ms));
		}
		ms[count].off = start;
		ms[count].len = i - start;
		ms[count].object = text[v] == '{';
		ms[count].name = NULL;
		if (ms[count].object) {
			o = parse_member(text + start, i - start, &key, &value);
			if (o == NULL)
				goto bad;
			ms[count].name = tg_xstrdup(key);
			json_object_put(o);
		} else {
			/* Only its name counts: a later object of the same
			 * name replaces it, or it the object. */
			char *k = tg_xstrndup(text + start, kend - start);
			struct json_object *s = json_tokener_parse(k);

			free(k);
			ms[count].name = tg_xstrdup(
			        s && json_object_is_type(s, json_type_string)
			                ? json_object_get_string(s)
			                : "");
			json_object_put(s);
		}
		count++;
		i = skip_space(text, i, len);
		if (i < len && text[i] == ',') {
			i = skip_space(text, i + 1, len);
			continue;
		}
		if (i < len && text[i] == '}')
			break;
		goto bad;
	}
done:
	qsort(ms, count, sizeof(*ms), member_cmp);
	*out = ms;
	*n = count;
	return TG_OK;
bad:
	rc = tg_err_set(err, TG_ERR_CONFIG, NULL,
	                "%s:%zu: cannot index: unexpected text (the index "
	                "takes plain JSON)",
	                path, line_of(text, i < len ? i : len));
	for (size_t k = 0; k < count; k++)
		free(ms[k].name);
	free(ms);
	return rc;
}

/*
 * The index of the price file path (open as fd, stat st) into a new buffer
 * *out of *outlen bytes.
 */
static enum tg_rc
index_build(const char *path, int fd, const struct stat *st,
            unsigned char **out, size_t *outlen, struct tg_err *err)
{
	struct tg_pricing *p = NULL;
	struct member *ms = NULL;
	unsigned char *buf = NULL, *ent;
	size_t n = 0, kept = 0, names = 0, len = 0, total, noff;
	char *text;
	enum tg_rc rc;

	text = read_fd(fd, PRICE_FILE_MAX, &len);
	if (text == NULL)
		return tg_err_set(err, TG_ERR_CONFIG, NULL,
		                  "%s: cannot read: %s", path, strerror(errno));
	/* The file must load as it would without an index. */
	rc = table_from_text(path, text, len, &p, err);
	tg_pricing_free(p);
	if (rc != TG_OK)
		goto out;
	rc = scan_members(path, text, len, &ms, &n, err);
	if (rc != TG_OK)
		goto out;
	/* Of a name given twice, the last place; no sample_spec, no
	 * value that is not an object. */
	for (size_t i = 0; i < n; i++) {
		bool last = i + 1 == n || strcmp(ms[i].name, ms[i + 1].name);

		if (last && ms[i].object && strcmp(ms[i].name, "sample_spec"))
			ms[kept++] = ms[i];
		else
			free(ms[i].name);
	}
	for (size_t i = 0; i < kept; i++)
		names += strlen(ms[i].name) + 1;
	if (kept > UINT32_MAX / IDX_ENTRY || names > UINT32_MAX) {
		rc = tg_err_set(err, TG_ERR_CONFIG, NULL,
		                "%s: too many names to index", path);
		goto out;
	}
	total = IDX_HEADER + kept * IDX_ENTRY + names;
	buf = tg_xcalloc(1, total);
	memcpy(buf, idx_magic, sizeof(idx_magic));
	put_le32(buf + 8, IDX_VERSION);
	put_le32(buf + 12, IDX_HEADER);
	put_le64(buf + 16, (uint64_t)st->st_size);
	put_le64(buf + 24, (uint64_t)(int64_t)st->st_mtim.tv_sec);
	put_le32(buf + 32, (uint32_t)st->st_mtim.tv_nsec);
	put_le32(buf + 36, (uint32_t)kept);
	put_le64(buf + 40, (uint64_t)st->st_ino);
	put_le32(buf + 48, (uint32_t)names);
	noff = 0;
	for (size_t i = 0; i < kept; i++) {
		size_t nl = strlen(ms[i].name);

		ent = buf + IDX_HEADER + i * IDX_ENTRY;
		put_le32(ent, (uint32_t)noff);
		put_le32(ent + 4, (uint32_t)nl);
		put_le32(ent + 8, (uint32_t)ms[i].off);
		put_le32(ent + 12, (uint32_t)ms[i].len);
		memcpy(buf + IDX_HEADER + kept * IDX_ENTRY + noff, ms[i].name,
		       nl + 1);
		noff += nl + 1;
	}
	put_le64(buf + IDX_CHECKSUM, idx_checksum(buf, total));
	*out = buf;
	*outlen = total;
	buf = NULL;
out:
	for (size_t i = 0; i < kept; i++)
		free(ms[i].name);
	free(ms);
	free(buf);
	free(text);
	return rc;
}

/* The directory part of path ("." when none), malloc'd. */
static char *
dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return tg_xstrdup(".");
	if (slash == path)
		return tg_xstrdup("/");
	return tg_xstrndup(path, (size_t)(slash - path));
}

void
tg_pricing_sync_dir(const char *path)
{
	char *dir = dir_of(path);
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	free(dir);
}

char *
tg_pricing_write_beside(const char *path, const void *data, size_t len,
                        bool keep_mode, struct tg_err *err)
{
	const unsigned char *bytes = data;
	size_t plen = strlen(path);
	char *tmp = tg_xmalloc(plen + 40);
	struct stat st;
	int fd = -1;

	for (int tries = 0; fd < 0 && tries < 100; tries++) {
		unsigned char r[4];

		tg_random_bytes(r, sizeof(r));
		snprintf(tmp, plen + 40, "%s.tmp.%ld.%02x%02x%02x%02x", path,
		         (long)getpid(), r[0], r[1], r[2], r[3]);
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
		if (fd < 0 && errno != EEXIST)
			break;
	}
	if (fd < 0) {
		tg_err_set(err, TG_ERR_INTERNAL, NULL,
		           "cannot create a file beside %s: %s", path,
		           strerror(errno));
		free(tmp);
		return NULL;
	}
	if (keep_mode && stat(path, &st) == 0)
		fchmod(fd, st.st_mode & 07777);
	for (size_t done = 0; done < len;) {
		ssize_t n = write(fd, bytes + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			tg_err_set(err, TG_ERR_INTERNAL, NULL,
			           "%s: cannot write: %s", tmp,
			           strerror(n < 0 ? errno : ENOSPC));
			goto fail;
		}
		done += (size_t)n;
	}
	if (fsync(fd) != 0 || close(fd) != 0) {
		fd = -1;
		tg_err_set(err, TG_ERR_INTERNAL, NULL, "%s: cannot write: %s",
		           tmp, strerror(errno));
		goto fail;
	}
	return tmp;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	free(tmp);
	return NULL;
}

/* data[0..len) as the new content of path: a new file beside it, written,
 * fsync()ed and renamed over it, then the directory fsync()ed. */
static enum tg_rc
write_atomic(const char *path, const unsigned char *data, size_t len,
             struct tg_err *err)
{
	char *tmp = tg_pricing_write_beside(path, data, len, false, err);

	if (tmp == NULL)
		return TG_ERR_INTERNAL;
	if (rename(tmp, path) != 0) {
		tg_err_set(err, TG_ERR_INTERNAL, NULL, "%s: cannot rename: %s",
		           path, strerror(errno));
		unlink(tmp);
		free(tmp);
		return TG_ERR_INTERNAL;
	}
	tg_pricing_sync_dir(path);
	free(tmp);
	return TG_OK;
}

enum tg_rc
tg_pricing_index_write(const char *json_path, const char *idx_path,
                       struct tg_err *err)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	struct stat st;
	char *own = NULL;
	enum tg_rc rc;
	int fd;

	fd = open_price_file(json_path, &st, err);
	if (fd < 0)
		return TG_ERR_CONFIG;
	rc = index_build(json_path, fd, &st, &buf, &len, err);
	close(fd);
	if (rc != TG_OK)
		return rc;
	if (idx_path == NULL)
		idx_path = own = tg_pricing_index_path(json_path);
	rc = write_atomic(idx_path, buf, len, err);
	free(own);
	free(buf);
	return rc;
}

enum tg_index_state
tg_pricing_index_check(const char *json_path, char *why, size_t whylen)
{
	char *idx_path = tg_pricing_index_path(json_path), spare[8];
	unsigned char *idx = NULL, *built = NULL;
	size_t idx_len = 0, built_len = 0;
	enum tg_index_state state = TG_INDEX_CORRUPT;
	struct stat st;
	struct tg_err err;
	int fd = -1, ifd;

	if (why == NULL) {
		why = spare;
		whylen = sizeof(spare);
	}
	ifd = open(idx_path, O_RDONLY | O_CLOEXEC);
	if (ifd < 0) {
		int saved = errno;

		snprintf(why, whylen, "%s",
		         saved == ENOENT ? "missing" : strerror(saved));
		state = saved == ENOENT ? TG_INDEX_MISSING : TG_INDEX_CORRUPT;
		goto out;
	}
	idx = (unsigned char *)read_fd(ifd, INDEX_MAX, &idx_len);
	close(ifd);
	if (idx == NULL) {
		snprintf(why, whylen, "cannot read: %s", strerror(errno));
		goto out;
	}
	tg_err_clear(&err);
	fd = open_price_file(json_path, &st, &err);
	if (fd < 0) {
		snprintf(why, whylen, "%s", err.message);
		state = TG_INDEX_STALE;
		goto out;
	}
	state = header_check(idx, idx_len, &st, why, whylen);
	if (state != TG_INDEX_VALID)
		goto out;
	/* Every entry: the index the file makes now, byte for byte. */
	if (index_build(json_path, fd, &st, &built, &built_len, &err) !=
	    TG_OK) {
		snprintf(why, whylen, "the file does not index: %s",
		         err.message);
		state = TG_INDEX_STALE;
	} else if (built_len != idx_len ||
	           memcmp(built + IDX_HEADER, idx + IDX_HEADER,
	                  idx_len - IDX_HEADER) != 0) {
		snprintf(why, whylen,
		         "its entries are not the file's: damaged or made by "
		         "another program");
		state = TG_INDEX_CORRUPT;
	}
out:
	if (fd >= 0)
		close(fd);
	free(built);
	free(idx);
	free(idx_path);
	return state;
}
