/*
 * tollgate-spawn: keep the FastCGI programs running for a web server that
 * does not start them itself (Apache mod_proxy_fcgi, nginx).
 *
 *   tollgate-spawn -d SOCKDIR [-m MODE] [-p PIDFILE] [-n PROCS] PROGRAM
 *                  [[-n PROCS] PROGRAM ...]
 *
 * For each PROGRAM it binds the unix socket SOCKDIR/<name>.sock (name: the
 * program's file name; mode MODE, octal, 0660 unless given), starts PROCS
 * processes of it (2 unless given; -n applies to the programs after it)
 * with that socket as their FastCGI listening socket (fd 0), and starts a
 * process again whenever one ends: immediately if it had run for a second,
 * else after a second, so that a program that cannot start does not spin.
 * SIGTERM or SIGINT passes SIGTERM to every process (each finishes the
 * request in flight, stream included, and exits), waits for them, removes
 * the sockets and the pid file, and exits 0; a second signal kills them.
 * SIGHUP restarts the processes one after the other (a new build, a new
 * config).  It stays in the foreground and logs on stderr, so any service
 * manager (systemd, runit, script/server) can run it as it is; the
 * processes inherit its environment (TOLLGATE_CONFIG, DATABASE_URL ...),
 * its stderr and its user.
 *
 * Why not spawn-fcgi: it starts the processes and exits (or, with -n, runs
 * one process), so nothing starts a process again once it has died
 * (tollgate aborts on allocation failure and relies on being restarted),
 * and nothing stops them all together.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#define MAX_PROGRAMS 16
#define MAX_PROCS    256
/* A process that ends sooner than this after its start is started again
 * only after the same delay. */
#define RESTART_DELAY_MS 1000

struct program {
	const char *path;
	char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int listen_fd;
	int nprocs;
};

struct proc {
	struct program *prog;
	pid_t pid;           /* 0: not running */
	long long start_ms;  /* when it was started */
	long long due_ms;    /* when not running: when to start it */
	bool restart_on_hup; /* SIGHUP: to be replaced once it ends */
};

