/*
 * key: virtual keys (SPEC 13), the keys applications call with instead of
 * the master key.
 *
 * A key is an account (lib/account.h) with its own spend and reserved and
 * a budget row private to it (max/soft budget, budget_duration, tpm, rpm
 * and parallel limits), plus an alias, an expiry, the model names it may
 * call (none listed: all), metadata and a blocked flag.  Only its SHA-256
 * is stored, as lowercase hex: the key's "token", which also names it in
 * the ledger (spend_logs.api_key) and in webhook events.  The key itself
 * is shown once, by /key/generate.
 */
#ifndef TG_KEY_H
#define TG_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <json-c/json.h>

#include "budget.h"
#include "db.h"
#include "err.h"
#include "money.h"
#include "util.h"

/* Random bytes of a generated key: 128 bits, as LiteLLM's
 * secrets.token_urlsafe(16). */
#define TG_KEY_RANDOM_BYTES 16
/* "sk-" + the bytes in URL-safe base64 + NUL. */
#define TG_KEY_NEW_LEN (3 + TG_BASE64URL_LEN(TG_KEY_RANDOM_BYTES))
/* The longest key a caller may choose. */
#define TG_KEY_MAX 255
/* "sk-...abcd" + NUL. */
#define TG_KEY_NAME_LEN 11

/* A key with its budget, as loaded.  Owned fields (tg_key_free). */
struct tg_key {
	char token[65];
	char *key_name;  /* "sk-...<last 4>" */
	char *key_alias; /* or NULL */
	struct tg_opt_time expires;
	bool expired; /* expires had passed when it was loaded (db clock) */
	struct json_object *models; /* array of model names; empty: all */
	/* {"<alias>": "<model_name>"}: names its calls may use for a
	 * model (sql/013); NULL: none. */
	struct json_object *aliases;
	char *metadata; /* JSON object text, or NULL */
	bool blocked;
	tg_money spend;    /* current period (a due reset already applied) */
	tg_money reserved; /* held by its calls in flight */
	struct tg_opt_time spend_reset_at;
	char *budget_id; /* its private budget, or NULL */
	bool has_budget;
	struct tg_budget budget;
	time_t created_at, updated_at;
	char *created_by;
};

/* A new key from the kernel's CSPRNG: "sk-" + 22 URL-safe characters. */
void tg_key_new_secret(char out[TG_KEY_NEW_LEN]);

/*
 * Whether key is acceptable as a caller's chosen key: "sk-" and then 1 to
 * TG_KEY_MAX - 3 visible ASCII characters (it travels in a header).
 */
bool tg_key_valid_chosen(const char *key);

/* key_name: "sk-..." and the key's last 4 characters (all of a shorter one). */
void tg_key_name(const char *key, char out[TG_KEY_NAME_LEN]);

/*
 * The token a management request names a key by: a value starting with
 * "sk-" is a key (its SHA-256 is the token), else it must be a token (64
 * hex digits, taken in lowercase).  False for anything else.
 */
bool tg_key_token_of(const char *key_or_token, char out[65]);

/* Whether k may call model (model_name): its models list it, or is empty,
 * or holds "all-proxy-models" (LiteLLM's name for every model). */
bool tg_key_allows_model(const struct tg_key *k, const char *model);

/*
 * TG_ERR_UNPROCESSABLE (param "models") unless models is an array of model
 * names (1..255 bytes of valid UTF-8 each).
 */
enum tg_rc tg_key_check_models(struct json_object *models, struct tg_err *err);

/*
 * The model a call made with k means by model: the one its aliases map
 * model to, else model itself (LiteLLM's key aliases).
 */
const char *tg_key_model_of(const struct tg_key *k, const char *model);

/*
 * TG_ERR_UNPROCESSABLE (param "aliases") unless aliases is an object whose
 * names and values are model names (1..255 bytes of valid UTF-8 each), at
 * most TG_KEY_MAX_ALIASES of them.
 */
#define TG_KEY_MAX_ALIASES 256
enum tg_rc tg_key_check_aliases(struct json_object *aliases,
                                struct tg_err *err);

/* /key/generate fields; NULL or unset = not given.  Not owned. */
struct tg_key_input {
	const char *key; /* generated or chosen (validated) */
	const char *key_alias;
	const char *duration;        /* validated; NULL: never expires */
	struct json_object *models;  /* checked; NULL: [] */
	struct json_object *aliases; /* checked; NULL: none */
	const char *metadata;        /* JSON object text, or NULL */
	bool blocked;
	struct tg_budget_input budget;
};

