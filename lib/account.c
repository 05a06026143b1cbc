/*
 * account: what customers, virtual keys and tags share (see account.h).
 */
#define _POSIX_C_SOURCE 200809L

#include <time.h>

#include "account.h"
#include "budget.h"
#include "jsonx.h"
#include "period.h"
#include "util.h"

/*
 * The statements of a kind whose rows are table, identified by id, with
 * alias the expression of a key's alias (NULL for other kinds).
 *
 * reset: spend is assigned before spend_reset_at, so it sees the old
 * value: a first period start keeps the spend, a due reset zeroes it.  The
 * WHERE makes a concurrent second application match nothing.
 */
#define KIND_SQL(table, id, alias)                                             \
	{                                                                      \
		.reset = "UPDATE " table " SET spend = IF(spend_reset_at IS"   \
		         " NULL, spend, 0), spend_reset_at = ?, updated_at ="  \
		         " UTC_TIMESTAMP(6) WHERE " id " = ? AND"              \
		         " (spend_reset_at IS NULL OR spend_reset_at <= ?)",   \
		.lock = "SELECT UNIX_TIMESTAMP() FROM " table " WHERE " id     \
		        " = ? FOR UPDATE",                                     \
		.reserve = "UPDATE " table " SET reserved = reserved +"        \
		           " CAST(? AS DECIMAL(20,10)) WHERE " id " = ?",      \
		.reserve_if =                                                  \
		        "UPDATE " table " a LEFT JOIN budgets b"               \
		        " ON b.budget_id = COALESCE(a.budget_id, ?)"           \
		        " SET a.reserved = a.reserved +"                       \
		        " CAST(? AS DECIMAL(20,10)) WHERE a." id " = ? AND"    \
		        " (b.max_budget IS NULL OR a.spend + a.reserved +"     \
		        " CAST(? AS DECIMAL(20,10)) <= b.max_budget)",         \
		.spend = "SELECT a.spend, b.max_budget FROM " table " a"       \
		         " LEFT JOIN budgets b ON b.budget_id ="               \
		         " COALESCE(a.budget_id, ?) WHERE a." id " = ?",       \
		.charge = "UPDATE " table " SET"                               \
		          " spend = IF(? IS NOT NULL AND spend_reset_at <= ?," \
		          " 0, spend) + CAST(? AS DECIMAL(20,10)),"            \
		          " spend_reset_at = IF(? IS NOT NULL AND"             \
		          " (spend_reset_at IS NULL OR spend_reset_at <= ?),"  \
		          " ?, spend_reset_at),"                               \
		          " reserved = GREATEST(reserved -"                    \
		          " CAST(? AS DECIMAL(20,10)), 0) WHERE " id " = ?",   \
		.room = "SELECT IF(? IS NOT NULL AND a.spend_reset_at <= ?,"   \
		        " 0, a.spend), a.reserved, b.max_budget FROM " table   \
		        " a LEFT JOIN budgets b ON b.budget_id ="              \
		        " COALESCE(a.budget_id, ?) WHERE a." id " = ?"         \
		        " FOR UPDATE",                                         \
		.correct =                                                     \
		        "UPDATE " table " SET"                                 \
		        " spend = IF(? IS NOT NULL AND spend_reset_at <= ?,"   \
		        " spend, spend + IF(spend_reset_at <=>"                \
		        " CAST(? AS DATETIME(6)), CAST(? AS DECIMAL(20,10))"   \
		        " - CAST(? AS DECIMAL(20,10)), 0)) WHERE " id " = ?",  \
		.period =                                                      \
		        "SELECT DATE_FORMAT(a.spend_reset_at,"                 \
		        " '%Y-%m-%d %T'), b.budget_duration,"                  \
		        " (a.spend_reset_at IS NULL OR"                        \
		        " a.spend_reset_at <= UTC_TIMESTAMP()),"               \
		        " DATE_FORMAT(UTC_TIMESTAMP(), '%Y-%m-%d %T'), " alias \
		        " FROM " table " a LEFT JOIN budgets b"                \
		        " ON b.budget_id = COALESCE(a.budget_id, ?)"           \
		        " WHERE a." id " = ? FOR UPDATE",                      \
		.state = "SELECT a.spend, a.spend_reset_at, b.max_budget,"     \
		         " b.soft_budget FROM " table " a LEFT JOIN budgets b" \
		         " ON b.budget_id = COALESCE(a.budget_id, ?)"          \
		         " WHERE a." id " = ?",                                \
	}

