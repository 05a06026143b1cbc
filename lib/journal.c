/*
 * journal: this process's settlements on local disk, moved into the
 * database in batches (SPEC 4.6).  See journal.h for the contract.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "journal.h"
#include "lease.h"
#include "log.h"
#include "spool.h"
#include "util.h"

/* Settlements per transaction: a batch is one commit, and no longer than
 * what a row lock should be held for. */
#define BATCH_MAX 256
#define PREFIX    "journal."

static int journal_fd = -1;
static char journal_path[4200];
static char journal_dir[4096];
static long journal_pending;     /* S records not yet moved */
static int64_t journal_first_us; /* when the oldest of them was written */

bool
tg_journal_on(const struct tg_config *cfg)
{
	return cfg != NULL && (cfg->spool_settlements || cfg->budget_leases);
}

/*
 * A new journal file in dir, locked, its name durable.  The lock is taken
 * on the name's file: a process recovering journals may have removed an
 * empty one between our open and our flock (it found it unlocked), so the
 * name is checked to be still ours.
 */
static int
journal_create(const char *dir, char *path, size_t size)
{
	for (int tries = 0; tries < 5; tries++) {
		struct stat a, b;
		int fd, dfd;

		if ((size_t)snprintf(path, size, "%s/" PREFIX "%ld.%lld", dir,
		                     (long)getpid(),
		                     (long long)tg_now_us()) >= size)
			return -1;
		fd = open(path,
		          O_RDWR | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC,
		          0600);
		if (fd < 0) {
			if (errno == EEXIST)
				continue;
			return -1;
		}
		if (flock(fd, LOCK_EX | LOCK_NB) != 0 || fstat(fd, &a) != 0 ||
		    stat(path, &b) != 0 || a.st_ino != b.st_ino ||
		    a.st_dev != b.st_dev) {
			close(fd);
			continue;
		}
		dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			(void)fsync(dfd);
			close(dfd);
		}
		return fd;
	}
	return -1;
}

/* This process's journal, opened (and locked) at the first use, in the
 * directory of that use for the process's life (a reload that changes the
 * database closes it first: lib/app.c). */
static int
journal_open(const char *dir)
{
	int fd;

	if (journal_fd >= 0)
		return journal_fd;
	if (tg_make_dirs(dir) != 0)
		return -1;
	fd = journal_create(dir, journal_path, sizeof(journal_path));
	if (fd < 0)
		return -1;
	tg_strlcpy(journal_dir, sizeof(journal_dir), dir);
	journal_fd = fd;
	return fd;
}

/*
 * One record as one write: a line "<type> <text>\n".  A write that fails
 * part way (the disk full) is cut off again, so that the next record does
 * not begin inside the torn one; where even that fails, the journal is
 * closed and the next record starts a new one.
 */
static int
append(int fd, char type, const char *text, size_t len)
{
	char *line = tg_xmalloc(len + 3);
	struct stat st;
	int rc, saved;

	line[0] = type;
	line[1] = ' ';
	memcpy(line + 2, text, len);
	line[len + 2] = '\n';
	if (fstat(fd, &st) != 0) {
		free(line);
		return -1;
	}
	rc = tg_write_all(fd, line, len + 3);
	free(line);
	if (rc != 0) {
		saved = errno;
		if (ftruncate(fd, st.st_size) != 0 && fd == journal_fd) {
			tg_log_error(
			        "journal %s: a torn record could not be cut "
			        "off; starting a new journal",
			        journal_path);
			journal_fd = -1; /* kept locked, and read by no one
			                    while this process lives */
		}
		errno = saved;
	}
	return rc;
}

enum tg_rc
tg_journal_settle(const char *dir, const struct tg_ledger_account *acct,
                  const struct tg_ledger_entry *e,
                  const struct tg_reservation *r, struct tg_err *err)
{
	size_t len;
	char *text;
	int fd, saved;

	if (dir == NULL || dir[0] == '\0')
		return tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                  "no spool directory configured");
	if ((fd = journal_open(dir)) < 0)
		return tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                  "journal in %s: %s", dir, strerror(errno));
	text = tg_spool_encode(acct, e, r, &len);
	if (append(fd, 'S', text, len) != 0 || fdatasync(fd) != 0) {
		saved = errno;
		free(text);
		/* A record torn or not durable is not acknowledged; the
		 * caller settles the call another way, and the move finds
		 * the same request settled (idempotent). */
		return tg_err_set(err, TG_ERR_INTERNAL, NULL,
		                  "journal write %s: %s", journal_path,
		                  strerror(saved));
	}
	free(text);
	if (journal_pending++ == 0)
		journal_first_us = tg_now_us();
	return TG_OK;
}