static struct program programs[MAX_PROGRAMS];
static int nprograms;
static struct proc procs[MAX_PROCS];
static int nprocs;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
say(const char *fmt, ...)
{
	va_list ap;

	fputs("tollgate-spawn: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: tollgate-spawn -d SOCKDIR [-m MODE] [-p PIDFILE] "
	           "[-n PROCS] PROGRAM [[-n PROCS] PROGRAM ...]\n");
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A listening unix socket at path (an old socket file there is replaced),
 * or -1 with the reason logged. */
static int
listen_unix(const char *path, mode_t mode)
{
	struct sockaddr_un addr;
	int fd;

	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(addr.sun_path)) {
		say("socket path too long: %s", path);
		return -1;
	}
	strcpy(addr.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0) {
		say("socket: %s", strerror(errno));
		return -1;
	}
	if (unlink(path) != 0 && errno != ENOENT) {
		say("cannot remove %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
	    chmod(path, mode) != 0 || listen(fd, 128) != 0) {
		say("cannot listen on %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	/* Only the processes get it, as their fd 0. */
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	return fd;
}

/* Start p's process; false (logged) if fork fails. */
static bool
start_proc(struct proc *p, const sigset_t *orig_mask)
{
	pid_t pid = fork();

	if (pid < 0) {
		say("fork: %s", strerror(errno));
		return false;
	}
	if (pid == 0) {
		char *argv[2];

#ifdef __linux__
		/* No process outlives a supervisor that was killed hard. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
		if (dup2(p->prog->listen_fd, 0) < 0)
			_exit(127);
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		signal(SIGCHLD, SIG_DFL);
		sigprocmask(SIG_SETMASK, orig_mask, NULL);
		argv[0] = (char *)p->prog->path;
		argv[1] = NULL;
		execv(p->prog->path, argv);
		fprintf(stderr, "tollgate-spawn: cannot run %s: %s\n",
		        p->prog->path, strerror(errno));
		_exit(127);
	}
	p->pid = pid;
	p->start_ms = now_ms();
	p->restart_on_hup = false;
	say("started %s (pid %ld)", p->prog->path, (long)pid);
	return true;
}

/* Reap every ended process; when running, schedule its restart. */
static void
reap(bool stopping)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (int i = 0; i < nprocs; i++) {
			struct proc *p = &procs[i];
			long long ran;

			if (p->pid != pid)
				continue;
			p->pid = 0;
			ran = now_ms() - p->start_ms;
			if (WIFSIGNALED(status))
				say("%s (pid %ld) killed by signal %d",
				    p->prog->path, (long)pid, WTERMSIG(status));
			else if (!stopping || WEXITSTATUS(status) != 0)
				say("%s (pid %ld) exited with status %d",
				    p->prog->path, (long)pid,
				    WEXITSTATUS(status));
			p->due_ms = now_ms();
			if (!p->restart_on_hup && ran < RESTART_DELAY_MS)
				p->due_ms += RESTART_DELAY_MS;
			break;
		}
	}
}

static int
running(void)
{
	int n = 0;

	for (int i = 0; i < nprocs; i++)
		n += procs[i].pid != 0;
	return n;
}

static void
signal_all(int sig)
{
	for (int i = 0; i < nprocs; i++)
		if (procs[i].pid != 0)
			kill(procs[i].pid, sig);
}

/* SIGHUP: ask the first running process not yet replaced to finish; the
 * next one is asked once it has been started again, so that every program
 * keeps serving throughout. */
static void
hup_next(void)
{
	for (int i = 0; i < nprocs; i++) {
		struct proc *p = &procs[i];

		if (p->restart_on_hup) {
			if (p->pid != 0)
				kill(p->pid, SIGTERM);
			return;
		}
	}
}

int
main(int argc, char **argv)
{
	const char *sockdir = NULL, *pidfile = NULL;
	mode_t mode = 0660;
	int n = 2, status = 0;
	sigset_t mask, orig_mask;
	bool stopping = false, hup_pending = false;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if ((strcmp(a, "-d") == 0 || strcmp(a, "-m") == 0 ||
		     strcmp(a, "-p") == 0 || strcmp(a, "-n") == 0) &&
		    i + 1 < argc) {
			const char *v = argv[++i];
			char *end;
			long l;

			if (a[1] == 'd') {
				sockdir = v;
				continue;
			}
			if (a[1] == 'p') {
				pidfile = v;
				continue;
			}
			errno = 0;
			l = strtol(v, &end, a[1] == 'm' ? 8 : 10);
			if (errno != 0 || end == v || *end != '\0' ||
			    (a[1] == 'm' && (l < 0 || l > 0777)) ||
			    (a[1] == 'n' && (l < 1 || l > MAX_PROCS))) {
				say("bad value for %s: %s", a, v);
				return 2;
			}
			if (a[1] == 'm')
				mode = (mode_t)l;
			else
				n = (int)l;
			continue;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		}
		if (a[0] == '-') {
			usage(stderr);
			return 2;
		}
		if (nprograms == MAX_PROGRAMS || nprocs + n > MAX_PROCS) {
			say("too many programs or processes");
			return 2;
		}
		programs[nprograms].path = a;
		programs[nprograms].nprocs = n;
		programs[nprograms].listen_fd = -1;
		nprograms++;
		nprocs += n;
	}
	if (sockdir == NULL || nprograms == 0) {
		usage(stderr);
		return 2;
	}

	/* Signals are taken one at a time by sigtimedwait() below. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, &orig_mask);

	nprocs = 0;
	for (int i = 0; i < nprograms; i++) {
		struct program *pg = &programs[i];
		const char *base = strrchr(pg->path, '/');
		int len;

		base = base ? base + 1 : pg->path;
		if (access(pg->path, X_OK) != 0) {
			say("cannot run %s: %s", pg->path, strerror(errno));
			status = 1;
			goto cleanup;
		}
		len = snprintf(pg->sock, sizeof(pg->sock), "%s/%s.sock",
		               sockdir, base);
		if (len < 0 || (size_t)len >= sizeof(pg->sock)) {
			say("socket path too long: %s/%s.sock", sockdir, base);
			status = 1;
			goto cleanup;
		}
		pg->listen_fd = listen_unix(pg->sock, mode);
		if (pg->listen_fd < 0) {
			pg->sock[0] = '\0';
			status = 1;
			goto cleanup;
		}
		for (int k = 0; k < pg->nprocs; k++) {
			procs[nprocs].prog = pg;
			procs[nprocs].pid = 0;
			procs[nprocs].due_ms = 0;
			procs[nprocs].restart_on_hup = false;
			nprocs++;
		}
	}
	if (pidfile != NULL) {
		FILE *f = fopen(pidfile, "w");

		if (f == NULL || fprintf(f, "%ld\n", (long)getpid()) < 0 ||
		    fclose(f) != 0) {
			say("cannot write %s: %s", pidfile, strerror(errno));
			pidfile = NULL;
			status = 1;
			goto cleanup;
		}
	}

	for (;;) {
		long long now = now_ms(), next = now + 1000;
		struct timespec wait;
		siginfo_t info;
		int sig;

		if (!stopping) {
			for (int i = 0; i < nprocs; i++) {
				struct proc *p = &procs[i];

				if (p->pid != 0)
					continue;
				if (p->due_ms <= now) {
					if (!start_proc(p, &orig_mask))
						p->due_ms =
						        now + RESTART_DELAY_MS;
				}
				if (p->pid == 0 && p->due_ms < next)
					next = p->due_ms;
			}
			if (hup_pending) {
				hup_pending = false;
				hup_next();
			}
		} else if (running() == 0) {
			break;
		}
		if (next < now)
			next = now;
		wait.tv_sec = (time_t)((next - now) / 1000);
		wait.tv_nsec = (long)((next - now) % 1000) * 1000000;
		sig = sigtimedwait(&mask, &info, &wait);
		if (sig == SIGCHLD) {
			reap(stopping);
			/* The process just replaced was one of a SIGHUP's:
			 * the next one goes once this one is back. */
			for (int i = 0; i < nprocs; i++)
				if (procs[i].restart_on_hup) {
					hup_pending = true;
					break;
				}
		} else if (sig == SIGTERM || sig == SIGINT) {
			if (stopping) {
				say("second signal: killing the processes");
				signal_all(SIGKILL);
			} else {
				say("stopping %d processes", running());
				stopping = true;
				signal_all(SIGTERM);
			}
		} else if (sig == SIGHUP && !stopping) {
			say("restarting the processes one by one");
			for (int i = 0; i < nprocs; i++)
				procs[i].restart_on_hup = procs[i].pid != 0;
			hup_next();
		}
	}

cleanup:
	/* (A failure above happens before any process is started.) */
	for (int i = 0; i < nprograms; i++) {
		if (programs[i].listen_fd >= 0)
			close(programs[i].listen_fd);
		if (programs[i].sock[0] != '\0' && programs[i].listen_fd >= 0)
			unlink(programs[i].sock);
	}
	if (pidfile != NULL)
		unlink(pidfile);
	if (status == 0)
		say("stopped");
	return status;
}
