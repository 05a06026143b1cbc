/*
 * test-price-table: the price file read through its index
 * (lib/price_table.h): the same prices as the file read whole, for every
 * name of LiteLLM's map; and an index that does not fit (stale after the
 * file changed, cut short, damaged, with offsets out of bounds or pointing
 * at another entry, of another version) is never trusted: the answers stay
 * the file's.
 *
 * The shipped price file is found through TG_SRCDIR (set by `make check`),
 * else ../etc; it is copied to a mkdtemp() directory, where every file of
 * the test is written and removed.
 */
#define _POSIX_C_SOURCE 200809L

#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../tap.h"
#include "money.h"
#include "price_table.h"
#include "pricing.h"

static char tmpdir[] = "/tmp/tg-test-price-table-XXXXXX";

static char *
tmp_path(const char *name)
{
	static char path[16][512]; /* a ring: a few live at once */
	static int next;
	char *p = path[next++ % 16];

	snprintf(p, sizeof(path[0]), "%s/%s", tmpdir, name);
	return p;
}

static void
write_bytes(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

static unsigned char *
read_bytes(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	long n;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0) {
		perror(path);
		exit(1);
	}
	buf = malloc((size_t)n + 1);
	if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		perror(path);
		exit(1);
	}
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static tg_price
price_of(const char *text)
{
	tg_price p = -1;

	if (!tg_price_parse(text, &p))
		diag("cannot parse price %s", text);
	return p;
}

/* The same prices, as far as a call's cost can tell. */
static bool
same_entry(const struct tg_price_entry *a, const struct tg_price_entry *b)
{
	struct tg_usage u;
	tg_money ca = 0, cb = 0;
	struct tg_err err;

	if (a == NULL || b == NULL)
		return a == b;
	if (a->input != b->input || a->output != b->output ||
	    a->has_cache_read != b->has_cache_read ||
	    a->cache_read != b->cache_read ||
	    a->has_cache_write != b->has_cache_write ||
	    a->cache_write != b->cache_write ||
	    a->cache_write_1h != b->cache_write_1h || a->ntiers != b->ntiers ||
	    a->max_output_tokens != b->max_output_tokens ||
	    a->max_input_tokens != b->max_input_tokens ||
	    a->has_search_context != b->has_search_context ||
	    memcmp(a->tier, b->tier, a->ntiers * sizeof(a->tier[0])) != 0 ||
	    memcmp(a->search_context, b->search_context,
	           sizeof(a->search_context)) != 0 ||
	    memcmp(a->tool, b->tool, sizeof(a->tool)) != 0)
		return false;
	memset(&u, 0, sizeof(u));
	u.present = true;
	u.prompt_tokens = 300000;
	u.cached_tokens = 1000;
	u.cache_write_tokens = 500;
	u.completion_tokens = 7777;
	tg_err_clear(&err);
	return tg_pricing_cost(a, &u, &ca, &err) ==
	               tg_pricing_cost(b, &u, &cb, &err) &&
	       ca == cb;
}

/* Load path; whether the load used the index into *indexed. */
static struct tg_pricing *
load(const char *path, bool *indexed)
{
	struct tg_pricing *p = NULL;
	struct tg_err err;

	tg_err_clear(&err);
	if (tg_pricing_load(path, &p, &err) != TG_OK) {
		diag("load %s: %s", path, err.message);
		return NULL;
	}
	if (indexed != NULL)
		*indexed = tg_pricing_uses_index(p);
	return p;
}

static bool
index_it(const char *path)
{
	struct tg_err err;

	tg_err_clear(&err);
	if (tg_pricing_index_write(path, NULL, &err) != TG_OK) {
		diag("index %s: %s", path, err.message);
		return false;
	}
	return true;
}

/* A small map: an escaped name, a name given twice (the last counts, an
 * object or not), sample_spec, an entry without usable prices. */
