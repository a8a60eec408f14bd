# Shared by install-host.sh and install-central.sh (sourced; they define `say`, `die` and
# ROOT), and by the packages' maintainer scripts: writing files, choosing a Python, and
# installing into a venv from the lock files or from a bundle's wheels.

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

# pip_install_locked PYTHON SOURCE LOCK TREE [PIP_ARG...]: into PYTHON's venv, the pip and
# setuptools that SOURCE/requirements/build.txt pins, then with that pip the distributions
# LOCK pins (exact versions, pip checks each file's hash), then the project in TREE
# without resolving anything (--no-deps, built by the locked setuptools): a venv holds the
# versions `make test` tested, not the newest of the day. `make lock` refreshes the pins.
pip_install_locked() {
    python=$1 source=$2 lock=$3 tree=$4
    shift 4
    "$python" -m pip install -q --require-hashes -r "$source/requirements/build.txt" &&
        "$python" -m pip install -q --require-hashes -r "$source/requirements/$lock" &&
        "$python" -m pip install -q --no-deps --no-build-isolation "$@" "$tree"
}

# stage_host_source SOURCE DEST: the host side alone (SOURCE/deploy/host/modules.txt, and
# its pyproject), at DEST, for pip to build loginwatch-host from: SOURCE's own pyproject
# is the central side's, for Python 3.11 and later.
stage_host_source() {
    while read -r _lw_file; do
        mkdir -p "$2/$(dirname "$_lw_file")"
        cp "$1/$_lw_file" "$2/$_lw_file"
    done <"$1/deploy/host/modules.txt"
    cp "$1/deploy/host/pyproject.toml" "$2/pyproject.toml"
}

# pick_python [bundle] [PYTHON]: PYTHON_BIN and PYTHON_VERSION, the host's interpreter for
# the venv: PYTHON if given, else the first of python3, python3.13 … python3.9 (and RHEL's
# platform-python) that is 3.9 or later; with "bundle", 3.9 to 3.13, which its wheels cover.
# Fails with one line naming what to install.
pick_python() {
    _lw_found=""
    for _lw_name in ${2:-python3 python3.13 python3.12 python3.11 python3.10 python3.9 \
        /usr/libexec/platform-python}; do
        _lw_path=$(command -v "$_lw_name" 2>/dev/null) || continue
        _lw_version=$("$_lw_path" -I -c 'import sys; print("%d.%d" % sys.version_info[:2])' \
            2>/dev/null) || continue
        _lw_found="$_lw_found $_lw_name ($_lw_version)"
        case ${1:-}:$_lw_version in
        bundle:3.9 | bundle:3.1[0-3] | :3.9 | :3.[1-9][0-9]) ;;
        *) continue ;;
        esac
        if ! "$_lw_path" -I -c 'import venv' 2>/dev/null; then
            echo "install-host: $_lw_name ($_lw_version) has no venv module: install python3-venv" \
                "(or python3-libs)" >&2
            return 1
        fi
        # shellcheck disable=SC2034 # the caller's
        PYTHON_BIN=$_lw_path
        # shellcheck disable=SC2034
        PYTHON_VERSION=$_lw_version
        return 0
    done
    echo "install-host: needs Python 3.9 to 3.13 for the hook, found${_lw_found:- no python3}:" \
        "install python3.9 or later (apt-get install python3, dnf install python3.11)," \
        "or give --python" >&2
    return 1
}

