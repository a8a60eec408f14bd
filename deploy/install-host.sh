#!/bin/sh
# Installs (or with --uninstall removes) loginwatch on one SSH host:
#   /usr/local/sbin/loginwatch-hook        the PAM hook (runs the venv's Python with -I)
#   /etc/loginwatch/loginwatch.toml        the host's config (never overwritten)
#   /var/spool/loginwatch                  the spool (0700 root)
#   /etc/systemd/system/loginwatch-flush.{service,timer}
#   /etc/pam.d/sshd                        a session hook, and a failed-password hook
# Idempotent: running it twice gives the same files. The PAM file is checked
# before it atomically replaces the live one, and --uninstall gives back its
# original bytes (a copy is kept in /var/lib/loginwatch/install/).
set -eu

usage() {
    cat <<'EOF'
usage: install-host.sh [--root DIR] [--config FILE] [--config-path PATH]
                       [--password-file FILE] [--venv DIR] [--upgrade] [--no-failures]
                       [--check | --uninstall]

  --root DIR      install below DIR instead of / (for tests and image builds;
                  no systemctl calls then)
  --config FILE   the host's config, e.g. the snippet `loginwatch host add` printed
                  (copied to /etc/loginwatch/loginwatch.toml unless that exists)
  --config-path PATH  where the host's config lives (default
                  /etc/loginwatch/loginwatch.toml; on the central machine, which has its
                  own config there, use e.g. /etc/loginwatch/host.toml)
  --password-file FILE  the broker password `loginwatch host add` wrote (copied to
                  /etc/loginwatch/broker.password, mode 0600, replacing an older one)
  --venv DIR      a Python venv with loginwatch installed (default /opt/loginwatch,
                  created with pip from this source tree when missing)
  --upgrade       pip-install this source tree into an existing venv again
  --no-failures   only the session hook: do not report failed passwords
  --check         exit 1 if /etc/pam.d/sshd differs from what an install would write
                  (e.g. common-auth changed by pam-auth-update); changes nothing
  --uninstall     remove the hook, units and PAM lines; keep config and spool
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
VENV=/opt/loginwatch
UPGRADE=no
FAILURES=yes
ACTION=install
while [ $# -gt 0 ]; do
    case $1 in
    --root) ROOT=${2:?--root needs a directory}; shift ;;
    --config) CONFIG=${2:?--config needs a file}; shift ;;
    --config-path) ETC_CONFIG=${2:?--config-path needs a path}; shift ;;
    --password-file) PASSWORD_FILE=${2:?--password-file needs a file}; shift ;;
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

HOOK=/usr/local/sbin/loginwatch-hook
STATE=$ROOT/var/lib/loginwatch/install
# Later runs (--check, a re-install) keep the config path the first install chose.
if [ -z "$ETC_CONFIG" ] && [ -f "$STATE/config-path" ]; then
    ETC_CONFIG=$(cat "$STATE/config-path")
fi
ETC_CONFIG=${ETC_CONFIG:-/etc/loginwatch/loginwatch.toml}
PAMDIR=$ROOT/etc/pam.d
PAMFILE=$PAMDIR/sshd
UNITDIR=$ROOT/etc/systemd/system
SESSION_LINE="session optional pam_exec.so quiet $HOOK --config $ETC_CONFIG"
AUTH_LINE="auth [default=ignore] pam_exec.so quiet $HOOK --config $ETC_CONFIG --outcome failure"

say() { echo "install-host: $*"; }
die() { echo "install-host: $*" >&2; exit 1; }

# live_systemd: true when we manage the running machine and systemd runs it.
live_systemd() { [ -z "$ROOT" ] && [ -d /run/systemd/system ]; }


install_python() {
    if [ -x "$VENV/bin/python" ]; then
        PYTHON=$VENV/bin/python
        if [ "$UPGRADE" = yes ]; then
            say "upgrading loginwatch in $VENV"
            "$VENV/bin/pip" install -q --upgrade "$here/.."
        fi
        return
    fi
    say "creating $ROOT$VENV (pip install $here/..)"
    python3 -m venv "$ROOT$VENV"
    "$ROOT$VENV/bin/pip" install -q "$here/.."
    : >"$ROOT$VENV/.installed-by-loginwatch"
    PYTHON=$VENV/bin/python
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
    mkdir -p "$ROOT/etc/loginwatch" "$ROOT$(dirname "$ETC_CONFIG")" "$ROOT/var/spool/loginwatch"
    chmod 0700 "$ROOT/var/spool/loginwatch"
    if [ -n "$PASSWORD_FILE" ]; then
        write_file "$ROOT/etc/loginwatch/broker.password" 0600 <"$PASSWORD_FILE"
    fi
    if [ -e "$ROOT$ETC_CONFIG" ]; then return; fi
    if [ -n "$CONFIG" ]; then
        write_file "$ROOT$ETC_CONFIG" 0600 <"$CONFIG"
    else
        write_file "$ROOT$ETC_CONFIG" 0600 <"$here/loginwatch-host.toml"
        say "edit ${ROOT}$ETC_CONFIG: [broker] url and password_file (see loginwatch host add)"
    fi
}

install_units() {
    mkdir -p "$UNITDIR"
    for unit in loginwatch-flush.service loginwatch-flush.timer; do
        sed "s#/etc/loginwatch/loginwatch.toml#$ETC_CONFIG#g" "$here/systemd/$unit" \
            | write_file "$UNITDIR/$unit" 0644
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
    # The first install keeps the original bytes for --uninstall.
    [ -f "$STATE/sshd.orig" ] || cp -p "$PAMFILE" "$STATE/sshd.orig"
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
        pam_strip "$PAMFILE" >"$STATE/sshd.stripped"
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
    if [ -f "$ROOT$VENV/.installed-by-loginwatch" ]; then rm -rf "${ROOT}$VENV"; fi
    rm -f "$STATE/config-path"
    rmdir "$STATE" 2>/dev/null || true
    say "kept ${ROOT}/etc/loginwatch and ${ROOT}/var/spool/loginwatch (unsent events)"
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
    install_python
    install_hook
    install_config
    install_units
    install_pam
fi
