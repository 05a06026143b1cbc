/*
 * lease: slices of a busy account's budget held by one process, which
 * admits that account's calls against them without the database
 * (tollgate_settings.budget_leases; SPEC 4.6, DESIGN "The ledger").
 *
 * A lease is a hold like any other (a reservations row, its amount in
 * each account's reserved, a deadline), taken in one transaction under the
 * same conditional rule, so it holds across processes and web nodes as
 * holds do: spend + reserved <= max_budget.  Its id is the row's
 * request_id.  A process takes one for an account (a customer, a virtual
 * key, or both together) that the one-round-trip admission admits
 * (tg_admit_v11: no tags, no rate limits, not blocked, no region, no model
 * caps, no period due) once lease_after_calls of its calls came within
 * lease_idle_ms of each other; for lease_calls calls' worst case, and at
 * most 1/16 of what each budget has left, so that the other processes
 * keep room; when that is less than two calls' worst case, the account's
 * calls take a hold each, as without leases.
 *
 * A call admitted against a lease takes its worst case off what the lease
 * has left (in this process's memory) and is written to the journal
 * ("A": which lease, how much, for whom); it settles through the journal
 * (lib/journal.h), and the batch takes its charge off the lease's row
 * and adds it to spend, so that reserved + spend stays within the budget
 * all along.  The process gives the rest back when the account is quiet
 * for lease_idle_ms, when the lease is lease_seconds old or cannot admit
 * the next call, and at exit: after moving its journal (every charge of
 * the lease in the database first), it deletes the row and releases what
 * is left of it, in one transaction.
 *
 * A process that dies: another of the host moves its journal
 * (tg_journal_recover()), and then tg_lease_recover(): each call it had
 * admitted against a lease and not settled becomes a hold of its own that
 * has expired (the reclaim charges it as unsettled, as any call whose
 * process died), and its leases are returned.  A host that is lost with
 * its disk: the lease's deadline (lease_seconds plus the calls' hold)
 * passes, and the reclaim charges what is left of it as unsettled, an
 * upper bound of what its calls cost; settlements of it that come later
 * find it gone and charge nothing more.
 */
#ifndef TG_LEASE_H
#define TG_LEASE_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "customer.h"
#include "db.h"
#include "err.h"
#include "key.h"
#include "ledger.h"

/*
 * Admit a call of customer user_id (NULL: none) with key k (NULL: none),
 * of worst case estimate, against this process's lease of those accounts:
 * true when it did (*out is the call's hold, its lease_id set; *cust and
 * *has_customer as the admission's, the customer as the lease knows it).
 * false: no lease can take it (the caller admits it in the database).
 */
bool tg_lease_admit(const struct tg_config *cfg, const char *user_id,
                    const struct tg_key *k, tg_money estimate,
                    const struct tg_hold_request *hr,
                    struct tg_reservation *out, struct tg_customer *cust,
                    bool *has_customer);

/*
 * A call was admitted in the database (r, the customer as loaded; NULL:
 * none): counted towards a lease of its accounts when it was admitted in
 * one round trip and leases are on.
 */
void tg_lease_note(const struct tg_config *cfg, const struct tg_reservation *r,
                   const struct tg_customer *c, const struct tg_key *k,
                   const char *model, tg_money estimate, long hold_seconds);

/*
 * The settlement of a call admitted against a lease is about to be written
 * with spend: r->amount becomes what the lease has for it (its charge is
 * capped there), and tg_lease_settled() then counts what it charged.
 */
void tg_lease_settling(struct tg_reservation *r);
void tg_lease_settled(const struct tg_reservation *r, tg_money charged);

/*
 * A call admitted against a lease that ended without a settlement (none
 * could be written): its share becomes a hold of its own that has expired,
 * charged as unsettled by the reclaim, as when a process dies.
 */
void tg_lease_abandon(struct tg_db *db, const struct tg_reservation *r);

/*
 * The leases' housekeeping, after an answer and when idle: leases taken
 * for the accounts that became busy, returned for those gone quiet,
 * spent or old; every lease returned when all is true (at exit).
 * tg_lease_due_us(): when it has something to do (0: nothing).
 */
void tg_lease_work(struct tg_db *db, const struct tg_config *cfg, bool all);
int64_t tg_lease_due_us(const struct tg_config *cfg);
/* Leases this process holds. */
int tg_lease_count(void);
/* Write the journal's "L" record of every lease held again, and the "A"
 * record of a call in flight against one (after the journal was
 * emptied). */
void tg_lease_keep(void *arg);

/* A settlement against lease_id went elsewhere than the database or the
 * journal (set aside as refused): the lease is never given back, and is
 * charged whole as unsettled at its deadline, which covers it. */
void tg_lease_taint(const char *lease_id);
/* Forget every lease (the database changed on a reload, after
 * tg_lease_work(all) gave back what it could). */
void tg_lease_forget(void);

/*
 * A dead process's journal records (lines "<type> <json>"), its
 * settlements already moved: its calls in flight and its leases, in one
 * transaction (see above).  *inflight (may be NULL) adds their count.
 */
enum tg_rc tg_lease_recover(struct tg_db *db, const char *const *line, size_t n,
                            int *inflight, struct tg_err *err);

#endif
