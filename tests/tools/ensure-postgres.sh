#!/bin/sh
# Makes the PostgreSQL the store tests use answer: $LOGINWATCH_TEST_PG (default
# postgresql://postgres@127.0.0.1:5432/test). When it does not and a local cluster is
# installed (Debian's postgresql, which system-deps.sh installs), as root: start the
# cluster, create the database `test`, and when the server asks role postgres for a password
# over TCP (Debian's scram-sha-256 for 127.0.0.1), give it a random one kept in this user's
# ~/.pgpass (0600), where libpq finds it; peer logins over the socket stay as they were.
# Without a server the PostgreSQL store tests skip, and fail under CI.
set -eu
url="${LOGINWATCH_TEST_PG:-postgresql://postgres@127.0.0.1:5432/test}"
# -w: never prompt for a password (a server that wants one and has none fails at once).
answers() {
    command -v psql >/dev/null 2>&1 &&
        PGCONNECT_TIMEOUT=5 psql -w -qAtX -d "$url" -c 'SELECT 1' </dev/null >/dev/null 2>&1
}
say() { echo "postgres: $*"; }
answers && exit 0
if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ ! -d /etc/postgresql ] || [ "$(id -u)" != 0 ]; then
    echo "postgres: no PostgreSQL answers at $url; the PostgreSQL store tests skip (and fail under CI)" >&2
    exit 0
fi
# From /, which postgres can enter (a clone under /root is out of its reach).
as_postgres() { (cd / && runuser -u postgres -- psql -qAtX "$@"); }
for dir in /etc/postgresql/*/; do
    version=$(basename "$dir")
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        systemctl start "postgresql@$version-main" 2>/dev/null || true
    else
        pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
    fi
done
i=0
until as_postgres -c 'SELECT 1' >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -lt 30 ] || { echo "postgres: the local cluster did not start within 30 s" >&2; exit 1; }
    sleep 1
done
case $url in
postgresql://postgres@127.0.0.1:5432/test) ;;
*) echo "postgres: $url does not answer; set up that server yourself (or unset LOGINWATCH_TEST_PG)" >&2; exit 1 ;;
esac
if [ -z "$(as_postgres -c "SELECT 1 FROM pg_database WHERE datname = 'test'")" ]; then
    say "creating the database test"
    as_postgres -c 'CREATE DATABASE test'
fi
if ! answers; then
    say "giving role postgres a password for TCP logins, kept in $HOME/.pgpass"
    password=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
    umask 077
    touch "$HOME/.pgpass"
    grep -v '^127\.0\.0\.1:5432:\*:postgres:' "$HOME/.pgpass" >"$HOME/.pgpass.new" || true
    echo "127.0.0.1:5432:*:postgres:$password" >>"$HOME/.pgpass.new"
    mv "$HOME/.pgpass.new" "$HOME/.pgpass"
    # On stdin, never in argv: ps shows argv to every user.
    printf "ALTER ROLE postgres PASSWORD '%s'\n" "$password" | as_postgres >/dev/null
fi
answers || { echo "postgres: $url still does not answer" >&2; exit 1; }
