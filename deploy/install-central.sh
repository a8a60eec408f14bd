#!/bin/sh
# Installs (or with --uninstall removes) the central side of loginwatch:
#   /opt/loginwatch                        a venv with loginwatch[central]
#   /usr/local/bin/loginwatch              the operator's command (a symlink)
#   /etc/loginwatch/loginwatch.toml        the central config (never overwritten)
#   /var/lib/loginwatch                    the store (owner loginwatch, 0750)
#   /etc/systemd/system/loginwatch-worker@.service, loginwatch-digest.service
#   /etc/rabbitmq/conf.d/60-loginwatch.conf   the broker's limits (where RabbitMQ is
#                                          installed: max_message_size)
#   the system user `loginwatch` the units run as
# None of these is a file of install-host.sh (/opt/loginwatch-host,
# /etc/loginwatch/host.toml, host.password, /var/lib/loginwatch-host), so the
# central machine can be an SSH host too, installed in either order.
# Idempotent: running it twice gives the same files. The broker and the units
# are left for the operator to start (the script prints the commands).
set -eu
# Whatever umask the operator's shell has (000 after a careless `umask 0`), what
# this script makes is root's alone to change: a world-writable /etc/loginwatch,
# /usr/local/sbin or venv would let any user swap the config or the code that
# PAM runs as root at every login. Files that must be private get their own
# tighter mode (write_file).
umask 022

usage() {
    cat <<'EOF'
usage: install-central.sh [--root DIR] [--config FILE] [--venv DIR] [--python PATH]
                          [--upgrade] [--uninstall]

  --root DIR      install below DIR instead of / (for tests and image builds;
                  no useradd/systemctl calls then)
  --config FILE   the central config (copied to /etc/loginwatch/loginwatch.toml
                  unless that exists)
  --venv DIR      a Python venv with loginwatch[central] installed (default
                  /opt/loginwatch, created with pip from this source tree when missing,
                  its dependencies at the versions requirements/central.txt pins)
  --python PATH   the Python that makes the venv (default python3); the service
                  user must be able to run it (not one below /root)
  --upgrade       pip-install this source tree (and requirements/central.txt's pins)
                  into an existing venv again
  --uninstall     stop and remove the units, the command and a venv this script created;
                  keep config, the store in /var/lib/loginwatch and the user
EOF
}

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=deploy/lib/files.sh
. "$here/lib/files.sh"
ROOT=""
CONFIG=""
VENV=/opt/loginwatch
VENV_GIVEN=no
PYTHON3=python3
UPGRADE=no
ACTION=install
while [ $# -gt 0 ]; do
    case $1 in
    --root) ROOT=${2:?--root needs a directory}; shift ;;
    --config) CONFIG=${2:?--config needs a file}; shift ;;
    --venv) VENV=${2:?--venv needs a directory}; VENV_GIVEN=yes; shift ;;
    --python) PYTHON3=${2:?--python needs a path}; shift ;;
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
UNITS="loginwatch-worker@.service loginwatch-digest.service loginwatch-web.service"
BROKER_CONF=/etc/rabbitmq/conf.d/60-loginwatch.conf

say() { echo "install-central: $*"; }
die() { echo "install-central: $*" >&2; exit 1; }
MARKER=.installed-by-install-central

live() { [ -z "$ROOT" ]; }
live_systemd() { live && [ -d /run/systemd/system ]; }


