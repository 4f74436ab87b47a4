/*
 * fnbus-spawner: the process-spawning helper of fnbus-watchdog.
 *
 * Why: forking from a large Node/V8 process is expensive (libuv uses a
 * plain fork(), which copies the page tables of the whole heap and then
 * takes copy-on-write faults).  This helper is ~1.4 MB of RSS and starts
 * children with clone(CLONE_VM|CLONE_VFORK) + execve (like posix_spawn and
 * Go's os/exec), so no page tables are copied.
 * Node talks to it over its stdin/stdout (socketpairs created by libuv)
 * using the framed protocol below and never forks per request.  The helper
 * is single-threaded, event driven (epoll, level-triggered) and never blocks.
 *
 * Build:   npm run build (watchdog/native/build.sh): cc -O2 -o fnbus-spawner fnbus-spawner.c
 *          (Linux; clean with -Wall -Wextra -Wconversion -fanalyzer. Linux >= 5.11
 *          for close_range, older kernels fall back to /proc/self/fd.)
 * Run:     spawned by Node with stdio [pipe, pipe, inherit]; fd 0 = requests
 *          from Node, fd 1 = events to Node, fd 2 = log output (inherited).
 *          No arguments; everything comes in the CONFIG frame.
 * Or:      fnbus-spawner --exec-bound-to PID CMD [ARG...]: becomes CMD (execvp)
 *          after asking the kernel to SIGKILL it when process PID ends
 *          (PR_SET_PDEATHSIG).  The watchdog starts http mode's long-running
 *          function process this way, so that it never outlives the watchdog
 *          (or the hub running watchdogs), even one killed with SIGKILL.
 *
 * ------------------------------------------------------------------------
 * PROTOCOL (version 1).  Every message is a frame:
 *
 *     offset size  field
 *     0      1     type      (see below)
 *     1      1     flags     (0; reserved)
 *     2      2     reserved  (0)
 *     4      4     id        request id, uint32 little-endian (0 for CONFIG/READY)
 *     8      4     len       payload length, uint32 little-endian
 *     12     len   payload
 *
 * Node -> helper
 *   0x01 CONFIG      exactly once, first frame.  Payload:
 *                      u32 version (=1), u32 flags, u32 argc, u32 envc,
 *                      then argc + envc NUL-terminated strings (argv..., env...).
 *                    flags: bit0 STDERR_INHERIT  child stderr = helper's fd 2
 *                                                (no STDERR frames are sent)
 *                           bit1 ENV_INHERIT     base env = helper's environ
 *                                                (envc must be 0)
 *                    argv[0] is resolved against PATH once, here.
 *   0x02 SPAWN       start a child for request <id>.  Payload: u32 n, then n
 *                    NUL-terminated "KEY=VALUE" strings that are put in front
 *                    of the base environment (so they take precedence).
 *   0x03 STDIN       payload bytes are written to the child's stdin.
 *   0x04 STDIN_EOF   close the child's stdin once buffered data is written.
 *   0x05 KILL        payload: u32 signal.  Sent to the child's process group
 *                    (every child is the leader of its own group).
 *   0x06 PAUSE       stop reading the child's stdout (HTTP backpressure).
 *   0x07 RESUME      resume reading the child's stdout.
 *
 * helper -> Node
 *   0x80 READY       reply to CONFIG.  Payload: u32 version, then the
 *                    resolved executable path (not NUL-terminated).
 *   0x81 STARTED     payload: u32 pid.
 *   0x82 STDOUT      payload: up to 64 KiB of the child's stdout.
 *   0x83 STDERR      payload: up to 64 KiB of the child's stderr.
 *   0x84 EXIT        payload: i32 exit code (-1 if killed), i32 signal (0 if
 *                    exited).  Sent once the child is reaped AND its stdout
 *                    and stderr have reached EOF, i.e. after every output
 *                    frame.  The id is free for reuse after this frame.
 *   0x85 SPAWN_ERROR payload: i32 errno, then a message.  The id is free.
 *   0x86 STDIN_PAUSE  more than STDIN_HIGH bytes of stdin are buffered for
 *                    this child; Node should stop sending STDIN for <id>.
 *   0x87 STDIN_RESUME buffered stdin drained (or the child closed its stdin
 *                    and further data is discarded); Node may send again.
 *
 * Frames for unknown ids (STDIN/STDIN_EOF/KILL/PAUSE/RESUME racing with
 * the child's exit) are ignored.  A malformed frame is a fatal protocol
 * error: the helper logs to stderr, SIGKILLs all children and exits 2.
 * When fd 0 reaches EOF (Node went away) or the helper gets SIGTERM/SIGINT/
 * SIGHUP, it SIGKILLs every child's process group, reaps them and exits 0.
 *
 * Flow control: the helper never blocks.  Output to Node is buffered; when
 * more than OUT_HIGH bytes are pending the helper stops reading all child
 * pipes until it drains below OUT_LOW.  Per-request stdout backpressure is
 * PAUSE/RESUME; per-request stdin backpressure is STDIN_PAUSE/STDIN_RESUME.
 *
 * Robustness notes:
 *   - every fd is created O_CLOEXEC (pipe2, signalfd, epoll_create1, F_DUPFD_
 *     CLOEXEC, open); inherited fds >= 3 are marked close-on-exec at start,
 *     so children get exactly 0, 1 and 2.
 *   - children are reaped via signalfd(SIGCHLD) + waitpid(-1, WNOHANG) loop
 *     (SIGCHLD is coalesced, so we always loop until 0/ECHILD).
 *   - children get an empty signal mask, SIGPIPE reset to default and their
 *     own process group (pgid == pid), so KILL reaches the whole tree.
 *   - an fd is always EPOLL_CTL_DEL'd before close(): CLONE_VFORK resumes us
 *     before the child's close-on-exec runs, so a just-spawned child may
 *     still hold a copy and close() alone would leave a stale registration.
 *   - finished requests are freed only after the current epoll batch.
 *   - exec failures (ENOENT, EACCES, ENOEXEC: no "#!" fallback to /bin/sh)
 *     are reported synchronously as SPAWN_ERROR.
 *   - EINTR is retried everywhere; EAGAIN/partial writes are buffered.
 *   - process-group kill after the child was reaped still reaches
 *     grandchildren holding the output pipes open; the pgid cannot be reused
 *     while any member of the group is alive.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>

#define PROTO_VERSION 1u

enum {
    T_CONFIG = 0x01, T_SPAWN = 0x02, T_STDIN = 0x03, T_STDIN_EOF = 0x04,
    T_KILL = 0x05, T_PAUSE = 0x06, T_RESUME = 0x07,
    T_READY = 0x80, T_STARTED = 0x81, T_STDOUT = 0x82, T_STDERR = 0x83,
    T_EXIT = 0x84, T_SPAWN_ERROR = 0x85, T_STDIN_PAUSE = 0x86,
    T_STDIN_RESUME = 0x87,
};
#define F_STDERR_INHERIT 1u
#define F_ENV_INHERIT    2u

#define HDR_LEN        12
#define READ_CHUNK     65536u            /* max payload of STDOUT/STDERR    */
#define MAX_IN_PAYLOAD (16u << 20)       /* sanity limit for Node's frames  */
#define OUT_HIGH       (4u << 20)        /* stop reading children above... */
#define OUT_LOW        (1u << 20)        /* ...and resume below this        */
#define STDIN_HIGH     (1u << 20)        /* per-request buffered stdin      */
#define HASH_BUCKETS   1024u             /* power of two                    */

