/*
 * ledger_priv: what lib/ledger.c (admission, settlement) and
 * lib/ledger_reclaim.c (the reclaim of expired holds) share.  Not for
 * other modules.
 */
#ifndef TG_LEDGER_PRIV_H
#define TG_LEDGER_PRIV_H

#include "account.h"
#include "db.h"
#include "err.h"
#include "money.h"

/*
 * Add charge to the spend of account id (of kind) and take release off its
 * reserved, in the period current at now_s: with a period (next_s, the end
 * of the one that would begin now; NULL for none), a due reset comes
 * first.  spend is assigned before spend_reset_at, so the reset test sees
 * the old value.  An account that is gone (deleted) is left alone.
 */
enum tg_rc tg_ledger_charge_account(struct tg_db *db, enum tg_account_kind kind,
                                    const char *id, const char *next_s,
                                    const char *now_s, tg_money charge,
                                    tg_money release, struct tg_err *err);

/*
 * Index ledger row request_id (started at start_s; NULL: now) under each of
 * tags[0..ntags) (spend_log_tags), as often as it is written.
 */
enum tg_rc tg_ledger_index_tags(struct tg_db *db, const char *request_id,
                                const char *start_s, const char *const *tags,
                                size_t ntags, struct tg_err *err);

/*
 * Take amount off lease lease_id's row (lib/lease.h), if it has that much:
 * *taken (the rows matched) 0 when the lease is gone or short.
 */
enum tg_rc tg_ledger_lease_take(struct tg_db *db, const char *lease_id,
                                tg_money amount, uint64_t *taken,
                                struct tg_err *err);

/* The ledger's spend grew by amount for model (reclaimed, settled):
 * tollgate_spend_usd_total (SPEC 15). */
void tg_ledger_count_spend(const char *model, tg_money amount);

#endif
