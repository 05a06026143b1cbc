/*
 * tollgate-prices: the price file's index, its checks, and its update from
 * LiteLLM's published map (usage() below is the manual).
 *
 * Why a tool: the programs read the price file (LiteLLM's
 * model_prices_and_context_window.json) through an index beside it
 * (lib/price_table.h), and a running program takes a new file as soon as it
 * appears (lib/app.c); so a new map must be whole, sane and priced for
 * every model of the config before it is put in place, and it must appear
 * at once, with its index.  `update` does that: fetch (libcurl, as the
 * webhook sender: the only other place outside lib/upstream*.c that
 * speaks HTTP), check, write beside the old file, rename.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "config.h"
#include "log.h"
#include "money.h"
#include "price_table.h"
#include "pricing.h"
#include "pricing_priv.h"
#include "util.h"

#ifndef TG_DATADIR
#define TG_DATADIR "/usr/local/share/tollgate"
#endif
#ifndef TG_SYSCONFDIR
#define TG_SYSCONFDIR "/usr/local/etc"
#endif

#define DEFAULT_URL                                                            \
	"https://raw.githubusercontent.com/BerriAI/litellm/main/"              \
	"model_prices_and_context_window.json"
/* LiteLLM's map is about 1.6 MB; the loader takes up to 256 MiB. */
#define DEFAULT_MAX_BYTES (32L * 1024 * 1024)
#define MAX_MAX_BYTES     (256L * 1024 * 1024)
#define DEFAULT_TIMEOUT   120L
/* The dearest a price may be before the map is refused as absurd, in USD
 * per unit: a token (LiteLLM's dearest list price is far below 0.001),
 * a thousand of something, anything else (an image, a second, a call). */
#define MAX_PER_TOKEN "1"
#define MAX_PER_1K    "1000"
#define MAX_PER_UNIT  "100"

/* Exit statuses. */
enum {
	EXIT_OK = 0,
	EXIT_REFUSED = 1, /* a bad file or map, or a failure */
	EXIT_USAGE = 2,
	EXIT_INDEX = 3, /* check: the file is good, its index is not */
};

static const char synopsis[] =
        "usage: tollgate-prices index [FILE]\n"
        "       tollgate-prices check [--config PATH | --no-config] [FILE]\n"
        "       tollgate-prices update [--file PATH] [--config PATH | "
        "--no-config]\n"
        "                              [--max-bytes N] [--timeout S] [URL]\n";