extern char **environ;

/* ---------------------------------------------------------------- utils */

static void logmsg(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    int n = snprintf(line, sizeof line, "fnbus-spawner[%d]: ", (int)getpid());
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof line - 2) n = (int)sizeof line - 2;
    line[n++] = '\n';
    for (char *p = line; n > 0;) {                    /* best effort */
        ssize_t w = write(2, p, (size_t)n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        p += w; n -= (int)w;
    }
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) { logmsg("out of memory (%zu bytes)", n); _exit(3); }
    return q;
}

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void wr32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16); p[3] = (unsigned char)(v >> 24);
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        /* Linux always releases the fd, even on EINTR: never retry close. */
        close(*fd);
        *fd = -1;
    }
}

/* A byte buffer with a consumed-prefix offset. */
typedef struct {
    unsigned char *data;
    size_t off, len, cap;         /* valid bytes are data[off .. len) */
} buf_t;

static size_t buf_pending(const buf_t *b) { return b->len - b->off; }

static void buf_reserve(buf_t *b, size_t extra)
{
    if (b->off > 0 && (b->off == b->len || b->off >= b->cap / 2)) {
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
    }
    if (b->cap - b->len < extra) {
        size_t nc = b->cap ? b->cap : 4096;
        while (nc - b->len < extra) nc *= 2;
        b->data = xrealloc(b->data, nc);
        b->cap = nc;
    }
}

