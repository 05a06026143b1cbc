/*
 * tollgate-migrate: create or upgrade the tollgate schema (SPEC 3).
 *
 *   tollgate-migrate --database-url URL [--sql-dir DIR]
 *   tollgate-migrate --config FILE [--sql-dir DIR]
 *
 * DIR defaults to where `make install` puts the files ($(pkgdatadir)/sql).
 * The database named in the URL is created when missing.  Table
 * schema_version records each applied file; the files sql/NNN_name.sql whose
 * NNN is above the highest recorded version are applied in order, each then
 * recorded, so running it again applies nothing.  A named lock keeps two
 * concurrent runs (two web nodes deploying at once) from interleaving.
 * MySQL commits DDL implicitly, so a file is not atomic: migrations are
 * written to be re-runnable (CREATE TABLE IF NOT EXISTS ...).
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "db.h"
#include "util.h"

#ifndef TG_DATADIR
#define TG_DATADIR "/usr/local/share/tollgate"
#endif

#define MAX_FILE_BYTES (4u << 20)

struct migration {
	int version;
	char *name; /* file name, e.g. "001_initial.sql" */
};

static void
usage(FILE *f)
{
	fprintf(f,
	        "usage: tollgate-migrate (--database-url URL | --config FILE)"
	        " [--sql-dir DIR]\n"
	        "  URL: mysql://user:pass@host[:port]/db[?socket=/path]\n"
	        "  without either, $DATABASE_URL is used\n"
	        "  DIR: the migrations, by default " TG_DATADIR "/sql\n");
}

/* "NNN_name.sql" -> NNN; -1 when the name is not a migration. */
static int
migration_version(const char *name)
{
	size_t n = strlen(name);
	int v = 0;

	if (n < 9 || strcmp(name + n - 4, ".sql") != 0 || name[3] != '_')
		return -1;
	for (int i = 0; i < 3; i++) {
		if (name[i] < '0' || name[i] > '9')
			return -1;
		v = v * 10 + (name[i] - '0');
	}
	return v;
}

static int
cmp_migration(const void *a, const void *b)
{
	const struct migration *x = a, *y = b;
	return (x->version > y->version) - (x->version < y->version);
}

/* The migrations in dir, sorted; false (message printed) on error. */
static bool
list_migrations(const char *dir, struct migration **out, size_t *count)
{
	DIR *d = opendir(dir);
	struct dirent *ent;
	struct migration *list = NULL;
	size_t n = 0, cap = 0;
	bool ok = true;

	if (d == NULL) {
		fprintf(stderr, "tollgate-migrate: %s: %s\n", dir,
		        strerror(errno));
		return false;
	}
	while ((ent = readdir(d)) != NULL) {
		int v = migration_version(ent->d_name);
		if (v < 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			list = tg_xrealloc(list, cap * sizeof(*list));
		}
		list[n].version = v;
		list[n].name = tg_xstrdup(ent->d_name);
		n++;
	}
	closedir(d);
	qsort(list, n, sizeof(*list), cmp_migration);
	for (size_t i = 1; i < n; i++) {
		if (list[i].version == list[i - 1].version) {
			fprintf(stderr,
			        "tollgate-migrate: %s and %s have the same "
			        "version\n",
			        list[i - 1].name, list[i].name);
			ok = false;
		}
	}
	*out = list;
	*count = n;
	return ok;
}

static char *
read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n;

	if (f == NULL) {
		fprintf(stderr, "tollgate-migrate: %s: %s\n", path,
		        strerror(errno));
		return NULL;
	}
	buf = tg_xmalloc(MAX_FILE_BYTES + 1);
	n = fread(buf, 1, MAX_FILE_BYTES + 1, f);
	if (ferror(f) || n > MAX_FILE_BYTES) {
		fprintf(stderr, "tollgate-migrate: %s: %s\n", path,
		        ferror(f) ? "read error" : "file too large");
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	buf[n] = '\0';
	if (strlen(buf) != n) {
		fprintf(stderr, "tollgate-migrate: %s: contains a NUL byte\n",
		        path);
		free(buf);
		return NULL;
	}
	return buf;
}

/* Highest applied version (0 for none) into *out. */
static bool
current_version(struct tg_db *db, int *out)
{
	struct tg_db_result res;
	struct tg_err err;
	bool ok;

	if (tg_db_exec(db,
	               "SELECT COALESCE(MAX(version), 0) FROM schema_version",
	               NULL, 0, &res, &err) != TG_OK) {
		fprintf(stderr, "tollgate-migrate: %s\n", err.message);
		return false;
	}
	ok = res.nrows == 1 && tg_db_cell(&res, 0, 0) != NULL;
	if (ok)
		*out = atoi(tg_db_cell(&res, 0, 0));
	tg_db_result_free(&res);
	return ok;
}

static bool
exec_simple(struct tg_db *db, const char *sql, const struct tg_db_param *p,
            size_t np, struct tg_db_result *res)
{
	struct tg_err err;

	if (tg_db_exec(db, sql, p, np, res, &err) != TG_OK) {
		fprintf(stderr, "tollgate-migrate: %s\n", err.message);
		return false;
	}
	return true;
}