install_python() {
    if [ -x "$ROOT$VENV/bin/loginwatch" ]; then
        if [ "$UPGRADE" = yes ]; then
            say "upgrading loginwatch in $VENV (restart the units afterwards)"
            pip_install_locked "$ROOT$VENV/bin/python" "$here/.." central.txt "$here/.." --upgrade
        fi
    elif [ -n "$ROOT" ] && [ "$VENV_GIVEN" = yes ] && [ -x "$VENV/bin/loginwatch" ]; then
        : # --venv outside the tree (tests, image builds): use it as it is
    else
        say "creating $ROOT$VENV (pip install $here/..[central] with requirements/central.txt's pins)"
        "$PYTHON3" -m venv "$ROOT$VENV"
        : >"$ROOT$VENV/$MARKER"
        pip_install_locked "$ROOT$VENV/bin/python" "$here/.." central.txt "$here/.."
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

# The units run the venv's Python as loginwatch: a venv made from an interpreter
# that user cannot reach (pyenv's below /root) installs fine and never starts.
check_runnable() {
    if ! live; then return; fi
    if ! runuser -u loginwatch -- "$VENV/bin/python" -c '' 2>/dev/null; then
        die "the user loginwatch cannot run $VENV/bin/python ($(readlink -f "$VENV/bin/python")):" \
            "remove $VENV and run this again with --python /usr/bin/python3"
    fi
}

install_config() {
    mkdir -p "$ROOT/etc/loginwatch"
    # The workers read the config as `loginwatch`: group loginwatch, 0640, from the
    # first byte on. Secrets it names must be owned by that user, mode 0600.
    group=""
    if live; then group=0:loginwatch; chgrp loginwatch "$ROOT/etc/loginwatch"; fi
    chmod 0750 "$ROOT/etc/loginwatch"
    if [ ! -e "$ROOT$ETC_CONFIG" ]; then
        write_file "$ROOT$ETC_CONFIG" 0640 ${group:+"$group"} <"${CONFIG:-$here/loginwatch-central.toml}"
    fi
}

# loginwatch web's files ([web] secret_file, password_file): the link keys (one random
# line) and the operators' passwords (none yet: `loginwatch web passwd NAME`). Both are
# made 0600, owned by loginwatch, before their first byte (write_file); an existing file is
# left as it is, so a rerun never changes the keys that signed the links in sent mails.
install_web_files() {
    owner=""
    if live; then owner=loginwatch:loginwatch; fi
    keys=$ROOT/etc/loginwatch/web-keys
    if [ ! -e "$keys" ]; then
        "$PYTHON3" -c 'import secrets; print(secrets.token_urlsafe(48))' |
            write_file "$keys" 0600 ${owner:+"$owner"}
    fi
    passwords=$ROOT/etc/loginwatch/web-passwords
    if [ ! -e "$passwords" ]; then
        : | write_file "$passwords" 0600 ${owner:+"$owner"}
    fi
}

# The store's directory ([store] url's default), which systemd's StateDirectory=
# makes only for the units: `loginwatch worker` or `digest --preview` run by hand
# as loginwatch need it too.
install_store() {
    store=$ROOT/var/lib/loginwatch
    [ -d "$store" ] || { mkdir -p "$(dirname "$store")" && mkdir -m 0750 "$store"; }
    if live; then chown loginwatch:loginwatch "$store"; fi
    chmod 0750 "$store"
}

install_units() {
    mkdir -p "$UNITDIR"
    for unit in $UNITS; do
        sed "s#/opt/loginwatch/#$VENV/#g" "$here/systemd/$unit" | write_file "$UNITDIR/$unit" 0644
    done
    if live_systemd; then systemctl daemon-reload; fi
}

# The broker's node-wide limits, on the machine that runs RabbitMQ (with --root: always,
# for image builds). Elsewhere the operator copies the file to the broker machine.
install_broker_conf() {
    if live && [ ! -d /etc/rabbitmq ]; then
        say "no RabbitMQ here: copy $here/rabbitmq/loginwatch.conf to $BROKER_CONF on the broker machine"
        return
    fi
    mkdir -p "$ROOT$(dirname "$BROKER_CONF")"
    before=$(cat "$ROOT$BROKER_CONF" 2>/dev/null || true)
    write_file "$ROOT$BROKER_CONF" 0644 <"$here/rabbitmq/loginwatch.conf"
    if live && [ "$before" != "$(cat "$BROKER_CONF")" ]; then
        say "restart RabbitMQ to apply $BROKER_CONF (systemctl restart rabbitmq-server)"
    fi
}

# The alert lanes hash each host's routing key over queues with RabbitMQ's consistent-hash
# exchange, a plugin RabbitMQ ships but does not enable. Where the broker runs on this
# machine, enable it here (idempotent, no restart); every other node needs the same line.
enable_hash_plugin() {
    if ! live || ! command -v rabbitmq-plugins >/dev/null 2>&1; then return; fi
    if rabbitmqctl -q status >/dev/null 2>&1; then
        rabbitmq-plugins -q enable rabbitmq_consistent_hash_exchange >/dev/null \
            && say "enabled rabbitmq_consistent_hash_exchange on the local broker"
    else
        rabbitmq-plugins -q enable --offline rabbitmq_consistent_hash_exchange >/dev/null \
            && say "enabled rabbitmq_consistent_hash_exchange for the local broker's next start"
    fi
}

next_steps() {
    cat <<EOF
install-central: next steps
  1. edit $ETC_CONFIG: [smtp], [[route]]; [broker] url names the central user and vhost
  2. loginwatch broker-user add             # that user, its password in [broker] password_file
     on every broker node: rabbitmq-plugins enable rabbitmq_consistent_hash_exchange
  3. runuser -u loginwatch -- loginwatch setup   # queues and exchanges
  4. loginwatch check-config --broker       # as root: also what user loginwatch can read
  5. loginwatch host add NAME --url amqps://BROKER:5671/%2F   # once per SSH host
  6. systemctl enable --now loginwatch-worker@1 loginwatch-worker@2 loginwatch-digest
  7. links and "was this you?": set [web] base_url (a TLS proxy's https:// URL), then
     runuser -u loginwatch -- loginwatch web passwd NAME; systemctl enable --now loginwatch-web
EOF
}

uninstall() {
    if live_systemd; then
        for unit in $(systemctl list-units --plain --no-legend 'loginwatch-worker@*' \
            loginwatch-digest.service loginwatch-web.service 2>/dev/null | awk '{ print $1 }'); do
            systemctl disable --now "$unit" || true
        done
    fi
    for unit in $UNITS; do rm -f "$UNITDIR/$unit"; done
    if live_systemd; then systemctl daemon-reload; fi
    if [ -f "$ROOT$BROKER_CONF" ] && cmp -s "$ROOT$BROKER_CONF" "$here/rabbitmq/loginwatch.conf"; then
        rm -f "$ROOT$BROKER_CONF"
        say "removed $BROKER_CONF (it applies at the broker's next restart)"
    fi
    if [ "$(readlink "$ROOT/usr/local/bin/loginwatch")" = "$VENV/bin/loginwatch" ]; then
        rm -f "$ROOT/usr/local/bin/loginwatch"
    fi
    # Only a venv this script made: install-host.sh's has a marker of its own, and
    # one from an older installer could be either side's.
    if [ -f "$ROOT$VENV/$MARKER" ]; then
        rm -rf -- "$ROOT${VENV:?}"
        say "removed $VENV"
    elif [ -f "$ROOT$VENV/.installed-by-loginwatch" ]; then
        say "kept $VENV: an older installer made it, maybe for the host side too"
    fi
    say "kept ${ROOT}/etc/loginwatch, ${ROOT}/var/lib/loginwatch and the user loginwatch"
}

if [ "$ACTION" = uninstall ]; then
    uninstall
else
    install_python
    install_user
    check_runnable
    install_config
    install_web_files
    install_store
    install_units
    install_broker_conf
    enable_hash_plugin
    next_steps
fi