/* The synopsis (a bad command line), or the manual too (--help). */
static void
usage(FILE *f, bool manual)
{
	fputs(synopsis, f);
	if (!manual)
		return;
	fputs("\n"
	      "NAME\n"
	      "    tollgate-prices - index, check and update tollgate's price "
	      "file\n"
	      "\n"
	      "DESCRIPTION\n"
	      "    The price file is LiteLLM's model price map\n"
	      "    (model_prices_and_context_window.json).  The programs read "
	      "it through\n"
	      "    an index beside it, FILE.idx, that lets a program started "
	      "per request\n"
	      "    (plain CGI) parse only the entries its config uses.  An "
	      "index that\n"
	      "    does not fit its file (the file was edited or copied "
	      "since) is\n"
	      "    ignored: the file is then parsed whole, correct but "
	      "slower.  Running\n"
	      "    programs take a new file (or config) within about a "
	      "second, between\n"
	      "    two requests, without a restart.\n"
	      "\n"
	      "COMMANDS\n"
	      "    index [FILE]\n"
	      "        Write FILE.idx for FILE (a new file renamed over the "
	      "old one).\n"
	      "        Run it after editing or copying a price file by "
	      "hand.\n"
	      "    check [FILE]\n"
	      "        Check FILE as update checks a new map (below), and "
	      "its index.\n"
	      "    update [URL]\n"
	      "        Fetch a new map from URL (http:// or https://; "
	      "anything else is\n"
	      "        read as a local file), default\n"
	      "        " DEFAULT_URL "\n"
	      "        and check it: a JSON object whose entries are "
	      "objects, some with\n"
	      "        per-token prices; every price (every number under "
	      "a key with\n"
	      "        \"cost\" in its name) non-negative and at "
	      "most " MAX_PER_TOKEN " USD per token,\n"
	      "        " MAX_PER_1K " USD per thousand, " MAX_PER_UNIT
	      " USD per anything else; and\n"
	      "        the config loads with it, every model priced.  Then "
	      "write it and its\n"
	      "        index beside FILE, fsync them, and rename the index, "
	      "then the map,\n"
	      "        into place.  A refused map leaves FILE as it was.  "
	      "Run it from cron\n"
	      "        as the user that owns FILE.\n"
	      "\n"
	      "OPTIONS\n"
	      "    --file PATH    the price file (update; index and check "
	      "take FILE).\n"
	      "                   Default: the config's price file "
	      "(litellm_settings.\n"
	      "                   model_cost_map_path, else "
	      "$TOLLGATE_PRICE_FILE, else\n"
	      "                   " TG_DATADIR "/model_prices.json)\n"
	      "    --config PATH  the config (default $TOLLGATE_CONFIG, else\n"
	      "                   " TG_SYSCONFDIR "/tollgate/config.yaml); "
	      "without one, a\n"
	      "                   map is not checked against a config\n"
	      "    --no-config    do not check against a config\n"
	      "    --max-bytes N  refuse a body larger than N bytes "
	      "(default 32 MiB)\n"
	      "    --timeout S    give up the download after S seconds "
	      "(default 120)\n"
	      "\n"
	      "EXIT STATUS\n"
	      "    0 done (check: the file and its index are good); 1 the "
	      "map or file\n"
	      "    was refused, or a failure; 2 a bad command line; 3 "
	      "(check) the file\n"
	      "    is good but its index is missing or does not fit it.\n"
	      "\n"
	      "EXAMPLES\n"
	      "    tollgate-prices update            # from LiteLLM, into "
	      "the config's file\n"
	      "    tollgate-prices index /srv/tollgate/prices.json\n"
	      "    tollgate-prices check\n",
	      f);
}

struct opts {
	const char *command;
	const char *file;   /* --file or FILE */
	const char *url;    /* update's URL */
	const char *config; /* --config, TOLLGATE_CONFIG or the default */
	bool config_given;  /* --config on the command line */
	bool no_config;
	long max_bytes;
	long timeout;
};

