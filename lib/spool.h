/*
 * spool: settlements the database could not take, kept on local disk until
 * it can (SPEC 4.4; DESIGN "The ledger": store and forward).
 *
 * When an upstream has answered, its tokens are spent: the charge must land
 * exactly once even if the database is out of reach at that moment.  The
 * settlement (account, ledger row, hold) is written to one file per request
 * in the spool directory, fsync'd and renamed into place, and the client
 * gets its answer.  Every process replays the spool after its responses
 * while the database is reachable: under an exclusive lock on the
 * directory, bounded in time, each file settled through tg_ledger_settle()
 * (idempotent by request id) and only then removed.  Meanwhile the hold
 * keeps the budget safe; if it expires first, the reclaim charges it as
 * unsettled and the replay later replaces that charge with the real one.
 */
#ifndef TG_SPOOL_H
#define TG_SPOOL_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "db.h"
#include "err.h"
#include "ledger.h"

struct json_object;

/* The spool directory: tollgate_settings.spool_dir, else the environment's
 * TOLLGATE_SPOOL_DIR, else $localstatedir/spool/tollgate. */
const char *tg_spool_dir(const struct tg_config *cfg);

/*
 * Write one settlement to dir (created, mode 0700, when missing) and make
 * it durable (fsync of the file and of the directory).  TG_ERR_INTERNAL
 * with the reason when it cannot.
 */
enum tg_rc tg_spool_write(const char *dir, const struct tg_ledger_account *acct,
                          const struct tg_ledger_entry *e,
                          const struct tg_reservation *r, struct tg_err *err);

/*
 * Whether dir may hold settlements to replay: a stat() of the directory,
 * compared with what the last replay of this process left, so the check is
 * cheap enough for every request.
 */
bool tg_spool_maybe_pending(const char *dir);

/*
 * Replay dir's settlements into db, for at most budget_us microseconds (one
 * file at least).  Returns TG_OK when another process holds the lock (it is
 * replaying) or dir does not exist.  A file the database refuses (not for
 * being out of reach) is renamed <name>.failed and logged, so it neither
 * blocks the others nor is lost.  A settlement's webhook events (alerts,
 * may be NULL: none) are written with it, as when it is not spooled.
 * *replayed (may be NULL) gets the count.
 * TG_ERR_DB when the database became unreachable: the rest stays.
 */
enum tg_rc tg_spool_replay(struct tg_db *db, const char *dir,
                           const struct tg_alerting *alerts, int64_t budget_us,
                           int *replayed, struct tg_err *err);

/*
 * One settlement as the spool writes it (a JSON object, one line: the
 * account, the ledger row, the hold), for lib/journal.c's records too.
 * tg_spool_encode() returns it (caller frees; *len its length);
 * tg_spool_decode() reads it back into *rec, whose strings point into it
 * until tg_spool_record_free().  TG_ERR_INTERNAL when text is not one.
 */
struct tg_spool_record {
	struct json_object *o;
	struct tg_ledger_account acct;
	struct tg_ledger_entry e;
	struct tg_reservation r;
	const char *names[TG_TAG_MAX];
};
char *tg_spool_encode(const struct tg_ledger_account *acct,
                      const struct tg_ledger_entry *e,
                      const struct tg_reservation *r, size_t *len);
enum tg_rc tg_spool_decode(const char *text, const struct tg_alerting *alerts,
                           struct tg_spool_record *rec, struct tg_err *err);
void tg_spool_record_free(struct tg_spool_record *rec);

/* Settlements waiting in dir (*pending) and set aside as failed (*failed);
 * false when dir cannot be read (a missing dir counts as empty). */
bool tg_spool_count(const char *dir, long *pending, long *failed);

#endif
