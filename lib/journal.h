/*
 * journal: this process's settlements on local disk, moved into the
 * database in batches (tollgate_settings.spool_settlements, and
 * budget_leases, whose calls always settle here; SPEC 4.6).
 *
 * One file per process in the spool directory, "journal.<pid>.<start>",
 * opened at its first record and locked (flock) for the process's life: a
 * journal whose lock another process can take belongs to a process that
 * is gone.  Each record is one line, written with one write():
 *   "S <settlement>"  as tg_spool_encode() writes it, made durable
 *                     (fdatasync) before the client is answered;
 *   "A <admission>"   a call admitted against a lease, before it goes
 *                     upstream (not synced: a process's death does not
 *                     lose it, and a machine's loses the lease too);
 *   "L <lease>", "R <lease>": a lease taken, returned (lib/lease.c);
 *   "X <request>"     a call admitted against a lease that ended without
 *                     a settlement, made a hold of its own.
 * The process moves its own settlements into the database when a batch
 * is due (spool_batch_ms after the oldest; tg_journal_due_us()), one
 * transaction for all of them (tg_ledger_settle_batch(), idempotent by
 * request id), and then empties the file.  Another process of the host
 * moves a dead process's journal whole (tg_journal_recover()).
 */
#ifndef TG_JOURNAL_H
#define TG_JOURNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "db.h"
#include "err.h"
#include "ledger.h"

/* Whether calls settle through the journal under cfg. */
bool tg_journal_on(const struct tg_config *cfg);

/*
 * Append a settlement to this process's journal in dir (created, locked,
 * at the first record) and make it durable.  TG_ERR_INTERNAL with the
 * reason when it cannot (the caller settles in the database instead).
 */
enum tg_rc tg_journal_settle(const char *dir,
                             const struct tg_ledger_account *acct,
                             const struct tg_ledger_entry *e,
                             const struct tg_reservation *r,
                             struct tg_err *err);

/* Append one record of type ('A', 'L', 'R') with text (one line of JSON)
 * to this process's journal in dir, not synced.  false when it cannot be
 * written. */
bool tg_journal_note(const char *dir, char type, const char *text);

/* When this process's settlements are due to move (Unix epoch us; 0:
 * none waiting). */
int64_t tg_journal_due_us(const struct tg_config *cfg);

/* Settlements of this process not yet in the database. */
long tg_journal_pending(void);

/*
 * Move this process's settlements into db, in batches of one transaction
 * each; when all are in, the journal is emptied, and the leases still held
 * are written to it again (tg_lease_keep()).  *moved (may be NULL) gets
 * the count.  TG_ERR_DB when the database could not take them (they stay,
 * for the next try).
 */
enum tg_rc tg_journal_move(struct tg_db *db, const struct tg_alerting *alerts,
                           int *moved, struct tg_err *err);

/* With no settlement waiting, empty the journal but for what must outlive
 * that (tg_lease_keep()): a lease given back leaves no record. */
void tg_journal_compact(void);

/*
 * The journals in dir of processes that are gone: each one's settlements
 * moved, then its calls admitted against a lease and not settled and its
 * leases (tg_lease_recover()), and the file removed.  *moved (may be NULL)
 * gets the count of settlements.  TG_ERR_DB when the database could not
 * take one (it stays).  (The holds of its other calls in flight are the
 * reclaim's, as ever.)
 */
enum tg_rc tg_journal_recover(struct tg_db *db, const char *dir,
                              const struct tg_alerting *alerts, int *moved,
                              struct tg_err *err);

/* Close this process's journal (at exit): removed when every settlement
 * in it moved and no lease is held. */
void tg_journal_close(void);

#endif
