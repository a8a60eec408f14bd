/* loginwatch-hook, the C capture front-end: what pam_exec runs at every login, as root.
 *
 * It does what producer/hook.py's foreground does on the common path, and nothing more:
 * reads pam_exec's PAM items and sshd's SSH variables from the raw environment
 * (producer/capture.py's rules) and the session links from /proc (producer/session_link.py's
 * reads, walk and bounds), the spool settings from the cache the Python side writes
 * (producer/settings.py; it never parses TOML), writes the framed record into a free
 * preallocated slot (producer/slots.py) or, when none is free, a file of its own with the
 * urgent or .low name (producer/spool.py), starts the Python publisher detached under the
 * publisher lock, and exits 0. No shell, no eval, no variable of the user's environment.
 *
 * Anything off that path is the Python foreground's, which it execs for this login with the
 * same arguments and the PAM_* and SSH_* entries of its environment in their order (nothing
 * else, so no LD_PRELOAD either): a stale or missing settings cache (Python rewrites it), a
 * spool that is missing, unsafe or near a bound (eviction of failure records, the locked drop
 * counter), a write that failed, every command but the hook itself. Before anything is
 * written, so no record is written twice. Its own bound is FOREGROUND_BOUND_S; the Python
 * foreground it may hand over to has its own.
 *
 * The publisher and the Python foreground are the venv's: "python" beside this binary's real
 * path (/proc/self/exe), in a directory root owns and no one else may write.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "lwcore.h"

#ifndef LW_VERSION
#define LW_VERSION "unknown"
#endif
#define FOREGROUND_BOUND_S 2
#define SLOTS_MAX 4096
#define ENV_LIMIT (64u << 20)
#define DEFAULT_CONFIG "/etc/loginwatch/loginwatch.toml"
#define RUNTIME_DIR "/run/loginwatch"
#define LOCK_FD 3
#define HANDOFF_FD 4
#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
#define FILE_FLAGS (O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
/* What the exec'd publisher runs (producer/detached.py). */
static char PUBLISHER[] = "import sys; from producer.detached import main; main(sys.argv[1:])";
static char FOREGROUND[] = "import sys; from producer.hook import main; sys.exit(main())";
/* execve takes char *const[]: the other words of its argv and envp, writable like argv's. */
static char ISOLATED[] = "-I", COMMAND[] = "-c", LOCK_HELD[] = "3", TAKE_LOCK[] = "-2";
static char SPOOLED_YES[] = "1", SPOOLED_NO[] = "0", CLEAN_PATH[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";

enum stage { START, CAPTURED, SPOOLING, SPOOLED, DONE };

/* What the deadline's handler needs: filled before it can fire, read only there. */
static struct {
    volatile sig_atomic_t stage;
    char python[LW_PATH_MAX];
    char config[LW_PATH_MAX];
    char spool_dir[LW_PATH_MAX];
    char name[96];
    unsigned char record[LW_RECORD_LIMIT];
    size_t record_len;
} run;

extern char **environ;
static char **saved_argv;
static char *env_block;
static size_t env_len;

static void say(const char *format, ...) __attribute__((format(printf, 1, 2)));

/* One line to syslog (authpriv) and to stderr, where pam_exec discards it. */
static void say(const char *format, ...)
{
    char line[900];
    va_list args;
    va_start(args, format);
    vsnprintf(line, sizeof line, format, args);
    va_end(args);
    for (char *c = line; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
    openlog("loginwatch-hook", LOG_PID, LOG_AUTHPRIV);
    syslog(LOG_WARNING, "%s", line);
    dprintf(2, "loginwatch-hook: %s\n", line);
}

/* The raw environment block the kernel kept from execve: every copy, in order. */
static int read_environ(void)
{
    int fd = open("/proc/self/environ", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t cap = 1 << 16;
    env_block = malloc(cap);
    for (ssize_t got = 1; env_block != NULL && got > 0;) {
        if (env_len == cap - 1) {
            char *bigger = cap < ENV_LIMIT ? realloc(env_block, cap * 2) : NULL;
            if (bigger == NULL)
                break;
            env_block = bigger;
            cap *= 2;
        }
        got = read(fd, env_block + env_len, cap - 1 - env_len);
        if (got > 0)
            env_len += (size_t)got;
    }
    close(fd);
    if (env_block != NULL)
        env_block[env_len] = '\0'; /* a block cut at ENV_LIMIT still ends in a NUL */
    return env_block == NULL ? -1 : 0;
}

/* The venv's python beside our real path, when root owns that directory alone. */
static int find_python(void)
{
    char exe[LW_PATH_MAX - 8];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash == NULL)
        return -1;
    *slash = '\0';
    struct stat st;
    if (stat(exe, &st) != 0 || st.st_uid != geteuid() || (st.st_mode & 022)) {
        say("%s is not root's alone: the publisher is not started from there", exe);
        return -1;
    }
    int len = snprintf(run.python, sizeof run.python, "%s/python", exe);
    return len > 0 && (size_t)len < sizeof run.python ? 0 : -1;
}

/* The Python foreground, for this login: same arguments; under PAM only the PAM_* and SSH_*
 * entries in their order (all capture.trusted reads), else the environment as it is. */
static void exec_python(const char *why)
{
    alarm(0);
    if (run.python[0] == '\0') {
        say("no Python foreground to hand over to (%s); event lost", why);
        _exit(0);
    }
    if (strcmp(why, "a command") != 0)
        say("%s: the Python foreground takes this login", why);
    size_t argc = 0;
    while (saved_argv[argc] != NULL)
        argc++;
    char **argv = calloc(argc + 5, sizeof *argv);
    char **envp = calloc(env_len / 5 + 2, sizeof *envp); /* a kept entry: "PAM_" + NUL at least */
    if (argv == NULL || envp == NULL)
        _exit(0);
    argv[0] = run.python;
    argv[1] = ISOLATED;
    argv[2] = COMMAND;
    argv[3] = FOREGROUND;
    for (size_t i = 1; i < argc; i++)
        argv[3 + i] = saved_argv[i];
    if (env_block != NULL && lw_under_pam(env_block, env_len)) {
        size_t n = 0;
        for (size_t at = 0; at < env_len; at += strlen(env_block + at) + 1)
            if (!strncmp(env_block + at, "PAM_", 4) || !strncmp(env_block + at, "SSH_", 4))
                envp[n++] = env_block + at;
        execve(run.python, argv, envp);
    } else {
        execve(run.python, argv, environ);
    }
    say("Python foreground not started (%s): %s; event lost", why, strerror(errno));
    _exit(0);
}

/* In a forked child: no alarm, a session of its own, stdio on /dev/null, `keep` as LOCK_FD
 * and `handoff` as HANDOFF_FD, every other descriptor closed, nice 10; then the publisher. */
static void exec_publisher(int keep, int handoff, char *const extra[3])
{
    alarm(0);
    setsid();
    int null = open("/dev/null", O_RDWR);
    for (int fd = 0; fd < 3 && null >= 0; fd++)
        dup2(null, fd);
    if (keep == LOCK_FD)
        fcntl(keep, F_SETFD, 0); /* dup2 onto itself would keep O_CLOEXEC */
    else if (keep >= 0)
        dup2(keep, LOCK_FD);
    if (handoff >= 0)
        dup2(handoff, HANDOFF_FD);
    for (int fd = HANDOFF_FD + (handoff >= 0); fd < 256; fd++)
        close(fd);
    if (keep < 0)
        close(LOCK_FD);
    if (nice(10) == -1) {
        /* not fatal: the publisher runs at the hook's priority */
    }
    char *argv[10] = {run.python, ISOLATED, COMMAND, PUBLISHER, run.config,
                      keep >= 0 ? LOCK_HELD : TAKE_LOCK};
    for (int i = 0; extra != NULL && i < 3; i++)
        argv[6 + i] = extra[i];
    char *envp[] = {CLEAN_PATH, NULL};
    execve(run.python, argv, envp);
    _exit(0);
}

/* The deadline: hand the record to a publisher unless one has it, and let the login go on.
 * Only async-signal-safe calls: memfd_create, write, fork, dup2, execve, _exit. */
static void out_of_time(int signum)
{
    (void)signum;
    static const char line[] = "loginwatch-hook: foreground took longer than 2 s; the login goes on\n";
    if (write(2, line, sizeof line - 1) < 0) {
        /* nothing more to say */
    }
    if (run.stage >= CAPTURED && run.stage < DONE && run.python[0] && fork() == 0) {
        if (run.stage == SPOOLED)
            exec_publisher(-1, -1, NULL);
        int fd = memfd_create("loginwatch-handoff", 0);
        if (fd >= 0 && write(fd, run.record, run.record_len) == (ssize_t)run.record_len) {
            char *extra[3] = {run.name, run.spool_dir,
                              run.stage == SPOOLING ? SPOOLED_YES : SPOOLED_NO};
            exec_publisher(-1, fd, extra);
        }
        _exit(0);
    }
    _exit(0);
}

/* The spool settings from the cache, or NULL: stale, missing or unsafe (Python's then). */
static int cached_settings(struct lw_settings *settings)
{
    if (!lw_normal_path(run.config))
        return -1;
    struct stat st;
    if (stat(run.config, &st) != 0)
        return -1;
    char stamp[96], name[LW_PATH_MAX];
    snprintf(stamp, sizeof stamp, "%llu:%lld:%lld", (unsigned long long)st.st_ino,
             (long long)st.st_size, (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec);
    size_t ignored;
    const char *runtime = RUNTIME_DIR;
    char from_env[LW_PATH_MAX];
    const char *value = lw_under_pam(env_block, env_len)
                            ? NULL : lw_first(env_block, env_len, "LOGINWATCH_RUNTIME_DIR", &ignored);
    if (value != NULL && ignored > 0 && ignored < sizeof from_env) {
        memcpy(from_env, value, ignored);
        from_env[ignored] = '\0';
        runtime = from_env;
    }
    if (lw_cache_name(run.config, name, sizeof name))
        return -1;
    int dir = open(runtime, DIR_FLAGS);
    if (dir < 0)
        return -1;
    int fd = -1;
    if (fstat(dir, &st) == 0 && st.st_uid == geteuid() && !(st.st_mode & 022))
        fd = openat(dir, name, O_RDONLY | FILE_FLAGS);
    close(dir);
    if (fd < 0)
        return -1;
    char data[8192];
    ssize_t got = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? read(fd, data, sizeof data) : -1;
    close(fd);
    if (got < 0 || lw_settings(data, (size_t)got, settings))
        return -1;
    return strcmp(settings->stamp, stamp) || strcmp(settings->config, run.config) ? -1 : 0;
}

/* How many record files the spool holds (names ending in .cap), or -1. */
static long record_files(int dir)
{
    int copy = dup(dir);
    DIR *d = copy >= 0 ? fdopendir(copy) : NULL;
    if (d == NULL) {
        if (copy >= 0)
            close(copy);
        return -1;
    }
    long count = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t len = strlen(e->d_name);
        count += len >= 4 && strcmp(e->d_name + len - 4, ".cap") == 0;
    }
    closedir(d);
    return count;
}

static int lock_slot(int fd, long index, short type)
{
    struct flock lock = {.l_type = type, .l_whence = SEEK_SET,
                         .l_start = (off_t)index * LW_SLOT_SIZE, .l_len = LW_SLOT_SIZE};
    return fcntl(fd, F_SETLK, &lock);
}

/* Into a free slot (its first bytes zero: what prepare and clear leave), durably.
 * 1: written; 0: no slot free; -1: failed (and the slot cleared again). */
static int put_slot(int fd, long total)
{
    for (long step = 0; step < total; step++) {
        long index = (getpid() + step) % total;
        if (lock_slot(fd, index, F_WRLCK) != 0)
            continue;
        unsigned char head[8];
        static const unsigned char zero[8];
        int state = 0;
        if (pread(fd, head, 7, (off_t)index * LW_SLOT_SIZE) == 7 && memcmp(head, zero, 7) == 0) {
            state = pwrite(fd, run.record, run.record_len, (off_t)index * LW_SLOT_SIZE) ==
                                (ssize_t)run.record_len && fdatasync(fd) == 0 ? 1 : -1;
            if (state < 0 && pwrite(fd, zero, 7, (off_t)index * LW_SLOT_SIZE) == 7)
                fdatasync(fd);
        }
        lock_slot(fd, index, F_UNLCK);
        if (state != 0)
            return state;
    }
    return 0;
}

/* A file of its own (safedir.write_new): temp file, fsync, rename, directory fsync. */
static int put_file(int dir, int urgent)
{
    char name[128], tmp[140];
    size_t stem = strlen(run.name) - 4; /* without ".cap" */
    snprintf(name, sizeof name, "%.*s%s", (int)stem, run.name, urgent ? ".cap" : ".low.cap");
    snprintf(tmp, sizeof tmp, ".%s.tmp", name);
    int fd = openat(dir, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    int ok = write(fd, run.record, run.record_len) == (ssize_t)run.record_len && fsync(fd) == 0;
    close(fd);
    if (!ok || renameat(dir, tmp, dir, name) != 0) {
        unlinkat(dir, tmp, 0);
        return -1;
    }
    fsync(dir);
    return 0;
}

/* The record into the spool; returns 0, or the reason to hand the login to Python. */
static const char *spool(const struct lw_settings *settings, int urgent, int *dir_out)
{
    run.stage = SPOOLING; /* from here the deadline's publisher looks in the spool first */
    int dir = open(settings->spool_dir, DIR_FLAGS);
    if (dir < 0 && errno == ENOENT && mkdir(settings->spool_dir, 0700) == 0)
        dir = open(settings->spool_dir, DIR_FLAGS); /* as safedir.open_dir makes it */
    struct stat st;
    if (dir < 0 || fstat(dir, &st) != 0 || st.st_uid != geteuid() || (st.st_mode & 022)) {
        if (dir >= 0)
            close(dir);
        return "the spool is missing or unsafe";
    }
    *dir_out = dir;
    int slots = openat(dir, "slots", O_RDWR | FILE_FLAGS);
    if (slots < 0 && errno != ENOENT)
        return "the slots file cannot be opened";
    long total = 0;
    if (slots >= 0) {
        if (fstat(slots, &st) != 0 || !S_ISREG(st.st_mode)) {
            close(slots);
            return "the slots file is no regular file";
        }
        total = st.st_size / LW_SLOT_SIZE > SLOTS_MAX ? SLOTS_MAX : st.st_size / LW_SLOT_SIZE;
    }
    long files = record_files(dir);
    /* spool._Held.make_room's quick test: the worst case within both bounds. */
    unsigned long long worst = (unsigned long long)(files + total);
    if (files < 0 || worst >= settings->max_events ||
        (worst + 1) > settings->max_bytes / LW_RECORD_LIMIT) {
        if (slots >= 0)
            close(slots);
        return "the spool is near its bounds";
    }
    int put = slots >= 0 ? put_slot(slots, total) : 0;
    if (slots >= 0)
        close(slots);
    if (put > 0)
        return NULL;
    if (put < 0)
        return "a slot could not be written";
    return put_file(dir, urgent) == 0 ? NULL : "no slot free and no file could be made";
}

/* One publisher per spool: take its lock, fork it unless another publisher holds the lock. */
static void start_publisher(int dir)
{
    int lock = openat(dir, ".publisher.lock", O_RDWR | O_CREAT | FILE_FLAGS, 0600);
    struct stat st;
    if (lock >= 0 && (fstat(lock, &st) != 0 || !S_ISREG(st.st_mode))) {
        close(lock);
        lock = -1;
    }
    if (lock >= 0 && flock(lock, LOCK_EX | LOCK_NB) != 0) {
        close(lock);
        return; /* a publisher runs: it looks at the spool once more after it lets go */
    }
    pid_t child = fork();
    if (child == 0)
        exec_publisher(lock, -1, NULL);
    if (child < 0)
        say("publisher not started: %s; the flush timer sends the event", strerror(errno));
    if (lock >= 0)
        close(lock);
}

/* [--config PATH] [--outcome X] → 0 with config and outcome set; -1 for anything else. */
static int hook_args(int argc, char **argv, const char **config, const char **outcome)
{
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i], *value;
        const char *eq = strchr(flag, '=');
        size_t name_len = eq ? (size_t)(eq - flag) : strlen(flag);
        if (eq)
            value = eq + 1;
        else if (i + 1 < argc)
            value = argv[++i];
        else
            return -1;
        if (name_len == 8 && !strncmp(flag, "--config", 8))
            *config = value;
        else if (name_len == 9 && !strncmp(flag, "--outcome", 9) &&
                 (!strcmp(value, "success") || !strcmp(value, "failure") ||
                  !strcmp(value, "unknown")))
            *outcome = value;
        else
            return -1;
    }
    return 0;
}

/* Up to LW_PROC_READ bytes of a /proc file in one read (session_link._read), or -1. */
static ssize_t read_proc(const char *path, char *buf)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t got = read(fd, buf, LW_PROC_READ);
    close(fd);
    return got;
}