static bool
parse_long(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

/* ---- checking a map ---- */

/* The bound for a price under key: USD per token, per thousand, or per
 * anything else. */
static const char *
bound_for(const char *key)
{
	if (strstr(key, "per_1k") != NULL || strstr(key, "per_1000") != NULL)
		return MAX_PER_1K;
	if (strstr(key, "token") != NULL)
		return MAX_PER_TOKEN;
	return MAX_PER_UNIT;
}

struct check {
	char problem[600];   /* the first refusal, "" if none */
	long inexact;        /* prices not exact at 1e-15 USD */
	char inexact_1[300]; /* the first of them */
	long priced;         /* entries with per-token prices */
};

/* Whether s is a decimal number as JSON writes one (a sign allowed). */
static bool
is_decimal(const char *s)
{
	bool digits = false;

	if (*s == '-' || *s == '+')
		s++;
	for (; *s >= '0' && *s <= '9'; s++)
		digits = true;
	if (*s == '.')
		for (s++; *s >= '0' && *s <= '9'; s++)
			digits = true;
	if (digits && (*s == 'e' || *s == 'E')) {
		s++;
		if (*s == '-' || *s == '+')
			s++;
		if (*s < '0' || *s > '9')
			return false;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	return digits && *s == '\0';
}

/*
 * One price, at path (model and key) in the map: a number, or the string
 * of one; not negative; at most the bound of its key.  A price finer than
 * 1e-15 USD (LiteLLM's map has a few, binary fractions printed whole) is
 * counted, not refused: tollgate skips such an entry, as if unpriced, and
 * the config check catches a model that needs it.
 */
static void
check_price(struct check *c, const char *model, const char *path,
            const char *key, struct json_object *v)
{
	const char *text = NULL, *bound = bound_for(key);
	tg_price price;
	double usd;

	switch (json_object_get_type(v)) {
	case json_type_int:
	case json_type_double:
	case json_type_string: text = json_object_get_string(v); break;
	case json_type_null:
	case json_type_boolean:
	case json_type_object:
	case json_type_array: break;
	}
	if (c->problem[0] != '\0')
		return;
	if (text == NULL || !is_decimal(text)) {
		snprintf(c->problem, sizeof(c->problem),
		         "model '%s', key '%s': %s is not a price", model, path,
		         json_object_to_json_string(v));
		return;
	}
	usd = strtod(text, NULL);
	if (usd < 0) {
		snprintf(c->problem, sizeof(c->problem),
		         "model '%s', key '%s': %s is negative", model, path,
		         text);
		return;
	}
	if (usd > strtod(bound, NULL)) {
		snprintf(c->problem, sizeof(c->problem),
		         "model '%s', key '%s': %s USD is absurd (more than %s "
		         "USD per %s)",
		         model, path, text, bound,
		         strcmp(bound, MAX_PER_TOKEN) == 0 ? "token"
		         : strcmp(bound, MAX_PER_1K) == 0  ? "thousand"
		                                           : "unit");
		return;
	}
	if (!tg_price_parse(text, &price) && c->inexact++ == 0)
		snprintf(c->inexact_1, sizeof(c->inexact_1),
		         "model '%s', key '%s': %s", model, path, text);
}

/* Every price under v, the value of a key with "cost" in its name (a
 * number, or objects and lists of them). */
static void
check_prices(struct check *c, const char *model, const char *path,
             const char *key, struct json_object *v)
{
	char sub[300];

	if (json_object_is_type(v, json_type_object)) {
		json_object_object_foreach(v, k, x)
		{
			snprintf(sub, sizeof(sub), "%s.%s", path, k);
			check_prices(c, model, sub, key, x);
		}
	} else if (json_object_is_type(v, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
			check_prices(c, model, sub, key,
			             json_object_array_get_idx(v, i));
		}
	} else {
		check_price(c, model, path, key, v);
	}
}

/* The prices anywhere in v (an entry, or a part of one: LiteLLM's
 * tiered_pricing lists objects with prices of their own). */
static void
walk_entry(struct check *c, const char *model, const char *path,
           struct json_object *v)
{
	char sub[300];

	if (json_object_is_type(v, json_type_object)) {
		json_object_object_foreach(v, k, x)
		{
			snprintf(sub, sizeof(sub), "%s%s%s", path,
			         path[0] ? "." : "", k);
			if (strstr(k, "cost") != NULL)
				check_prices(c, model, sub, k, x);
			else
				walk_entry(c, model, sub, x);
		}
	} else if (json_object_is_type(v, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
			walk_entry(c, model, sub,
			           json_object_array_get_idx(v, i));
		}
	}
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

/*
 * Check the map text[0..len): JSON, the format, the prices.  False with
 * c->problem set when refused.
 */
static bool
check_map(struct check *c, const char *text, size_t len)
{
	struct json_tokener *tok;
	struct json_object *root;
	size_t end;

	if (len > INT_MAX) {
		snprintf(c->problem, sizeof(c->problem), "too large");
		return false;
	}
	tok = json_tokener_new();
	root = json_tokener_parse_ex(tok, text, (int)len);
	end = json_tokener_get_parse_end(tok);
	if (root != NULL)
		while (end < len && strchr(" \t\r\n", text[end]) != NULL)
			end++;
	if (root == NULL || end != len) {
		enum json_tokener_error jerr = json_tokener_get_error(tok);

		snprintf(c->problem, sizeof(c->problem),
		         "invalid JSON at line %zu: %s",
		         line_of(text, end < len ? end : len),
		         jerr == json_tokener_continue ? "unexpected end"
		         : root != NULL                ? "text after the end"
		                        : json_tokener_error_desc(jerr));
		json_object_put(root);
		json_tokener_free(tok);
		return false;
	}
	json_tokener_free(tok);
	if (!json_object_is_type(root, json_type_object)) {
		snprintf(c->problem, sizeof(c->problem),
		         "not a JSON object (LiteLLM's map is one object of "
		         "models)");
		json_object_put(root);
		return false;
	}
	json_object_object_foreach(root, model, entry)
	{
		struct tg_price_entry e;

		if (!json_object_is_type(entry, json_type_object)) {
			snprintf(c->problem, sizeof(c->problem),
			         "model '%s': its entry is %s, not an object",
			         model, json_object_to_json_string(entry));
			break;
		}
		if (strcmp(model, "sample_spec") == 0)
			continue; /* documentation, not prices */
		walk_entry(c, model, "", entry);
		if (c->problem[0] != '\0')
			break;
		if (tg_price_entry_from_json(entry, &e))
			c->priced++;
	}
	json_object_put(root);
	if (c->problem[0] == '\0' && c->priced == 0)
		snprintf(c->problem, sizeof(c->problem),
		         "no model has a per-token price");
	return c->problem[0] == '\0';
}

/* ---- files ---- */

static char *
read_path(const char *path, long cap, size_t *len, char *why, size_t whylen)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n;

	if (f == NULL) {
		snprintf(why, whylen, "%s: cannot read: %s", path,
		         strerror(errno));
		return NULL;
	}
	buf = tg_xmalloc((size_t)cap + 2);
	n = fread(buf, 1, (size_t)cap + 1, f);
	if (ferror(f)) {
		snprintf(why, whylen, "%s: cannot read: %s", path,
		         strerror(errno));
		free(buf);
		buf = NULL;
	} else if (n > (size_t)cap) {
		snprintf(why, whylen, "%s: larger than %ld bytes", path, cap);
		free(buf);
		buf = NULL;
	} else {
		buf[n] = '\0';
		*len = n;
	}
	fclose(f);
	return buf;
}

struct body {
	char *data;
	size_t len;
	long cap;
	bool too_large;
};

static size_t
on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct body *b = arg;
	size_t n = size * nmemb;

	if (b->len + n > (size_t)b->cap) {
		b->too_large = true;
		return 0; /* aborts the transfer */
	}
	b->data = tg_xrealloc(b->data, b->len + n + 1);
	memcpy(b->data + b->len, ptr, n);
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

/* The body at url (http or https): 200 only, at most o->max_bytes. */
static char *
fetch(const struct opts *o, size_t *len, char *why, size_t whylen)
{
	struct body b = {NULL, 0, o->max_bytes, false};
	char errbuf[CURL_ERROR_SIZE] = "";
	long status = 0;
	CURLcode cc;
	CURL *h;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
	    (h = curl_easy_init()) == NULL) {
		snprintf(why, whylen, "cannot start libcurl");
		return NULL;
	}
	curl_easy_setopt(h, CURLOPT_URL, o->url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, o->timeout);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE,
	                 (curl_off_t)o->max_bytes);
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(h, CURLOPT_USERAGENT, "tollgate-prices");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	curl_global_cleanup();
	if (b.too_large || cc == CURLE_FILESIZE_EXCEEDED)
		snprintf(why, whylen,
		         "the body is larger than %ld bytes (--max-bytes)",
		         o->max_bytes);
	else if (cc != CURLE_OK)
		snprintf(why, whylen, "%s",
		         errbuf[0] ? errbuf : curl_easy_strerror(cc));
	else if (status != 200)
		snprintf(why, whylen, "HTTP status %ld, not 200", status);
	else {
		*len = b.len;
		return b.data ? b.data : tg_xstrdup("");
	}
	free(b.data);
	return NULL;
}

