/*
 * account: what customers and virtual keys share (see account.h).
 */
#define _POSIX_C_SOURCE 200809L

#include <time.h>

#include "account.h"
#include "budget.h"
#include "period.h"
#include "util.h"

const char *
tg_account_kind_name(enum tg_account_kind kind)
{
	switch (kind) {
	case TG_ACCOUNT_CUSTOMER: return "customer";
	case TG_ACCOUNT_KEY: return "key";
	}
	return "customer";
}

/*
 * spend is assigned before spend_reset_at, so it sees the old value: a
 * first period start keeps the spend, a due reset zeroes it.  The WHERE
 * makes a concurrent second application match nothing.
 */
#define RESET_SQL(table, id)                                                   \
	"UPDATE " table " SET spend = IF(spend_reset_at IS NULL, spend, 0),"   \
	" spend_reset_at = ?, updated_at = UTC_TIMESTAMP(6)"                   \
	" WHERE " id " = ? AND (spend_reset_at IS NULL"                        \
	" OR spend_reset_at <= ?)"

static const char *const reset_sql[] = {
        [TG_ACCOUNT_CUSTOMER] = RESET_SQL("customers", "user_id"),
        [TG_ACCOUNT_KEY] = RESET_SQL("api_keys", "token"),
};

enum tg_rc
tg_account_apply_reset(struct tg_db *db, enum tg_account_kind kind,
                       const char *id, const struct tg_budget *budget,
                       const struct tg_opt_time *spend_reset_at, bool *changed,
                       struct tg_err *err)
{
	struct tg_period period;
	struct tg_db_param params[3];
	char next_s[20], now_s[20];
	time_t now = time(NULL);
	enum tg_rc rc;

	*changed = false;
	if (budget == NULL || budget->budget_duration == NULL ||
	    !tg_period_parse(budget->budget_duration, &period))
		return TG_OK;
	if (spend_reset_at->set && spend_reset_at->v > now)
		return TG_OK;
	tg_time_sql(tg_period_next(&period, now), next_s);
	tg_time_sql(now, now_s);
	params[0] = tg_db_str(next_s);
	params[1] = tg_db_str(id);
	params[2] = tg_db_str(now_s);
	rc = tg_db_run(db, reset_sql[kind], params, 3, NULL, err);
	if (rc != TG_OK)
		return rc;
	*changed = true;
	return TG_OK;
}