# bundle_pip PYTHON BUNDLE PIP_ARG...: the bundle's pip (the wheel it pins for PYTHON's
# version) run by PYTHON, from the wheel itself: a venv made --without-pip needs no
# ensurepip (Debian's python3-venv). On 3.9, pip finds install locations through
# distutils, which Debian ships apart (python3-distutils): sysconfig has them too.
bundle_pip() {
    _lw_python=$1 _lw_bundle=$2
    shift 2
    _lw_version=$("$_lw_python" -I -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    _lw_wheel=$(awk -v v="$_lw_version" '$1 == v { print $2 }' "$_lw_bundle/requirements/pip.txt")
    if [ -z "$_lw_wheel" ]; then
        echo "install-host: the bundle has no wheels for Python $_lw_version" \
            "($(awk '/^[0-9]/ { printf "%s ", $1 }' "$_lw_bundle/requirements/pip.txt")): give --python" >&2
        return 1
    fi
    "$_lw_python" -I -c '
import runpy, sys, sysconfig
sysconfig._PIP_USE_SYSCONFIG = True
sys.path.insert(0, sys.argv.pop(1))
sys.argv[0] = "pip"
runpy.run_module("pip", run_name="__main__", alter_sys=True)
' "$_lw_bundle/wheels/$_lw_wheel" "$@"
}

# native_hook VENV_BIN DIR: the C capture front-end built for this machine's architecture
# (DIR/bin/ARCH/loginwatch-hook in a bundle or a package, DIR/producer/native/out/ARCH/ in a
# source tree after `make native`) into VENV_BIN/loginwatch-hook-native, where it finds the
# venv's python, when it runs here. Says which foreground the hook uses; returns 1 for Python.
native_hook() {
    _lw_arch=$(uname -m)
    _lw_bin=""
    for _lw_try in "$2/bin/$_lw_arch/loginwatch-hook" "$2/producer/native/out/$_lw_arch/loginwatch-hook"; do
        if [ -f "$_lw_try" ]; then
            _lw_bin=$_lw_try
            break
        fi
    done
    if [ -z "$_lw_bin" ] || ! "$_lw_bin" --version >/dev/null 2>&1; then
        rm -f "$1/loginwatch-hook-native"
        say "the hook's foreground is Python: no C front-end for $_lw_arch${_lw_bin:+ that runs here} (make native builds one)"
        return 1
    fi
    write_file "$1/loginwatch-hook-native" 0755 <"$_lw_bin" || return 1
    say "the hook's foreground is the C front-end ($("$1/loginwatch-hook-native" --version))"
}

# bundle_install PYTHON BUNDLE [PIP_ARG...]: loginwatch-host and what host.txt pins for
# PYTHON, from the bundle's wheels only (--no-index), each wheel's hash checked.
bundle_install() {
    _lw_python=$1 _lw_bundle=$2
    shift 2
    bundle_pip "$_lw_python" "$_lw_bundle" install -q --no-index --no-cache-dir \
        --disable-pip-version-check --find-links "$_lw_bundle/wheels" --require-hashes \
        -r "$_lw_bundle/requirements/host.txt" -r "$_lw_bundle/requirements/self.txt" "$@"
}

# unpack_bundle FILE: prints the directory FILE's one loginwatch-host-VERSION/ went to, in a
# private directory of its own under $TMPDIR (the caller removes its parent), once every
# file matched the bundle's SHA256SUMS. Fails with one line.
unpack_bundle() {
    [ -f "$1" ] || { echo "install-host: $1: no such bundle" >&2; return 1; }
    _lw_tmp=$(mktemp -d "${TMPDIR:-/tmp}/loginwatch-bundle.XXXXXX") || return 1
    if ! tar -xzf "$1" -C "$_lw_tmp" --no-same-owner --no-same-permissions 2>/dev/null; then
        rm -rf "$_lw_tmp"
        echo "install-host: $1: not a loginwatch-host bundle (tar could not read it)" >&2
        return 1
    fi
    set -- "$1" "$_lw_tmp"/loginwatch-host-*
    if [ $# -ne 2 ] || [ ! -f "$2/SHA256SUMS" ] ||
        ! (cd "$2" && sha256sum --quiet --strict -c SHA256SUMS >/dev/null 2>&1); then
        rm -rf "$_lw_tmp"
        echo "install-host: $1: not a loginwatch-host bundle, or damaged (SHA256SUMS)" >&2
        return 1
    fi
    echo "$2"
}
