#!/bin/sh
# loginwatch-host's preremove, for the .deb ($1: remove, upgrade, …) and the .rpm ($1: how many
# stay installed, 0 when it goes): on removal only, the PAM step undone (the PAM file's
# original bytes back, if loginwatch-host-setup wrote it and nobody edited it since; else
# only loginwatch's blocks removed) and the flush timer stopped.
set -u
case ${1:-} in
remove | purge | 0)
    if [ "$(cat /var/lib/loginwatch-host/hook 2>/dev/null)" = /usr/sbin/loginwatch-hook ]; then
        sh /usr/lib/loginwatch-host/install-host.sh --packaged --uninstall ||
            echo "loginwatch-host: /etc/pam.d/sshd kept as it is (see above); its loginwatch lines" \
                "now name a missing hook, which PAM skips: remove them by hand" >&2
    fi
    if command -v systemctl >/dev/null 2>&1; then
        if [ -d /run/systemd/system ]; then
            systemctl disable --now loginwatch-flush.timer || true
            systemctl disable loginwatch-goodbye.service || true
        else
            systemctl disable loginwatch-flush.timer loginwatch-goodbye.service || true
        fi
    fi
    ;;
esac
exit 0
