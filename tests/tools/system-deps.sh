#!/bin/sh
# Installs the system packages the tests and the demo use, when they are missing (a fresh
# Debian 12 with nothing but make and git needs all of them: make newcomer proves it).
# Only on Debian/Ubuntu as root; elsewhere it says what is missing and goes on
# (the tests that need a missing part then skip, or fail under CI).
set -eu
need=""
command -v rabbitmq-server >/dev/null 2>&1 || [ -x /usr/sbin/rabbitmq-server ] || need="$need rabbitmq-server"
[ -x /usr/sbin/sshd ] || need="$need openssh-server"
command -v ssh >/dev/null 2>&1 || need="$need openssh-client"
command -v pamtester >/dev/null 2>&1 || need="$need pamtester"
# The escalation tests run the real sudo in a real sshd session (issue 21).
[ -x /usr/bin/sudo ] || need="$need sudo"
command -v unshare >/dev/null 2>&1 || need="$need util-linux"
# The ~/.pam_environment tests compile an LD_PRELOAD library (tests/support/sshd.py).
command -v gcc >/dev/null 2>&1 || need="$need gcc libc6-dev"
# The C front-end (producer/native): its aarch64 build and smoke run, its ASan/UBSan build and
# libFuzzer target (clang and its runtimes).
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || need="$need gcc-aarch64-linux-gnu libc6-dev-arm64-cross"
command -v qemu-aarch64 >/dev/null 2>&1 || need="$need qemu-user"
command -v clang >/dev/null 2>&1 || need="$need clang libclang-rt-dev"
# deploy/ tests: shell lint, throwaway CAs, unit verification.
command -v shellcheck >/dev/null 2>&1 || need="$need shellcheck"
command -v openssl >/dev/null 2>&1 || need="$need openssl"
command -v systemd-analyze >/dev/null 2>&1 || need="$need systemd"
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need="$need python3-venv"
# The browser tier (make browser): Debian's headless Chromium and its matching driver.
[ -x /usr/bin/chromium ] || need="$need chromium"
[ -x /usr/bin/chromedriver ] || need="$need chromium-driver"
# The PostgreSQL store tests (ensure-postgres.sh makes the test database and its login),
# and the tests of several machines in network namespaces (ip netns, veth).
command -v pg_ctlcluster >/dev/null 2>&1 || need="$need postgresql"
[ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || need="$need iproute2"
# make bench's login section reads which logins paid sshd's delayed-ACK stall from tcpdump.
command -v tcpdump >/dev/null 2>&1 || [ -x /usr/bin/tcpdump ] || need="$need tcpdump"
# --fleet (make fleet): debootstrap (the chroots), systemd-nspawn (the newcomer's machine),
# rpm (reading the .rpm).
if [ "${1:-}" = --fleet ]; then
    command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || need="$need debootstrap"
    command -v systemd-nspawn >/dev/null 2>&1 || need="$need systemd-container"
    command -v rpm >/dev/null 2>&1 || need="$need rpm"
fi
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
