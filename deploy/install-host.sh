#!/bin/sh
# Installs (or with --uninstall removes) loginwatch on one SSH host:
#   /opt/loginwatch-host                   a venv with loginwatch (unless --venv)
#   /usr/local/sbin/loginwatch-hook        the PAM hook (runs the venv's Python with -I)
#   /etc/loginwatch/host.toml              the host's config (never overwritten)
#   /etc/loginwatch/host.password          its broker password (0600 root)
#   /var/spool/loginwatch                  the spool (0700 root; the config's [spool] dir)
#   /etc/systemd/system/loginwatch-flush.{service,timer}
#   /etc/pam.d/sshd                        a session hook, and a failed-password hook
#   /var/lib/loginwatch-host               what this script installed (0700 root)
# None of these is a file of install-central.sh (/opt/loginwatch,
# /etc/loginwatch/loginwatch.toml, broker.password, /var/lib/loginwatch), so
# the central machine can be an SSH host too, installed in either order.
# Idempotent: running it twice gives the same files. The PAM file is checked
# before it atomically replaces the live one, and --uninstall gives back its
# original bytes (a copy is kept in /var/lib/loginwatch-host/).
set -eu
# Whatever umask the operator's shell has (000 after a careless `umask 0`), what
# this script makes is root's alone to change: a world-writable /etc/loginwatch,
# /usr/local/sbin or venv would let any user swap the config or the code that
# PAM runs as root at every login. Files that must be private get their own
# tighter mode (write_file).
umask 022

usage() {
    cat <<'EOF'
usage: install-host.sh [--root DIR] [--config FILE] [--config-path PATH]
                       [--password-file FILE] [--password-path PATH] [--venv DIR]
                       [--upgrade] [--no-failures] [--check | --uninstall]

  --root DIR      install below DIR instead of / (for tests and image builds;
                  no systemctl calls then)
  --config FILE   the host's config, e.g. the snippet `loginwatch host add` printed
                  (copied to the config path unless a file is there already)
  --config-path PATH  where the host's config lives (default /etc/loginwatch/host.toml;
                  a later run without it keeps the path the first one chose)
  --password-file FILE  the broker password `loginwatch host add` wrote (copied to the
                  password path, mode 0600, replacing one this script wrote before)
  --password-path PATH  where the password goes (default: the config's [broker]
                  password_file, else beside the config: /etc/loginwatch/host.password)
  --venv DIR      a Python venv with loginwatch installed (default /opt/loginwatch-host,
                  created with pip from this source tree when missing, its dependencies
                  at the versions requirements/host.txt pins)
  --upgrade       pip-install this source tree (and requirements/host.txt's pins) into
                  an existing venv again
  --no-failures   only the session hook: do not report failed passwords
  --check         exit 1 if /etc/pam.d/sshd differs from what an install would write
                  (e.g. common-auth changed by pam-auth-update); changes nothing
  --uninstall     remove the hook, units, PAM lines and a venv this script created;
                  keep config, password and spool
EOF
}

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=deploy/lib/files.sh
. "$here/lib/files.sh"
# shellcheck source=deploy/lib/pam.sh
. "$here/lib/pam.sh"

ROOT=""
CONFIG=""
ETC_CONFIG=""
PASSWORD_FILE=""
PASSWORD_PATH=""
VENV=""
UPGRADE=no
FAILURES=yes
ACTION=install
while [ $# -gt 0 ]; do
    case $1 in
    --root) ROOT=${2:?--root needs a directory}; shift ;;
    --config) CONFIG=${2:?--config needs a file}; shift ;;
    --config-path) ETC_CONFIG=${2:?--config-path needs a path}; shift ;;
    --password-file) PASSWORD_FILE=${2:?--password-file needs a file}; shift ;;
    --password-path) PASSWORD_PATH=${2:?--password-path needs a path}; shift ;;
    --venv) VENV=${2:?--venv needs a directory}; shift ;;
    --no-failures) FAILURES=no ;;
    --upgrade) UPGRADE=yes ;;
    --uninstall) ACTION=uninstall ;;
    --check) ACTION=check ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
    shift
done
[ -z "$ROOT" ] || ROOT=$(cd "$ROOT" && pwd)

say() { echo "install-host: $*"; }
die() { echo "install-host: $*" >&2; exit 1; }

