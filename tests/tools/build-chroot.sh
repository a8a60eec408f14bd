#!/bin/sh
# build-chroot.sh RELEASE TARBALL: debootstraps Debian RELEASE (11, 12 or 13) from Debian's
# mirror and packs it as TARBALL (gzip), for the fleet tests (tests/support/chroot.py). The
# tarball is written beside TARBALL first and renamed into place, so a half-built chroot is
# never taken for a cached one; a release the mirror no longer serves leaves TARBALL's
# .unavailable file instead (one line, which the tests print). Needs root and debootstrap
# (installed when missing).
#
# What each release carries:
#   11  bullseye  python3 3.9.2 without python3-venv (the bundle's pip goes in by hand),
#                 openssh-server: the oldest host Python, a target for Ansible
#   (both: gcc, for the hook tests that exec it with a raw environment)
#   13  trixie    python3 3.13 with python3-venv, openssh-server, systemd (the package's
#                 flush units are enabled there): the newest host Python, the .deb's test
#   12  bookworm  make and git only: the newcomer's fresh machine (make newcomer)
set -eu
release=${1:?usage: build-chroot.sh 11|12|13 TARBALL}
out=${2:?usage: build-chroot.sh 11|12|13 TARBALL}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
case $release in
11) suite=bullseye; include=python3,openssh-server,openssh-client,sudo,iproute2,ca-certificates,gcc,libc6-dev ;;
12) suite=bookworm; include=make,git,ca-certificates ;;
13) suite=trixie; include=python3,python3-venv,openssh-server,openssh-client,sudo,systemd,iproute2,ca-certificates,gcc,libc6-dev ;;
*) echo "build-chroot: unknown release $release (11, 12 or 13)" >&2; exit 2 ;;
esac
say() { echo "build-chroot: $*"; }
[ "$(id -u)" = 0 ] || { say "needs root (debootstrap)" >&2; exit 1; }
command -v debootstrap >/dev/null 2>&1 || {
    say "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
}
gone=${out%.tar.gz}.unavailable
rm -f "$gone"
# A release past its life leaves the mirror (Debian 11 after its LTS): the tests that need it
# then skip with this one line, everywhere, and the docs name the oldest release still tested.
if ! python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=30)' \
    "$MIRROR/dists/$suite/Release" 2>/dev/null; then
    mkdir -p "$(dirname "$out")"
    echo "Debian $release ($suite) is no longer on $MIRROR: not tested (DEBIAN_MIRROR names another)" |
        tee "$gone" >&2
    exit 0
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/loginwatch-chroot-$release.XXXXXX")
trap 'rm -rf "$work"' EXIT
say "debootstrap $suite from $MIRROR (a few minutes)"
debootstrap --variant=minbase --include="$include" "$suite" "$work/root" "$MIRROR" \
    >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
# Nothing started by a package's maintainer script while we build, and apt's lists and
# archives left out of the tarball.
rm -rf "$work/root/var/cache/apt/archives"/*.deb "$work/root/var/lib/apt/lists"/*_Packages
echo "$release" >"$work/root/etc/loginwatch-chroot"
mkdir -p "$(dirname "$out")"
tar -C "$work/root" --numeric-owner -czf "$out.part" .
mv -f "$out.part" "$out"
say "wrote $out ($(du -h "$out" | cut -f1))"
