# shellcheck shell=bash
# script/lib.sh: helpers shared by script/server and script/test (sourced).

# The Debian packages tollgate needs to build, run and test.
# shellcheck disable=SC2034 # used by the scripts that source this file
TG_PACKAGES=(build-essential autoconf automake libtool pkg-config libfcgi-dev
	libcurl4-openssl-dev libjson-c-dev libmariadb-dev libyaml-dev
	mariadb-server mariadb-client lighttpd curl python3 valgrind)
# What bench/run needs besides: nginx as the fake upstream, wrk as the
# client (tests/e2e/bench_smoke.py runs it).
# shellcheck disable=SC2034
TG_BENCH_PACKAGES=(nginx-light wrk)
# Apache httpd for TOLLGATE_WEB=apache-* (mod_proxy_fcgi and mod_cgid come
# with apache2) and the Apache end-to-end tests.
# shellcheck disable=SC2034
TG_APACHE_PACKAGES=(apache2 libapache2-mod-fcgid)
# What make deb, make bundle and tests/packaging/run need besides:
# debootstrap for the clean Debian 12 roots, patchelf for the bundle's run
# paths (dpkg-dev and binutils come with build-essential).
# shellcheck disable=SC2034
TG_PACKAGING_PACKAGES=(debootstrap patchelf)
# A private 3-node Galera cluster for tests/e2e/galera.py: the library,
# and rsync for its state transfers (mariadb-server depends on both; named
# here because the tests need them, not the server).
# shellcheck disable=SC2034
TG_GALERA_PACKAGES=(galera-4 rsync)