/* session_link.is_root: real and effective uid 0. */
static int is_root(const char *pid)
{
    char path[48], data[LW_PROC_READ];
    snprintf(path, sizeof path, "/proc/%.20s/status", pid);
    ssize_t got = read_proc(path, data);
    return got >= 0 && lw_status_root(data, (size_t)got);
}

/* session_link.items: the kernel's audit session and login uid (left out when unreadable or
 * empty), and the nearest root sshd at or above our parent with its start time, at most
 * LW_MAX_DEPTH ancestors up; a process /proc cannot give ends the walk with no sshd. */
static void session_links(struct lw_links *links)
{
    static struct lw_proc proc;
    static char audit[2][LW_PROC_READ], sshd[sizeof proc.parent + sizeof proc.start];
    static const char *const files[2] = {"/proc/self/sessionid", "/proc/self/loginuid"};
    memset(links, 0, sizeof *links);
    for (int i = 0; i < 2; i++) {
        ssize_t got = read_proc(files[i], audit[i]);
        size_t len = got > 0 ? (size_t)got : 0;
        const char *value = lw_strip(audit[i], &len);
        if (len > 0) {
            links->value[i] = value;
            links->len[i] = len;
        }
    }
    char pid[sizeof proc.parent];
    snprintf(pid, sizeof pid, "%d", (int)getppid());
    for (int depth = 0; depth < LW_MAX_DEPTH && !lw_at_most_one(pid); depth++) {
        char path[48], data[LW_PROC_READ];
        if (strlen(pid) > 20)
            return; /* past 64 bits: no such /proc entry, as the Python side finds */
        snprintf(path, sizeof path, "/proc/%.20s/stat", pid);
        ssize_t got = read_proc(path, data);
        if (got < 0 || lw_proc_stat(data, (size_t)got, &proc) != 0)
            return;
        if (lw_sshd_name(proc.name, proc.name_len) && is_root(pid)) {
            int len = snprintf(sshd, sizeof sshd, "%s %s", pid, proc.start);
            links->value[2] = sshd;
            links->len[2] = (size_t)len;
            return;
        }
        strcpy(pid, proc.parent);
    }
}

