# Shared by install-host.sh and install-central.sh (sourced; they define `say` and ROOT).

# write_file DEST MODE: stdin to DEST atomically (same directory, then rename);
# an unchanged file is left alone.
write_file() {
    tmp=$(dirname "$1")/.$(basename "$1").loginwatch.$$
    cat >"$tmp"
    chmod "$2" "$tmp"
    if [ -f "$1" ] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; return 0; fi
    mv -f "$tmp" "$1"
    say "wrote ${1#"$ROOT"}"
}
