/*
 * tag_routes: the handlers and field tables of /tag/new, /tag/update,
 * /tag/info, /tag/delete and /tag/list (SPEC 11), in LiteLLM's shapes.
 * cgi-bin/customer serves them (tags are accounts of the same kind of
 * program); the work is in lib/tag.c.
 */
#ifndef TG_TAG_ROUTES_H
#define TG_TAG_ROUTES_H

#include <stddef.h>

#include "app.h"
#include "err.h"
#include "fields.h"

#include "budget.h"

/* /tag/new and /tag/update: name, description, models, blocked,
 * budget_id and the budget fields. */
#define TG_TAG_ROUTES_NFIELDS (5 + TG_BUDGET_NFIELDS)
extern const struct tg_field tg_tag_routes_fields[TG_TAG_ROUTES_NFIELDS];
/* /tag/info: names; /tag/delete: name. */
extern const struct tg_field tg_tag_routes_info_fields[1];
extern const struct tg_field tg_tag_routes_delete_fields[1];

enum tg_rc tg_tag_routes_new(struct tg_req *req, struct tg_err *err);
enum tg_rc tg_tag_routes_update(struct tg_req *req, struct tg_err *err);
enum tg_rc tg_tag_routes_info(struct tg_req *req, struct tg_err *err);
enum tg_rc tg_tag_routes_delete(struct tg_req *req, struct tg_err *err);
enum tg_rc tg_tag_routes_list(struct tg_req *req, struct tg_err *err);

#endif