static const char small_map[] =
        "{\n"
        "  \"sample_spec\": {\"input_cost_per_token\": 0.0,"
        " \"output_cost_per_token\": 0.0},\n"
        "  \"m1\": {\"input_cost_per_token\": 1e-06,"
        " \"output_cost_per_token\": 2e-06, \"max_output_tokens\": 100},\n"
        "  \"dup\": {\"input_cost_per_token\": 1e-06,"
        " \"output_cost_per_token\": 1e-06},\n"
        "  \"gone\": {\"input_cost_per_token\": 1e-06,"
        " \"output_cost_per_token\": 1e-06},\n"
        "  \"prov\\/m\\u00e9\": {\"input_cost_per_token\": \"3e-07\","
        " \"output_cost_per_token\": 4e-07,"
        " \"note\": \"a } and a \\\" in a string\"},\n"
        "  \"image\": {\"output_cost_per_image\": 0.04},\n"
        "  \"list\": [1, {\"a\": 2}],\n"
        "  \"dup\": {\"input_cost_per_token\": 5e-06,"
        " \"output_cost_per_token\": 6e-06},\n"
        "  \"gone\": \"a string now\",\n"
        "  \"m2\": {\"input_cost_per_token\": 7e-07,"
        " \"output_cost_per_token\": 8e-07,"
        " \"cache_read_input_token_cost\": 1e-07}\n"
        "}\n";

static const char *const small_names[] = {"sample_spec",
                                          "m1",
                                          "dup",
                                          "gone",
                                          "prov/m\xc3\xa9",
                                          "image",
                                          "list",
                                          "m2",
                                          "nope",
                                          "m",
                                          "",
                                          "m10",
                                          "M1",
                                          "prov\\/m\\u00e9"};

/* Every name: the index answers as the whole file does. */
static void
compare_names(const char *what, struct tg_pricing *idx,
              struct tg_pricing *whole, const char *const *names, size_t n)
{
	size_t bad = 0;

	for (size_t i = 0; i < n; i++) {
		const struct tg_price_entry *a = tg_pricing_find(idx, names[i]);
		const struct tg_price_entry *b =
		        tg_pricing_find(whole, names[i]);

		if (!same_entry(a, b)) {
			if (bad++ < 5)
				diag("%s: '%s' differs (%s / %s)", what,
				     names[i], a ? "found" : "NULL",
				     b ? "found" : "NULL");
		}
	}
	ok(bad == 0, "%s: %zu names answered as by the whole file", what, n);
}

static void
test_small(void)
{
	char *path = tmp_path("small.json");
	struct tg_pricing *p, *whole;
	const struct tg_price_entry *e, *again;
	char why[300];
	bool indexed = false;

	write_bytes(path, small_map, strlen(small_map));
	is_int(TG_INDEX_MISSING, tg_pricing_index_check(path, why, sizeof(why)),
	       "no index yet: missing (%s)", why);
	p = load(path, &indexed);
	ok(p != NULL && !indexed, "without an index the file is read whole");
	whole = p;
	ok(index_it(path), "index written");
	is_int(TG_INDEX_VALID, tg_pricing_index_check(path, why, sizeof(why)),
	       "index valid (%s)", why);
	p = load(path, &indexed);
	ok(p != NULL && indexed, "with it the index is used");
	compare_names("small map", p, whole, small_names,
	              sizeof(small_names) / sizeof(small_names[0]));
	e = tg_pricing_find(p, "dup");
	ok(e != NULL && e->input == price_of("5e-06"),
	   "a name given twice: the last entry");
	ok(tg_pricing_find(p, "gone") == NULL,
	   "a name whose last value is not an object: absent");
	ok(tg_pricing_find(p, "sample_spec") == NULL, "sample_spec: absent");
	ok(tg_pricing_find(p, "image") == NULL, "no per-token prices: absent");
	e = tg_pricing_find(p, "prov/m\xc3\xa9");
	ok(e != NULL && e->input == price_of("3e-07"),
	   "an escaped name is found by its text");
	e = tg_pricing_find(p, "m1");
	again = tg_pricing_find(p, "m1");
	ok(e != NULL && e == again && e->max_output_tokens == 100,
	   "a name found twice: the same entry, kept until free");
	ok(tg_pricing_uses_index(p), "still through the index");
	tg_pricing_free(p);
	tg_pricing_free(whole);

	/* Errors in the file: as a load reports them, no index. */
	write_bytes(path, "{\"a\": {\n,}", 10);
	{
		struct tg_err err;
		char want[600];

		tg_err_clear(&err);
		is_int(TG_ERR_CONFIG, tg_pricing_index_write(path, NULL, &err),
		       "a broken file is not indexed");
		snprintf(want, sizeof(want), "%s:2: invalid JSON", path);
		ok(strncmp(err.message, want, strlen(want)) == 0,
		   "the load's message: %s", err.message);
		tg_err_clear(&err);
		is_int(TG_ERR_CONFIG, tg_pricing_load(path, &p, &err),
		       "and it does not load beside a stale index");
		ok(strncmp(err.message, want, strlen(want)) == 0,
		   "with the same message: %s", err.message);
	}
	unlink(path);
	unlink(tmp_path("small.json.idx"));
}

