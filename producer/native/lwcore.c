/* The pure half of the C front-end (lwcore.h says which Python function each mirrors). */
#include "lwcore.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const CAPTURED[LW_CAPTURED] = {
    "PAM_USER", "PAM_RUSER", "PAM_RHOST", "PAM_SERVICE",
    "PAM_TTY", "PAM_TYPE", "SSH_CONNECTION", "SSH_AUTH_INFO_0",
};
/* The items pam_exec appends after the PAM environment, in its order; PAM_TYPE last. */
#define PAM_EXEC_ITEMS 6
static const char *const PAM_EXEC[PAM_EXEC_ITEMS] = {
    "PAM_SERVICE", "PAM_USER", "PAM_TTY", "PAM_RHOST", "PAM_RUSER", "PAM_TYPE",
};
static const char *const LINKS[LW_LINKS] = {"LW_AUDIT", "LW_LOGINUID", "LW_SSHD"};
static const char MAGIC2[] = "LWCAP2 ";
static const char SETTINGS_MAGIC[] = "LWSET1";

uint32_t lw_crc32(const unsigned char *data, size_t len)
{
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++) {
        crc ^= data[i];
        for (int bit = 0; bit < 8; bit++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return crc ^ 0xFFFFFFFFu;
}

struct pair {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

static int named(const struct pair *p, const char *name)
{
    return p->name_len == strlen(name) && memcmp(p->name, name, p->name_len) == 0;
}

/* The rank of a name in pam_exec's order, or -1. */
static int pam_exec_rank(const struct pair *p)
{
    for (int i = 0; i < PAM_EXEC_ITEMS; i++)
        if (named(p, PAM_EXEC[i]))
            return i;
    return -1;
}

/* capture._pam_exec_block: where pam_exec's own tail starts (count: no block). */
static size_t pam_exec_block(const struct pair *pairs, size_t count)
{
    if (count == 0 || !named(&pairs[count - 1], "PAM_TYPE"))
        return count;
    size_t start = count - 1;
    int rank = PAM_EXEC_ITEMS - 1;
    while (start > 0) {
        int found = pam_exec_rank(&pairs[start - 1]);
        if (found < 0 || found >= rank)
            break;
        rank = found;
        start--;
    }
    return start;
}

static void keep(struct lw_env *out, const struct pair *p)
{
    for (int i = 0; i < LW_CAPTURED; i++)
        if (named(p, CAPTURED[i])) {
            out->value[i] = p->value;
            out->len[i] = p->value_len;
        }
}

int lw_trusted(const char *block, size_t len, struct lw_env *out)
{
    memset(out, 0, sizeof *out);
    size_t entries = 1;
    for (size_t i = 0; i < len; i++)
        entries += block[i] == '\0';
    struct pair *pairs = calloc(entries, sizeof *pairs);
    if (pairs == NULL)
        return -1;
    size_t count = 0;
    for (size_t at = 0; at < len;) {
        const char *entry = block + at;
        const char *end = memchr(entry, '\0', len - at);
        size_t entry_len = end ? (size_t)(end - entry) : len - at;
        at += entry_len + 1;
        if (entry_len < 4 || (memcmp(entry, "PAM_", 4) != 0 && memcmp(entry, "SSH_", 4) != 0))
            continue;
        const char *eq = memchr(entry, '=', entry_len);
        if (eq == NULL)
            continue;
        pairs[count++] = (struct pair){entry, (size_t)(eq - entry), eq + 1,
                                       entry_len - (size_t)(eq - entry) - 1};
    }
    size_t start = pam_exec_block(pairs, count);
    /* Before pam_exec's block, its item names are the user's: skipped. Last copy wins. */
    for (size_t i = 0; i < count; i++)
        if (i >= start || start == count || pam_exec_rank(&pairs[i]) < 0)
            keep(out, &pairs[i]);
    free(pairs);
    return 0;
}

const char *lw_first(const char *block, size_t len, const char *name, size_t *value_len)
{
    size_t name_len = strlen(name);
    for (size_t at = 0; at < len;) {
        const char *entry = block + at;
        const char *end = memchr(entry, '\0', len - at);
        size_t entry_len = end ? (size_t)(end - entry) : len - at;
        at += entry_len + 1;
        if (entry_len > name_len && entry[name_len] == '=' && memcmp(entry, name, name_len) == 0) {
            *value_len = entry_len - name_len - 1;
            return entry + name_len + 1;
        }
    }
    return NULL;
}

int lw_under_pam(const char *block, size_t len)
{
    size_t ignored;
    return lw_first(block, len, "PAM_TYPE", &ignored) != NULL;
}

static int equals(const char *value, size_t len, const char *text)
{
    return value != NULL && len == strlen(text) && memcmp(value, text, len) == 0;
}

/* capture.is_urgent: both items are the hook's own (pam_exec's PAM_TYPE, the PAM line's argv). */
static int is_urgent(const char *pam_type, size_t type_len, const char *outcome)
{
    if (strcmp(outcome, "failure") == 0)
        return 0;
    return strcmp(outcome, "success") == 0 || equals(pam_type, type_len, "open_session") ||
           equals(pam_type, type_len, "close_session");
}

struct out {
    unsigned char *buf;
    size_t cap, len;
    int full;
};

static void put(struct out *o, const void *data, size_t len)
{
    if (o->full || len > o->cap - o->len) {
        o->full = 1;
        return;
    }
    memcpy(o->buf + o->len, data, len);
    o->len += len;
}

static void item(struct out *o, const char *name, const char *value, size_t len)
{
    if (o->len > LW_HEADER_SIZE)
        put(o, "", 1); /* the NUL between items */
    put(o, name, strlen(name));
    put(o, "=", 1);
    put(o, value, len);
}

size_t lw_record(const struct lw_env *env, const struct lw_links *links, const char *outcome,
                 uint64_t now_ns, const char *id_hex, const char *node, unsigned char *buf,
                 size_t cap, int *urgent)
{
    if (cap < LW_HEADER_SIZE + 1)
        return 0;
    struct out o = {buf, cap, LW_HEADER_SIZE, 0};
    char when[24];
    snprintf(when, sizeof when, "%llu", (unsigned long long)now_ns);
    item(&o, "LW_ID", id_hex, strlen(id_hex));
    item(&o, "LW_TIME", when, strlen(when));
    item(&o, "LW_OUTCOME", outcome, strlen(outcome));
    item(&o, "LW_NODE", node, strlen(node));
    for (int i = 0; i < LW_LINKS; i++)
        if (links->value[i] != NULL)
            item(&o, LINKS[i], links->value[i], links->len[i]);
    for (int i = 0; i < LW_CAPTURED; i++) {
        if (env->value[i] == NULL)
            continue;
        size_t limit = i == LW_CAPTURED - 1 ? LW_AUTH_INFO_LIMIT : LW_VALUE_LIMIT;
        /* One byte past the limit tells the builder the value was cut. */
        size_t len = env->len[i] > limit + 1 ? limit + 1 : env->len[i];
        item(&o, CAPTURED[i], env->value[i], len);
    }
    if (o.full)
        return 0;
    size_t type_len = env->len[5] > LW_VALUE_LIMIT + 1 ? LW_VALUE_LIMIT + 1 : env->len[5];
    *urgent = is_urgent(env->value[5], type_len, outcome);
    size_t body = o.len - LW_HEADER_SIZE;
    char head[LW_HEADER_SIZE + 32];
    snprintf(head, sizeof head, "%s%c %020llu %08zx %08x\n", MAGIC2, *urgent ? 'U' : 'L',
             (unsigned long long)now_ns, body, lw_crc32(buf + LW_HEADER_SIZE, body));
    memcpy(buf, head, LW_HEADER_SIZE);
    return o.len;
}

static int digits(const unsigned char *s, size_t len, int hex, uint64_t *value)
{
    if (len == 0 || len > 20)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (hex && c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (hex && c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        uint64_t base = hex ? 16 : 10;
        if (v > (UINT64_MAX - d) / base)
            return -1;
        v = v * base + d;
    }
    *value = v;
    return 0;
}

/* capture.header, as strict as the Python side (which is the reader): the fields between
 * "LWCAP2 " and the newline at byte 47, split on single spaces, must be exactly four. */
int lw_header(const unsigned char *raw, size_t len, struct lw_header *out)
{
    if (len < LW_HEADER_SIZE || memcmp(raw, MAGIC2, 7) != 0 || raw[LW_HEADER_SIZE - 1] != '\n')
        return -1;
    const unsigned char *field[4];
    size_t flen[4];
    size_t n = 0, from = 7;
    for (size_t i = 7; i <= LW_HEADER_SIZE - 1; i++) {
        if (i == LW_HEADER_SIZE - 1 || raw[i] == ' ') {
            if (n == 4)
                return -1;
            field[n] = raw + from;
            flen[n] = i - from;
            n++;
            from = i + 1;
        }
    }
    if (n != 4 || flen[0] != 1 || (field[0][0] != 'U' && field[0][0] != 'L'))
        return -1;
    uint64_t when, length, crc;
    /* Python's int(x, 16) also takes a sign, "0x", "_" and spaces: never written, and a
     * slot that holds them is one the C side leaves alone (it is not free to it). */
    if (digits(field[1], flen[1], 0, &when) || digits(field[2], flen[2], 1, &length) ||
        digits(field[3], flen[3], 1, &crc))
        return -1;
    if (length > LW_RECORD_LIMIT || crc > UINT32_MAX)
        return -1;
    *out = (struct lw_header){field[0][0] == 'U', when, (uint32_t)length, (uint32_t)crc};
    return 0;
}

static int copy(char *dst, size_t cap, const char *src, size_t len)
{
    if (len >= cap || memchr(src, '\0', len) != NULL)
        return -1;
    memcpy(dst, src, len);
    dst[len] = '\0';
    return 0;
}

int lw_settings(const char *data, size_t len, struct lw_settings *out)
{
    const char *part[6];
    size_t plen[6];
    size_t n = 0, from = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || data[i] == '\0') {
            if (n == 6)
                return -1;
            part[n] = data + from;
            plen[n] = i - from;
            n++;
            from = i + 1;
        }
    }
    if (n != 6 || plen[0] != strlen(SETTINGS_MAGIC) || memcmp(part[0], SETTINGS_MAGIC, plen[0]))
        return -1;
    if (copy(out->stamp, sizeof out->stamp, part[1], plen[1]) ||
        copy(out->config, sizeof out->config, part[2], plen[2]) ||
        copy(out->spool_dir, sizeof out->spool_dir, part[3], plen[3]) || plen[3] == 0)
        return -1;
    if (digits((const unsigned char *)part[4], plen[4], 0, &out->max_events) ||
        digits((const unsigned char *)part[5], plen[5], 0, &out->max_bytes))
        return -1;
    return 0;
}

int lw_cache_name(const char *config, char *out, size_t cap)
{
    static const char prefix[] = "hook-settings-";
    size_t at = strlen(prefix);
    if (cap <= at)
        return -1;
    memcpy(out, prefix, at);
    for (const char *c = config; *c; c++) {
        const char *put_text = *c == '%' ? "%25" : *c == '/' ? "%2F" : NULL;
        size_t n = put_text ? 3 : 1;
        if (at + n >= cap)
            return -1;
        memcpy(out + at, put_text ? put_text : c, n);
        at += n;
    }
    out[at] = '\0';
    return 0;
}

int lw_normal_path(const char *path)
{
    if (path[0] != '/')
        return 0;
    if (strcmp(path, "/") == 0)
        return 1;
    size_t len = strlen(path);
    if (path[len - 1] == '/' || strstr(path, "//") != NULL)
        return 0;
    /* No "." or ".." component. */
    for (const char *c = path; (c = strchr(c, '/')) != NULL; c++) {
        const char *next = c + 1;
        size_t part = strcspn(next, "/");
        if ((part == 1 && next[0] == '.') || (part == 2 && next[0] == '.' && next[1] == '.'))
            return 0;
    }
    return 1;
}

/* Python's bytes.split() and strip() whitespace (Py_ISSPACE). */
static int space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* The next whitespace-separated word of data[*at..len) (bytes.split()); its length, 0: none. */
static size_t word(const char *data, size_t len, size_t *at, const char **start)
{
    while (*at < len && space(data[*at]))
        (*at)++;
    *start = data + *at;
    size_t from = *at;
    while (*at < len && !space(data[*at]))
        (*at)++;
    return *at - from;
}

/* Python's int() of a word, written back as "%d" writes it: a sign, then decimal digits with
 * single "_" between them; out gets the sign ("-" only), no "_", no leading zero. -1: a
 * ValueError. The kernel writes plain digits; the rest costs a few lines to read the same. */
static int integer(const char *s, size_t len, char *out)
{
    size_t at = len > 0 && (s[0] == '-' || s[0] == '+'), n = 0;
    int negative = at && s[0] == '-';
    if (at == len)
        return -1;
    for (size_t i = at; i < len; i++) {
        int digit = s[i] >= '0' && s[i] <= '9';
        int between = s[i] == '_' && i > at && i + 1 < len && s[i - 1] != '_';
        if (!digit && !between)
            return -1;
        if (digit && (n > 0 || s[i] != '0'))
            out[1 + n++] = s[i]; /* out[0]: room for the sign */
    }
    if (n == 0) {
        strcpy(out, "0"); /* "-0" too */
        return 0;
    }
    out[1 + n] = '\0';
    if (negative)
        out[0] = '-';
    else
        memmove(out, out + 1, n + 1);
    return 0;
}

int lw_at_most_one(const char *number)
{
    return number[0] == '-' || strcmp(number, "0") == 0 || strcmp(number, "1") == 0;
}

int lw_proc_stat(const char *data, size_t len, struct lw_proc *out)
{
    /* The name is in parentheses and may hold anything, ")" and spaces too: the fields after
     * it start two bytes past the last ")". */
    const char *open = memchr(data, '(', len);
    size_t close = len;
    while (close > 0 && data[close - 1] != ')')
        close--;
    if (open == NULL || close == 0 || data + close - 1 < open)
        return -1;
    const char *field = NULL, *parent = NULL, *start = NULL;
    size_t parent_len = 0, start_len = 0, count = 0;
    for (size_t at = close + 1 < len ? close + 1 : len, n; (n = word(data, len, &at, &field));) {
        if (count == 1) {
            parent = field;
            parent_len = n;
        } else if (count == 19) {
            start = field;
            start_len = n;
        }
        count++;
    }
    if (count < 20 || integer(parent, parent_len, out->parent) ||
        integer(start, start_len, out->start))
        return -1;
    out->name = open + 1;
    out->name_len = (size_t)(data + close - 1 - open - 1);
    return 0;
}

int lw_status_root(const char *data, size_t len)
{
    for (size_t at = 0; at < len;) { /* bytes.splitlines(): "\n", "\r" or "\r\n" */
        size_t end = at;
        while (end < len && data[end] != '\n' && data[end] != '\r')
            end++;
        size_t next = end + (end + 1 < len && data[end] == '\r' && data[end + 1] == '\n') + 1;
        if (end - at >= 4 && memcmp(data + at, "Uid:", 4) == 0) {
            const char *ids[3] = {NULL, NULL, NULL};
            size_t ids_len[3] = {0, 0, 0};
            for (int i = 0; i < 3; i++)
                ids_len[i] = word(data, end, &at, &ids[i]);
            return ids_len[1] == 1 && ids[1][0] == '0' && ids_len[2] == 1 && ids[2][0] == '0';
        }
        at = next;
    }
    return 0;
}

int lw_sshd_name(const char *name, size_t len)
{
    return equals(name, len, "sshd") || equals(name, len, "sshd-session");
}

const char *lw_strip(const char *data, size_t *len)
{
    while (*len > 0 && space(data[*len - 1]))
        (*len)--;
    while (*len > 0 && space(data[0])) {
        data++;
        (*len)--;
    }
    return data;
}