/* ---- the config ---- */

/*
 * The config of o, loaded with its own price file (prices_default when it
 * names none), into *cfg; NULL when there is none to check against (why
 * says so) or it does not load (why has the message; *exists true).
 */
static void
load_config(const struct opts *o, const char *prices_default,
            struct tg_config **cfg, bool *exists, char *why, size_t whylen)
{
	struct tg_err err;

	*cfg = NULL;
	*exists = false;
	if (o->no_config) {
		snprintf(why, whylen, "--no-config");
		return;
	}
	if (access(o->config, F_OK) != 0 && !o->config_given) {
		snprintf(why, whylen, "no config at %s", o->config);
		return;
	}
	*exists = true;
	tg_err_clear(&err);
	if (tg_config_load(o->config, prices_default, cfg, &err) != TG_OK) {
		*cfg = NULL;
		snprintf(why, whylen, "%s", err.message);
	}
}

/* Whether a and b name the same file (the same path when either is
 * missing). */
static bool
same_file(const char *a, const char *b)
{
	struct tg_file_stamp sa, sb;

	tg_file_stamp_get(a, &sa);
	tg_file_stamp_get(b, &sb);
	if (!sa.present || !sb.present)
		return strcmp(a, b) == 0;
	return sa.dev == sb.dev && sa.ino == sb.ino;
}

