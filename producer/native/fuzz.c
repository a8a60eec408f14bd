/* The fuzz target of the pure half (lwcore.c): every parser on every input (the /proc ones
 * too, as session_link reads them), and the record it builds from a fuzzed environment and
 * fuzzed session links, read back by its own header parser.
 *   make fuzz FUZZ_SECONDS=60   libFuzzer, one core, new inputs merged into corpus/
 *   make replay                 the corpus through the ASan + UBSan build (make test runs it)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lwcore.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static const char *const OUTCOMES[] = {"", "success", "failure", "unknown"};

/* The session link parsers on the input as one read of a /proc file; links from what they
 * give (the audit values cut short: the kernel's are 10 digits). */
static void check_links(const unsigned char *data, size_t size, struct lw_links *links)
{
    static char sshd[48];
    static struct lw_proc proc;
    const char *text = (const char *)data;
    size_t n = size < LW_PROC_READ ? size : LW_PROC_READ;
    memset(links, 0, sizeof *links);
    if (lw_proc_stat(text, n, &proc) == 0) {
        if (proc.name <= text || proc.name + proc.name_len >= text + n)
            abort(); /* the name lies between "(" and ")" inside the data */
        (void)lw_sshd_name(proc.name, proc.name_len);
        (void)lw_at_most_one(proc.parent);
        int len = snprintf(sshd, sizeof sshd, "%.20s %.20s", proc.parent, proc.start);
        links->value[2] = sshd;
        links->len[2] = (size_t)len;
    }
    (void)lw_status_root(text, n);
    size_t len = n < 24 ? n : 24;
    const char *value = lw_strip(text, &len);
    if (value < text || value + len > text + n)
        abort();
    for (int i = 0; i < 2 && len > 0; i++) {
        links->value[i] = value;
        links->len[i] = len;
    }
}

static void check_record(const unsigned char *data, size_t size)
{
    struct lw_env env;
    struct lw_links links;
    check_links(data, size, &links);
    if (lw_trusted((const char *)data, size, &env) != 0)
        return;
    static unsigned char record[LW_RECORD_LIMIT];
    int urgent = -1;
    const char *outcome = OUTCOMES[size % 4];
    size_t len = lw_record(&env, &links, outcome, (unsigned long long)size * 1000003u,
                           "0123456789abcdef0123456789abcdef", "host", record, sizeof record,
                           &urgent);
    if (len == 0 || len > LW_RECORD_LIMIT)
        abort(); /* every capture fits a record: the values are cut to their limits */
    struct lw_header header;
    if (lw_header(record, len, &header) != 0 || header.length != len - LW_HEADER_SIZE ||
        header.crc != lw_crc32(record + LW_HEADER_SIZE, header.length) ||
        header.urgent != urgent)
        abort();
    if (strcmp(outcome, "failure") == 0 && urgent)
        abort(); /* the remote side never promotes a failure */
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    check_record(data, size);
    struct lw_header header;
    (void)lw_header(data, size, &header);
    struct lw_settings settings;
    (void)lw_settings((const char *)data, size, &settings);
    size_t value_len;
    (void)lw_first((const char *)data, size, "LOGINWATCH_CONFIG", &value_len);
    char path[LW_PATH_MAX + 1], name[LW_PATH_MAX];
    size_t n = size < LW_PATH_MAX ? size : LW_PATH_MAX;
    memcpy(path, data, n);
    path[n] = '\0';
    (void)lw_normal_path(path);
    (void)lw_cache_name(path, name, sizeof name);
    return 0;
}

#ifdef LW_REPLAY
/* The corpus replayer: each file once, without libFuzzer (gcc or clang, any sanitizer). */
int main(int argc, char **argv)
{
    static unsigned char buf[1 << 20];
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (f == NULL) {
            perror(argv[i]);
            return 1;
        }
        size_t size = fread(buf, 1, sizeof buf, f);
        fclose(f);
        unsigned char *copy = malloc(size ? size : 1); /* exact size: ASan sees overreads */
        if (copy == NULL)
            return 1;
        memcpy(copy, buf, size);
        LLVMFuzzerTestOneInput(copy, size);
        free(copy);
    }
    printf("replayed %d inputs\n", argc - 1);
    return 0;
}
#endif
