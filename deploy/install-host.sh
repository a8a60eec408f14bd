#!/bin/sh
# Installs (or with --uninstall removes) loginwatch on one SSH host:
#   /opt/loginwatch-host                   a venv with loginwatch-host (unless --venv)
#   /usr/local/sbin/loginwatch-hook        the PAM hook (runs the venv's Python with -I)
#   /etc/loginwatch/host.toml              the host's config (never overwritten)
#   /etc/loginwatch/host.password          its broker password (0600 root)
#   /var/spool/loginwatch                  the spool (0700 root; the config's [spool] dir)
#   /etc/systemd/system/loginwatch-flush.{service,timer}, loginwatch-goodbye.service
#   /etc/pam.d/sshd                        a session hook, and a failed-password hook
#   /etc/pam.d/su, sudo, login …           a session hook (with --services)
#   /var/lib/loginwatch-host               what this script installed (0700 root)
# None of these is a file of install-central.sh (/opt/loginwatch,
# /etc/loginwatch/loginwatch.toml, broker.password, /var/lib/loginwatch), so
# the central machine can be an SSH host too, installed in either order.
# Idempotent: running it twice gives the same files. The PAM file is checked
# before it atomically replaces the live one, and --uninstall gives back its
# original bytes (a copy is kept in /var/lib/loginwatch-host/). A refused run
# writes nothing: the config is read with the project's own parser (in a venv
# of its own, under $TMPDIR) before the first file is made.
#
# The venv's Python is the host's own python3 from 3.9 on (the first of python3,
# python3.13 … python3.9 that is one, or --python). From this source tree pip
# needs the package index; from a bundle (`make host-bundle`, --bundle FILE) it
# needs nothing: the bundle's wheels, pip included, with every hash checked.
#
# The .deb and .rpm (`make packages`) install the same files under /usr
# (/usr/lib/loginwatch-host, /usr/sbin/loginwatch-hook, the units in
# /usr/lib/systemd/system); their loginwatch-host-setup runs this script with
# --packaged for the config, the password, the spool and the PAM step.
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
                       [--bundle FILE] [--python PYTHON] [--upgrade] [--no-failures]
                       [--services LIST] [--check | --uninstall]

  --root DIR      install below DIR instead of / (for tests and image builds;
                  no systemctl calls then)
  --config FILE   the host's config, e.g. the snippet `loginwatch host add` printed
                  (copied to the config path; a copy there that was edited since this
                  script wrote it is kept, and the script says so)
  --config-path PATH  where the host's config lives (default /etc/loginwatch/host.toml;
                  a later run without it keeps the path the first one chose)
  --password-file FILE  the broker password `loginwatch host add` wrote (copied to the
                  password path, mode 0600, replacing one this script wrote before)
  --password-path PATH  where the password goes (default: the config's [broker]
                  password_file, else beside the config: /etc/loginwatch/host.password)
  --venv DIR      a Python venv with loginwatch installed (default /opt/loginwatch-host,
                  created with pip from this source tree when missing, its dependencies
                  at the versions requirements/host.txt pins)
  --bundle FILE   install from an offline bundle (make host-bundle) instead of this
                  source tree: no package index, every wheel's hash checked
  --python PYTHON the interpreter of the venv (default: the first of python3,
                  python3.13 … python3.9 that is 3.9 or later; a bundle has 3.9-3.13)
  --upgrade       install loginwatch-host (this source tree, or --bundle's) and its
                  pinned dependencies into an existing venv again
  --no-failures   only the session hook: do not report failed passwords
  --services LIST the PAM services to hook, comma-separated, from sshd, su, su-l, sudo,
                  sudo-i and login (default: what the last run chose, else sshd); su and
                  sudo get a session hook at open_session only (each escalation once),
                  login (the console) as sshd does; a service left out of a later run's
                  list gets its PAM file back
  --check         exit 1 if a hooked PAM file differs from what an install would write
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

say() { echo "install-host: $*"; }
die() { echo "install-host: $*" >&2; exit 1; }

# A bundle installs with its own copy of this script: its wheels, units and PAM rules
# are the ones CI tested together. Unpacked into a private directory, removed at exit.
if [ -z "${LOGINWATCH_BUNDLE_DIR:-}" ]; then
    bundle_arg="" next=""
    for arg; do
        [ "$next" != --bundle ] || bundle_arg=$arg
        next=$arg
    done
    if [ -n "$bundle_arg" ]; then
        dir=$(unpack_bundle "$bundle_arg") || exit 1
        LOGINWATCH_BUNDLE_DIR=$dir exec sh "$dir/install-host.sh" "$@"
    fi
fi

ROOT=""
CONFIG=""
ETC_CONFIG=""
PASSWORD_FILE=""
PASSWORD_PATH=""
VENV=""
PYTHON_GIVEN=""
PACKAGED=no
UPGRADE=no
FAILURES=yes
SERVICES_GIVEN=""
ACTION=install
while [ $# -gt 0 ]; do
    case $1 in
    --root) ROOT=${2:?--root needs a directory}; shift ;;
    --config) CONFIG=${2:?--config needs a file}; shift ;;
    --config-path) ETC_CONFIG=${2:?--config-path needs a path}; shift ;;
    --password-file) PASSWORD_FILE=${2:?--password-file needs a file}; shift ;;
    --password-path) PASSWORD_PATH=${2:?--password-path needs a path}; shift ;;
    --venv) VENV=${2:?--venv needs a directory}; shift ;;
    --bundle) : "${2:?--bundle needs a file}"; shift ;; # (unpacked above)
    --python) PYTHON_GIVEN=${2:?--python needs an interpreter}; shift ;;
    --packaged) PACKAGED=yes ;; # by loginwatch-host-setup, the packages' command
    --no-failures) FAILURES=no ;;
    --services) SERVICES_GIVEN=${2:?--services needs a list: sshd,su,sudo,login}; shift ;;
    --upgrade) UPGRADE=yes ;;
    --uninstall) ACTION=uninstall ;;
    --check) ACTION=check ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
    shift
