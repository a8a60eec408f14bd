#!/bin/sh
# loginwatch-host's postinstall, for the .deb and the .rpm: the hook's venv, from the wheels
# the package carries (no package index; every hash checked), made beside the old one and
# renamed into place, so a login during an upgrade finds a whole venv; then the flush timer
# enabled. The PAM lines are not written here: that is loginwatch-host-setup, a step of its own.
set -eu
LIB=/usr/lib/loginwatch-host
ROOT="" # files.sh's write_file names what it wrote below ROOT
say() { echo "loginwatch-host: $*"; }
die() { echo "loginwatch-host: $*" >&2; exit 1; }
# shellcheck source=deploy/lib/files.sh
. "$LIB/lib/files.sh"
pick_python bundle "" || exit 1
rm -rf "$LIB/venv.new" "$LIB/venv.old"
"$PYTHON_BIN" -m venv --without-pip "$LIB/venv.new"
bundle_install "$LIB/venv.new/bin/python" "$LIB" || { rm -rf "$LIB/venv.new"; exit 1; }
# The hook (/usr/sbin/loginwatch-hook links here): the C front-end built for this
# architecture when it runs here, else the Python launcher; native_hook says which.
if native_hook "$LIB/venv.new/bin" "$LIB"; then
    ln -sf loginwatch-hook-native "$LIB/venv.new/bin/loginwatch-hook-foreground"
else
    cp "$LIB/python-hook" "$LIB/venv.new/bin/loginwatch-hook-foreground"
fi
[ ! -d "$LIB/venv" ] || mv "$LIB/venv" "$LIB/venv.old"
mv "$LIB/venv.new" "$LIB/venv"
rm -rf "$LIB/venv.old"
say "the hook runs $PYTHON_BIN ($PYTHON_VERSION); next: loginwatch-host-setup --config FILE --password-file FILE"
if command -v systemctl >/dev/null 2>&1; then
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload
        systemctl enable --now loginwatch-flush.timer loginwatch-goodbye.service
    else
        # no systemd running (a chroot, an image)
        systemctl enable loginwatch-flush.timer loginwatch-goodbye.service
    fi
fi
