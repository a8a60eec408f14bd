# Shared by install-host.sh and install-central.sh (sourced; they define `say` and ROOT):
# writing files, and installing into a venv from the lock files.

# write_file DEST MODE [OWNER:GROUP]: stdin to DEST atomically (a file beside it,
# then rename); an unchanged file is left alone.
#
# The file is created with MODE already in force: a umask that leaves exactly
# MODE's read/write bits, in a subshell, and noclobber so that a name someone
# placed there first is never opened. A chmod after the bytes are in (as this
# once did) leaves a window in which another user can open the file and read
# the secret later through that descriptor. Owner and group are set before the
# rename, so DEST never has other ones, not even for an instant.
write_file() {
    tmp=$(dirname "$1")/.$(basename "$1").loginwatch.$$
    rm -f "$tmp"
    mask=$(printf '%03o' $((0777 & ~0$2)))
    if ! (umask "$mask" && set -C && cat >"$tmp"); then
        rm -f "$tmp"
        echo "${1#"$ROOT"}: cannot write it" >&2
        return 1
    fi
    [ -z "${3:-}" ] || chown "$3" "$tmp"
    chmod "$2" "$tmp" # only adds execute bits: the umask gave the rest
    if [ -f "$1" ] && [ ! -L "$1" ] && cmp -s "$tmp" "$1" && same_owner_mode "$tmp" "$1"; then
        rm -f "$tmp"
        return 0
    fi
    mv -f "$tmp" "$1"
    say "wrote ${1#"$ROOT"}"
}

# same_owner_mode A B: A and B have the same owner, group and mode.
same_owner_mode() {
    [ "$(stat -c '%u:%g:%a' "$1")" = "$(stat -c '%u:%g:%a' "$2")" ]
}

# pip_install_locked PYTHON SOURCE LOCK [PIP_ARG...]: into PYTHON's venv, the pip and
# setuptools that SOURCE/requirements/build.txt pins, then with that pip the distributions
# LOCK pins (exact versions, pip checks each file's hash), then the source tree SOURCE
# itself without resolving anything (--no-deps, built by the locked setuptools): a venv
# holds the versions `make test` tested, not the newest of the day. `make lock` refreshes
# the pins.
pip_install_locked() {
    python=$1 source=$2 lock=$3
    shift 3
    "$python" -m pip install -q --require-hashes -r "$source/requirements/build.txt"
    "$python" -m pip install -q --require-hashes -r "$source/requirements/$lock"
    "$python" -m pip install -q --no-deps --no-build-isolation "$@" "$source"
}
