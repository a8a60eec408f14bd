#!/bin/sh
# Installs the system packages the tests and the demo use, when they are missing.
# Only on Debian/Ubuntu as root; elsewhere it says what is missing and goes on
# (the tests that need a missing part then skip, or fail under CI).
set -eu
need=""
command -v rabbitmq-server >/dev/null 2>&1 || [ -x /usr/sbin/rabbitmq-server ] || need="$need rabbitmq-server"
[ -x /usr/sbin/sshd ] || need="$need openssh-server"
command -v ssh >/dev/null 2>&1 || need="$need openssh-client"
command -v pamtester >/dev/null 2>&1 || need="$need pamtester"
command -v unshare >/dev/null 2>&1 || need="$need util-linux"
# The ~/.pam_environment tests compile an LD_PRELOAD library (tests/support/sshd.py).
command -v gcc >/dev/null 2>&1 || need="$need gcc libc6-dev"
# deploy/ tests: shell lint, throwaway CAs, unit verification.
command -v shellcheck >/dev/null 2>&1 || need="$need shellcheck"
command -v openssl >/dev/null 2>&1 || need="$need openssl"
command -v systemd-analyze >/dev/null 2>&1 || need="$need systemd"
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need="$need python3-venv"
[ -z "$need" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: installing$need"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $need >/dev/null
else
    echo "system-deps: missing$need (install them as root with apt-get); tests that need them skip" >&2
fi