int
main(int argc, char **argv)
{
	const char *url_arg = NULL, *config_path = NULL, *sql_dir = NULL;
	const char *url = NULL;
	struct tg_config *cfg = NULL;
	struct tg_db *db = NULL;
	struct migration *list = NULL;
	size_t nlist = 0;
	struct tg_err err;
	struct tg_db_result res;
	struct tg_db_param p[2];
	bool created = false, locked = false;
	int version = 0, applied = 0, status = 1;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char **dst = NULL;
		if (strcmp(a, "--database-url") == 0)
			dst = &url_arg;
		else if (strcmp(a, "--config") == 0)
			dst = &config_path;
		else if (strcmp(a, "--sql-dir") == 0)
			dst = &sql_dir;
		else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		}
		if (dst == NULL || i + 1 >= argc) {
			usage(stderr);
			return 2;
		}
		*dst = argv[++i];
	}
	if (sql_dir == NULL)
		sql_dir = TG_DATADIR "/sql";

	if (url_arg != NULL) {
		url = url_arg;
	} else if (config_path != NULL) {
		if (tg_config_load(config_path, tg_config_default_prices(),
		                   &cfg, &err) != TG_OK) {
			fprintf(stderr, "tollgate-migrate: %s\n", err.message);
			goto out;
		}
		url = cfg->database_url; /* already falls back to DATABASE_URL
		                          */
	} else {
		url = getenv("DATABASE_URL");
	}
	if (url == NULL || *url == '\0') {
		fprintf(stderr, "tollgate-migrate: no database URL (use "
		                "--database-url, --config or DATABASE_URL)\n");
		goto out;
	}

	if (!list_migrations(sql_dir, &list, &nlist))
		goto out;
	if (nlist == 0) {
		fprintf(stderr,
		        "tollgate-migrate: no NNN_name.sql files in %s\n",
		        sql_dir);
		goto out;
	}

	if (tg_db_open_create(url, &created, &db, &err) != TG_OK) {
		fprintf(stderr, "tollgate-migrate: %s\n", err.message);
		goto out;
	}
	if (created)
		printf("created database\n");

	p[0] = tg_db_str("tollgate-migrate");
	if (!exec_simple(db, "SELECT GET_LOCK(?, 60)", p, 1, &res))
		goto out;
	locked = res.nrows == 1 && tg_db_cell(&res, 0, 0) != NULL &&
	         strcmp(tg_db_cell(&res, 0, 0), "1") == 0;
	tg_db_result_free(&res);
	if (!locked) {
		fprintf(stderr, "tollgate-migrate: another migration is "
		                "running (lock not obtained in 60 s)\n");
		goto out;
	}

	if (!exec_simple(db,
	                 "CREATE TABLE IF NOT EXISTS schema_version ("
	                 " version INT NOT NULL,"
	                 " name VARCHAR(255) NOT NULL,"
	                 " applied_at DATETIME(6) NOT NULL"
	                 " DEFAULT CURRENT_TIMESTAMP(6),"
	                 " PRIMARY KEY (version)"
	                 ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
	                 " COLLATE=utf8mb4_bin",
	                 NULL, 0, NULL))
		goto out;
	if (!current_version(db, &version))
		goto out;

	for (size_t i = 0; i < nlist; i++) {
		char path[4096];
		char *script;
		enum tg_rc rc;

		if (list[i].version <= version)
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", sql_dir,
		                     list[i].name) >= sizeof(path)) {
			fprintf(stderr, "tollgate-migrate: path too long\n");
			goto out;
		}
		script = read_file(path);
		if (script == NULL)
			goto out;
		rc = tg_db_exec_script(db, script, &err);
		free(script);
		if (rc != TG_OK) {
			fprintf(stderr, "tollgate-migrate: %s: %s\n", path,
			        err.message);
			goto out;
		}
		p[0] = tg_db_int(list[i].version);
		p[1] = tg_db_str(list[i].name);
		if (!exec_simple(db,
		                 "INSERT INTO schema_version (version, name,"
		                 " applied_at) VALUES (?, ?, UTC_TIMESTAMP(6))",
		                 p, 2, NULL))
			goto out;
		printf("applied %s\n", list[i].name);
		applied++;
		version = list[i].version;
	}
	if (applied == 0)
		printf("schema is up to date (version %d), nothing to apply\n",
		       version);
	else
		printf("schema is now at version %d\n", version);
	status = 0;
out:
	if (locked) {
		p[0] = tg_db_str("tollgate-migrate");
		if (exec_simple(db, "SELECT RELEASE_LOCK(?)", p, 1, &res))
			tg_db_result_free(&res);
	}
	for (size_t i = 0; i < nlist; i++)
		free(list[i].name);
	free(list);
	tg_db_close(db);
	if (cfg != NULL)
		tg_config_free(cfg);
	return status;
}
