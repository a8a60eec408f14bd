/* The pure half of the C front-end: no I/O, so the fuzz target links it alone.
 *
 * Each function mirrors one of the Python side, byte for byte (tests/integration/hook/
 * test_hook_native.py compares the records and the /proc parsers): lw_trusted =
 * producer.capture.trusted, lw_record = capture.record, lw_header = capture.header,
 * lw_settings = producer.settings.cached's parse, lw_proc_stat, lw_status_root and lw_strip =
 * producer.session_link's parses of what /proc gives.
 */
#ifndef LWCORE_H
#define LWCORE_H

#include <stddef.h>
#include <stdint.h>

#define LW_HEADER_SIZE 48
#define LW_VALUE_LIMIT 1024
#define LW_AUTH_INFO_LIMIT 8192
#define LW_CAPTURED 8
/* capture.RECORD_LIMIT and slots.SIZE (whole 4 KiB blocks). */
#define LW_RECORD_LIMIT (LW_HEADER_SIZE + 4096 + (LW_CAPTURED - 1) * (LW_VALUE_LIMIT + 32) + LW_AUTH_INFO_LIMIT)
#define LW_SLOT_SIZE (((LW_RECORD_LIMIT + 4095) / 4096) * 4096)
#define LW_ID_HEX 32
#define LW_PATH_MAX 4096

/* The values the hook may use, by capture.CAPTURED's order; value NULL: not set. */
struct lw_env {
    const char *value[LW_CAPTURED];
    size_t len[LW_CAPTURED];
};

/* The session links (producer.session_link.items): LW_AUDIT, LW_LOGINUID, LW_SSHD in that
 * order; value NULL: the kernel could not say, the item is left out. */
#define LW_LINKS 3
struct lw_links {
    const char *value[LW_LINKS];
    size_t len[LW_LINKS];
};
/* session_link: how much of a /proc file is read (one read), how many ancestors looked at. */
#define LW_PROC_READ 4096
#define LW_MAX_DEPTH 32

/* One process's /proc/PID/stat (session_link.process); name points into the data. The
 * numbers are the decimal text Python's "%d" of int() gives: no bound but the read's. */
struct lw_proc {
    const char *name;
    size_t name_len;
    char parent[LW_PROC_READ + 2];
    char start[LW_PROC_READ + 2]; /* clock ticks since boot */
};

struct lw_header {
    int urgent;
    uint64_t time_ns;
    uint32_t length;
    uint32_t crc;
};

struct lw_settings {
    char stamp[96];
    char config[LW_PATH_MAX];
    char spool_dir[LW_PATH_MAX];
    uint64_t max_events;
    uint64_t max_bytes;
};

uint32_t lw_crc32(const unsigned char *data, size_t len);

/* The raw environment block (NUL-separated NAME=VALUE entries) → the trusted values.
 * Returns 0, or -1 when memory runs out. */
int lw_trusted(const char *block, size_t len, struct lw_env *out);

/* Whether the environment holds any PAM_TYPE entry (shared.under_pam). */
int lw_under_pam(const char *block, size_t len);

/* The first value of NAME in the block (os.environ keeps the first copy), or NULL. */
const char *lw_first(const char *block, size_t len, const char *name, size_t *value_len);

/* One framed record into buf (at least LW_RECORD_LIMIT bytes); returns its length, 0 when it
 * does not fit. *urgent: a login or logout. */
size_t lw_record(const struct lw_env *env, const struct lw_links *links, const char *outcome,
                 uint64_t now_ns, const char *id_hex, const char *node, unsigned char *buf,
                 size_t cap, int *urgent);

/* session_link.process's parse: 0 and *out filled, or -1 (None: not a stat line we read). */
int lw_proc_stat(const char *data, size_t len, struct lw_proc *out);

/* session_link.is_root's parse: whether the first "Uid:" line gives real and effective 0. */
int lw_status_root(const char *data, size_t len);

/* Whether a process name is a session's sshd (session_link.SSHD_NAMES). */
int lw_sshd_name(const char *name, size_t len);

/* Whether the decimal text of lw_proc_stat is at most 1 (session_link.sshd_session's end). */
int lw_at_most_one(const char *number);

/* bytes.strip(): the value without ASCII whitespace at either end; *len updated. */
const char *lw_strip(const char *data, size_t *len);

/* capture.header: 0 and *out filled when raw starts with a framed record's header, else -1. */
int lw_header(const unsigned char *raw, size_t len, struct lw_header *out);

/* producer.settings' cache file → settings; 0, or -1 when it is not one. */
int lw_settings(const char *data, size_t len, struct lw_settings *out);

/* settings.cache_path's name: "hook-settings-" + the mangled absolute path; 0 or -1. */
int lw_cache_name(const char *config, char *out, size_t cap);

/* Whether path is absolute and normal (os.path.abspath would not change it). */
int lw_normal_path(const char *path);

#endif
