# Editing /etc/pam.d/sshd for loginwatch: sourced by install-host.sh (POSIX sh + awk).
#
# Everything loginwatch adds sits between "# >>> loginwatch" and "# <<< loginwatch"
# lines; a line it replaced is kept inside the block as "#loginwatch-was: LINE".
# pam_strip therefore gives back the file as it was, and installing again starts
# from that, so installing twice gives the same bytes.

PAM_BEGIN='# >>> loginwatch'
PAM_END='# <<< loginwatch'
PAM_WAS='#loginwatch-was: '

# pam_strip FILE: FILE without loginwatch's blocks, replaced lines restored.
pam_strip() {
    awk -v begin="$PAM_BEGIN" -v end="$PAM_END" -v was="$PAM_WAS" '
        index($0, begin) == 1 { inside = 1; next }
        index($0, end) == 1 { inside = 0; next }
        inside && index($0, was) == 1 { print substr($0, length(was) + 1); next }
        inside { next }
        { print }
    ' "$1"
}

# pam_reads_user_env FILE...: true when a pam_env line reads ~/.pam_environment.
pam_reads_user_env() {
    grep -Eq '^[[:space:]]*-?session[[:space:]].*pam_env\.so.*user_readenv=1' "$@" 2>/dev/null
}

# pam_env_files PAMDIR: names of the files in PAMDIR that run pam_env.so.
pam_env_files() {
    for _lw_file in "$1"/*; do
        if grep -Eq '^[^#]*pam_env\.so' "$_lw_file" 2>/dev/null; then
            basename "$_lw_file"
        fi
    done
}

# pam_add_session FILE LINE [ENV_FILE...]: LINE in its own block, before the
# first session line that runs pam_env, directly or by including one of the
# ENV_FILEs (else at the end). Placed there, the hook's root environment at
# open_session holds nothing a user wrote in ~/.pam_environment.
pam_add_session() {
    _lw_file=$1
    _lw_line=$2
    shift 2
    LW_LINE=$_lw_line LW_ENV_FILES="$*" awk -v begin="$PAM_BEGIN" -v end="$PAM_END" '
        BEGIN { n = split(ENVIRON["LW_ENV_FILES"], f, " "); for (i = 1; i <= n; i++) env[f[i]] = 1 }
        function block() {
            print begin ": login hook, before pam_env (install-host.sh)"
            print ENVIRON["LW_LINE"]
            print end
            done = 1
        }
        !done && /^[[:space:]]*-?session[[:space:]].*pam_env\.so/ { block() }
        !done && $1 == "@include" && ($2 in env) { block() }
        !done && $1 ~ /^-?session$/ && $2 ~ /^(include|substack)$/ && ($3 in env) { block() }
        { print }
        END { if (!done) block() }
    ' "$_lw_file"
}

# pam_auth_block COMMON_AUTH LINE: the auth lines of COMMON_AUTH with LINE
# inserted right before its "requisite pam_deny.so", where only a failed
# authentication arrives. Numeric jumps that cross the new line grow by one, so
# every other module decides exactly as before. Exits 3 when COMMON_AUTH is not
# laid out as pam-auth-update writes it (each module before pam_deny jumps past
# it on success): then reaching LINE would not mean "failed".
pam_auth_block() {
    LW_LINE=$2 awk '
        function fail(why) { print "pam: " FILENAME ": " why > "/dev/stderr"; bad = 1; exit 3 }
        # The numeric jumps of a bracket control, those landing past `at` grown by one.
        function shift(text, i, at,    head, tail, n, k, parts, pair, out) {
            if (!match(text, /\[[^]]*\]/)) return text
            head = substr(text, 1, RSTART)
            tail = substr(text, RSTART + RLENGTH - 1)
            n = split(substr(text, RSTART + 1, RLENGTH - 2), parts, /[ \t]+/)
            out = ""
            for (k = 1; k <= n; k++) {
                if (parts[k] == "") continue
                split(parts[k], pair, "=")
                if (pair[2] ~ /^[0-9]+$/ && i + pair[2] >= at) parts[k] = pair[1] "=" (pair[2] + 1)
                out = out (out == "" ? "" : " ") parts[k]
            }
            return head out tail
        }
        /^[[:space:]]*(#|$)/ { next }
        $1 ~ /^@include$/ || $2 ~ /^(include|substack)$/ { fail("nested includes are not supported") }
        $1 !~ /^-?auth$/ { next }
        { auth[++n] = $0 }
        !deny && $2 == "requisite" && $3 ~ /(^|\/)pam_deny\.so$/ { deny = n }
        END {
            if (bad) exit 3
            if (!deny) fail("no \"auth requisite pam_deny.so\" line")
            for (i = 1; i < deny; i++) {
                if (!match(auth[i], /success=[0-9]+/)) fail("auth line " i " does not jump on success")
                if (i + substr(auth[i], RSTART + 8, RLENGTH - 8) < deny) fail("auth line " i " jumps short of pam_deny")
            }
            for (i = 1; i <= n; i++) {
                if (i == deny) print ENVIRON["LW_LINE"]
                print (i < deny ? shift(auth[i], i, deny) : auth[i])
            }
        }
    ' "$1"
}

# pam_add_auth FILE COMMON_AUTH LINE: FILE with its "@include common-auth" line
# replaced by a block holding pam_auth_block's lines. Exits 3 without output
# when there is no such line or pam_auth_block refuses COMMON_AUTH.
pam_add_auth() {
    if ! grep -Eq '^[[:space:]]*@include[[:space:]]+common-auth[[:space:]]*$' "$1"; then
        echo "pam: $1: no \"@include common-auth\" line" >&2
        return 3
    fi
    _lw_block=$(pam_auth_block "$2" "$3") || return 3
    LW_BLOCK=$_lw_block awk -v begin="$PAM_BEGIN" -v end="$PAM_END" -v was="$PAM_WAS" '
        !placed && /^[[:space:]]*@include[[:space:]]+common-auth[[:space:]]*$/ {
            print begin ": common-auth with a failed-password hook (install-host.sh;" \
                " run it again after pam-auth-update)"
            print was $0
            print ENVIRON["LW_BLOCK"]
            print end
            placed = 1
            next
        }
        { print }
    ' "$1"
}

# pam_check FILE PAMDIR: fails, naming the line, unless every line of FILE is a
# comment, "@include NAME" of a file in PAMDIR, or "TYPE CONTROL MODULE ARGS"
# with a known type, a well-formed control and a module that exists. Run on
# every file before it replaces the live one: a typo there can lock out root.
pam_check() {
    _lw_bad=$(
        awk '
            BEGIN {
                split("success open_err symbol_err service_err system_err buf_err perm_denied" \
                    " auth_err cred_insufficient authinfo_unavail user_unknown maxtries" \
                    " new_authtok_reqd acct_expired session_err cred_unavail cred_expired" \
                    " cred_err no_module_data conv_err authtok_err authtok_recover_err" \
                    " authtok_lock_busy authtok_disable_aging try_again ignore abort" \
                    " authtok_expired module_unknown bad_item conv_again incomplete default", v, " ")
                for (k in v) VALUES[v[k]] = 1
            }
            # (mawk allows no `next` inside a function: callers say `next`.)
            function bad(why) { printf "%s:%d: %s\n", FILENAME, FNR, why }
            /\\$/ { bad("line continuation: not checked, edit by hand"); next }
            { sub(/#.*/, "") }
            /^[[:space:]]*$/ { next }
            $1 == "@include" { if (NF != 2) { bad("@include takes one file"); next }; print "INC " $2; next }
            $1 !~ /^-?(auth|account|password|session)$/ { bad("unknown type \"" $1 "\""); next }
            {
                rest = $0
                sub(/^[[:space:]]*[^[:space:]]+[[:space:]]+/, "", rest)
                if (rest ~ /^\[/) {
                    if (!match(rest, /^\[[^]]*\]/)) { bad("unclosed ["); next }
                    n = split(substr(rest, 2, RLENGTH - 2), pairs, /[ \t]+/)
                    for (k = 1; k <= n; k++) {
                        if (pairs[k] == "") continue
                        split(pairs[k], pair, "=")
                        if (!(pair[1] in VALUES) || pair[2] !~ /^(ignore|bad|die|ok|done|reset|[0-9]+)$/)
                            { bad("bad value=action \"" pairs[k] "\""); next }
                    }
                    rest = substr(rest, RLENGTH + 1)
                    split(rest, words, /[ \t]+/)
                    module = (words[1] == "" ? words[2] : words[1])
                    control = "[]"
                } else {
                    split(rest, words, /[ \t]+/)
                    control = words[1]; module = words[2]
                }
                if (control !~ /^(required|requisite|sufficient|optional|include|substack|\[\])$/) { bad("unknown control \"" control "\""); next }
                if (module == "") { bad("no module"); next }
                if (control == "include" || control == "substack") print "INC " module
                else if ($1 !~ /^-/) print "MOD " module
            }
        ' "$1" | while read -r _lw_kind _lw_name; do
            case $_lw_kind in
            INC) [ -f "$2/$_lw_name" ] || echo "$1: includes missing $2/$_lw_name" ;;
            MOD) pam_module_exists "$_lw_name" || echo "$1: module $_lw_name not found" ;;
            *) echo "$_lw_kind $_lw_name" ;;
            esac
        done
    )
    [ -z "$_lw_bad" ] && return 0
    printf '%s\n' "$_lw_bad" >&2
    return 1
}

# pam_module_exists NAME: an absolute path, or a file in one of libpam's directories.
pam_module_exists() {
    case $1 in
    /*) [ -f "$1" ]; return ;;
    esac
    for _lw_dir in /lib/security /lib64/security /usr/lib/security /usr/lib64/security \
        /lib/*/security /usr/lib/*/security; do
        [ -f "$_lw_dir/$1" ] && return 0
    done
    return 1
}
