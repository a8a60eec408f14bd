#!/bin/sh
# Installs (or with --uninstall removes) the central side of loginwatch:
#   /opt/loginwatch                        a venv with loginwatch[central]
#   /usr/local/bin/loginwatch              the operator's command (a symlink)
#   /etc/loginwatch/loginwatch.toml        the central config (never overwritten)
#   /etc/systemd/system/loginwatch-worker@.service, loginwatch-digest.service
#   the system user `loginwatch` the units run as
# Idempotent: running it twice gives the same files. The broker and the units
# are left for the operator to start (the script prints the commands).
set -eu

usage() {
    cat <<'EOF'
usage: install-central.sh [--root DIR] [--config FILE] [--venv DIR] [--upgrade] [--uninstall]

  --root DIR      install below DIR instead of / (for tests and image builds;
                  no useradd/systemctl calls then)
  --config FILE   the central config (copied to /etc/loginwatch/loginwatch.toml
                  unless that exists)
  --venv DIR      a Python venv with loginwatch[central] installed (default
                  /opt/loginwatch, created with pip from this source tree when missing)
  --upgrade       pip-install this source tree into an existing venv again
  --uninstall     stop and remove the units, the command and a venv we created;
                  keep config, the store in /var/lib/loginwatch and the user
EOF
}

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=deploy/lib/files.sh
. "$here/lib/files.sh"
ROOT=""
CONFIG=""
VENV=/opt/loginwatch
UPGRADE=no
ACTION=install
while [ $# -gt 0 ]; do
    case $1 in
    --root) ROOT=${2:?--root needs a directory}; shift ;;
    --config) CONFIG=${2:?--config needs a file}; shift ;;
    --venv) VENV=${2:?--venv needs a directory}; shift ;;
    --upgrade) UPGRADE=yes ;;
    --uninstall) ACTION=uninstall ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
    shift
done
[ -z "$ROOT" ] || ROOT=$(cd "$ROOT" && pwd)

ETC_CONFIG=/etc/loginwatch/loginwatch.toml
UNITDIR=$ROOT/etc/systemd/system
UNITS="loginwatch-worker@.service loginwatch-digest.service"

say() { echo "install-central: $*"; }

live() { [ -z "$ROOT" ]; }
live_systemd() { live && [ -d /run/systemd/system ]; }


install_python() {
    if [ -x "$VENV/bin/loginwatch" ] && [ "$UPGRADE" = yes ]; then
        say "upgrading loginwatch in $VENV (restart the units afterwards)"
        "$VENV/bin/pip" install -q --upgrade "$here/..[central]"
    fi
    if [ ! -x "$VENV/bin/loginwatch" ]; then
        say "creating $ROOT$VENV (pip install $here/..[central])"
        python3 -m venv "$ROOT$VENV"
        "$ROOT$VENV/bin/pip" install -q "$here/..[central]"
        : >"$ROOT$VENV/.installed-by-loginwatch"
    fi
    mkdir -p "$ROOT/usr/local/bin"
    ln -sfn "$VENV/bin/loginwatch" "$ROOT/usr/local/bin/loginwatch"
}

install_user() {
    if ! live; then return; fi
    if ! getent passwd loginwatch >/dev/null; then
        useradd --system --user-group --home-dir /var/lib/loginwatch --no-create-home \
            --shell /usr/sbin/nologin loginwatch
        say "created the system user loginwatch"
    fi
}

install_config() {
    mkdir -p "$ROOT/etc/loginwatch"
    if [ ! -e "$ROOT$ETC_CONFIG" ]; then
        write_file "$ROOT$ETC_CONFIG" 0640 <"${CONFIG:-$here/loginwatch-central.toml}"
    fi
    # The workers read the config as `loginwatch`; secrets it names must be
    # owned by that user with mode 0600 (read_secret refuses wider ones).
    if live; then chgrp loginwatch "$ROOT/etc/loginwatch" "$ROOT$ETC_CONFIG"; fi
    chmod 0750 "$ROOT/etc/loginwatch"
}

install_units() {
    mkdir -p "$UNITDIR"
    for unit in $UNITS; do
        sed "s#/opt/loginwatch/#$VENV/#g" "$here/systemd/$unit" | write_file "$UNITDIR/$unit" 0644
    done
    if live_systemd; then systemctl daemon-reload; fi
}

next_steps() {
    cat <<EOF
install-central: next steps
  1. edit $ETC_CONFIG ([broker] url + password_file, [smtp], [[route]])
  2. loginwatch setup                       # queues and exchanges (or: loginwatch definitions)
  3. loginwatch host add NAME               # once per SSH host; prints its config
  4. systemctl enable --now loginwatch-worker@1 loginwatch-worker@2 loginwatch-digest
EOF
}

uninstall() {
    if live_systemd; then
        for unit in $(systemctl list-units --plain --no-legend 'loginwatch-worker@*' \
            loginwatch-digest.service 2>/dev/null | awk '{ print $1 }'); do
            systemctl disable --now "$unit" || true
        done
    fi
    for unit in $UNITS; do rm -f "$UNITDIR/$unit"; done
    if live_systemd; then systemctl daemon-reload; fi
    rm -f "$ROOT/usr/local/bin/loginwatch"
    if [ -f "$ROOT$VENV/.installed-by-loginwatch" ]; then rm -rf "${ROOT}$VENV"; fi
    say "kept ${ROOT}/etc/loginwatch, ${ROOT}/var/lib/loginwatch and the user loginwatch"
}

if [ "$ACTION" = uninstall ]; then
    uninstall
else
    install_python
    install_user
    install_config
    install_units
    next_steps
fi
