#!/bin/sh
# loginwatch-host's postremove (.deb: remove, purge, upgrade…; .rpm: 0 when it goes): the venv
# postinstall made goes with the package. The config, the password and the spool (unsent
# events) stay, as install-host.sh --uninstall keeps them.
set -u
case ${1:-} in
remove | purge | 0)
    rm -rf /usr/lib/loginwatch-host/venv /usr/lib/loginwatch-host/venv.new
    rmdir /usr/lib/loginwatch-host 2>/dev/null || true
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        systemctl daemon-reload || true
    fi
    ;;
esac
exit 0