HOOK=/usr/local/sbin/loginwatch-hook
# Root's alone: not below /var/lib/loginwatch, which belongs to the service user
# `loginwatch` on a central machine (systemd's StateDirectory= even chowns it
# recursively), who could otherwise swap the PAM file --uninstall restores.
STATE=$ROOT/var/lib/loginwatch-host
LEGACY_STATE=$ROOT/var/lib/loginwatch/install
MARKER=.installed-by-install-host
if [ ! -d "$STATE" ] && [ -d "$LEGACY_STATE" ]; then
    mkdir -p "$(dirname "$STATE")"
    mv "$LEGACY_STATE" "$STATE"
    say "moved ${LEGACY_STATE#"$ROOT"} to ${STATE#"$ROOT"}"
fi
# recalled NAME: what the first install chose (later runs, --check, --uninstall keep it).
recalled() { if [ -f "$STATE/$1" ]; then cat "$STATE/$1"; fi; }
# An older install kept its config in loginwatch.toml and said nothing of the rest.
[ -n "$ETC_CONFIG" ] || ETC_CONFIG=$(recalled config-path)
ETC_CONFIG=${ETC_CONFIG:-/etc/loginwatch/host.toml}
[ -n "$VENV" ] || VENV=$(recalled venv)
VENV_GIVEN=${VENV:+yes} # by --venv, or by the run that recorded it
VENV=${VENV:-/opt/loginwatch-host}
[ -n "$PASSWORD_PATH" ] || PASSWORD_PATH=$(recalled password-path)
PAMDIR=$ROOT/etc/pam.d
PAMFILE=$PAMDIR/sshd
UNITDIR=$ROOT/etc/systemd/system
SESSION_LINE="session optional pam_exec.so quiet $HOOK --config $ETC_CONFIG"
AUTH_LINE="auth [default=ignore] pam_exec.so quiet $HOOK --config $ETC_CONFIG --outcome failure"

# live_systemd: true when we manage the running machine and systemd runs it.
live_systemd() { [ -z "$ROOT" ] && [ -d /run/systemd/system ]; }


install_python() {
    PYTHON=$VENV/bin/python
    if [ -x "$ROOT$VENV/bin/python" ]; then
        RUNPY=$ROOT$VENV/bin/python
    elif [ -n "$ROOT" ] && [ "$VENV_GIVEN" = yes ] && [ -x "$VENV/bin/python" ]; then
        RUNPY=$VENV/bin/python # a venv outside the tree (tests, image builds)
    else
        say "creating $ROOT$VENV (pip install $here/.. with requirements/host.txt's pins)"
        python3 -m venv "$ROOT$VENV"
        : >"$ROOT$VENV/$MARKER"
        pip_install_locked "$ROOT$VENV/bin/python" "$here/.." host.txt
        RUNPY=$ROOT$VENV/bin/python
        return
    fi
    if [ "$UPGRADE" = yes ]; then
        say "upgrading loginwatch in $VENV"
        pip_install_locked "$RUNPY" "$here/.." host.txt --upgrade
    fi
}

# plain_path WHAT PATH: PATH is absolute and safe to write into a PAM line, a
# unit file and a sed expression (no space, quote, %, #, & or backslash).
plain_path() {
    case $2 in
    "" | /*[!A-Za-z0-9._/@+-]* | *//* | */../* | */.. | [!/]*)
        die "$1 $2: not a plain absolute path (letters, digits and . _ - + @ /)" ;;
    esac
}

# remember NAME VALUE: for later runs, --check and --uninstall.
remember() {
    [ -d "$STATE" ] || { mkdir -p "$(dirname "$STATE")" && mkdir -m 0700 "$STATE"; }
    printf '%s\n' "$2" >"$STATE/$1"
}

