# Editing /etc/pam.d/sshd for loginwatch: sourced by install-host.sh (POSIX sh + awk).
#
# Everything loginwatch adds sits between "# >>> loginwatch" and "# <<< loginwatch"
# lines; a line it replaced is kept inside the block as "#loginwatch-was: LINE".
# pam_strip therefore gives back the file as it was, and installing again starts
# from that, so installing twice gives the same bytes.

PAM_BEGIN='# >>> loginwatch'
PAM_END='# <<< loginwatch'
PAM_WAS='#loginwatch-was: '

# pam_strip FILE [NAME]: FILE without loginwatch's blocks, replaced lines restored.
# Fails, naming the line (as NAME:LINE), when the markers do not pair up: with
# an end line deleted by hand, everything after the begin line (the account
# stack, pam_nologin, pam_limits …) would go with the block.
pam_strip() {
    awk -v begin="$PAM_BEGIN" -v end="$PAM_END" -v was="$PAM_WAS" -v name="${2:-$1}" '
        function bad(why) {
            printf "%s:%d: %s: put the marker line back (or remove the whole block by hand)\n", name, FNR, why > "/dev/stderr"
            failed = 1
            exit 1
        }
        index($0, begin) == 1 { if (inside) bad("\"" begin "\" inside a block that line " start " opened and did not close"); inside = 1; start = FNR; next }
        index($0, end) == 1 { if (!inside) bad("\"" end "\" without a \"" begin "\" line before it"); inside = 0; next }
        inside && index($0, was) == 1 { print substr($0, length(was) + 1); next }
        inside { next }
        { print }
        END {
            if (failed) exit 1
            if (inside) { FNR = start; bad("\"" begin "\" without a \"" end "\" line after it") }
        }
    ' "$1"
}

