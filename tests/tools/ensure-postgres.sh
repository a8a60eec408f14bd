#!/bin/sh
# Starts the local PostgreSQL cluster when it is installed but stopped. The store tests use
# $LOGINWATCH_TEST_PG (default postgresql://postgres@127.0.0.1:5432/test, trust auth); without
# a server they skip, and fail under CI.
set -eu
url="${LOGINWATCH_TEST_PG:-postgresql://postgres@127.0.0.1:5432/test}"
ready() { command -v pg_isready >/dev/null 2>&1 && pg_isready -q -d "$url" 2>/dev/null; }
ready && exit 0
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ] && [ "$(id -u)" = 0 ]; then
    for version in $(ls /etc/postgresql); do
        pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
    done
    i=0
    while [ $i -lt 30 ]; do
        ready && exit 0
        sleep 1
        i=$((i + 1))
    done
fi
echo "postgres: no PostgreSQL answers at $url; the PostgreSQL store tests skip (and fail under CI)" >&2