tg_say() { printf '==> %s\n' "$*" >&2; }
tg_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# tg_install_missing PKG...: apt-get install the packages dpkg does not list
# as installed; apt-get update runs once, and only when something is missing.
tg_install_missing() {
	local p missing=()
	for p in "$@"; do
		if ! dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed'; then
			missing+=("$p")
		fi
	done
	((${#missing[@]})) || return 0
	tg_say "installing: ${missing[*]}"
	local sudo=()
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null || tg_die "missing packages (${missing[*]}) and not root"
		sudo=(sudo)
	fi
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q ||
		tg_die "apt-get update failed"
	# Servers are installed, not started: tollgate runs private instances
	# of them (MariaDB, lighttpd, Apache), and a system service taking
	# port 80 or 3306 is nobody's wish.  A policy-rc.d that refuses
	# starts does that, for this install only, unless one is there.
	local policy=/usr/sbin/policy-rc.d made_policy=0
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\n# tollgate: no service starts while installing\nexit 101\n' |
			"${sudo[@]}" tee "$policy" >/dev/null && "${sudo[@]}" chmod 755 "$policy" &&
			made_policy=1
	fi
	local rc=0
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends "${missing[@]}" || rc=$?
	[ "$made_policy" -eq 0 ] || "${sudo[@]}" rm -f "$policy"
	[ "$rc" -eq 0 ] || tg_die "apt-get install failed"
}

# tg_web_user NAME: make sure the system user NAME exists (as root: created
# without a home or a shell), for web servers that must not run as root.
tg_web_user() {
	local name=$1
	id -u "$name" >/dev/null 2>&1 && return 0
	[ "$(id -u)" -eq 0 ] || tg_die "user $name does not exist and we are not root"
	tg_say "creating the system user $name"
	useradd --system --user-group --no-create-home --home-dir /nonexistent \
		--shell /usr/sbin/nologin "$name" || id -u "$name" >/dev/null 2>&1 ||
		tg_die "useradd $name failed"
}

# tg_let_user_read USER PATH...: make each PATH readable by USER (a
# directory also traversable), as root: every directory above it that USER
# cannot pass gets o+x (passing, not listing), and PATH itself o+r (o+rx
# for a directory and an executable), saying what it changes.
tg_as_user() { # USER COMMAND...: run COMMAND as USER (from root)
	local user=$1
	shift
	setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups -- "$@"
}
tg_let_user_read() {
	local user=$1 path dir
	shift
	for path in "$@"; do
		if [ -d "$path" ]; then
			tg_as_user "$user" test -r "$path" -a -x "$path" && continue
		else
			tg_as_user "$user" test -r "$path" && continue
		fi
		dir=$(dirname "$path")
		local parts=()
		while [ "$dir" != / ]; do
			parts=("$dir" "${parts[@]}")
			dir=$(dirname "$dir")
		done
		for dir in "${parts[@]}"; do
			if ! tg_as_user "$user" test -x "$dir"; then
				tg_say "letting $user pass through $dir (chmod o+x)"
				chmod o+x "$dir" || tg_die "chmod o+x $dir failed"
			fi
		done
		if [ -d "$path" ] || [ -x "$path" ]; then
			tg_as_user "$user" test -r "$path" -a -x "$path" || chmod o+rx "$path"
		else
			tg_as_user "$user" test -r "$path" || chmod o+r "$path"
		fi
		tg_as_user "$user" test -r "$path" || tg_die "$user still cannot read $path"
	done
}

# tg_install_node: node and npm for the SDK tests (tests/sdk); on Debian 12
# the nodejs package is Node 18, enough for the pinned openai package.
tg_install_node() {
	if ! command -v node >/dev/null && ! command -v nodejs >/dev/null; then
		tg_install_missing nodejs npm
	elif ! command -v npm >/dev/null; then
		tg_install_missing npm
	fi
}

# tg_npm_ci DIR: `npm ci` in DIR (from its package-lock.json) unless its
# node_modules already matches the lock file.  A failure is reported, not
# fatal: the test that needs the packages then fails with the reason.
tg_npm_ci() {
	local dir=$1
	if [ -f "$dir/node_modules/.package-lock.json" ] &&
		[ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then
		return 0
	fi
	tg_say "npm ci (in $dir)"
	(cd "$dir" && npm ci --no-audit --no-fund) || {
		tg_say "warning: npm ci failed in $dir"
		return 1
	}
}

# tg_autoreconf SRCDIR: generate configure when missing or stale.
tg_autoreconf() {
	local src=$1
	if [ ! -x "$src/configure" ] || [ "$src/configure.ac" -nt "$src/configure" ] ||
		[ "$src/Makefile.am" -nt "$src/Makefile.in" ]; then
		tg_say "autoreconf -fi"
		(cd "$src" && autoreconf -fi) || tg_die "autoreconf failed"
	fi
}

# tg_configure SRCDIR BUILDDIR ARGS...: configure a VPATH build in BUILDDIR
# unless it is already configured with exactly these arguments.
tg_configure() {
	local src=$1 build=$2 stamp
	shift 2
	if [ -f "$src/config.status" ]; then
		# automake refuses VPATH builds of a tree configured in place.
		tg_say "the source tree is configured in place; make distclean there first"
		(cd "$src" && make distclean >/dev/null) || rm -f "$src/config.status"
	fi
	mkdir -p "$build"
	stamp="$*"
	if [ -f "$build/config.status" ] && [ -f "$build/.tg-configure-args" ] &&
		[ "$(cat "$build/.tg-configure-args")" = "$stamp" ] &&
		[ "$build/config.status" -nt "$src/configure" ]; then
		return 0
	fi
	tg_say "configure $* (in $build)"
	(cd "$build" && "$src/configure" "$@") || return 1
	printf '%s' "$stamp" >"$build/.tg-configure-args"
}

# tg_fill_template IN OUT NAME=VALUE...: replace each @NAME@ by VALUE.
tg_fill_template() {
	local in=$1 out=$2 text kv name value
	shift 2
	shopt -u patsub_replacement 2>/dev/null || true
	text=$(<"$in")
	for kv in "$@"; do
		name=${kv%%=*}
		value=${kv#*=}
		text=${text//@"$name"@/$value}
	done
	if [[ $text =~ @[A-Z_]+@ ]]; then
		tg_die "unfilled placeholder ${BASH_REMATCH[0]} in $in"
	fi
	printf '%s\n' "$text" >"$out"
}

# tg_sbin NAME: path of a server binary (often in /usr/sbin, not in PATH).
tg_sbin() {
	PATH="$PATH:/usr/sbin:/usr/local/sbin:/sbin" command -v "$1" ||
		tg_die "$1 not found"
}