static void capture(const char *outcome, int *urgent)
{
    struct lw_env env;
    struct lw_links links;
    unsigned char id[16];
    char hex[LW_ID_HEX + 1];
    struct utsname host;
    struct timespec now;
    if (lw_trusted(env_block, env_len, &env) != 0 || getrandom(id, sizeof id, 0) != sizeof id ||
        uname(&host) != 0 || clock_gettime(CLOCK_REALTIME, &now) != 0)
        exec_python("capture failed");
    for (size_t i = 0; i < sizeof id; i++)
        snprintf(hex + 2 * i, 3, "%02x", id[i]);
    uint64_t ns = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
    session_links(&links);
    run.record_len = lw_record(&env, &links, outcome, ns, hex, host.nodename, run.record,
                               sizeof run.record, urgent);
    if (run.record_len == 0)
        exec_python("record too long");
    snprintf(run.name, sizeof run.name, "%020llu-%s.cap", (unsigned long long)ns, hex);
    run.stage = CAPTURED;
}

int main(int argc, char **argv)
{
    saved_argv = argv;
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("loginwatch-hook %s (foreground: native C, %s; publisher: Python)\n", LW_VERSION,
               LW_ARCH);
        return 0;
    }
    sigset_t alarm_set;
    sigemptyset(&alarm_set);
    sigaddset(&alarm_set, SIGALRM);
    sigprocmask(SIG_UNBLOCK, &alarm_set, NULL);
    signal(SIGALRM, out_of_time);
    alarm(FOREGROUND_BOUND_S);
    if (find_python() != 0 || read_environ() != 0)
        exec_python("no environment");
    const char *config = NULL, *outcome = "";
    if (hook_args(argc, argv, &config, &outcome) != 0)
        exec_python("a command"); /* flush, spool, --help …: the full command line */
    if (config != NULL && config[0] == '\0')
        exec_python("an empty --config");
    if (config == NULL) { /* $LOGINWATCH_CONFIG, never under PAM (shared.config_path) */
        size_t len = 0;
        const char *named = lw_under_pam(env_block, env_len)
                                ? NULL : lw_first(env_block, env_len, "LOGINWATCH_CONFIG", &len);
        if (named != NULL && len > 0 && len < sizeof run.config)
            memcpy(run.config, named, len); /* run.config is zeroed: it ends in a NUL */
        else
            config = DEFAULT_CONFIG;
    }
    if (config != NULL && strlen(config) >= sizeof run.config)
        exec_python("config path");
    if (config != NULL)
        strcpy(run.config, config);
    int urgent = 0;
    capture(outcome, &urgent);
    struct lw_settings settings;
    if (cached_settings(&settings) != 0)
        exec_python("settings cache stale");
    strcpy(run.spool_dir, settings.spool_dir);
    int dir = -1;
    const char *refused = spool(&settings, urgent, &dir);
    if (refused != NULL) { /* nothing of this record is left in the spool */
        if (dir >= 0)
            close(dir);
        exec_python(refused);
    }
    run.stage = SPOOLED;
    start_publisher(dir);
    run.stage = DONE;
    close(dir);
    alarm(0);
    return 0;
}