static const struct tg_account_kind_info kinds[] = {
        [TG_ACCOUNT_CUSTOMER] = {.kind = TG_ACCOUNT_CUSTOMER,
                                 .name = "customer",
                                 .table = "customers",
                                 .id_column = "user_id",
                                 .sql = KIND_SQL("customers", "user_id",
                                                 "NULL")},
        [TG_ACCOUNT_KEY] = {.kind = TG_ACCOUNT_KEY,
                            .name = "key",
                            .table = "api_keys",
                            .id_column = "token",
                            .sql = KIND_SQL("api_keys", "token",
                                            "a.key_alias")},
        [TG_ACCOUNT_TAG] = {.kind = TG_ACCOUNT_TAG,
                            .name = "tag",
                            .table = "tags",
                            .id_column = "tag_name",
                            .sql = KIND_SQL("tags", "tag_name", "NULL")},
};
#define NKINDS (sizeof(kinds) / sizeof(kinds[0]))

const struct tg_account_kind_info *
tg_account_kind(enum tg_account_kind kind)
{
	if ((size_t)kind >= NKINDS)
		return &kinds[TG_ACCOUNT_CUSTOMER];
	return &kinds[kind];
}

const char *
tg_account_kind_name(enum tg_account_kind kind)
{
	return tg_account_kind(kind)->name;
}

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
	rc = tg_db_run(db, tg_account_kind(kind)->sql.reset, params, 3, NULL,
	               err);
	if (rc != TG_OK)
		return rc;
	*changed = true;
	return TG_OK;
}

enum tg_rc
tg_account_load(struct tg_db *db, enum tg_account_kind kind,
                tg_account_read_fn read_row, void *arg, bool advance,
                bool *found, struct tg_err *err)
{
	struct tg_account_row row;
	bool changed = false;
	enum tg_rc rc;

	rc = read_row(db, arg, found, &row, err);
	if (rc != TG_OK || !*found)
		return rc;
	rc = tg_account_apply_reset(db, kind, row.id, row.budget,
	                            row.spend_reset_at, &changed, err);
	if (rc == TG_OK && changed) {
		rc = read_row(db, arg, found, &row, err);
		if (rc != TG_OK || !*found)
			return rc;
	}
	if (rc == TG_OK && advance && row.budget != NULL)
		rc = tg_budget_advance(db, row.budget, err);
	return rc;
}

enum tg_rc
tg_account_forget(struct tg_db *db, enum tg_account_kind kind, const char *id,
                  size_t id_len, struct tg_err *err)
{
	static const char *const sql[] = {
	        "DELETE FROM rate_windows WHERE kind = ? AND user_id = ?",
	        "DELETE FROM alert_marks WHERE kind = ? AND user_id = ?",
	        "DELETE FROM model_spend WHERE kind = ? AND account_id = ?",
	};
	struct tg_db_param params[2];
	enum tg_rc rc = TG_OK;

	params[0] = tg_db_str(tg_account_kind_name(kind));
	params[1] = tg_db_strn(id, id_len);
	for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]) && rc == TG_OK;
	     i++) {
		rc = tg_db_run(db, sql[i], params, 2, NULL, err);
		/* 1146: no such table (model_spend before sql/010). */
		if (rc == TG_ERR_DB && i == 2 && tg_db_errno(db) == 1146) {
			tg_err_clear(err);
			rc = TG_OK;
		}
	}
	return rc;
}

enum tg_rc
tg_account_model_spend(struct tg_db *db, enum tg_account_kind kind,
                       const char *id, struct json_object **out,
                       struct tg_err *err)
{
	struct tg_db_param params[3];
	struct tg_db_result res;
	struct json_object *o;
	char now_s[20];
	enum tg_rc rc;

	/* A period that has ended but not been started again (that happens
	 * at the next admission) has spent nothing yet in the current one. */
	tg_time_sql(time(NULL), now_s);
	params[0] = tg_db_str(now_s);
	params[1] = tg_db_str(tg_account_kind_name(kind));
	params[2] = tg_db_str(id);
	rc = tg_db_exec(db,
	                "SELECT model, IF(spend_reset_at IS NOT NULL AND"
	                " spend_reset_at <= ?, 0, spend) FROM model_spend"
	                " WHERE kind = ? AND account_id = ? ORDER BY model",
	                params, 3, &res, err);
	if (rc == TG_ERR_DB && tg_db_errno(db) == 1146) {
		tg_err_clear(err);
		*out = json_object_new_object();
		return TG_OK;
	}
	if (rc != TG_OK)
		return rc;
	o = json_object_new_object();
	for (size_t i = 0; i < res.nrows; i++) {
		tg_money m;

		if (tg_db_cell(&res, i, 0) != NULL &&
		    tg_money_parse(tg_db_cell(&res, i, 1), &m))
			json_object_object_add(o, tg_db_cell(&res, i, 0),
			                       tg_json_money(m));
	}
	tg_db_result_free(&res);
	*out = o;
	return TG_OK;
}