bool
tg_journal_note(const char *dir, char type, const char *text)
{
	int fd = journal_open(dir);

	return fd >= 0 && append(fd, type, text, strlen(text)) == 0;
}

int64_t
tg_journal_due_us(const struct tg_config *cfg)
{
	if (journal_pending == 0)
		return 0;
	if (journal_pending >= BATCH_MAX || cfg == NULL)
		return journal_first_us;
	return journal_first_us + cfg->spool_batch_ms * 1000;
}

long
tg_journal_pending(void)
{
	return journal_pending;
}

/* The records of a journal, read whole from fd. */
struct records {
	char *text; /* the file, its lines cut at '\n' */
	char **line;
	size_t n;
};

static bool
read_records(int fd, struct records *rs)
{
	struct stat st;
	size_t got = 0, cap = 0;

	memset(rs, 0, sizeof(*rs));
	if (fstat(fd, &st) != 0)
		return false;
	rs->text = tg_xmalloc((size_t)st.st_size + 1);
	while (got < (size_t)st.st_size) {
		ssize_t k = pread(fd, rs->text + got, (size_t)st.st_size - got,
		                  (off_t)got);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	rs->text[got] = '\0';
	for (char *p = rs->text; p < rs->text + got;) {
		char *nl = memchr(p, '\n', (size_t)(rs->text + got - p));

		/* A last line without its end was torn by a crash: never
		 * acknowledged, so not a record. */
		if (nl == NULL)
			break;
		*nl = '\0';
		if (rs->n == cap) {
			cap = cap ? cap * 2 : 64;
			rs->line =
			        tg_xrealloc(rs->line, cap * sizeof(*rs->line));
		}
		if (nl - p >= 2 && p[1] == ' ')
			rs->line[rs->n++] = p;
		p = nl + 1;
	}
	return true;
}

static void
records_free(struct records *rs)
{
	free(rs->text);
	free(rs->line);
	memset(rs, 0, sizeof(*rs));
}

/* A record the database refused or that cannot be read, whole, where the
 * spool keeps its own for the operator ("<id>.json.failed"). */
static void
keep_failed(const char *dir, const char *text, const char *request_id)
{
	char path[4300];
	FILE *f;

	if (request_id != NULL && strlen(request_id) <= 64 &&
	    strchr(request_id, '/') == NULL)
		snprintf(path, sizeof(path), "%s/%s.json.failed", dir,
		         request_id);
	else
		snprintf(path, sizeof(path), "%s/journal-%lld.json.failed", dir,
		         (long long)tg_now_us());
	f = fopen(path, "w");
	if (f != NULL) {
		fprintf(f, "%s\n", text);
		fclose(f);
	}
}

/*
 * Settle the S records of rs, BATCH_MAX a transaction.  A record that
 * cannot be read, or that the database refuses, is logged and written to
 * "<dir>/<request id>.json.failed" beside the spool's for the operator.
 */
static enum tg_rc
move_settlements(struct tg_db *db, const char *dir,
                 const struct tg_alerting *alerts, struct records *rs,
                 int *moved, struct tg_err *err)
{
	struct tg_spool_record *rec = tg_xcalloc(BATCH_MAX, sizeof(*rec));
	struct tg_ledger_settlement *s = tg_xcalloc(BATCH_MAX, sizeof(*s));
	const char *text[BATCH_MAX];
	size_t i = 0, n;
	enum tg_rc rc = TG_OK;

	while (i < rs->n && rc == TG_OK) {
		for (n = 0; i < rs->n && n < BATCH_MAX; i++) {
			struct tg_err one;

			if (rs->line[i][0] != 'S')
				continue;
			tg_err_clear(&one);
			if (tg_spool_decode(rs->line[i] + 2, alerts, &rec[n],
			                    &one) != TG_OK) {
				keep_failed(dir, rs->line[i] + 2, NULL);
				tg_log_error(
				        "journal %s: a malformed settlement "
				        "(%s), kept for the operator",
				        dir, one.message);
				continue;
			}
			s[n].acct = &rec[n].acct;
			s[n].e = &rec[n].e;
			s[n].r = &rec[n].r;
			text[n] = rs->line[i] + 2;
			n++;
		}
		rc = tg_ledger_settle_batch(db, s, n, err);
		for (size_t k = 0; k < n; k++) {
			if (rc == TG_OK && s[k].rc != TG_OK) {
				keep_failed(dir, text[k], rec[k].e.request_id);
				/* Its lease may not give back its share. */
				if (rec[k].r.lease_id[0] != '\0')
					tg_lease_taint(rec[k].r.lease_id);
			}
			tg_spool_record_free(&rec[k]);
		}
		if (rc == TG_OK && moved != NULL)
			*moved += (int)n;
	}
	free(rec);
	free(s);
	return rc;
}

enum tg_rc
tg_journal_move(struct tg_db *db, const struct tg_alerting *alerts, int *moved,
                struct tg_err *err)
{
	struct records rs;
	enum tg_rc rc;

	if (moved != NULL)
		*moved = 0;
	if (journal_fd < 0 || journal_pending == 0)
		return TG_OK;
	if (!read_records(journal_fd, &rs))
		return tg_err_set(err, TG_ERR_INTERNAL, NULL, "journal %s: %s",
		                  journal_path, strerror(errno));
	rc = move_settlements(db, journal_dir, alerts, &rs, moved, err);
	records_free(&rs);
	if (rc != TG_OK)
		return rc;
	/* In the database: the file starts again.  (A crash before the
	 * truncation lands moves them again: settled before, a no-op.) */
	journal_pending = 0;
	journal_first_us = 0;
	tg_journal_compact();
	return TG_OK;
}

void
tg_journal_compact(void)
{
	char path[sizeof(journal_path)];
	int fd, old = journal_fd;

	if (journal_fd < 0 || journal_pending != 0)
		return;
	if (tg_lease_count() == 0) {
		/* Nothing to keep: emptied in place. */
		if (ftruncate(journal_fd, 0) != 0)
			tg_log_warn("journal %s: cannot empty it: %s",
			            journal_path, strerror(errno));
		return;
	}
	/* What must be kept goes to a new journal, synced, before the old
	 * one goes: a death in between leaves both, read alike. */
	fd = journal_create(journal_dir, path, sizeof(path));
	if (fd < 0) {
		tg_log_warn("journal in %s: cannot start a new one: %s",
		            journal_dir, strerror(errno));
		return;
	}
	journal_fd = fd;
	tg_lease_keep(NULL);
	if (fdatasync(fd) != 0) {
		tg_log_warn("journal %s: %s", path, strerror(errno));
		journal_fd = old;
		unlink(path);
		close(fd);
		return;
	}
	unlink(journal_path);
	close(old);
	memcpy(journal_path, path, sizeof(path));
}

/* A dead process's journal: its settlements, then it goes. */
static enum tg_rc
recover_one(struct tg_db *db, const char *dir, int dfd, const char *name,
            const struct tg_alerting *alerts, int *count, struct tg_err *err)
{
	struct records rs;
	int fd = openat(dfd, name, O_RDWR | O_CLOEXEC);
	int moved = 0;
	enum tg_rc rc;

	if (fd < 0)
		return TG_OK; /* removed meanwhile */
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		close(fd); /* its process is alive */
		return TG_OK;
	}
	if (!read_records(fd, &rs)) {
		close(fd);
		return TG_OK;
	}
	rc = move_settlements(db, dir, alerts, &rs, &moved, err);
	if (rc == TG_OK)
		rc = tg_lease_recover(db, (const char *const *)rs.line, rs.n,
		                      NULL, err);
	records_free(&rs);
	if (rc == TG_OK) {
		unlinkat(dfd, name, 0);
		(void)fsync(dfd);
		tg_log_info("moved the journal %s of a process that is gone "
		            "(%d settlements)",
		            name, moved);
		if (count != NULL)
			*count += moved;
	}
	close(fd); /* releases the lock */
	return rc;
}

enum tg_rc
tg_journal_recover(struct tg_db *db, const char *dir,
                   const struct tg_alerting *alerts, int *moved,
                   struct tg_err *err)
{
	const char *own = journal_fd >= 0 ? strrchr(journal_path, '/') + 1 : "";
	struct dirent *de;
	DIR *d;
	enum tg_rc rc = TG_OK;

	if (moved != NULL)
		*moved = 0;
	if (dir == NULL || (d = opendir(dir)) == NULL)
		return TG_OK;
	while ((de = readdir(d)) != NULL && rc == TG_OK) {
		if (strncmp(de->d_name, PREFIX, strlen(PREFIX)) != 0 ||
		    strcmp(de->d_name, own) == 0)
			continue;
		rc = recover_one(db, dir, dirfd(d), de->d_name, alerts, moved,
		                 err);
	}
	closedir(d);
	return rc;
}

void
tg_journal_close(void)
{
	if (journal_fd < 0)
		return;
	/* Nothing left in it: it goes; else it stays for another process
	 * (its lock goes with the descriptor). */
	if (journal_pending == 0 && tg_lease_count() == 0)
		unlink(journal_path);
	close(journal_fd);
	journal_fd = -1;
	journal_pending = 0;
}