/*
 * Whether the config of o loads with the price file candidate in place of
 * target: refused (false, why says) when a model of the config then has no
 * price.  A config that uses another price file than target is not
 * checked; one that does not load even now is checked all the same (the
 * new map may be what it lacks).
 */
static bool
config_accepts(const struct opts *o, const char *target, const char *candidate,
               const char *prices_default, char *why, size_t whylen)
{
	struct tg_config *cfg = NULL;
	struct tg_err err;
	char note[1100];
	bool exists;

	load_config(o, prices_default, &cfg, &exists, note, sizeof(note));
	if (!exists) {
		printf("not checked against a config: %s\n", note);
		return true;
	}
	if (cfg != NULL &&
	    (cfg->price_file == NULL || !same_file(cfg->price_file, target))) {
		printf("not checked against %s: its price file is %s\n",
		       o->config, cfg->price_file ? cfg->price_file : "none");
		tg_config_free(cfg);
		return true;
	}
	tg_config_free(cfg);
	cfg = NULL;
	tg_err_clear(&err);
	if (tg_config_load_prices(o->config, candidate, &cfg, &err) != TG_OK) {
		snprintf(why, whylen, "the config does not load with it: %s",
		         err.message);
		return false;
	}
	printf("the config %s loads with it: %zu deployments priced\n",
	       o->config, cfg->ndeployments);
	tg_config_free(cfg);
	return true;
}

/*
 * The price file to work on: --file (or FILE), else the config's (its
 * model_cost_map_path), else prices_default.  NULL with why set when the
 * config does not load, so its price file is unknown.
 */
static char *
target_file(const struct opts *o, const char *prices_default, char *why,
            size_t whylen)
{
	struct tg_config *cfg;
	char note[1100];
	char *path;
	bool exists;

	if (o->file != NULL)
		return tg_xstrdup(o->file);
	load_config(o, prices_default, &cfg, &exists, note, sizeof(note));
	if (cfg == NULL && exists) {
		snprintf(why, whylen,
		         "cannot tell the config's price file, the config does "
		         "not load (%s): name the file with --file",
		         note);
		return NULL;
	}
	path = tg_xstrdup(cfg && cfg->price_file ? cfg->price_file
	                                         : prices_default);
	tg_config_free(cfg);
	return path;
}

/* ---- commands ---- */

static int
cmd_index(const char *file)
{
	struct tg_err err;

	tg_err_clear(&err);
	if (tg_pricing_index_write(file, NULL, &err) != TG_OK) {
		fprintf(stderr, "tollgate-prices: %s\n", err.message);
		return EXIT_REFUSED;
	}
	printf("%s.idx written\n", file);
	return EXIT_OK;
}