/* LiteLLM's whole map: every name, through the index and whole. */
static void
test_shipped(void)
{
	const char *src = getenv("TG_SRCDIR");
	char shipped[1024], why[300];
	char *copy = tmp_path("map.json");
	unsigned char *text;
	size_t len = 0, n = 0;
	struct json_object *root;
	const char **names;
	struct tg_pricing *p, *whole;
	bool indexed = false;
	struct timespec t0, t1;

	snprintf(shipped, sizeof(shipped), "%s/etc/model_prices.json",
	         src && src[0] ? src : "..");
	text = read_bytes(shipped, &len);
	write_bytes(copy, text, len);
	root = json_tokener_parse((const char *)text);
	ok(root != NULL && json_object_object_length(root) > 2000,
	   "the shipped map parses: %d names",
	   root ? json_object_object_length(root) : 0);
	names = calloc((size_t)json_object_object_length(root) + 4,
	               sizeof(*names));
	{
		json_object_object_foreach(root, k, v)
		{
			(void)v;
			names[n++] = k;
		}
	}
	names[n++] = "no-such-model";
	names[n++] = "GPT-4O";
	names[n++] = "gpt-4o-2024";

	whole = load(copy, &indexed);
	ok(whole != NULL && !indexed, "the map read whole");
	ok(index_it(copy), "the map indexed");
	is_int(TG_INDEX_VALID, tg_pricing_index_check(copy, why, sizeof(why)),
	       "its index is valid (%s)", why);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	p = load(copy, &indexed);
	ok(p != NULL && tg_pricing_find(p, "gpt-4o") != NULL,
	   "a load and a lookup through the index");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	diag("load + one lookup through the index: %.3f ms",
	     (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
	             (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
	ok(indexed, "the map through its index");
	compare_names("LiteLLM's map", p, whole, names, n);
	ok(tg_pricing_uses_index(p), "every lookup was answered by the index");
	tg_pricing_free(p);
	tg_pricing_free(whole);
	json_object_put(root);
	free(names);
	free(text);
}

/* The index stays; the file changes: never trusted. */
static void
test_stale(void)
{
	char *path = tmp_path("stale.json"), *moved = tmp_path("moved.json");
	struct tg_pricing *p;
	const struct tg_price_entry *e;
	struct timespec times[2];
	char *text, why[300];
	bool indexed = true;

	write_bytes(path, small_map, strlen(small_map));
	ok(index_it(path), "indexed");

	/* Longer: m1's entry moves. */
	text = malloc(strlen(small_map) + 2);
	text[0] = ' ';
	strcpy(text + 1, small_map);
	write_bytes(path, text, strlen(text));
	is_int(TG_INDEX_STALE, tg_pricing_index_check(path, why, sizeof(why)),
	       "the file grew: stale (%s)", why);
	p = load(path, &indexed);
	e = tg_pricing_find(p, "m1");
	ok(p != NULL && !indexed && e && e->input == price_of("1e-06"),
	   "the file grew: read whole, right price");
	tg_pricing_free(p);

	/* Same size, another price, the same modification time: same
	 * inode and size and time, so the index looks valid; the bytes it
	 * points at are read from the file as it is now. */
	ok(index_it(path), "indexed again");
	{
		struct stat st;
		char *at = strstr(text, "\"output_cost_per_token\": 2e-06");

		stat(path, &st);
		at[strlen("\"output_cost_per_token\": ")] = '9';
		write_bytes(path, text, strlen(text));
		times[0] = st.st_atim;
		times[1] = st.st_mtim;
		utimensat(AT_FDCWD, path, times, 0);
	}
	is_int(TG_INDEX_VALID, tg_pricing_index_check(path, why, sizeof(why)),
	       "an edit in place within the same time: looks valid");
	p = load(path, &indexed);
	e = tg_pricing_find(p, "m1");
	ok(indexed && e && e->output == price_of("9e-06"),
	   "and the price is the file's as it is now");
	tg_pricing_free(p);

	/* The same bytes, another time stamp. */
	times[0].tv_nsec = UTIME_OMIT;
	times[1].tv_sec = 1000000000;
	times[1].tv_nsec = 0;
	utimensat(AT_FDCWD, path, times, 0);
	is_int(TG_INDEX_STALE, tg_pricing_index_check(path, why, sizeof(why)),
	       "touched: stale");
	p = load(path, &indexed);
	ok(p != NULL && !indexed, "touched: read whole");
	tg_pricing_free(p);

	/* A copy with the index copied beside it: another inode. */
	ok(index_it(path), "indexed again");
	{
		size_t len;
		unsigned char *idx =
		        read_bytes(tmp_path("stale.json.idx"), &len);

		write_bytes(moved, text, strlen(text));
		write_bytes(tmp_path("moved.json.idx"), idx, len);
		free(idx);
	}
	is_int(TG_INDEX_STALE, tg_pricing_index_check(moved, why, sizeof(why)),
	       "a copied index: stale (%s)", why);
	p = load(moved, &indexed);
	ok(p != NULL && !indexed, "a copied index: read whole");
	tg_pricing_free(p);

	/* An edit in place that moves the entries within the same size and
	 * time: the index's offsets now point into the wrong bytes. */
	ok(index_it(path), "indexed again");
	{
		struct stat st;
		size_t n = strlen(text);
		char *shuffled = malloc(n + 1);
		const char *m2 = strstr(text, "  \"m2\"");

		stat(path, &st);
		/* The same members, the last one moved to the front: " {\n",
		 * m2, ",\n", the others, "\n}\n" (as many bytes). */
		snprintf(shuffled, n + 1, " {\n%.*s,\n%.*s\n}\n",
		         (int)(strlen(m2) - 3), m2, (int)(m2 - 2 - (text + 3)),
		         text + 3);
		ok(strlen(shuffled) == n, "the same size, moved entries");
		write_bytes(path, shuffled, n);
		times[0] = st.st_atim;
		times[1] = st.st_mtim;
		utimensat(AT_FDCWD, path, times, 0);
		free(shuffled);
	}
	p = load(path, &indexed);
	ok(p != NULL && indexed, "moved entries: the index looks valid");
	e = tg_pricing_find(p, "m2");
	ok(e != NULL && e->input == price_of("7e-07") && e->has_cache_read &&
	           e->cache_read == price_of("1e-07"),
	   "moved entries: m2 has its own price (read whole)");
	e = tg_pricing_find(p, "m1");
	ok(e != NULL && e->output == price_of("9e-06"), "and m1 has its own");
	ok(!tg_pricing_uses_index(p), "the index was dropped");
	tg_pricing_free(p);
	free(text);
	unlink(path);
	unlink(moved);
	unlink(tmp_path("stale.json.idx"));
	unlink(tmp_path("moved.json.idx"));
}

/* Damaged indexes: refused by the checks, the file read whole. */
static void
test_damaged(void)
{
	char *path = tmp_path("dmg.json"), *ipath = tmp_path("dmg.json.idx");
	unsigned char *good, *bad;
	size_t len = 0;
	struct tg_pricing *p;
	const struct tg_price_entry *e;
	char why[300];
	bool indexed;
	static const size_t cuts[] = {0, 7, 8, 63, 64, 65, 100};
	uint32_t count;

	write_bytes(path, small_map, strlen(small_map));
	ok(index_it(path), "indexed");
	good = read_bytes(ipath, &len);
	bad = malloc(len);
	count = (uint32_t)good[36] | (uint32_t)good[37] << 8;
	is_int(5, count, "five names indexed (dup, image, m1, m2, prov/me)");

	/* Cut short. */
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]) + 1; i++) {
		size_t n =
		        i < sizeof(cuts) / sizeof(cuts[0]) ? cuts[i] : len - 1;

		write_bytes(ipath, good, n);
		indexed = true;
		p = load(path, &indexed);
		e = tg_pricing_find(p, "m2");
		ok(!indexed && e && e->input == price_of("7e-07"),
		   "cut to %zu bytes: not used, right price", n);
		is_int(TG_INDEX_CORRUPT,
		       tg_pricing_index_check(path, why, sizeof(why)),
		       "cut to %zu bytes: corrupt (%s)", n, why);
		tg_pricing_free(p);
	}
	/* A byte flipped anywhere: the checksum. */
	for (size_t at = 0; at < len; at += len / 17 + 1) {
		memcpy(bad, good, len);
		bad[at] ^= 0x40;
		write_bytes(ipath, bad, len);
		indexed = true;
		p = load(path, &indexed);
		ok(!indexed && tg_pricing_find(p, "m1") != NULL,
		   "byte %zu flipped: not used", at);
		tg_pricing_free(p);
	}
	/* Another version, with its checksum right. */
	memcpy(bad, good, len);
	bad[8] = 2;
	tg_pricing_index_seal(bad, len, path);
	write_bytes(ipath, bad, len);
	is_int(TG_INDEX_CORRUPT, tg_pricing_index_check(path, why, sizeof(why)),
	       "version 2: refused (%s)", why);
	p = load(path, &indexed);
	ok(!indexed, "version 2: not used");
	tg_pricing_free(p);

	/*
	 * Offsets out of bounds or pointing elsewhere, behind a right
	 * checksum: the index is used, each lookup checks its bounds and
	 * its key, and at the first that fails the file is read whole.
	 */
	{
		static const struct {
			const char *what;
			size_t field; /* 0 name off, 4 name len, 8 member
			                 off, 12 member len */
			uint32_t value;
			const char *name; /* looked up */
		} rows[] = {
		        {"a member offset past the end", 8, 0xfffffff0u, "dup"},
		        {"a member length past the end", 12, 0x7fffffffu,
		         "dup"},
		        {"a member of length 0", 12, 0, "dup"},
		        {"a member offset inside another", 8, 3, "dup"},
		        {"a name offset past the names", 0, 0xffffff00u, "m1"},
		        {"a name length past the names", 4, 5000, "m1"},
		};

		for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
			for (uint32_t k = 0; k < count; k++) {
				unsigned char *ent =
				        bad + 64 + k * 16 + rows[i].field;

				memcpy(bad, good, len);
				for (int b = 0; b < 4; b++)
					ent[b] =
					        (unsigned char)(rows[i].value >>
					                        (8 * b));
				tg_pricing_index_seal(bad, len, path);
				write_bytes(ipath, bad, len);
				p = load(path, &indexed);
				e = tg_pricing_find(p, rows[i].name);
				if (!ok(indexed && e != NULL &&
				                e->input ==
				                        price_of(
				                                strcmp(rows[i].name,
				                                       "dup") ==
				                                                0
				                                        ? "5e-"
				                                          "06"
				                                        : "1e-"
				                                          "06"),
				        "%s (entry %u): right price",
				        rows[i].what, (unsigned)k))
					diag("indexed %d", indexed);
				e = tg_pricing_find(p, "m2");
				ok(e != NULL && e->input == price_of("7e-07"),
				   "%s (entry %u): then m2 too", rows[i].what,
				   (unsigned)k);
				is_int(TG_INDEX_CORRUPT,
				       tg_pricing_index_check(path, why,
				                              sizeof(why)),
				       "%s (entry %u): check says corrupt",
				       rows[i].what, (unsigned)k);
				tg_pricing_free(p);
			}
		}
	}
	/* Two entries swapped (each points at the other's member): the
	 * keys do not match. */
	memcpy(bad, good, len);
	memcpy(bad + 64 + 8, good + 64 + 16 + 8, 8);
	memcpy(bad + 64 + 16 + 8, good + 64 + 8, 8);
	tg_pricing_index_seal(bad, len, path);
	write_bytes(ipath, bad, len);
	p = load(path, &indexed);
	e = tg_pricing_find(p, "dup");
	ok(indexed && e != NULL && e->input == price_of("5e-06"),
	   "swapped members: dup keeps its own price");
	tg_pricing_free(p);
	/* Names out of order: a name may not be found through it, but
	 * nothing is found under another name. */
	memcpy(bad, good, len);
	memcpy(bad + 64, good + 64 + 16, 16);
	memcpy(bad + 64 + 16, good + 64, 16);
	tg_pricing_index_seal(bad, len, path);
	write_bytes(ipath, bad, len);
	is_int(TG_INDEX_CORRUPT, tg_pricing_index_check(path, why, sizeof(why)),
	       "names out of order: corrupt (%s)", why);
	p = load(path, &indexed);
	{
		struct tg_pricing *whole;
		size_t wrong = 0;

		write_bytes(tmp_path("dmg2.json"), small_map,
		            strlen(small_map));
		whole = load(tmp_path("dmg2.json"), NULL);
		for (size_t i = 0;
		     i < sizeof(small_names) / sizeof(small_names[0]); i++) {
			e = tg_pricing_find(p, small_names[i]);
			if (e != NULL &&
			    !same_entry(e,
			                tg_pricing_find(whole, small_names[i])))
				wrong++;
		}
		ok(wrong == 0, "names out of order: nothing found under "
		               "another name");
		tg_pricing_free(whole);
		unlink(tmp_path("dmg2.json"));
	}
	tg_pricing_free(p);
	/* Not an index at all. */
	write_bytes(ipath, small_map, strlen(small_map));
	is_int(TG_INDEX_CORRUPT, tg_pricing_index_check(path, why, sizeof(why)),
	       "a JSON file as its index: corrupt (%s)", why);
	free(good);
	free(bad);
	unlink(path);
	unlink(ipath);
}

