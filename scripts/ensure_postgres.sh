#!/usr/bin/env bash
# Make sure a PostgreSQL server is on this machine for the tests of the PostgreSQL store (tests/pg_cluster.py
# starts a throwaway one): Debian's `postgresql` package, installed with apt-get when no server is found. As root,
# also makes sure the `postgres` user exists (the server refuses to run as root). Prints the bin directory on
# success. With no server and no way to install one it fails loudly (exit 1, saying why): the tests must not skip.
set -euo pipefail

find_bindir() {
    local dir bindir
    # Debian's layout, newest version first: /usr/lib/postgresql/<version>/bin.
    for dir in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k5 -V -r); do
        if [ -x "$dir/postgres" ]; then
            echo "$dir"
            return 0
        fi
    done
    if command -v pg_config >/dev/null 2>&1; then
        bindir="$(pg_config --bindir 2>/dev/null || true)"
        if [ -n "$bindir" ] && [ -x "$bindir/postgres" ]; then
            echo "$bindir"
            return 0
        fi
    fi
    if command -v postgres >/dev/null 2>&1; then
        dirname "$(command -v postgres)"
        return 0
    fi
    return 1
}

needs_user() {
    [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1
}

if ! find_bindir >/dev/null; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            SUDO="sudo -n"
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1 || { [ "$(id -u)" != 0 ] && [ -z "$SUDO" ]; }; then
        echo "PostgreSQL is not installed and cannot be installed here (no apt-get, or not root and no sudo):" \
            "install Debian's 'postgresql' package, or set PG_BIN to a directory holding postgres and initdb," \
            "to run the PostgreSQL store's tests." >&2
        exit 1
    fi
    echo "Installing postgresql with apt-get (once: the store's tests run against a real PostgreSQL) ..." >&2
    # Quiet, non-interactive and logged: only the log's tail is shown when it fails.
    LOG="$(mktemp)"
    trap 'rm -f -- "$LOG"' EXIT
    if ! { $SUDO apt-get update -qq \
        && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql; } \
        >"$LOG" 2>&1; then
        echo "apt-get could not install postgresql:" >&2
        tail -n 20 "$LOG" >&2
        exit 1
    fi
fi

if needs_user; then
    # The package creates it; a server found elsewhere may have come without one.
    if ! useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres; then
        echo "running as root and could not create the 'postgres' user that PostgreSQL must run as" >&2
        exit 1
    fi
fi

if ! find_bindir; then
    echo "apt-get installed postgresql, but no postgres binary is in /usr/lib/postgresql/*/bin or on PATH" >&2
    exit 1
fi