# read_config: SPOOL_DIR and CONFIG_PASSWORD, as the hook will read them from the
# installed config (the project's own parser, defaults included; no shell eval).
read_config() {
    values=$("$RUNPY" -I -c '
import sys
from schemas.config import load_config
from schemas.errors import LoginwatchError
try:
    config = load_config(sys.argv[1])
except LoginwatchError as exc:
    sys.exit(f"install-host: {exc}")
for key, value in (("[spool] dir", config.spool.dir),
                   ("[broker] password_file", config.broker.password_file or "")):
    if not value.isprintable():
        sys.exit(f"install-host: {sys.argv[1]}: {key} {value!r}: not a plain absolute path")
    print(value)
' "$ROOT$ETC_CONFIG") || exit 1
    SPOOL_DIR=$(printf '%s\n' "$values" | sed -n 1p)
    CONFIG_PASSWORD=$(printf '%s\n' "$values" | sed -n 2p)
    plain_path "$ETC_CONFIG: [spool] dir" "$SPOOL_DIR"
    [ -z "$CONFIG_PASSWORD" ] || plain_path "$ETC_CONFIG: [broker] password_file" "$CONFIG_PASSWORD"
}

# The hook is started as root with the PAM environment: -I makes Python ignore
# PYTHON* variables and the user's site directory.
install_hook() {
    mkdir -p "$ROOT$(dirname "$HOOK")"
    write_file "$ROOT$HOOK" 0755 <<EOF
#!$PYTHON -I
"""loginwatch-hook, installed by install-host.sh."""
import sys

from producer.hook import main

sys.exit(main())
EOF
}

install_config() {
    mkdir -p "$ROOT$(dirname "$ETC_CONFIG")"
    if [ ! -e "$ROOT$ETC_CONFIG" ]; then
        write_file "$ROOT$ETC_CONFIG" 0600 <"${CONFIG:-$here/loginwatch-host.toml}"
        [ -n "$CONFIG" ] || say "edit ${ROOT}$ETC_CONFIG: [broker] url (see loginwatch host add)"
    elif [ -n "$CONFIG" ] && [ -z "$(recalled config-path)" ] \
        && ! cmp -s "$CONFIG" "$ROOT$ETC_CONFIG"; then
        # Not ours, e.g. the central side's config: never take it over.
        die "$ETC_CONFIG exists and is not $CONFIG (the central config?): choose --config-path"
    fi
    remember config-path "$ETC_CONFIG"
    read_config
    install_password
    install_spool
}

# The password sits where the config says, else beside the config; a file there
# that this script did not write (the central side's broker.password on a
# shared machine) is never replaced.
install_password() {
    from_config=no
    if [ -z "$PASSWORD_PATH" ]; then
        PASSWORD_PATH=${CONFIG_PASSWORD:-${ETC_CONFIG%.toml}.password}
        from_config=yes
    elif [ -n "$CONFIG_PASSWORD" ] && [ "$CONFIG_PASSWORD" != "$PASSWORD_PATH" ]; then
        die "$ETC_CONFIG reads password_file = $CONFIG_PASSWORD, not $PASSWORD_PATH: make them one"
    fi
    plain_path --password-path "$PASSWORD_PATH"
    [ -n "$PASSWORD_FILE" ] || return 0
    # The config says where root writes the file: keep that to loginwatch's own
    # directories unless the operator says so (/etc/cron.d/x would be run).
    case $from_config:$PASSWORD_PATH in
    no:* | yes:/etc/loginwatch/* | yes:"$(dirname "$ETC_CONFIG")"/*) ;;
    *) die "$ETC_CONFIG: password_file = $PASSWORD_PATH is outside /etc/loginwatch:" \
        "give --password-path $PASSWORD_PATH if that is where it belongs" ;;
    esac
    dest=$ROOT$PASSWORD_PATH
    if [ -e "$dest" ] && [ "$(recalled password-path)" != "$PASSWORD_PATH" ] \
        && ! cmp -s "$PASSWORD_FILE" "$dest"; then
        die "$PASSWORD_PATH exists and install-host.sh did not write it (the central side's?):" \
            "give the host its own, e.g. password_file = \"${ETC_CONFIG%.toml}.password\""
    fi
    mkdir -p "$(dirname "$dest")"
    write_file "$dest" 0600 0:0 <"$PASSWORD_FILE"
    remember password-path "$PASSWORD_PATH"
}

install_spool() {
    dir=$ROOT$SPOOL_DIR
    # The hook opens the spool with O_NOFOLLOW: behind a symlink, every event would be lost.
    [ ! -L "$dir" ] || die "[spool] dir $SPOOL_DIR is a symlink: name the directory itself"
    if [ ! -d "$dir" ]; then
        mkdir -p "$(dirname "$dir")"
        mkdir -m 0700 "$dir"
    elif [ "$(stat -c %u "$dir")" != 0 ] || [ -n "$(find "$dir" -maxdepth 0 -perm /077)" ]; then
        # Never chmod a directory that exists: [spool] dir = "/etc" must not become 0700,
        # nor writable to the flush unit. A spool of its own is root's, 0700.
        die "[spool] dir $SPOOL_DIR: not a spool of its own (owner $(stat -c %U "$dir")," \
            "mode $(stat -c %a "$dir"); a spool is root's, mode 0700)"
    fi
}

install_units() {
    mkdir -p "$UNITDIR"
    for unit in loginwatch-flush.service loginwatch-flush.timer; do
        # ProtectSystem=strict: the flush may write only the spool the config names.
        sed -e "s#/etc/loginwatch/loginwatch.toml#$ETC_CONFIG#g" \
            -e "s#^ReadWritePaths=/var/spool/loginwatch\$#ReadWritePaths=$SPOOL_DIR#" \
            "$here/systemd/$unit" | write_file "$UNITDIR/$unit" 0644
    done
    if live_systemd; then
        systemctl daemon-reload
        systemctl enable --now loginwatch-flush.timer
    fi
}

# check_user_env: exits 1, having changed nothing, when the user's
# ~/.pam_environment (or any text a user wrote) reaches the PAM environment
# before the session hook could run (pam_refusal says where and why).
check_user_env() {
    [ -f "$PAMFILE" ] || die "${PAMFILE}: missing (is openssh-server installed?)"
    if why=$(pam_refusal "$ROOT" "$PAMFILE" "${PAMFILE#"$ROOT"}"); then
        die "refusing to install, nothing changed: $why"
    fi
}

# new_pam_file OUT: the PAM file as we want it, from the file without our blocks.
new_pam_file() {
    pam_strip "$PAMFILE" >"$1.base"
    if [ "$FAILURES" = no ]; then
        cp "$1.base" "$1.auth"
    elif ! pam_add_auth "$1.base" "$PAMDIR/common-auth" "$AUTH_LINE" >"$1.auth"; then
        say "failed passwords will not be reported (see above)"
        cp "$1.base" "$1.auth"
    fi
    session=$SESSION_LINE
    reader=$(pam_user_env "$ROOT" "$1.base" "${PAMFILE#"$ROOT"}" | grep '^session' | head -1) || true
    if [ -n "$reader" ]; then
        # At close_session the PAM environment still holds what pam_env read
        # from the user's ~/.pam_environment at open (LD_PRELOAD, PYTHONPATH…):
        # a hook run then would run as root with the user's variables.
        session="session optional pam_exec.so quiet type=open_session $HOOK --config $ETC_CONFIG"
        what=$(printf '%s' "$reader" | cut -f3)
        say "$(printf '%s' "$reader" | cut -f4) runs pam_env.so ($what):" \
            "the hook goes before it, at open_session only: logins only, no logout events"
        say "  ($(pam_fix "$what") and run this again to get logout events too)"
    fi
    # Before the first session line that reaches pam_env: at open_session the
    # hook's environment then holds nothing pam_env read, from any file.
    pam_add_session "$1.auth" "$session" "$(pam_session_hook_line "$ROOT" "$1.auth")" >"$1"
    rm -f "$1.base" "$1.auth"
}

install_pam() {
    [ -f "$PAMFILE" ] || die "${PAMFILE}: missing (is openssh-server installed?)"
    mkdir -p "$STATE"
    printf '%s\n' "$ETC_CONFIG" >"$STATE/config-path"
    # --uninstall gives back the original: the live file without our blocks as
    # it is *now*. Kept from the first run only, it would undo what the operator
    # changed since: a line fixed after a run that failed half way, an edit
    # between two runs.
    if ! grep -q "^$PAM_BEGIN" "$PAMFILE"; then
        cp -p "$PAMFILE" "$STATE/sshd.orig"
    else
        pam_strip "$PAMFILE" >"$STATE/sshd.base"
        if [ ! -f "$STATE/sshd.orig" ] || ! cmp -s "$STATE/sshd.base" "$STATE/sshd.orig"; then
            cp -p "$PAMFILE" "$STATE/sshd.orig"
            cat "$STATE/sshd.base" >"$STATE/sshd.orig"
        fi
        rm -f "$STATE/sshd.base"
    fi
    new=$STATE/sshd.new
    new_pam_file "$new"
    pam_check "$new" "$PAMDIR" || die "refusing to install a PAM file that fails the check: $new"
    if cmp -s "$new" "$PAMFILE"; then
        rm -f "$new"
        say "${PAMFILE#"$ROOT"} already up to date"
        return
    fi
    # cp -p first keeps the live file's owner and mode on the replacement.
    cp -p "$PAMFILE" "$PAMFILE.loginwatch.$$"
    cat "$new" >"$PAMFILE.loginwatch.$$"
    mv -f "$PAMFILE.loginwatch.$$" "$PAMFILE"
    mv -f "$new" "$STATE/sshd.installed"
    say "updated ${PAMFILE#"$ROOT"}"
}

uninstall_pam() {
    [ -f "$PAMFILE" ] || return 0
    if [ -f "$STATE/sshd.installed" ] && cmp -s "$PAMFILE" "$STATE/sshd.installed"; then
        # Untouched since we installed: the original bytes, exactly.
        cp -p "$STATE/sshd.orig" "$PAMFILE.loginwatch.$$"
    elif ! grep -q "^$PAM_BEGIN" "$PAMFILE"; then
        say "${PAMFILE#"$ROOT"} has no loginwatch lines"
        return 0
    else
        # Edited since: drop only our blocks, keep the operator's changes.
        pam_strip "$PAMFILE" "${PAMFILE#"$ROOT"}" >"$STATE/sshd.stripped" ||
            die "kept ${PAMFILE#"$ROOT"} as it is (see above)"
        pam_check "$STATE/sshd.stripped" "$PAMDIR" || die "stripped PAM file fails the check"
        cp -p "$PAMFILE" "$PAMFILE.loginwatch.$$"
        cat "$STATE/sshd.stripped" >"$PAMFILE.loginwatch.$$"
        rm -f "$STATE/sshd.stripped"
    fi
    mv -f "$PAMFILE.loginwatch.$$" "$PAMFILE"
    rm -f "$STATE/sshd.orig" "$STATE/sshd.installed"
    say "restored ${PAMFILE#"$ROOT"}"
}

uninstall() {
    uninstall_pam
    if live_systemd; then
        systemctl disable --now loginwatch-flush.timer 2>/dev/null || true
    fi
    rm -f "$UNITDIR/loginwatch-flush.service" "$UNITDIR/loginwatch-flush.timer" "$ROOT$HOOK"
    if live_systemd; then systemctl daemon-reload; fi
    # Only a venv this script made: the central side's /opt/loginwatch has a marker
    # of its own, and one from an older installer could be either side's.
    if [ -f "$ROOT$VENV/$MARKER" ]; then
        rm -rf -- "$ROOT${VENV:?}"
        say "removed $VENV"
    elif [ -f "$ROOT$VENV/.installed-by-loginwatch" ]; then
        say "kept $VENV: an older installer made it, maybe for the central side too"
    fi
    password=$(recalled password-path)
    rm -f "$STATE/config-path" "$STATE/password-path" "$STATE/venv"
    rmdir "$STATE" 2>/dev/null || true
    say "kept $ETC_CONFIG${password:+, $password} and the spool (unsent events)"
}

# check_pam: is the live PAM file what an install would write now?
check_pam() {
    mkdir -p "$STATE"
    new_pam_file "$STATE/sshd.check" >/dev/null
    if cmp -s "$STATE/sshd.check" "$PAMFILE"; then
        rm -f "$STATE/sshd.check"
        say "${PAMFILE#"$ROOT"} is up to date"
        return 0
    fi
    diff -u "$PAMFILE" "$STATE/sshd.check" || true
    rm -f "$STATE/sshd.check"
    say "${PAMFILE#"$ROOT"} differs from what install-host.sh would write: run it again"
    return 1
}

if [ "$ACTION" = uninstall ]; then
    uninstall
elif [ "$ACTION" = check ]; then
    check_user_env
    check_pam
else
    check_user_env
    plain_path --config-path "$ETC_CONFIG"
    # The venv's python becomes the hook's #! line: a space or newline there
    # would break (or add lines to) the script PAM runs as root.
    plain_path --venv "$VENV"
    install_python
    remember venv "$VENV"
    install_config
    install_hook
    install_units
    install_pam
fi