/*
 * Store a new key (SPEC 13 /key/generate) with its private budget, in one
 * transaction; its first budget period starts now.  Errors:
 * TG_ERR_CONFLICT for a key that exists (param key) or an alias another key
 * has ("Unique key aliases across all keys are required. Key alias '<a>'
 * already exists.", param key_alias); TG_ERR_UNPROCESSABLE for a duration
 * that ends past the year 9999.  On TG_OK *out is the key as stored.
 */
enum tg_rc tg_key_create(struct tg_db *db, const struct tg_key_input *in,
                         const char *created_by, struct tg_key *out,
                         struct tg_err *err);

/*
 * Load the key of token with its budget, applying a due period reset
 * first.  TG_ERR_NOT_FOUND "Key=<token> does not exist in db" (param key).
 */
enum tg_rc tg_key_get(struct tg_db *db, const char *token, struct tg_key *out,
                      struct tg_err *err);

/*
 * Authenticate a presented key (not the master key: the caller compares
 * that): its SHA-256 is looked up, so the key itself is never compared.
 * TG_ERR_AUTH (401 auth_error) for an unknown (or deleted) key, a blocked
 * one and an expired one, with LiteLLM's messages; TG_ERR_DB when the
 * database fails.  On TG_OK *out is the key, loaded as tg_key_get() does.
 */
enum tg_rc tg_key_authenticate(struct tg_db *db, const char *presented,
                               struct tg_key *out, struct tg_err *err);

/* /key/update fields.  Not owned. */
struct tg_key_update {
	char token[65];
	struct tg_opt_str key_alias;
	struct tg_opt_str duration;  /* v NULL: never expires */
	struct json_object *models;  /* checked; NULL: unchanged */
	struct json_object *aliases; /* checked; NULL: unchanged */
	struct tg_opt_str metadata;  /* JSON object text */
	bool blocked_set, blocked;
	struct tg_budget_input budget; /* set or cleared: its budget changes */
};

/*
 * Change a key (SPEC 13 /key/update), in one transaction: only the fields
 * set change; duration counts from now.  Errors as tg_key_create() and
 * TG_ERR_NOT_FOUND.  On TG_OK *out is the key as stored.
 */
enum tg_rc tg_key_update(struct tg_db *db, const struct tg_key_update *in,
                         const char *updated_by, struct tg_key *out,
                         struct tg_err *err);

/*
 * Delete the keys of keys (a JSON array of keys or tokens), all or
 * nothing, with their budgets and rate-limit windows: TG_ERR_NOT_FOUND
 * "Key(s) not found in db: token=[...]" and nothing deleted when one is
 * missing or malformed.  The ledger keeps their rows.
 */
enum tg_rc tg_key_delete(struct tg_db *db, struct json_object *keys,
                         struct tg_err *err);

/* Block or unblock token's key; *out the key as stored.  NOT_FOUND. */
enum tg_rc tg_key_set_blocked(struct tg_db *db, const char *token, bool blocked,
                              struct tg_key *out, struct tg_err *err);

/* Filters and paging of tg_key_list(). */
struct tg_key_filter {
	const char *key_alias; /* NULL: any */
	int64_t page;          /* from 1 */
	int64_t page_size;     /* 1..TG_KEY_PAGE_SIZE_MAX */
	bool full;             /* key objects instead of tokens */
};
#define TG_KEY_PAGE_SIZE     10
#define TG_KEY_PAGE_SIZE_MAX 100

/*
 * LiteLLM's /key/list answer (new reference in *out): {"keys": [tokens, or
 * key objects when f->full], "total_count", "current_page",
 * "total_pages"}, newest key first.
 */
enum tg_rc tg_key_list(struct tg_db *db, const struct tg_key_filter *f,
                       struct json_object **out, struct tg_err *err);

/* The key object of SPEC 13 (/key/info's "info"; new reference).  A period
 * that ended reads as spend 0. */
struct json_object *tg_key_to_json(const struct tg_key *k);

/* k as an account (lib/account.h), a view valid while k lives. */
struct tg_account tg_key_account(const struct tg_key *k);

void tg_key_free(struct tg_key *k);

#endif