static void buf_append(buf_t *b, const void *p, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void buf_consume(buf_t *b, size_t n)
{
    b->off += n;
    if (b->off == b->len) b->off = b->len = 0;
}

static void buf_free(buf_t *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* ------------------------------------------------------------- state */

enum { W_CHAN_IN, W_CHAN_OUT, W_SIGNAL, W_STDIN, W_STDOUT, W_STDERR };

struct req;
typedef struct { int kind; struct req *req; } watcher_t;

typedef struct req {
    uint32_t id;
    pid_t pid;                    /* also the process group id */
    int fd_in, fd_out, fd_err;    /* our pipe ends, -1 when closed */
    watcher_t w_in, w_out, w_err;
    int in_registered, out_registered, err_registered;
    buf_t in_pending;             /* stdin not yet accepted by the pipe */
    int in_eof;                   /* STDIN_EOF received */
    int in_paused_sent;           /* STDIN_PAUSE sent, RESUME owed */
    int out_paused;               /* PAUSE from Node */
    int reaped;
    int status;                   /* waitpid status once reaped */
    int dead;                     /* finished; freed at the end of the batch */
    struct req *id_next, *pid_next, *prev, *next;
} req_t;

static struct {
    int ep, sfd, chan_in, chan_out;
    int chan_out_registered;
    watcher_t w_chan_in, w_chan_out, w_sig;
    buf_t in, out;
    int configured;
    uint32_t flags;
    char *path;                   /* resolved executable */
    char **argv;
    char **base_env;
    size_t base_envc;
    int out_blocked;              /* global backpressure towards Node */
    int shutting_down;
    req_t *id_tab[HASH_BUCKETS], *pid_tab[HASH_BUCKETS];
    req_t *active;
    size_t nactive;
    req_t *graveyard;             /* finished requests awaiting free() */
    void *child_stack_top;        /* stack for the vfork-style child */
} g = { .ep = -1, .sfd = -1, .chan_in = -1, .chan_out = -1 };

static req_t **id_slot(uint32_t id) { return &g.id_tab[(id * 2654435761u) & (HASH_BUCKETS - 1)]; }
static req_t **pid_slot(pid_t pid) { return &g.pid_tab[((uint32_t)pid * 2654435761u) & (HASH_BUCKETS - 1)]; }

static req_t *find_id(uint32_t id)
{
    for (req_t *r = *id_slot(id); r; r = r->id_next)
        if (r->id == id) return r;
    return NULL;
}

static req_t *find_pid(pid_t pid)
{
    for (req_t *r = *pid_slot(pid); r; r = r->pid_next)
        if (r->pid == pid) return r;
    return NULL;
}

static void fatal_shutdown(int code);

/* ---------------------------------------------------------- epoll glue */

static void ep_ctl(int op, int fd, uint32_t events, watcher_t *w)
{
    struct epoll_event ev = { .events = events, .data.ptr = w };
    if (epoll_ctl(g.ep, op, fd, &ev) < 0) {
        logmsg("epoll_ctl(%d, fd %d): %s", op, fd, strerror(errno));
        fatal_shutdown(3);
    }
}

/* Registers/unregisters a child output pipe according to backpressure.
 * Paused fds are removed from epoll entirely: EPOLLHUP is always reported,
 * so merely clearing EPOLLIN would busy-loop once the writer has exited. */
static void update_output_watch(req_t *r, int kind)
{
    int fd = kind == W_STDOUT ? r->fd_out : r->fd_err;
    int *reg = kind == W_STDOUT ? &r->out_registered : &r->err_registered;
    watcher_t *w = kind == W_STDOUT ? &r->w_out : &r->w_err;
    int want = fd >= 0 && !g.out_blocked && !(kind == W_STDOUT && r->out_paused);
    if (want && !*reg) { ep_ctl(EPOLL_CTL_ADD, fd, EPOLLIN, w); *reg = 1; }
    else if (!want && *reg) { ep_ctl(EPOLL_CTL_DEL, fd, 0, w); *reg = 0; }
}

/* Closes one of a request's fds, deregistering it from epoll FIRST.
 * close() alone is not enough: epoll drops an fd only when the underlying
 * file is released, and a just-spawned child can still hold a CLOEXEC copy
 * (CLONE_VFORK resumes us inside execve before close-on-exec runs).  The
 * stale registration would then report events for a freed request. */
static void req_close_fd(req_t *r, int kind)
{
    int *fd = kind == W_STDIN ? &r->fd_in : kind == W_STDOUT ? &r->fd_out : &r->fd_err;
    int *reg = kind == W_STDIN ? &r->in_registered : kind == W_STDOUT ? &r->out_registered : &r->err_registered;
    watcher_t *w = kind == W_STDIN ? &r->w_in : kind == W_STDOUT ? &r->w_out : &r->w_err;
    if (*reg) { ep_ctl(EPOLL_CTL_DEL, *fd, 0, w); *reg = 0; }
    close_fd(fd);
}

static void set_out_blocked(int blocked)
{
    if (g.out_blocked == blocked) return;
    g.out_blocked = blocked;
    for (req_t *r = g.active; r; r = r->next) {
        update_output_watch(r, W_STDOUT);
        update_output_watch(r, W_STDERR);
    }
}

/* ------------------------------------------------------ output to Node */

static void put_frame_hdr(unsigned char *h, int type, uint32_t id, uint32_t len)
{
    h[0] = (unsigned char)type; h[1] = 0; h[2] = 0; h[3] = 0;
    wr32(h + 4, id);
    wr32(h + 8, len);
}

static void send_frame(int type, uint32_t id, const void *p1, size_t n1, const void *p2, size_t n2)
{
    unsigned char h[HDR_LEN];
    put_frame_hdr(h, type, id, (uint32_t)(n1 + n2));
    buf_reserve(&g.out, HDR_LEN + n1 + n2);
    buf_append(&g.out, h, HDR_LEN);
    if (n1) buf_append(&g.out, p1, n1);
    if (n2) buf_append(&g.out, p2, n2);
}

static void send_u32(int type, uint32_t id, uint32_t v)
{
    unsigned char p[4];
    wr32(p, v);
    send_frame(type, id, p, 4, NULL, 0);
}

/* Writes as much buffered output to Node as the pipe takes. */
static void flush_out(void)
{
    while (buf_pending(&g.out) > 0) {
        ssize_t n = write(g.chan_out, g.out.data + g.out.off, buf_pending(&g.out));
        if (n > 0) { buf_consume(&g.out, (size_t)n); continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        /* EPIPE etc.: Node is gone. */
        logmsg("write to parent: %s; shutting down", n < 0 ? strerror(errno) : "0 bytes");
        fatal_shutdown(0);
    }
    if (buf_pending(&g.out) == 0 && g.out.cap > (1u << 20)) buf_free(&g.out);  /* give back bursts */
    int want = buf_pending(&g.out) > 0;
    if (want != g.chan_out_registered) {
        ep_ctl(want ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, g.chan_out, EPOLLOUT, &g.w_chan_out);
        g.chan_out_registered = want;
    }
    if (buf_pending(&g.out) > OUT_HIGH) set_out_blocked(1);
    else if (buf_pending(&g.out) < OUT_LOW) set_out_blocked(0);
}

/* ------------------------------------------------------ request lifecycle */

/* Unlinks a finished request and closes its fds.  The memory is released
 * only after the current epoll batch (free_graveyard), because later events
 * in the same batch may still point at it; handlers check r->dead. */
static void req_retire(req_t *r)
{
    req_t **pp;
    for (pp = id_slot(r->id); *pp != r; pp = &(*pp)->id_next) {}
    *pp = r->id_next;
    if (!r->reaped) {
        for (pp = pid_slot(r->pid); *pp != r; pp = &(*pp)->pid_next) {}
        *pp = r->pid_next;
    }
    if (r->prev) r->prev->next = r->next; else g.active = r->next;
    if (r->next) r->next->prev = r->prev;
    g.nactive--;
    req_close_fd(r, W_STDIN);
    req_close_fd(r, W_STDOUT);
    req_close_fd(r, W_STDERR);
    buf_free(&r->in_pending);
    r->dead = 1;
    r->next = g.graveyard;
    g.graveyard = r;
}

static void free_graveyard(void)
{
    while (g.graveyard) {
        req_t *r = g.graveyard;
        g.graveyard = r->next;
        free(r);
    }
}

/* Emits EXIT and frees the request once it is reaped and outputs are at EOF. */
static void maybe_finish(req_t *r)
{
    if (!r->reaped || r->fd_out >= 0 || r->fd_err >= 0) return;
    unsigned char p[8];
    int32_t code = -1, sig = 0;
    if (WIFEXITED(r->status)) code = WEXITSTATUS(r->status);
    else if (WIFSIGNALED(r->status)) sig = WTERMSIG(r->status);
    wr32(p, (uint32_t)code);
    wr32(p + 4, (uint32_t)sig);
    send_frame(T_EXIT, r->id, p, 8, NULL, 0);
    req_retire(r);
}

static void stdin_close(req_t *r)
{
    req_close_fd(r, W_STDIN);
    buf_free(&r->in_pending);
    if (r->in_paused_sent) {    /* let Node drain the request body */
        r->in_paused_sent = 0;
        send_frame(T_STDIN_RESUME, r->id, NULL, 0, NULL, 0);
    }
}

/* Writes pending stdin; handles partial writes, EAGAIN, EPIPE and EOF. */
static void stdin_flush(req_t *r)
{
    if (r->dead) return;
    while (r->fd_in >= 0 && buf_pending(&r->in_pending) > 0) {
        ssize_t n = write(r->fd_in, r->in_pending.data + r->in_pending.off,
                          buf_pending(&r->in_pending));
        if (n > 0) { buf_consume(&r->in_pending, (size_t)n); continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        stdin_close(r);         /* EPIPE: child closed stdin; discard the rest */
        return;
    }
    if (r->fd_in < 0) return;
    size_t pend = buf_pending(&r->in_pending);
    if (pend == 0 && r->in_eof) { stdin_close(r); return; }
    int want = pend > 0;
    if (want != r->in_registered) {
        ep_ctl(want ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, r->fd_in, EPOLLOUT, &r->w_in);
        r->in_registered = want;
    }
    if (pend > STDIN_HIGH && !r->in_paused_sent) {
        r->in_paused_sent = 1;
        send_frame(T_STDIN_PAUSE, r->id, NULL, 0, NULL, 0);
    } else if (pend == 0 && r->in_paused_sent) {
        r->in_paused_sent = 0;
        send_frame(T_STDIN_RESUME, r->id, NULL, 0, NULL, 0);
    }
}

static void stdin_data(req_t *r, const unsigned char *p, size_t n)
{
    if (r->fd_in < 0 || r->in_eof || n == 0) return;   /* closed: discard */
    if (buf_pending(&r->in_pending) == 0) {
        /* Fast path: write straight into the pipe, buffer only the rest. */
        while (n > 0) {
            ssize_t w = write(r->fd_in, p, n);
            if (w > 0) { p += w; n -= (size_t)w; continue; }
            if (w < 0 && errno == EINTR) continue;
            if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
            stdin_close(r);
            return;
        }
        if (n == 0) return;
    }
    buf_append(&r->in_pending, p, n);
    stdin_flush(r);
}

/* Reads one chunk from a child's stdout/stderr straight into the out buffer. */
static void output_readable(req_t *r, int kind)
{
    int *fd = kind == W_STDOUT ? &r->fd_out : &r->fd_err;
    if (r->dead || *fd < 0) return;            /* stale event from this batch */
    buf_reserve(&g.out, HDR_LEN + READ_CHUNK);
    unsigned char *h = g.out.data + g.out.len;
    ssize_t n;
    do n = read(*fd, h + HDR_LEN, READ_CHUNK); while (n < 0 && errno == EINTR);
    if (n > 0) {
        put_frame_hdr(h, kind == W_STDOUT ? T_STDOUT : T_STDERR, r->id, (uint32_t)n);
        g.out.len += HDR_LEN + (size_t)n;
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n < 0) logmsg("read from child %d: %s", (int)r->pid, strerror(errno));
    req_close_fd(r, kind);      /* EOF or error */
    maybe_finish(r);
}

/* ---- the child side of clone(CLONE_VM|CLONE_VFORK) ----------------------
 * Runs on g.child_stack while sharing our memory, with the parent suspended.
 * It may only make raw system calls (no malloc, no stdio, no locks) and
 * communicates an exec failure through ca->err.  This is what glibc's
 * posix_spawn does internally; doing it ourselves avoids an mmap/munmap of a
 * fresh stack and ~64 sigaction() calls per spawn (~4% more req/s measured).
 * It is safe here because the helper is single-threaded and installs no
 * signal handlers (SIGPIPE is SIG_IGN; everything else goes to a signalfd). */
struct child_args {
    const char *path;
    char **argv, **envp;
    int fd_in, fd_out, fd_err;    /* fd_err < 0: keep our stderr */
    volatile int err;
};

static int child_main(void *arg)
{
    struct child_args *ca = arg;
    sigset_t empty;
    sigemptyset(&empty);
    /* Ignored dispositions survive execve: restore SIGPIPE.  (Handled ones are
     * reset by execve; we have none.) */
    if (signal(SIGPIPE, SIG_DFL) == SIG_ERR ||
        setpgid(0, 0) < 0 ||                    /* own group: KILL hits the tree */
        dup2(ca->fd_in, 0) < 0 ||               /* dup2 clears O_CLOEXEC on 0-2 */
        dup2(ca->fd_out, 1) < 0 ||
        (ca->fd_err >= 0 && dup2(ca->fd_err, 2) < 0) ||
        sigprocmask(SIG_SETMASK, &empty, NULL) < 0) {
        ca->err = errno;
        _exit(127);
    }
    execve(ca->path, ca->argv, ca->envp);
    ca->err = errno ? errno : ENOEXEC;
    _exit(127);
}

static void spawn_error(uint32_t id, int err, const char *what)
{
    char msg[256];
    int n = snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
    unsigned char p[4];
    wr32(p, (uint32_t)err);
    send_frame(T_SPAWN_ERROR, id, p, 4, msg, n > 0 ? (size_t)n : 0);
}

static void do_spawn(uint32_t id, const unsigned char *p, size_t len)
{
    if (!g.configured) { logmsg("SPAWN before CONFIG"); fatal_shutdown(2); }
    if (find_id(id)) { spawn_error(id, EEXIST, "request id in use"); return; }

    /* Per-request env: extra entries first so they win over the base env. */
    if (len < 4) { logmsg("short SPAWN payload"); fatal_shutdown(2); }
    uint32_t n_extra = rd32(p);
    if (n_extra > len) { logmsg("bad SPAWN env count"); fatal_shutdown(2); }
    char **envp = xrealloc(NULL, (n_extra + g.base_envc + 1) * sizeof *envp);
    size_t pos = 4, k = 0;
    for (; k < n_extra; k++) {
        const unsigned char *s = p + pos, *z = pos < len ? memchr(s, 0, len - pos) : NULL;
        if (!z) { free(envp); logmsg("bad SPAWN env"); fatal_shutdown(2); }
        envp[k] = (char *)s;
        pos += (size_t)(z - s) + 1;
    }
    memcpy(envp + k, g.base_env, g.base_envc * sizeof *envp);
    envp[k + g.base_envc] = NULL;

    /* Pipes: O_CLOEXEC on every end (dup2 in the child clears it on 0/1/2).
     * Only our ends are non-blocking; children get ordinary blocking pipes. */
    int in_p[2] = {-1, -1}, out_p[2] = {-1, -1}, err_p[2] = {-1, -1};
    int inherit_err = (g.flags & F_STDERR_INHERIT) != 0;
    int err;
    const char *what = "pipe2";
    if (pipe2(in_p, O_CLOEXEC) < 0 || pipe2(out_p, O_CLOEXEC) < 0 ||
        (!inherit_err && pipe2(err_p, O_CLOEXEC) < 0)) {
        err = errno;
        goto fail;
    }
    what = "fcntl";
    if (set_nonblock(in_p[1]) < 0 || set_nonblock(out_p[0]) < 0 ||
        (!inherit_err && set_nonblock(err_p[0]) < 0)) {
        err = errno;
        goto fail;
    }

    struct child_args ca = {
        .path = g.path, .argv = g.argv, .envp = envp,
        .fd_in = in_p[0], .fd_out = out_p[1], .fd_err = err_p[1], .err = 0,
    };
    what = g.path;
    /* CLONE_VFORK: we are suspended until the child has exec'd or exited, so
     * ca.err is final when clone() returns and the shared stack is free. */
    pid_t pid = clone(child_main, g.child_stack_top, CLONE_VM | CLONE_VFORK | SIGCHLD, &ca);
    if (pid < 0) { err = errno; what = "clone"; goto fail; }
    if (ca.err) {
        /* exec failed: the child has already _exit()ed; reap it right here so
         * it is never reported through SIGCHLD as an unknown pid. */
        err = ca.err;
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
        goto fail;
    }
    free(envp);
    envp = NULL;

    close_fd(&in_p[0]);
    close_fd(&out_p[1]);
    close_fd(&err_p[1]);

    req_t *r = xrealloc(NULL, sizeof *r);
    memset(r, 0, sizeof *r);
    r->id = id;
    r->pid = pid;
    r->fd_in = in_p[1];
    r->fd_out = out_p[0];
    r->fd_err = err_p[0];       /* -1 with STDERR_INHERIT */
    r->w_in = (watcher_t){ W_STDIN, r };
    r->w_out = (watcher_t){ W_STDOUT, r };
    r->w_err = (watcher_t){ W_STDERR, r };
    req_t **s = id_slot(id);
    r->id_next = *s; *s = r;
    s = pid_slot(pid);
    r->pid_next = *s; *s = r;
    r->next = g.active;
    if (g.active) g.active->prev = r;
    g.active = r;
    g.nactive++;
    update_output_watch(r, W_STDOUT);
    update_output_watch(r, W_STDERR);
    send_u32(T_STARTED, id, (uint32_t)pid);
    return;

fail:
    free(envp);
    for (int i = 0; i < 2; i++) { close_fd(&in_p[i]); close_fd(&out_p[i]); close_fd(&err_p[i]); }
    spawn_error(id, err, what);
}

/* Resolve argv[0] against PATH once, like execvp would on every spawn. */
static char *resolve_path(const char *file, char **envp)
{
    if (strchr(file, '/')) return strdup(file);
    const char *path = NULL;
    for (char **e = envp; e && *e; e++)
        if (strncmp(*e, "PATH=", 5) == 0) { path = *e + 5; break; }
    if (!path) path = "/usr/local/bin:/bin:/usr/bin";
    size_t fl = strlen(file);
    while (*path) {
        const char *end = strchrnul(path, ':');
        size_t dl = (size_t)(end - path);
        char *cand = xrealloc(NULL, dl + fl + 3);
        if (dl == 0) memcpy(cand, ".", (dl = 1));
        else memcpy(cand, path, dl);
        cand[dl] = '/';
        memcpy(cand + dl + 1, file, fl + 1);
        struct stat st;
        if (stat(cand, &st) == 0 && S_ISREG(st.st_mode) && access(cand, X_OK) == 0)
            return cand;
        free(cand);
        path = *end ? end + 1 : end;
    }
    return NULL;
}

static void do_config(const unsigned char *p, size_t len)
{
    if (g.configured) { logmsg("duplicate CONFIG"); fatal_shutdown(2); }
    if (len < 16) { logmsg("short CONFIG"); fatal_shutdown(2); }
    uint32_t ver = rd32(p), flags = rd32(p + 4), argc = rd32(p + 8), envc = rd32(p + 12);
    if (ver != PROTO_VERSION || argc == 0 || argc > len || envc > len ||
        ((flags & F_ENV_INHERIT) && envc)) {
        logmsg("bad CONFIG (version %u, argc %u, envc %u)", ver, argc, envc);
        fatal_shutdown(2);
    }
    /* Copy the strings: the input buffer is reused. */
    char *blob = xrealloc(NULL, len - 16 + 1);
    memcpy(blob, p + 16, len - 16);
    blob[len - 16] = 0;
    char **strs = xrealloc(NULL, (argc + envc + 2) * sizeof *strs);
    size_t pos = 0;
    for (uint32_t i = 0; i < argc + envc; i++) {
        char *z = pos < len - 16 ? memchr(blob + pos, 0, len - 16 - pos) : NULL;
        if (!z) { logmsg("bad CONFIG strings"); fatal_shutdown(2); }
        strs[i < argc ? i : i + 1] = blob + pos;
        pos = (size_t)(z - blob) + 1;
    }
    strs[argc] = NULL;
    strs[argc + envc + 1] = NULL;
    g.argv = strs;
    g.flags = flags;
    if (flags & F_ENV_INHERIT) {
        size_t n = 0;
        while (environ[n]) n++;
        g.base_env = environ;
        g.base_envc = n;
    } else {
        g.base_env = strs + argc + 1;
        g.base_envc = envc;
    }
    g.path = resolve_path(g.argv[0], g.base_env);
    if (!g.path) {
        /* Keep going: every SPAWN will then report ENOENT, mirroring execvp. */
        logmsg("%s: not found in PATH", g.argv[0]);
        g.path = strdup(g.argv[0]);
    }
    g.configured = 1;
    unsigned char v[4];
    wr32(v, PROTO_VERSION);
    send_frame(T_READY, 0, v, 4, g.path, strlen(g.path));
}

static void handle_frame(int type, uint32_t id, const unsigned char *p, size_t len)
{
    req_t *r;
    switch (type) {
    case T_CONFIG: do_config(p, len); return;
    case T_SPAWN: do_spawn(id, p, len); return;
    case T_STDIN:
        if ((r = find_id(id))) stdin_data(r, p, len);
        return;
    case T_STDIN_EOF:
        if ((r = find_id(id)) && r->fd_in >= 0) { r->in_eof = 1; stdin_flush(r); }
        return;
    case T_KILL:
        if (len != 4) { logmsg("bad KILL"); fatal_shutdown(2); }
        if ((r = find_id(id)) && kill(-r->pid, (int)rd32(p)) < 0 && errno != ESRCH)
            logmsg("kill(-%d, %u): %s", (int)r->pid, rd32(p), strerror(errno));
        return;
    case T_PAUSE:
    case T_RESUME:
        if ((r = find_id(id))) {
            r->out_paused = type == T_PAUSE;
            update_output_watch(r, W_STDOUT);
        }
        return;
    default:
        logmsg("unknown frame type 0x%02x", type);
        fatal_shutdown(2);
    }
}

static void chan_readable(void)
{
    for (int rounds = 0; rounds < 4; rounds++) {    /* bounded for fairness */
        buf_reserve(&g.in, 65536);
        ssize_t n = read(g.chan_in, g.in.data + g.in.len, g.in.cap - g.in.len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (n <= 0) {
            if (n < 0) logmsg("read from parent: %s", strerror(errno));
            fatal_shutdown(0);                         /* Node went away */
        }
        g.in.len += (size_t)n;
        while (buf_pending(&g.in) >= HDR_LEN) {
            const unsigned char *h = g.in.data + g.in.off;
            uint32_t len = rd32(h + 8);
            if (len > MAX_IN_PAYLOAD) { logmsg("frame too large (%u)", len); fatal_shutdown(2); }
            if (buf_pending(&g.in) < HDR_LEN + (size_t)len) {
                buf_reserve(&g.in, HDR_LEN + len);    /* room for the whole frame */
                break;
            }
            int type = h[0];
            uint32_t id = rd32(h + 4);
            g.in.off += HDR_LEN + len;  /* consume first; handlers may not reuse g.in */
            handle_frame(type, id, h + HDR_LEN, len);
        }
        if (g.in.off == g.in.len) {
            g.in.off = g.in.len = 0;
            if (g.in.cap > (1u << 20)) buf_free(&g.in);                   /* give back bursts */
        }
        if ((size_t)n < 65536) break;
    }
}

static void reap_children(void)
{
    struct signalfd_siginfo si[16];
    int stop = 0;
    for (;;) {                                  /* drain the signalfd */
        ssize_t n = read(g.sfd, si, sizeof si);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        for (size_t i = 0; i < (size_t)n / sizeof si[0]; i++)
            if (si[i].ssi_signo != SIGCHLD) stop = 1;
    }
    for (;;) {                                  /* SIGCHLD coalesces: loop */
        int st;
        pid_t pid = waitpid(-1, &st, WNOHANG);
        if (pid < 0 && errno == EINTR) continue;
        if (pid <= 0) break;                    /* 0: none ready; ECHILD: none */
        req_t *r = find_pid(pid);
        if (!r) continue;
        req_t **pp;
        for (pp = pid_slot(pid); *pp != r; pp = &(*pp)->pid_next) {}
        *pp = r->pid_next;                      /* pid may be reused from now on */
        r->reaped = 1;
        r->status = st;
        /* r->pid is kept as the process-group id for KILL. */
        maybe_finish(r);
    }
    if (stop) { logmsg("terminating on signal"); fatal_shutdown(0); }
}

/* Kills every child's process group, reaps direct children and exits. */
static void fatal_shutdown(int code)
{
    if (g.shutting_down) _exit(code);
    g.shutting_down = 1;
    for (req_t *r = g.active; r; r = r->next) {
        kill(-r->pid, SIGKILL);
        close_fd(&r->fd_in);
        close_fd(&r->fd_out);
        close_fd(&r->fd_err);
    }
    while (waitpid(-1, NULL, 0) > 0 || errno == EINTR) {}
    flush_out();                                /* best effort */
    _exit(code);
}

/* Marks every inherited fd >= 3 close-on-exec so nothing leaks to children. */
static void cloexec_inherited_fds(void)
{
#ifdef SYS_close_range
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
    if (syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC) == 0) return;
#endif
    DIR *d = opendir("/proc/self/fd");
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        int fd = atoi(e->d_name);
        if (fd >= 3 && fd != dirfd(d)) {
            int fl = fcntl(fd, F_GETFD);
            if (fl >= 0) fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
        }
    }
    closedir(d);
}

static void setup(void)
{
    cloexec_inherited_fds();

    /* Move the channel off 0/1 and put /dev/null there, so fds 0-2 are
     * always occupied and our pipe ends can never land on them. */
    g.chan_in = fcntl(0, F_DUPFD_CLOEXEC, 3);
    g.chan_out = fcntl(1, F_DUPFD_CLOEXEC, 3);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (g.chan_in < 0 || g.chan_out < 0 || null < 0 ||
        dup2(null, 0) < 0 || dup2(null, 1) < 0) {
        logmsg("setup fds: %s", strerror(errno));
        _exit(3);
    }
    if (null > 2) close(null);
    if (fcntl(2, F_GETFD) < 0) { /* no stderr at all: use /dev/null */
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0 && fd != 2) { dup2(fd, 2); close(fd); }
    }
    if (set_nonblock(g.chan_in) < 0 || set_nonblock(g.chan_out) < 0) {
        logmsg("O_NONBLOCK: %s", strerror(errno));
        _exit(3);
    }

    /* Signals: SIGPIPE ignored (EPIPE instead); SIGCHLD and termination
     * signals are blocked and read from a signalfd. */
    signal(SIGPIPE, SIG_IGN);
    sigset_t ss;
    sigemptyset(&ss);
    sigaddset(&ss, SIGCHLD);
    sigaddset(&ss, SIGTERM);
    sigaddset(&ss, SIGINT);
    sigaddset(&ss, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &ss, NULL) < 0 ||
        (g.sfd = signalfd(-1, &ss, SFD_NONBLOCK | SFD_CLOEXEC)) < 0 ||
        (g.ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        logmsg("setup: %s", strerror(errno));
        _exit(3);
    }

    /* Stack for child_main (only one child runs on it at a time, because
     * CLONE_VFORK suspends us until it execs).  Stacks grow down. */
    static unsigned char stack[64 * 1024] __attribute__((aligned(64)));
    g.child_stack_top = stack + sizeof stack;

    g.w_chan_in = (watcher_t){ W_CHAN_IN, NULL };
    g.w_chan_out = (watcher_t){ W_CHAN_OUT, NULL };
    g.w_sig = (watcher_t){ W_SIGNAL, NULL };
    ep_ctl(EPOLL_CTL_ADD, g.chan_in, EPOLLIN, &g.w_chan_in);
    ep_ctl(EPOLL_CTL_ADD, g.sfd, EPOLLIN, &g.w_sig);
}

/* --exec-bound-to: see the header.  Exit 127 as a shell does when CMD cannot run. */
static int exec_bound_to(char **argv)
{
    pid_t parent = (pid_t)strtol(argv[2], NULL, 10);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
        fprintf(stderr, "fnbus-spawner: prctl: %s\n", strerror(errno));
        return 127;
    }
    /* The parent may have ended before prctl took effect: then nothing would kill us. */
    if (getppid() != parent) return 127;
    execvp(argv[3], argv + 3);
    fprintf(stderr, "fnbus-spawner: cannot run %s: %s\n", argv[3], strerror(errno));
    return 127;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "--exec-bound-to") == 0) return exec_bound_to(argv);
    setup();
    struct epoll_event evs[64];
    for (;;) {
        int n = epoll_wait(g.ep, evs, 64, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            logmsg("epoll_wait: %s", strerror(errno));
            fatal_shutdown(3);
        }
        /* Level-triggered; each ready fd gets one read/write per batch, which
         * keeps children fair.  Signals (reaping) are handled after I/O so
         * output read in this batch precedes the EXIT frame. */
        int got_signal = 0;
        for (int i = 0; i < n; i++) {
            watcher_t *w = evs[i].data.ptr;
            switch (w->kind) {
            case W_CHAN_IN: chan_readable(); break;
            case W_CHAN_OUT: break;                 /* flushed below */
            case W_SIGNAL: got_signal = 1; break;
            case W_STDIN: stdin_flush(w->req); break;
            case W_STDOUT:
            case W_STDERR: output_readable(w->req, w->kind); break;
            }
        }
        if (got_signal) reap_children();
        flush_out();
        free_graveyard();
    }
}