static int
cmd_check(const struct opts *o, const char *file, const char *prices_default)
{
	struct check c;
	char why[1200], *text;
	size_t len = 0;
	enum tg_index_state st;

	memset(&c, 0, sizeof(c));
	text = read_path(file, MAX_MAX_BYTES, &len, why, sizeof(why));
	if (text == NULL) {
		fprintf(stderr, "tollgate-prices: %s\n", why);
		return EXIT_REFUSED;
	}
	if (!check_map(&c, text, len)) {
		fprintf(stderr, "tollgate-prices: %s: refused: %s\n", file,
		        c.problem);
		free(text);
		return EXIT_REFUSED;
	}
	free(text);
	printf("%s: %ld models with per-token prices\n", file, c.priced);
	if (c.inexact > 0)
		printf("%s: %ld prices are finer than 1e-15 USD (an entry "
		       "whose per-token prices are among them is left "
		       "unpriced), e.g. %s\n",
		       file, c.inexact, c.inexact_1);
	if (!config_accepts(o, file, file, prices_default, why, sizeof(why))) {
		fprintf(stderr, "tollgate-prices: %s: refused: %s\n", file,
		        why);
		return EXIT_REFUSED;
	}
	st = tg_pricing_index_check(file, why, sizeof(why));
	printf("%s.idx: %s\n", file, why);
	if (st != TG_INDEX_VALID) {
		printf("run: tollgate-prices index %s\n", file);
		return EXIT_INDEX;
	}
	return EXIT_OK;
}

static int
cmd_update(const struct opts *o, const char *file, const char *prices_default)
{
	struct check c;
	struct tg_err err;
	char why[1200], *text = NULL, *old = NULL, *tmp = NULL, *idx = NULL;
	size_t len = 0, old_len = 0;
	int status = EXIT_REFUSED;

	memset(&c, 0, sizeof(c));
	if (strstr(o->url, "://") != NULL)
		text = fetch(o, &len, why, sizeof(why));
	else
		text = read_path(o->url, o->max_bytes, &len, why, sizeof(why));
	if (text == NULL) {
		fprintf(stderr,
		        "tollgate-prices: refused %s, %s left as it was: %s\n",
		        o->url, file, why);
		goto out;
	}
	if (!check_map(&c, text, len)) {
		fprintf(stderr,
		        "tollgate-prices: refused %s, %s left as it was: %s\n",
		        o->url, file, c.problem);
		goto out;
	}
	printf("%s: %zu bytes, %ld models with per-token prices\n", o->url, len,
	       c.priced);
	if (c.inexact > 0)
		printf("%s: %ld prices are finer than 1e-15 USD (an entry "
		       "whose per-token prices are among them is left "
		       "unpriced), e.g. %s\n",
		       o->url, c.inexact, c.inexact_1);

	old = read_path(file, MAX_MAX_BYTES, &old_len, why, sizeof(why));
	if (old != NULL && old_len == len && memcmp(old, text, len) == 0 &&
	    tg_pricing_index_check(file, NULL, 0) == TG_INDEX_VALID) {
		printf("%s is already this map: nothing to do\n", file);
		status = EXIT_OK;
		goto out;
	}

	tg_err_clear(&err);
	tmp = tg_pricing_write_beside(file, text, len, true, &err);
	if (tmp == NULL) {
		fprintf(stderr, "tollgate-prices: %s\n", err.message);
		goto out;
	}
	/* The loader's own verdict, on the bytes as written. */
	{
		struct tg_pricing *p = NULL;

		tg_err_clear(&err);
		if (tg_pricing_load(tmp, &p, &err) != TG_OK) {
			fprintf(stderr,
			        "tollgate-prices: refused %s, %s left as it "
			        "was: %s\n",
			        o->url, file, err.message);
			goto out;
		}
		tg_pricing_free(p);
	}
	if (!config_accepts(o, file, tmp, prices_default, why, sizeof(why))) {
		fprintf(stderr,
		        "tollgate-prices: refused %s, %s left as it was: %s\n",
		        o->url, file, why);
		goto out;
	}
	/*
	 * The index first, then the map: each rename is atomic, and in
	 * between the new index does not fit the old map (another inode), so
	 * a reader parses the old map whole; once the map is renamed, its
	 * index is already there.
	 */
	idx = tg_pricing_index_path(file);
	tg_err_clear(&err);
	if (tg_pricing_index_write(tmp, idx, &err) != TG_OK) {
		fprintf(stderr, "tollgate-prices: %s\n", err.message);
		goto out;
	}
	if (rename(tmp, file) != 0) {
		fprintf(stderr, "tollgate-prices: cannot rename %s to %s: %s\n",
		        tmp, file, strerror(errno));
		/* The old map keeps an index that fits it. */
		tg_pricing_index_write(file, NULL, &err);
		goto out;
	}
	tg_pricing_sync_dir(file);
	free(tmp);
	tmp = NULL;
	printf("%s updated from %s, with its index %s\n", file, o->url, idx);
	status = EXIT_OK;
out:
	if (tmp != NULL)
		unlink(tmp);
	free(tmp);
	free(idx);
	free(old);
	free(text);
	return status;
}