# pam_walk ROOT FILE [NAME]: every pam_env.so line that libpam loads for the stack in
# FILE, following "TYPE include|substack NAME" (that TYPE's lines of NAME) and
# Debian's "@include NAME" (NAME's lines of the type asked for) recursively,
# as libpam reads them: '#' ends a line, a trailing '\' continues it across
# blank and comment lines, "-TYPE" and "[value=action]" controls count like
# any other, types and controls are case-insensitive, and NAME is
# ROOT/etc/pam.d/NAME (else ROOT/usr/lib/pam.d/NAME), or ROOT/NAME when it is
# absolute. One tab-separated line per pam_env line, in stack order:
#   ENV  TOP TYPE USER_READENV WHERE   USER_READENV: 1, 0, or "default"
#   FILE TOP TYPE PATH WHERE           a file it reads as root (conffile, envfile)
#   STACK TOP stack PATH WHERE         a PAM file of the stack (once each; TYPE "stack")
# TOP is the line of FILE the stack reaches it through (where a hook placed
# before it runs first), WHERE the include chain ("/etc/pam.d/sshd:25 >
# /etc/pam.d/common-session:3"; FILE is called NAME there if given).
# An include cycle, a missing or unreadable file, or nesting deeper than 32
# gives "ERR MESSAGE" instead: libpam cannot load that stack either.
pam_walk() {
    awk -v root="$1" -v start="$2" -v name="${3:-}" '
        function fail(why) { printf "ERR\t%s\n", why; failed = 1 }
        function short(path) {
            if (path == start && name != "") return name
            return index(path, root) == 1 && root != "" ? substr(path, length(root) + 1) : path
        }
        # Tokens as libpam splits them: blanks separate; "[...]" is one token
        # without its brackets, "\]" inside it being "]".
        function tokens(s, tok,    n, i, c, t) {
            n = 0
            for (;;) {
                sub(/^[ \t]+/, "", s)
                if (s == "") return n
                if (substr(s, 1, 1) == "[") {
                    t = ""
                    for (i = 2; i <= length(s) && (c = substr(s, i, 1)) != "]"; i++) {
                        if (c == "\\" && substr(s, i + 1, 1) == "]") { c = "]"; i++ }
                        t = t c
                    }
                    s = substr(s, i + 1)
                } else {
                    match(s, /^[^ \t]+/)
                    t = substr(s, 1, RLENGTH)
                    s = substr(s, RLENGTH + 1)
                }
                tok[++n] = t
            }
        }
        # atoi() as pam_env reads a flag: anything but a zero is on (an
        # overflowing number counts as on: the safe side).
        function flag(s) {
            sub(/^[ \t\n\v\f\r]*[+-]?/, "", s)
            match(s, /^[0-9]*/)
            return substr(s, 1, RLENGTH) ~ /[1-9]/ ? 1 : 0
        }
        function resolve(name,    path, x) {
            if (name ~ /^\//) return root name
            path = root "/etc/pam.d/" name
            if (path in chain || (getline x < path) >= 0) { if (!(path in chain)) close(path); return path }
            path = root "/usr/lib/pam.d/" name
            if (path in chain || (getline x < path) >= 0) { if (!(path in chain)) close(path); return path }
            return root "/etc/pam.d/" name
        }
        function include(name, want, depth, top, where,    path) {
            if (name == "") { fail(where ": include without a file name"); return }
            path = resolve(name)
            if (path in chain) { fail(where ": include cycle back to " short(path)); return }
            walk(path, want, depth, top, where)
        }
        function pam_env(type, top, where, tok, n,    i, a, user, readenv, conffile, envfile) {
            user = "default"; readenv = 1
            conffile = "/etc/security/pam_env.conf"; envfile = "/etc/environment"
            for (i = 4; i <= n; i++) {
                a = tok[i]
                if (a ~ /^conffile=./) conffile = substr(a, 10)
                else if (a ~ /^envfile=./) envfile = substr(a, 9)
                else if (a ~ /^readenv=/) readenv = flag(substr(a, 9))
                else if (a ~ /^user_readenv=/) user = flag(substr(a, 14))
            }
            printf "ENV\t%d\t%s\t%s\t%s\n", top, type, user, where
            printf "FILE\t%d\t%s\t%s\t%s\n", top, type, conffile, where
            if (readenv) printf "FILE\t%d\t%s\t%s\t%s\n", top, type, envfile, where
        }
        function visit(line, want, depth, top, where,    tok, n, type, control) {
            n = tokens(line, tok)
            type = tolower(tok[1])
            if (type == "@include") { include(tok[2], want, depth + 1, top, where); return }
            sub(/^-/, "", type)
            # An unknown type is a line that always fails (pam_check names it).
            if (type !~ /^(auth|account|password|session)$/ || (want != "" && type != want)) return
            control = tolower(tok[2])
            if (control == "include" || control == "substack") include(tok[3], type, depth + 1, top, where)
            else if (tok[3] ~ /(^|\/)pam_env\.so$/) pam_env(type, top, where, tok, n)
        }
        # walk(PATH, TYPE or "" for all, DEPTH, TOP, WHERE)
        function walk(path, want, depth, top, where,    raw, r, lineno, first, line, cont, cut, here) {
            if (depth > 32) { fail(where ": includes nested deeper than 32"); return }
            if ((r = (getline raw < path)) < 0) { fail(where ": cannot read " short(path)); return }
            chain[path] = 1
            # A stack file someone else can write is their text too: they may add any line.
            if (!(path in stacks)) { stacks[path] = 1; printf "STACK\t%d\tstack\t%s\t%s\n", depth ? top : 1, short(path), (where == "" ? short(path) : where) }
            lineno = 0; line = ""; cont = 0
            for (; r > 0; r = (getline raw < path)) {
                lineno++
                # libpam skips blank and comment lines, inside a continuation too.
                if (raw ~ /^[ \t]*(#|$)/) continue
                if (!cont) first = lineno
                if ((cut = index(raw, "#")) > 0) { raw = substr(raw, 1, cut - 1); cont = 0 }
                else if (raw ~ /\\[ \t]*$/) { sub(/\\[ \t]*$/, " ", raw); cont = 1 }
                else cont = 0
                line = line raw
                if (cont) continue
                here = (where == "" ? "" : where " > ") short(path) ":" first
                visit(line, want, depth, depth ? top : first, here)
                line = ""
            }
            close(path)
            delete chain[path]
        }
        BEGIN { walk(start, "", 0, 0, ""); exit failed }
    '
}

# pam_user_readenv_default [MODULE]: 1 when pam_env.so (libpam's, or MODULE)
# reads ~/.pam_environment unless told user_readenv=0. Linux-PAM turned that
# default off in 1.4.0; only 1.5.0 and later say so in the module (its
# deprecation notice), so a 1.4 counts as on, and so does no module found.
pam_user_readenv_default() {
    _lw_module=${1:-}
    if [ -z "$_lw_module" ]; then
        for _lw_dir in /lib/security /lib64/security /usr/lib/security /usr/lib64/security \
            /lib/*/security /usr/lib/*/security; do
            [ -f "$_lw_dir/pam_env.so" ] && { _lw_module=$_lw_dir/pam_env.so; break; }
        done
    fi
    if [ -n "$_lw_module" ] && grep -aqF 'deprecated reading of user environment' "$_lw_module"; then
        echo 0
    else
        echo 1
    fi
}

# pam_writable_by_others ROOT PATH: true when someone other than root could put
# text at ROOT/PATH: the file, or any directory on the way to it from ROOT (or
# to where a symlink on the way points), is owned by someone other than root,
# or group/other-writable (a
# sticky one like /tmp only when the next name in it does not exist yet: then
# anyone may create it). A missing file or directory is no safer than the
# first one that exists above it: pam_env reads whatever appears there later.
pam_writable_by_others() {
    _lw_path=$1$2
    _lw_below=""
    _lw_depth=${3:-0}
    [ "$_lw_depth" -lt 8 ] || return 0 # a symlink loop: libpam cannot read it either
    while :; do
        if [ -L "$_lw_path" ]; then
            # A symlink (Fedora's authselect makes /etc/pam.d/system-auth one): its
            # owner, then where it points, read below ROOT; its directory follows.
            # shellcheck disable=SC2012
            ls -ldn "$_lw_path" | awk '{ exit !($3 != 0) }' && return 0
            _lw_to=$(readlink "$_lw_path")
            case $_lw_to in /*) ;; *) _lw_to=$(dirname "${_lw_path#"$1"}")/$_lw_to ;; esac
            (pam_writable_by_others "$1" "$_lw_to" $((_lw_depth + 1))) && return 0
            _lw_below=exists
        elif [ -e "$_lw_path" ]; then
            # (ls -n, not GNU stat: this file is POSIX sh.)
            # shellcheck disable=SC2012
            ls -ldn "$_lw_path" | awk -v below="$_lw_below" '{
                m = $1
                open = substr(m, 6, 1) == "w" || substr(m, 9, 1) == "w"
                sticky = substr(m, 10, 1) ~ /[tT]/
                exit !($3 != 0 || (open && !(sticky && below == "exists")))
            }' && return 0
            _lw_below=exists
        else
            _lw_below=missing
        fi
        [ "$_lw_path" != "$1" ] && [ "$_lw_path" != "$1/" ] && [ "$_lw_path" != / ] || return 1
        _lw_path=$(dirname "$_lw_path")
        [ ${#_lw_path} -ge ${#1} ] || return 1
    done
}

# pam_user_env ROOT FILE [NAME]: where the stack in FILE puts text a user wrote into
# the PAM environment, one tab-separated line each, in stack order:
#   TYPE TOP WHAT WHERE   e.g. "auth  1  user_readenv=1  sshd:1 > common-auth:4"
# WHAT is what makes that pam_env line read the user's text. A walk error is
# printed as "ERR MESSAGE" and fails.
pam_user_env() {
    _lw_default=$(pam_user_readenv_default "")
    _lw_walk=$(pam_walk "$1" "$2" "${3:-}") || { printf '%s\n' "$_lw_walk" | grep '^ERR'; return 1; }
    printf '%s\n' "$_lw_walk" | while IFS="$(printf '\t')" read -r _lw_kind _lw_top _lw_type _lw_what _lw_where; do
        case $_lw_kind:$_lw_what in
        ENV:1) printf '%s\t%s\t%s\t%s\n' "$_lw_type" "$_lw_top" "user_readenv=1" "$_lw_where" ;;
        ENV:default)
            if [ "$_lw_default" = 1 ]; then
                printf '%s\t%s\t%s\t%s\n' "$_lw_type" "$_lw_top" \
                    "no user_readenv=0 (this pam_env reads ~/.pam_environment by default)" "$_lw_where"
            fi ;;
        STACK:*)
            if pam_writable_by_others "$1" "$_lw_what"; then
                printf '%s\t%s\t%s\t%s\n' stack "$_lw_top" \
                    "$_lw_what is a PAM file others than root can write" "$_lw_where"
            fi ;;
        FILE:*)
            # pam_env opens a relative name from sshd's working directory, /.
            case $_lw_what in /*) _lw_file=$_lw_what ;; *) _lw_file=/$_lw_what ;; esac
            if pam_writable_by_others "$1" "$_lw_file"; then
                printf '%s\t%s\t%s\t%s\n' "$_lw_type" "$_lw_top" \
                    "$_lw_what, which others than root can write" "$_lw_where"
            fi ;;
        esac
    done
    return 0
}

# pam_fix WHAT: what to change so that a pam_env line pam_user_env reported
# with WHAT no longer reads a user's text.
pam_fix() {
    case $1 in
    user_readenv=1) echo "drop user_readenv=1 from that line" ;;
    no\ user_readenv=0*) echo "add user_readenv=0 to that line" ;;
    *) echo "make that file root's and writable by root only" ;;
    esac
}

# pam_refusal ROOT FILE [NAME]: prints one line and succeeds when the stack in
# FILE (its loginwatch blocks aside) must not get the hook: libpam could not
# load it, or a stack that runs before the session hook puts text a user
# wrote into the PAM environment. pam_exec hands that environment to the
# hook, which runs as root: ld.so would load the user's LD_PRELOAD into it,
# and no flag of the hook's own (python -I) comes early enough. In the auth
# stack pam_env reads ~/.pam_environment at setcred, which sshd calls before
# it opens the session: no placement of a session hook comes before that.
pam_refusal() {
    _lw_stripped=$(mktemp)
    if ! _lw_why=$(pam_strip "$2" "${3:-$2}" 2>&1 >"$_lw_stripped"); then
        rm -f "$_lw_stripped"
        echo "loginwatch's lines in ${3:-$2} are broken: $_lw_why"
        return 0
    fi
    _lw_status=0
    _lw_found=$(pam_user_env "$1" "$_lw_stripped" "${3:-}") || _lw_status=1
    rm -f "$_lw_stripped"
    if [ "$_lw_status" != 0 ]; then
        echo "${3:-$2}'s stack cannot be read as libpam reads it: $(printf '%s\n' "$_lw_found" | head -1 | cut -f2-)"
        return 0
    fi
    _lw_early=$(printf '%s\n' "$_lw_found" | grep -v '^session' | grep -v '^$' | head -1) || true
    [ -n "$_lw_early" ] || return 1
    _lw_type=$(printf '%s' "$_lw_early" | cut -f1)
    _lw_what=$(printf '%s' "$_lw_early" | cut -f3)
    if [ "$_lw_type" = stack ]; then
        _lw_where=$(printf '%s' "$_lw_early" | cut -f4)
        _lw_what=$(printf '%s' "$_lw_early" | cut -f3)
        case $_lw_what in "$_lw_where "*) ;; *) _lw_what="$_lw_where: $_lw_what" ;; esac
        echo "$_lw_what:" \
            "they could add any line to the stack (pam_env with their LD_PRELOAD for the root hook," \
            "or a module of their own); make it root's and writable by root only and run install-host.sh again"
        return 0
    fi
    case $_lw_type in
    auth) _lw_when="the auth stack, where it takes effect at setcred, before any session hook" ;;
    *) _lw_when="the $_lw_type stack, which runs before the session hook" ;;
    esac
    echo "$(printf '%s' "$_lw_early" | cut -f4) runs pam_env.so ($_lw_what) in $_lw_when," \
        "so the root hook would run with the user's variables (LD_PRELOAD);" \
        "$(pam_fix "$_lw_what") (or make it a session line) and run install-host.sh again"
}

# pam_first_env_line ROOT FILE: the line of FILE through which the session
# stack first reaches pam_env (any pam_env), or nothing.
pam_first_env_line() {
    pam_walk "$1" "$2" | awk -F '\t' '$1 == "ENV" && $3 == "session" { print $2; exit }'
}

# pam_session_hook_line ROOT FILE: where the login hook goes in FILE: right
# before the first session line that reaches pam_env, so that at open_session
# its environment holds nothing pam_env read; earlier still if a session line
# of FILE before that jumps by number ([success=2 …]), which would otherwise
# count the hook as one of the modules it skips. Nothing: at the end.
pam_session_hook_line() {
    _lw_env=$(pam_first_env_line "$1" "$2")
    awk -v env="$_lw_env" '
        /^[ \t]*#/ { next }
        tolower($1) ~ /^-?session$/ && $2 ~ /^\[/ && $0 ~ /\[[^]]*=[0-9]+[] \t]/ { jump = FNR; exit }
        END {
            if (env != "" && (jump == "" || env + 0 < jump + 0)) print env
            else if (jump != "") print jump
        }
    ' "$2"
}

# pam_add_session FILE LINE [AT]: LINE in its own block, right before line AT
# of FILE (at the end without AT).
pam_add_session() {
    LW_LINE=$2 awk -v begin="$PAM_BEGIN" -v end="$PAM_END" -v at="${3:-0}" '
        function block() {
            print begin ": login hook, before pam_env (install-host.sh)"
            print ENVIRON["LW_LINE"]
            print end
            done = 1
        }
        !done && FNR == at + 0 { block() }
        { print }
        END { if (!done) block() }
    ' "$1"
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
# with a known type, a well-formed control and a module that exists (on this
# machine, or in the tree PAMDIR is the /etc/pam.d of: an image built with --root).
# Run on every file before it replaces the live one: a typo there can lock out root.
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
            MOD) pam_module_exists "$_lw_name" "${2%/etc/pam.d}" || echo "$1: module $_lw_name not found" ;;
            *) echo "$_lw_kind $_lw_name" ;;
            esac
        done
    )
    [ -z "$_lw_bad" ] && return 0
    printf '%s\n' "$_lw_bad" >&2
    return 1
}

# pam_module_exists NAME [ROOT]: an absolute path, or a file in one of libpam's
# directories, on this machine or below ROOT.
pam_module_exists() {
    case $1 in
    /*) [ -f "$1" ] || { [ -n "${2:-}" ] && [ -f "$2$1" ]; }; return ;;
    esac
    for _lw_dir in /lib/security /lib64/security /usr/lib/security /usr/lib64/security \
        /lib/*/security /usr/lib/*/security; do
        [ -f "$_lw_dir/$1" ] && return 0
        [ -n "${2:-}" ] && [ -f "$2$_lw_dir/$1" ] && return 0
    done
    return 1
}