/* The config's view: the file it read and its identity. */
static void
test_stamp(void)
{
	char *path = tmp_path("stamp.json");
	struct tg_file_stamp a, b, c;
	struct tg_pricing *p;

	write_bytes(path, small_map, strlen(small_map));
	tg_file_stamp_get(path, &a);
	p = load(path, NULL);
	tg_pricing_stamp(p, &b);
	ok(a.present && tg_file_stamp_eq(&a, &b),
	   "a table's stamp is its file's");
	tg_pricing_free(p);
	ok(index_it(path), "indexed");
	p = load(path, NULL);
	tg_pricing_stamp(p, &b);
	ok(tg_file_stamp_eq(&a, &b), "through the index too");
	tg_pricing_free(p);
	write_bytes(path, small_map, strlen(small_map) - 1);
	tg_file_stamp_get(path, &c);
	ok(!tg_file_stamp_eq(&a, &c), "a rewritten file: another stamp");
	unlink(path);
	tg_file_stamp_get(path, &c);
	ok(!c.present && !tg_file_stamp_eq(&a, &c), "a removed file: absent");
	unlink(tmp_path("stamp.json.idx"));
}

int
main(void)
{
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_small();
	test_shipped();
	test_stale();
	test_damaged();
	test_stamp();
	unlink(tmp_path("map.json"));
	unlink(tmp_path("map.json.idx"));
	rmdir(tmpdir);
	return done_testing();
}
