/*
 * fuzz-price-index: the price file's index (lib/price_table.c) as a load
 * reads it.
 *
 * An input is the bytes of an index.  A fixed price file is written once to
 * a private directory; each input is made to claim that file's identity
 * and given the right checksum (tg_pricing_index_seal()), so the harness
 * gets past the header's checks into the entries, names and offsets; the
 * few inputs under 64 bytes are written as they are.  Then the file is
 * loaded (through the index when it passes), names are looked up (the
 * file's, others, and strings taken from the input), and the index is
 * checked (tg_pricing_index_check()).
 *
 * Properties beyond "no crash, no leak, no UB": the load succeeds (a bad
 * index is never an error: the file is read whole instead); a lookup
 * answers exactly what the file read whole answers, or nothing for a name
 * the index cannot find (a damaged index may hide a name, never give one
 * another's prices); the same name found twice is the same entry.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "price_table.h"
#include "pricing.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond, what)                                                      \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "fuzz-price-index: %s: %s\n", what,    \
			        #cond);                                        \
			abort();                                               \
		}                                                              \
	} while (0)

static const char map[] =
        "{\n"
        "  \"sample_spec\": {\"input_cost_per_token\": 0.0,"
        " \"output_cost_per_token\": 0.0},\n"
        "  \"m1\": {\"input_cost_per_token\": 1e-06,"
        " \"output_cost_per_token\": 2e-06, \"max_output_tokens\": 100},\n"
        "  \"dup\": {\"input_cost_per_token\": 1e-06,"
        " \"output_cost_per_token\": 1e-06},\n"
        "  \"prov\\/m\\u00e9\": {\"input_cost_per_token\": \"3e-07\","
        " \"output_cost_per_token\": 4e-07, \"n\": \"a } and a \\\" \"},\n"
        "  \"image\": {\"output_cost_per_image\": 0.04},\n"
        "  \"list\": [1, {\"a\": 2}],\n"
        "  \"dup\": {\"input_cost_per_token\": 5e-06,"
        " \"output_cost_per_token\": 6e-06},\n"
        "  \"m2\": {\"input_cost_per_token\": 7e-07,"
        " \"output_cost_per_token\": 8e-07,"
        " \"cache_read_input_token_cost\": 1e-07}\n"
        "}\n";

static const char *const names[] = {"m1",          "dup",  "prov/m\xc3\xa9",
                                    "image",       "list", "m2",
                                    "sample_spec", "nope", "",
                                    "m",           "m10",  "dup\n"};

static char tmpdir[64];
static char json_path[96];
static char idx_path[104];
static struct tg_pricing *whole;

static void
cleanup(void)
{
	tg_pricing_free(whole);
	unlink(idx_path);
	unlink(json_path);
	rmdir(tmpdir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char *const dirs[] = {"/dev/shm", "/tmp"};
	struct tg_err err;
	FILE *f;

	(void)argc;
	(void)argv;
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(tmpdir, sizeof(tmpdir), "%s/tg-fuzz-pidx-XXXXXX",
		         dirs[i]);
		if (mkdtemp(tmpdir) != NULL)
			break;
		tmpdir[0] = '\0';
	}
	if (tmpdir[0] == '\0') {
		perror("mkdtemp");
		exit(1);
	}
	snprintf(json_path, sizeof(json_path), "%s/map.json", tmpdir);
	snprintf(idx_path, sizeof(idx_path), "%s/map.json.idx", tmpdir);
	atexit(cleanup);
	f = fopen(json_path, "wb");
	if (f == NULL ||
	    fwrite(map, 1, sizeof(map) - 1, f) != sizeof(map) - 1 ||
	    fclose(f) != 0) {
		perror(json_path);
		exit(1);
	}
	tg_err_clear(&err);
	if (tg_pricing_load(json_path, &whole, &err) != TG_OK) {
		fprintf(stderr, "fuzz-price-index: %s\n", err.message);
		exit(1);
	}
	return 0;
}

static bool
same(const struct tg_price_entry *a, const struct tg_price_entry *b)
{
	return a->input == b->input && a->output == b->output &&
	       a->has_cache_read == b->has_cache_read &&
	       a->cache_read == b->cache_read &&
	       a->max_output_tokens == b->max_output_tokens;
}

static void
look_up(const struct tg_pricing *p, const char *name)
{
	const struct tg_price_entry *e = tg_pricing_find(p, name);
	const struct tg_price_entry *w = tg_pricing_find(whole, name);

	if (e == NULL)
		return;
	CHECK(w != NULL && same(e, w), "a name found with another's prices");
	CHECK(tg_pricing_find(p, name) == e, "the same name, another entry");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tg_pricing *p = NULL;
	unsigned char *m;
	struct tg_err err;
	char why[300], word[64];
	FILE *f;

	if (size > 1 << 20)
		return 0;
	m = malloc(size ? size : 1);
	memcpy(m, data, size);
	if (size >= 64)
		tg_pricing_index_seal(m, size, json_path);
	f = fopen(idx_path, "wb");
	CHECK(f != NULL, "write the index");
	CHECK(fwrite(m, 1, size, f) == size && fclose(f) == 0,
	      "write the index");
	free(m);

	tg_err_clear(&err);
	CHECK(tg_pricing_load(json_path, &p, &err) == TG_OK,
	      "an index never makes the load fail");
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		look_up(p, names[i]);
	/* Names from the input: its NUL-separated strings after the
	 * header, cut to a word. */
	for (size_t at = 64, n = 0; at < size && n < 8; n++) {
		size_t len = 0;

		while (at + len < size && data[at + len] != '\0' &&
		       len < sizeof(word) - 1)
			len++;
		memcpy(word, data + at, len);
		word[len] = '\0';
		look_up(p, word);
		at += len + 1;
	}
	tg_pricing_free(p);
	(void)tg_pricing_index_check(json_path, why, sizeof(why));
	return 0;
}