done
[ -z "$ROOT" ] || ROOT=$(cd "$ROOT" && pwd)

# What this run made under $TMPDIR (the unpacked bundle, the given files, a venv to read
# the config with) goes at exit, whatever happens.
TEMPORARY=${LOGINWATCH_BUNDLE_DIR:+$(dirname "$LOGINWATCH_BUNDLE_DIR")}
cleanup() {
    for _lw_temporary in $TEMPORARY; do rm -rf -- "$_lw_temporary"; done
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

# The two layouts: this script's (/usr/local, /opt), and the packages' (/usr), whose
# venv, hook and units the package owns; this script then does only the rest.
if [ "$PACKAGED" = yes ]; then
    if [ "$UPGRADE" = yes ] || [ -n "${LOGINWATCH_BUNDLE_DIR:-}" ]; then
        die "the package brings its own hook: upgrade the package (apt-get, dnf) instead"
    fi
    HOOK=/usr/sbin/loginwatch-hook
    DEFAULT_VENV=/usr/lib/loginwatch-host/venv
else
    HOOK=/usr/local/sbin/loginwatch-hook
    DEFAULT_VENV=/opt/loginwatch-host
fi
# Root's alone: not below /var/lib/loginwatch, which belongs to the service user
# `loginwatch` on a central machine (systemd's StateDirectory= even chowns it
# recursively), who could otherwise swap the PAM file --uninstall restores.
STATE=$ROOT/var/lib/loginwatch-host
LEGACY_STATE=$ROOT/var/lib/loginwatch/install
MARKER=.installed-by-install-host
# recalled NAME: what the first install chose (later runs, --check, --uninstall keep it).
recalled() {
    if [ -f "$STATE/$1" ]; then cat "$STATE/$1"; elif [ -f "$LEGACY_STATE/$1" ]; then cat "$LEGACY_STATE/$1"; fi
}
# The other layout's install is that layout's to change: one hook per host.
installed_hook=$(recalled hook)
if [ -n "$installed_hook" ] && [ "$installed_hook" != "$HOOK" ] && [ "$ACTION" = install ]; then
    case $installed_hook in
    /usr/sbin/*) die "the loginwatch-host package installed this host's hook: use loginwatch-host-setup, or remove the package first" ;;
    *) die "install-host.sh installed this host's hook ($installed_hook): run install-host.sh --uninstall first" ;;
    esac
fi
# --check and --uninstall act on the layout that installed the hook.
HOOK=${installed_hook:-$HOOK}
[ -n "$ETC_CONFIG" ] || ETC_CONFIG=$(recalled config-path)
ETC_CONFIG=${ETC_CONFIG:-/etc/loginwatch/host.toml}
[ -n "$VENV" ] || VENV=$(recalled venv)
VENV_GIVEN=${VENV:+yes} # by --venv, or by the run that recorded it
VENV=${VENV:-$DEFAULT_VENV}
[ -n "$PASSWORD_PATH" ] || PASSWORD_PATH=$(recalled password-path)
PAMDIR=$ROOT/etc/pam.d
# The services to hook: sshd unless told (then remembered); what an earlier run hooked
# and this one does not is put back (PREVIOUS_SERVICES).
KNOWN_SERVICES="sshd su su-l sudo sudo-i login"
PREVIOUS_SERVICES=$(recalled services)
if [ -n "$SERVICES_GIVEN" ]; then
    SERVICES=$(printf '%s' "$SERVICES_GIVEN" | tr ',' ' ')
    for service in $SERVICES; do
        case " $KNOWN_SERVICES " in
        *" $service "*) ;;
        *) die "--services: unknown service \"$service\" (one of: $KNOWN_SERVICES)" ;;
        esac
    done
else
    SERVICES=${PREVIOUS_SERVICES:-sshd}
fi
# (Each once, in order.)
SERVICES=$(printf '%s' "$SERVICES" | tr ' ' '\n' | awk 'NF && !seen[$0]++' | tr '\n' ' ' | sed 's/ $//')
[ -n "$SERVICES" ] || die "--services: no service named"
# use_service NAME: the PAM file the functions below work on.
use_service() {
    SERVICE=$1
    PAMFILE=$PAMDIR/$1
}
use_service sshd
UNITDIR=$ROOT/etc/systemd/system
SESSION_LINE="session optional pam_exec.so quiet $HOOK --config $ETC_CONFIG"
AUTH_LINE="auth [default=ignore] pam_exec.so quiet $HOOK --config $ETC_CONFIG --outcome failure"

# live_systemd: true when we manage the running machine and systemd runs it.
live_systemd() { [ -z "$ROOT" ] && [ -d /run/systemd/system ]; }

# venv_python: RUNPY, the venv's interpreter as this script reaches it, or nothing yet.
venv_python() {
    RUNPY=""
    if [ -x "$ROOT$VENV/bin/python" ]; then
        RUNPY=$ROOT$VENV/bin/python
    elif [ -n "$ROOT" ] && [ "$VENV_GIVEN" = yes ] && [ -x "$VENV/bin/python" ]; then
        RUNPY=$VENV/bin/python # a venv outside the tree (tests, image builds)
    fi
}

# fill_venv VENV_DIR [PIP_ARG...]: loginwatch-host and its pinned dependencies into
# VENV_DIR (a venv), from the bundle's wheels or from this source tree and the index.
fill_venv() {
    target=$1
    shift
    if [ -n "${LOGINWATCH_BUNDLE_DIR:-}" ]; then
        bundle_install "$target/bin/python" "$LOGINWATCH_BUNDLE_DIR" "$@"
    else
        stage=$(mktemp -d "${TMPDIR:-/tmp}/loginwatch-host-src.XXXXXX")
        stage_host_source "$here/.." "$stage"
        pip_install_locked "$target/bin/python" "$here/.." host.txt "$stage" "$@" ||
            { rm -rf "$stage"; return 1; }
        rm -rf "$stage"
    fi
}

# make_venv DIR: a new venv at DIR, filled (fill_venv), of the chosen Python.
make_venv() {
    if [ -n "${LOGINWATCH_BUNDLE_DIR:-}" ]; then
        # The bundle brings pip: no ensurepip (python3-venv) needed.
        "$PYTHON_BIN" -m venv --without-pip "$1"
    else
        "$PYTHON_BIN" -m venv "$1" || die "$PYTHON_BIN -m venv failed: install python3-venv" \
            "(apt-get install python3-venv), or install from a bundle (--bundle), which brings its own pip"
    fi
    fill_venv "$1"
}

# validating_python: VALIDATOR, a Python that reads a config with the project's own
# parser, made before anything is written: the venv of an earlier install when it stays
# as it is, else a throwaway venv under $TMPDIR (removed at exit).
validating_python() {
    venv_python
    if [ -n "$RUNPY" ] && [ "$UPGRADE" = no ] && "$RUNPY" -I -c 'import producer.install_values' 2>/dev/null; then
        VALIDATOR=$RUNPY
        return
    fi
    [ "$PACKAGED" = no ] || die "$VENV: missing or broken: reinstall the loginwatch-host package"
    # An upgrade keeps the venv's Python.
    [ -n "$PYTHON_GIVEN" ] || [ -z "$RUNPY" ] || PYTHON_GIVEN=$RUNPY
    pick_python "$([ -n "${LOGINWATCH_BUNDLE_DIR:-}" ] && echo bundle)" "$PYTHON_GIVEN" || exit 1
    scratch=$(mktemp -d "${TMPDIR:-/tmp}/loginwatch-check.XXXXXX")
    TEMPORARY="$TEMPORARY $scratch"
    make_venv "$scratch/venv" >/dev/null || die "could not make a venv to read the config with"
    VALIDATOR=$scratch/venv/bin/python
}

install_python() {
    PYTHON=$VENV/bin/python
    venv_python
    if [ -z "$RUNPY" ]; then
        say "creating $ROOT$VENV ($PYTHON_BIN, loginwatch-host $(bundle_or_source))"
        "$PYTHON_BIN" -m venv ${LOGINWATCH_BUNDLE_DIR:+--without-pip} "$ROOT$VENV"
        : >"$ROOT$VENV/$MARKER"
        fill_venv "$ROOT$VENV"
        RUNPY=$ROOT$VENV/bin/python
        remember version "$(installing_version)"
    elif [ "$UPGRADE" = yes ]; then
        say "upgrading loginwatch-host in $VENV ($(bundle_or_source))"
        fill_venv "$(dirname "$(dirname "$RUNPY")")" --upgrade
        remember version "$(installing_version)"
    fi
}

# installing_version: the version this run installs (the bundle's, or this tree's).
installing_version() {
    if [ -n "${LOGINWATCH_BUNDLE_DIR:-}" ]; then
        cat "$LOGINWATCH_BUNDLE_DIR/VERSION"
    else
        sed -n 's/^VERSION = "\(.*\)"$/\1/p' "$here/../schemas/version.py"
    fi
}

bundle_or_source() {
    if [ -n "${LOGINWATCH_BUNDLE_DIR:-}" ]; then
        echo "$(installing_version) from the bundle"
    else
        echo "from $(cd "$here/.." && pwd) with requirements/host.txt's pins"
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

# take_config: --config read once, into a private directory: the check and the copy then
# see the same bytes, even from a FIFO or a file being rewritten. (The password is read
# once anyway, by the write that puts it in place.) GIVEN_CONFIG keeps the name the operator
# gave, for what the script says.
take_config() {
    GIVEN_CONFIG=$CONFIG
    [ -n "$CONFIG" ] || return 0
    inputs=$(mktemp -d "${TMPDIR:-/tmp}/loginwatch-input.XXXXXX")
    TEMPORARY="$TEMPORARY $inputs"
    (umask 077 && cat "$CONFIG" >"$inputs/config") 2>/dev/null || die "$CONFIG: cannot read it"
    CONFIG=$inputs/config
}

# choose_config: NEW_CONFIG, the config this run installs (the file to read), and
# CONFIG_ACTION: write (nothing there yet), replace (ours, unchanged since we wrote it,
# and --config differs), or keep. Writes nothing.
choose_config() {
    installed=$ROOT$ETC_CONFIG
    CONFIG_ACTION=keep
    NEW_CONFIG=$installed
    if [ ! -e "$installed" ]; then
        CONFIG_ACTION="write"
        NEW_CONFIG=${CONFIG:-$here/loginwatch-host.toml}
    elif [ -n "$CONFIG" ] && ! cmp -s "$CONFIG" "$installed"; then
        if [ -z "$(recalled config-path)" ]; then
            # Not ours, e.g. the central side's config: never take it over.
            die "$ETC_CONFIG exists and is not $GIVEN_CONFIG (the central config?): choose --config-path"
        elif [ "$(recalled config.sha256)" = "$(sha256sum <"$installed" | cut -d' ' -f1)" ]; then
            CONFIG_ACTION=replace
            NEW_CONFIG=$CONFIG
        else
            say "$ETC_CONFIG differs from $GIVEN_CONFIG and was edited since install-host.sh wrote it:" \
                "kept it (remove it, or edit it, to take $GIVEN_CONFIG)"
        fi
    fi
    [ -r "$NEW_CONFIG" ] || die "$NEW_CONFIG: cannot read it"
}

# read_config FILE: SPOOL_DIR and CONFIG_PASSWORD, as the hook will read them from FILE
# (the project's own parser, defaults included; no shell eval).
read_config() {
    values=$("$VALIDATOR" -I -m producer.install_values "$1") || exit 1
    SPOOL_DIR=$(printf '%s\n' "$values" | sed -n 1p)
    CONFIG_PASSWORD=$(printf '%s\n' "$values" | sed -n 2p)
    plain_path "$ETC_CONFIG: [spool] dir" "$SPOOL_DIR"
    [ -z "$CONFIG_PASSWORD" ] || plain_path "$ETC_CONFIG: [broker] password_file" "$CONFIG_PASSWORD"
}

# plan_password: PASSWORD_PATH, where the password goes; refuses (writing nothing) a path
# the config may not make root write, or a file there that this script did not write.
plan_password() {
    from_config=no
    if [ -z "$PASSWORD_PATH" ]; then
        PASSWORD_PATH=${CONFIG_PASSWORD:-${ETC_CONFIG%.toml}.password}
        from_config=yes
    elif [ -n "$CONFIG_PASSWORD" ] && [ "$CONFIG_PASSWORD" != "$PASSWORD_PATH" ]; then
        die "$ETC_CONFIG reads password_file = $CONFIG_PASSWORD, not $PASSWORD_PATH: make them one"
    fi
    plain_path --password-path "$PASSWORD_PATH"
    [ -n "$PASSWORD_FILE" ] || return 0
    [ -r "$PASSWORD_FILE" ] || die "$PASSWORD_FILE: cannot read it"
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
}

# check_spool: refuses a [spool] dir that exists and is not a spool of its own.
check_spool() {
    dir=$ROOT$SPOOL_DIR
    # The hook opens the spool with O_NOFOLLOW: behind a symlink, every event would be lost.
    [ ! -L "$dir" ] || die "[spool] dir $SPOOL_DIR is a symlink: name the directory itself"
    if [ -d "$dir" ] && { [ "$(stat -c %u "$dir")" != 0 ] || [ -n "$(find "$dir" -maxdepth 0 -perm /077)" ]; }; then
        # Never chmod a directory that exists: [spool] dir = "/etc" must not become 0700,
        # nor writable to the flush unit. A spool of its own is root's, mode 0700.
        die "[spool] dir $SPOOL_DIR: not a spool of its own (owner $(stat -c %U "$dir")," \
            "mode $(stat -c %a "$dir"); a spool is root's, mode 0700)"
    fi
}

# The hook is the C front-end when one is built for this machine (a symlink to it in the
# venv's bin, beside the python it starts the publisher with), else the Python foreground:
# started as root with the PAM environment, -I makes Python ignore PYTHON* variables and
# the user's site directory. (The packages ship their own.)
install_hook() {
    [ "$PACKAGED" = no ] || return 0
    mkdir -p "$ROOT$(dirname "$HOOK")"
    if native_hook "$(dirname "$RUNPY")" "${LOGINWATCH_BUNDLE_DIR:-$here/..}"; then
        if [ "$(readlink "$ROOT$HOOK" 2>/dev/null)" != "$VENV/bin/loginwatch-hook-native" ]; then
            ln -sfn "$VENV/bin/loginwatch-hook-native" "$ROOT$HOOK.loginwatch.$$"
            mv -Tf "$ROOT$HOOK.loginwatch.$$" "$ROOT$HOOK"
            say "wrote $HOOK -> $VENV/bin/loginwatch-hook-native"
        fi
        return 0
    fi
    [ ! -L "$ROOT$HOOK" ] || rm -f "$ROOT$HOOK"
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
    case $CONFIG_ACTION in
    write | replace)
        [ "$CONFIG_ACTION" = write ] || say "replacing $ETC_CONFIG with $GIVEN_CONFIG"
        write_file "$ROOT$ETC_CONFIG" 0600 <"$NEW_CONFIG"
        [ -n "$CONFIG" ] || say "edit ${ROOT}$ETC_CONFIG: [broker] url (see loginwatch host add)"
        remember config.sha256 "$(sha256sum <"$ROOT$ETC_CONFIG" | cut -d' ' -f1)"
        ;;
    esac
    remember config-path "$ETC_CONFIG"
    if [ -n "$PASSWORD_FILE" ]; then
        mkdir -p "$(dirname "$ROOT$PASSWORD_PATH")"
        write_file "$ROOT$PASSWORD_PATH" 0600 0:0 <"$PASSWORD_FILE"
        remember password-path "$PASSWORD_PATH"
    fi
    if [ ! -d "$ROOT$SPOOL_DIR" ]; then
        mkdir -p "$(dirname "$ROOT$SPOOL_DIR")"
        mkdir -m 0700 "$ROOT$SPOOL_DIR"
    fi
}

# The flush units: written here, or shipped by the package (then a drop-in names the
# config and spool when they are not the packaged defaults).
install_units() {
    if [ "$PACKAGED" = yes ]; then
        for unit in flush goodbye; do
            dropin=$UNITDIR/loginwatch-$unit.service.d/loginwatch-host-setup.conf
            if [ "$ETC_CONFIG" = /etc/loginwatch/host.toml ] && [ "$SPOOL_DIR" = /var/spool/loginwatch ]; then
                rm -f "$dropin"
                rmdir "$(dirname "$dropin")" 2>/dev/null || true
                continue
            fi
            case $unit in
            flush) exec_line="ExecStart=" exec_run="ExecStart=$HOOK --config $ETC_CONFIG flush" ;;
            *) exec_line="ExecStop=" exec_run="ExecStop=$HOOK --config $ETC_CONFIG goodbye --why stop" ;;
            esac
            mkdir -p "$(dirname "$dropin")"
            printf '%s\n' "[Unit]" "ConditionPathExists=" "ConditionPathExists=$ETC_CONFIG" \
                "[Service]" "$exec_line" "$exec_run" \
                "ReadWritePaths=$SPOOL_DIR" | write_file "$dropin" 0644
        done
        if live_systemd; then systemctl daemon-reload; fi
        return 0
    fi
    mkdir -p "$UNITDIR"
    for unit in loginwatch-flush.service loginwatch-flush.timer loginwatch-goodbye.service; do
        # ProtectSystem=strict: the flush may write only the spool the config names.
        sed -e "s#/etc/loginwatch/host.toml#$ETC_CONFIG#g" \
            -e "s#/usr/sbin/loginwatch-hook#$HOOK#g" \
            -e "s#^ReadWritePaths=/var/spool/loginwatch\$#ReadWritePaths=$SPOOL_DIR#" \
            "$here/systemd/$unit" | write_file "$UNITDIR/$unit" 0644
    done
    if live_systemd; then
        systemctl daemon-reload
        systemctl enable --now loginwatch-flush.timer loginwatch-goodbye.service
    fi
}

# check_user_env: exits 1, having changed nothing, when the user's
# ~/.pam_environment (or any text a user wrote) reaches the PAM environment
# before the session hook could run (pam_refusal says where and why), in the stack of
# any service to hook.
check_user_env() {
    for service in $SERVICES; do
        use_service "$service"
        [ -f "$PAMFILE" ] || die "${PAMFILE}: missing (is $(package_of "$service") installed?)"
        if why=$(pam_refusal "$ROOT" "$PAMFILE" "${PAMFILE#"$ROOT"}"); then
            die "refusing to install, nothing changed: $why"
        fi
    done
}

package_of() {
    case $1 in
    sshd) echo openssh-server ;;
    sudo*) echo sudo ;;
    *) echo "the PAM file of $1" ;;
    esac
}

# new_pam_file OUT: the PAM file as we want it, from the file without our blocks.
new_pam_file() {
    pam_strip "$PAMFILE" >"$1.base"
    if [ "$SERVICE" != sshd ] || [ "$FAILURES" = no ]; then
        cp "$1.base" "$1.auth"
    elif ! pam_add_auth "$1.base" "$PAMDIR/common-auth" "$AUTH_LINE" >"$1.auth" 2>"$1.why"; then
        if grep -Eq '^[[:space:]]*auth[[:space:]]+(substack|include)[[:space:]]+password-auth' "$1.base"; then
            # RHEL, Rocky, Alma, Fedora: authselect writes password-auth and would undo an edit.
            say "failed passwords will not be reported: authselect owns password-auth here; to" \
                "report them, put \"$AUTH_LINE\" before the first \"auth required pam_deny.so\" of the" \
                "password-auth of a profile of your own (authselect create-profile loginwatch -b sssd;" \
                "authselect select custom/loginwatch), or give --no-failures"
        else
            cat "$1.why" >&2
            say "failed passwords will not be reported (see above)"
        fi
        cp "$1.base" "$1.auth"
    fi
    rm -f "$1.why"
    session=$SESSION_LINE
    reader=$(pam_user_env "$ROOT" "$1.base" "${PAMFILE#"$ROOT"}" | grep '^session' | head -1) || true
    case $SERVICE in
    su | su-l | sudo | sudo-i)
        # One event per escalation: its end (every sudo command's) would double the
        # events and say nothing the wtmp-less session end could use.
        session="session optional pam_exec.so quiet type=open_session $HOOK --config $ETC_CONFIG"
        reader="" ;;
    esac
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

# install_pams: the hook into every service's stack; a service an earlier run hooked and
# this one does not gets its file back.
install_pams() {
    for service in $SERVICES; do
        use_service "$service"
        install_pam
    done
    for service in $PREVIOUS_SERVICES; do
        case " $SERVICES " in *" $service "*) continue ;; esac
        use_service "$service"
        uninstall_pam
    done
    remember services "$SERVICES"
}

# hooked_services: every service this host's state knows a hook of (and sshd).
hooked_services() {
    found="sshd $PREVIOUS_SERVICES"
    for service in $KNOWN_SERVICES; do
        if [ -f "$STATE/$service.installed" ] || [ -f "$STATE/$service.orig" ]; then
            found="$found $service"
        fi
    done
    printf '%s' "$found" | tr ' ' '\n' | awk 'NF && !seen[$0]++' | tr '\n' ' '
}

install_pam() {
    [ -f "$PAMFILE" ] || die "${PAMFILE}: missing (is $(package_of "$SERVICE") installed?)"
    mkdir -p "$STATE"
    printf '%s\n' "$ETC_CONFIG" >"$STATE/config-path"
    # --uninstall gives back the original: the live file without our blocks as
    # it is *now*. Kept from the first run only, it would undo what the operator
    # changed since: a line fixed after a run that failed half way, an edit
    # between two runs.
    if ! grep -q "^$PAM_BEGIN" "$PAMFILE"; then
        cp -p "$PAMFILE" "$STATE/$SERVICE.orig"
    else
        pam_strip "$PAMFILE" >"$STATE/$SERVICE.base"
        if [ ! -f "$STATE/$SERVICE.orig" ] || ! cmp -s "$STATE/$SERVICE.base" "$STATE/$SERVICE.orig"; then
            cp -p "$PAMFILE" "$STATE/$SERVICE.orig"
            cat "$STATE/$SERVICE.base" >"$STATE/$SERVICE.orig"
        fi
        rm -f "$STATE/$SERVICE.base"
    fi
    new=$STATE/$SERVICE.new
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
    mv -f "$new" "$STATE/$SERVICE.installed"
    say "updated ${PAMFILE#"$ROOT"}"
}

uninstall_pam() {
    [ -f "$PAMFILE" ] || return 0
    if [ -f "$STATE/$SERVICE.installed" ] && cmp -s "$PAMFILE" "$STATE/$SERVICE.installed"; then
        # Untouched since we installed: the original bytes, exactly.
        cp -p "$STATE/$SERVICE.orig" "$PAMFILE.loginwatch.$$"
    elif ! grep -q "^$PAM_BEGIN" "$PAMFILE"; then
        say "${PAMFILE#"$ROOT"} has no loginwatch lines"
        return 0
    else
        # Edited since: drop only our blocks, keep the operator's changes.
        pam_strip "$PAMFILE" "${PAMFILE#"$ROOT"}" >"$STATE/$SERVICE.stripped" ||
            die "kept ${PAMFILE#"$ROOT"} as it is (see above)"
        pam_check "$STATE/$SERVICE.stripped" "$PAMDIR" || die "stripped PAM file fails the check"
        cp -p "$PAMFILE" "$PAMFILE.loginwatch.$$"
        cat "$STATE/$SERVICE.stripped" >"$PAMFILE.loginwatch.$$"
        rm -f "$STATE/$SERVICE.stripped"
    fi
    mv -f "$PAMFILE.loginwatch.$$" "$PAMFILE"
    rm -f "$STATE/$SERVICE.orig" "$STATE/$SERVICE.installed"
    say "restored ${PAMFILE#"$ROOT"}"
}

# say_goodbye: the hook tells the central side it stops on purpose (its silence that
# follows is no alarm), bounded; a broker away changes nothing here.
say_goodbye() {
    [ -x "$ROOT$HOOK" ] && [ -f "$ROOT$ETC_CONFIG" ] || return 0
    if timeout 30 "$ROOT$HOOK" --config "$ROOT$ETC_CONFIG" goodbye --why uninstall >/dev/null 2>&1; then
        say "told the central side this host's hook is uninstalled (goodbye)"
    else
        say "could not tell the central side (goodbye not sent): it will report the host quiet"
    fi
}

uninstall() {
    say_goodbye
    for service in $(hooked_services); do
        use_service "$service"
        uninstall_pam
    done
    if [ "$PACKAGED" = yes ]; then
        for unit in flush goodbye; do
            rm -rf "$UNITDIR/loginwatch-$unit.service.d/loginwatch-host-setup.conf"
            rmdir "$UNITDIR/loginwatch-$unit.service.d" 2>/dev/null || true
        done
    else
        if live_systemd; then
            # Not --now for the goodbye unit: its stop would say goodbye a second time.
            systemctl disable --now loginwatch-flush.timer 2>/dev/null || true
            systemctl disable loginwatch-goodbye.service 2>/dev/null || true
        fi
        rm -f "$UNITDIR/loginwatch-flush.service" "$UNITDIR/loginwatch-flush.timer" \
            "$UNITDIR/loginwatch-goodbye.service" "$ROOT$HOOK"
        if live_systemd; then systemctl daemon-reload; fi
        # Only a venv this script made: the central side's /opt/loginwatch has a marker
        # of its own, and one from an older installer could be either side's.
        if [ -f "$ROOT$VENV/$MARKER" ]; then
            rm -rf -- "$ROOT${VENV:?}"
            say "removed $VENV"
        elif [ -f "$ROOT$VENV/.installed-by-loginwatch" ]; then
            say "kept $VENV: an older installer made it, maybe for the central side too"
        fi
    fi
    password=$(recalled password-path)
    rm -f "$STATE/config-path" "$STATE/password-path" "$STATE/venv" "$STATE/hook" \
        "$STATE/config.sha256" "$STATE/version" "$STATE/services"
    rmdir "$STATE" 2>/dev/null || true
    say "kept $ETC_CONFIG${password:+, $password} and the spool (unsent events)"
}

# check_pams: is every hooked PAM file what an install would write now?
check_pams() {
    status=0
    for service in $SERVICES; do
        use_service "$service"
        check_pam || status=1
    done
    return $status
}

# check_pam: is the live PAM file what an install would write now?
check_pam() {
    mkdir -p "$STATE"
    new_pam_file "$STATE/$SERVICE.check" >/dev/null
    if cmp -s "$STATE/$SERVICE.check" "$PAMFILE"; then
        rm -f "$STATE/$SERVICE.check"
        say "${PAMFILE#"$ROOT"} is up to date"
        return 0
    fi
    diff -u "$PAMFILE" "$STATE/$SERVICE.check" || true
    rm -f "$STATE/$SERVICE.check"
    say "${PAMFILE#"$ROOT"} differs from what install-host.sh would write: run it again"
    return 1
}

# An older install kept its state below /var/lib/loginwatch: moved once, by the first run
# that goes on to change something.
adopt_legacy_state() {
    if [ ! -d "$STATE" ] && [ -d "$LEGACY_STATE" ]; then
        mkdir -p "$(dirname "$STATE")"
        mv "$LEGACY_STATE" "$STATE"
        say "moved ${LEGACY_STATE#"$ROOT"} to ${STATE#"$ROOT"}"
    fi
}

if [ "$ACTION" = uninstall ]; then
    adopt_legacy_state
    uninstall
elif [ "$ACTION" = check ]; then
    adopt_legacy_state
    check_user_env
    check_pams
else
    # Everything that can refuse comes first: a refused install writes nothing.
    check_user_env
    plain_path --config-path "$ETC_CONFIG"
    # The venv's python becomes the hook's #! line: a space or newline there
    # would break (or add lines to) the script PAM runs as root.
    plain_path --venv "$VENV"
    take_config
    choose_config
    validating_python
    read_config "$NEW_CONFIG"
    plan_password
    check_spool
    adopt_legacy_state
    install_python
    remember venv "$VENV"
    remember hook "$HOOK"
    install_config
    install_hook
    install_units
    install_pams
fi