int
main(int argc, char **argv)
{
	struct opts o;
	const char *prices_default = getenv("TOLLGATE_PRICE_FILE");
	char fallback[512], why[1200];
	char *file = NULL;
	int status;

	memset(&o, 0, sizeof(o));
	o.config = getenv("TOLLGATE_CONFIG");
	o.max_bytes = DEFAULT_MAX_BYTES;
	o.timeout = DEFAULT_TIMEOUT;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout, true);
			return EXIT_OK;
		} else if (strcmp(a, "--file") == 0 && i + 1 < argc) {
			o.file = argv[++i];
		} else if (strcmp(a, "--config") == 0 && i + 1 < argc) {
			o.config = argv[++i];
			o.config_given = true;
		} else if (strcmp(a, "--no-config") == 0) {
			o.no_config = true;
		} else if (strcmp(a, "--max-bytes") == 0 && i + 1 < argc) {
			if (!parse_long(argv[++i], 1, MAX_MAX_BYTES,
			                &o.max_bytes)) {
				fprintf(stderr, "tollgate-prices: --max-bytes "
				                "takes 1 to 268435456\n");
				return EXIT_USAGE;
			}
		} else if (strcmp(a, "--timeout") == 0 && i + 1 < argc) {
			if (!parse_long(argv[++i], 1, 3600, &o.timeout)) {
				fprintf(stderr, "tollgate-prices: --timeout "
				                "takes 1 to 3600 seconds\n");
				return EXIT_USAGE;
			}
		} else if (a[0] == '-' && a[1] != '\0') {
			usage(stderr, false);
			return EXIT_USAGE;
		} else if (o.command == NULL) {
			o.command = a;
		} else if (strcmp(o.command, "update") == 0 && o.url == NULL) {
			o.url = a;
		} else if (strcmp(o.command, "update") != 0 && o.file == NULL) {
			o.file = a;
		} else {
			usage(stderr, false);
			return EXIT_USAGE;
		}
	}
	if (o.command == NULL || (strcmp(o.command, "index") != 0 &&
	                          strcmp(o.command, "check") != 0 &&
	                          strcmp(o.command, "update") != 0)) {
		usage(stderr, false);
		return EXIT_USAGE;
	}
	tg_log_init("tollgate-prices");
	if (o.config == NULL || o.config[0] == '\0') {
		snprintf(fallback, sizeof(fallback), "%s/tollgate/config.yaml",
		         TG_SYSCONFDIR);
		o.config = fallback;
	}
	if (prices_default == NULL || prices_default[0] == '\0')
		prices_default = TG_DATADIR "/model_prices.json";
	if (o.url == NULL)
		o.url = DEFAULT_URL;

	file = target_file(&o, prices_default, why, sizeof(why));
	if (file == NULL) {
		fprintf(stderr, "tollgate-prices: %s\n", why);
		return EXIT_REFUSED;
	}
	if (strcmp(o.command, "index") == 0)
		status = cmd_index(file);
	else if (strcmp(o.command, "check") == 0)
		status = cmd_check(&o, file, prices_default);
	else
		status = cmd_update(&o, file, prices_default);
	free(file);
	return status;
}
