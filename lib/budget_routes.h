/*
 * budget_routes: the handlers and field tables of /budget/new and
 * /budget/update (SPEC 8), for the programs that serve them.
 */
#ifndef TG_BUDGET_ROUTES_H
#define TG_BUDGET_ROUTES_H

#include "app.h"
#include "budget.h"

/*
 * POST /budget/new: create a budget ("pricing tier"), its id given or
 * made up; answers the budget row.  Its field table is
 * tg_budget_routes_new_fields.
 */
#define TG_BUDGET_ROUTES_NEW_NFIELDS (1 + TG_BUDGET_NFIELDS)
extern const struct tg_field
        tg_budget_routes_new_fields[TG_BUDGET_ROUTES_NEW_NFIELDS];
enum tg_rc tg_budget_routes_new(struct tg_req *req, struct tg_err *err);

/*
 * POST /budget/update: budget_id and the fields to change, in the order
 * of /budget/new's; null clears.  Its field table is
 * tg_budget_routes_update_fields.
 */
#define TG_BUDGET_ROUTES_UPDATE_NFIELDS TG_BUDGET_ROUTES_NEW_NFIELDS
extern const struct tg_field
        tg_budget_routes_update_fields[TG_BUDGET_ROUTES_UPDATE_NFIELDS];
enum tg_rc tg_budget_routes_update(struct tg_req *req, struct tg_err *err);

#endif
