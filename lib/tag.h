/*
 * tag: tags, the third kind of account (SPEC 11; lib/account.h).
 *
 * A call names its tags in metadata.tags and the x-litellm-tags header (on
 * every LLM route).  A tag made with /tag/new is an account like a
 * customer: its spend in the current period, its reserved, a budget row
 * (its own, made from budget fields, or a shared tier by budget_id) with
 * max_budget, budget_duration, the rate limits and model_max_budget, a
 * blocked flag, and the models it may be used with (empty: any).  A tag a
 * call names that was never made is no account: it is recorded on the
 * call's ledger row and charged nothing, as LiteLLM does.
 */
#ifndef TG_TAG_H
#define TG_TAG_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <json-c/json.h>

#include "budget.h"
#include "db.h"
#include "err.h"
#include "money.h"

/* The most tags one call may name (a longer list is refused). */
#define TG_TAG_MAX 16

/* A tag row with its budget.  Owned strings. */
struct tg_tag {
	char *name;
	char *description;
	char *models; /* JSON array text of model names; NULL: any */
	bool blocked;
	tg_money spend;      /* current period (a due reset already applied) */
	tg_money reserved;   /* held by calls in flight */
	char *budget_id;     /* as stored, or NULL */
	bool budget_private; /* the budget was made for the tag */
	struct tg_opt_time spend_reset_at;
	bool has_budget;
	struct tg_budget budget;
	char *created_by, *updated_by;
	time_t created_at, updated_at;
};

/* /tag/new and /tag/update fields; unset or NULL = not given. */
struct tg_tag_input {
	const char *name;
	const char *description;
	bool description_set;       /* given (NULL: cleared) */
	struct json_object *models; /* a checked array, or NULL */
	bool models_set;
	bool blocked_set;
	bool blocked;
	const char *budget_id;
	struct tg_budget_input budget; /* the tag's own budget's fields */
};

/*
 * The tags a call names: metadata.tags (an array of strings) of body (may
 * be NULL), then the comma list of header (NULL: none; blanks around each
 * are trimmed, empty ones skipped), each once, in that order, into
 * names[0..*n) (pointers into body and into buf, a copy of the header of
 * buflen bytes).  TG_ERR_UNPROCESSABLE when a tag is not 1 to 255 bytes
 * of valid UTF-8 or metadata.tags is not an array of strings,
 * TG_ERR_BAD_REQUEST when there are more than TG_TAG_MAX.
 */
enum tg_rc tg_tag_names(struct json_object *body, const char *header, char *buf,
                        size_t buflen, const char *names[TG_TAG_MAX], size_t *n,
                        struct tg_err *err);

/*
 * Load the tags among names[0..n) that exist, ordered by name (the order
 * every transaction locks them in), each with its budget and a due period
 * reset applied, into out[0..*nout) (free each with tg_tag_free).  A
 * schema without tags (before sql/011) has none.
 */
enum tg_rc tg_tag_load(struct tg_db *db, const char *const *names, size_t n,
                       struct tg_tag *out, size_t *nout, struct tg_err *err);

/* One tag; TG_ERR_NOT_FOUND "Tag <name> not found" (param name). */
enum tg_rc tg_tag_get(struct tg_db *db, const char *name, struct tg_tag *out,
                      struct tg_err *err);

/*
 * Create a tag (/tag/new): budget fields make a budget of its own, in the
 * same transaction; budget_id puts it on a shared one.  TG_ERR_CONFLICT
 * "Tag <name> already exists"; TG_ERR_UNPROCESSABLE for both budget_id and
 * budget fields; TG_ERR_BAD_REQUEST for an unknown budget_id.
 */
enum tg_rc tg_tag_create(struct tg_db *db, const struct tg_tag_input *in,
                         const char *created_by, struct tg_tag *out,
                         struct tg_err *err);

/*
 * Change a tag (/tag/update): only what in gives.  Budget fields change
 * its own budget (made now when it has none: a copy of the shared one it
 * was on, which does not change); budget_id moves it to a shared one (its
 * own is deleted).
 * TG_ERR_NOT_FOUND when absent.
 */
enum tg_rc tg_tag_update(struct tg_db *db, const struct tg_tag_input *in,
                         const char *updated_by, struct tg_tag *out,
                         struct tg_err *err);

/*
 * Delete a tag with its own budget, its rate-limit windows, alert marks and
 * per-model spend; its ledger rows stay, and calls that name it later
 * name an unknown tag.  Holds in flight are released and charged to
 * nobody for it.  TG_ERR_NOT_FOUND when absent.
 */
enum tg_rc tg_tag_delete(struct tg_db *db, const char *name,
                         struct tg_err *err);

/* Every tag, ordered by name, as a JSON array of tg_tag_to_json(). */
enum tg_rc tg_tag_list(struct tg_db *db, struct json_object **out,
                       struct tg_err *err);

/* A tag in LiteLLM's TagConfig shape, with tollgate's spend, reserved,
 * spend_reset_at, blocked and budget_id (new reference). */
struct json_object *tg_tag_to_json(const struct tg_tag *t);

/* Whether t may be used with model (its models list is empty or has it). */
bool tg_tag_allows_model(const struct tg_tag *t, const char *model);

/* t as an account (lib/account.h), a view valid while t lives. */
struct tg_account tg_tag_account(const struct tg_tag *t);

void tg_tag_free(struct tg_tag *t);

#endif
