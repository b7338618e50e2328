/* servers/common.c - see common.h. */
#include "common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

const char *srv_prog = "wisp";

void srv_die(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", srv_prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(status);
}

uint64_t srv_parse_u64(const char *opt, const char *s, uint64_t min, uint64_t max)
{
    char *end;
    if (*s < '0' || *s > '9')
        srv_die(2, "%s: '%s' is not a number", opt, s);
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || errno == ERANGE)
        srv_die(2, "%s: '%s' is not a number", opt, s);
    if (v < min || v > max)
        srv_die(2, "%s: %s is out of range (%" PRIu64 "..%" PRIu64 ")", opt, s, min, max);
    return v;
}

const char *srv_optarg(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc)
        srv_die(2, "%s needs a value (see --help)", argv[*i]);
    return argv[++*i];
}

bool srv_common_opt(int argc, char **argv, int *i, struct srv_opts *o)
{
    const char *a = argv[*i];
    if (!strcmp(a, "--host"))
        o->host = srv_optarg(argc, argv, i);
    else if (!strcmp(a, "--port"))
        o->port = (unsigned)srv_parse_u64(a, srv_optarg(argc, argv, i), 0, 65535);
    else if (!strcmp(a, "--workers"))
        o->workers = (unsigned)srv_parse_u64(a, srv_optarg(argc, argv, i), 1, WISP_MAX_WORKERS);
    else if (!strcmp(a, "--backend"))
        o->backend = srv_optarg(argc, argv, i);
    else
        return false;
    return true;
}

wisp_runtime_t *srv_runtime(unsigned workers, const char *backend)
{
    unsigned io = WISP_IO_AUTO;
    if (backend && strcmp(backend, "io_uring") == 0)
        io = WISP_IO_URING;
    else if (backend && strcmp(backend, "epoll") == 0)
        io = WISP_IO_EPOLL;
    else if (backend)
        srv_die(2, "--backend: '%s' is not io_uring or epoll", backend);
    wisp_runtime_t *rt;
    int r = wisp_runtime_new(&rt, &(wisp_runtime_config_t){ .workers = workers, .io = io,
                                                             .thread_name = srv_prog });
    if (r == -ENOSYS)
        srv_die(1, "io_uring cannot be set up here (try --backend epoll)");
    if (r < 0)
        srv_die(1, "cannot start the runtime: %s", strerror(-r));
    return rt;
}

/* A listening TCP socket on host:port (IPv4 or IPv6 literal; port 0: any
 * free one), SO_REUSEADDR, close-on-exec; *bound gets the port.  srv_die(1)
 * with the reason (a port in use, ...). */
static int srv_listen(const char *host, unsigned port, unsigned *bound)
{
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        len = sizeof *in4;
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        len = sizeof *in6;
    } else {
        srv_die(2, "--host: '%s' is not an IPv4 or IPv6 address", host);
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        srv_die(1, "socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
        int e = errno;
        if (e == EADDRINUSE)
            srv_die(1, "%s port %u is in use", host, port);
        srv_die(1, "cannot listen on %s port %u: %s", host, port, strerror(e));
    }
    if (listen(fd, 4096) < 0)
        srv_die(1, "listen: %s", strerror(errno));
    len = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &len);
    *bound = ntohs(ss.ss_family == AF_INET ? in4->sin_port : in6->sin6_port);
    return fd;
}

/* Prints "listening HOST:PORT backend=B workers=N" to stdout and flushes it
 * (scripts read the port from it). */
static void srv_print_listening(const char *host, unsigned port, wisp_runtime_t *rt)
{
    bool v6 = strchr(host, ':') != NULL;
    printf("listening %s%s%s:%u backend=%s workers=%u\n", v6 ? "[" : "", host, v6 ? "]" : "", port,
           wisp_io_backend_name(rt), wisp_runtime_workers(rt));
    fflush(stdout);
}

/* Raises the soft limit on open descriptors to the hard one (as nginx's
 * worker_rlimit_nofile and Go's runtime do). */
static void srv_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static sigset_t srv_sigs;

/* Blocks SIGINT, SIGTERM and SIGHUP in the calling thread (call before the
 * runtime starts its threads, which inherit the mask) and ignores SIGPIPE;
 * srv_wait_signal then waits for one of them and returns it. */
static void srv_signals_block(void)
{
    sigemptyset(&srv_sigs);
    sigaddset(&srv_sigs, SIGINT);
    sigaddset(&srv_sigs, SIGTERM);
    sigaddset(&srv_sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &srv_sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static int srv_wait_signal(void)
{
    int sig = 0;
    while (sigwait(&srv_sigs, &sig) != 0)
        ;
    return sig;
}

/* ---- the accept loop ---- */

struct acceptor {
    wisp_io_t io;
    wisp_sleep_t backoff;
    bool backing_off;
    int lfd;
    srv_conn_fn fn;
    void *arg;
};

static wisp_poll_t acceptor_poll(void *p, wisp_context_t *cx, void **out)
{
    struct acceptor *a = p;
    (void)out;
    for (;;) {
        if (a->backing_off) {
            if (wisp_sleep_poll(&a->backoff, cx, NULL) == WISP_PENDING)
                return WISP_PENDING;
            wisp_sleep_drop(&a->backoff);
            a->backing_off = false;
            wisp_io_accept_multi(&a->io, a->lfd);
        }
        if (wisp_io_poll(&a->io, cx, NULL) == WISP_PENDING)
            return WISP_PENDING;
        int64_t r = wisp_io_result(&a->io);
        if (r >= 0) {
            a->fn((int)r, a->arg);
            continue;
        }
        /* The multishot accept ended. */
        wisp_io_drop(&a->io);
        if (r == -ESHUTDOWN || r == -EBADF || r == -EINVAL || r == -ENOTSOCK) {
            *out = NULL;
            return WISP_READY; /* shutting down, or the socket is gone */
        }
        if (r == -EMFILE || r == -ENFILE || r == -ENOBUFS || r == -ENOMEM) {
            wisp_sleep_init(&a->backoff, 10 * 1000000ull);
            a->backing_off = true;
            continue;
        }
        /* ECONNABORTED, EINTR, ECANCELED (the kernel ended it), ...: on. */
        wisp_io_accept_multi(&a->io, a->lfd);
    }
}

static void acceptor_drop(void *p)
{
    struct acceptor *a = p;
    wisp_io_drop(&a->io);
    if (a->backing_off)
        wisp_sleep_drop(&a->backoff);
}

/* Spawns the task accepting on lfd until the runtime shuts down: a
 * multishot accept; on EMFILE/ENFILE/ENOBUFS/ENOMEM it backs off 10 ms
 * (the others keep running: their descriptors come back), on
 * ECONNABORTED it goes on.  0 or a negative errno from wisp_spawn. */
static int srv_accept_spawn(wisp_runtime_t *rt, int lfd, srv_conn_fn fn, void *arg)
{
    struct acceptor a;
    memset(&a, 0, sizeof a);
    a.lfd = lfd;
    a.fn = fn;
    a.arg = arg;
    wisp_io_accept_multi(&a.io, lfd);
    return wisp_spawn(rt, acceptor_poll, &a, sizeof a, acceptor_drop, NULL);
}

void srv_serve(const struct srv_opts *o, srv_conn_fn fn, wisp_runtime_t **rt)
{
    srv_signals_block();
    srv_raise_nofile();
    unsigned bound;
    int lfd = srv_listen(o->host, o->port, &bound);
    *rt = srv_runtime(o->workers, o->backend);
    int r = srv_accept_spawn(*rt, lfd, fn, NULL);
    if (r < 0)
        srv_die(1, "cannot start the acceptor: %s", strerror(-r));
    srv_print_listening(o->host, bound, *rt);
    srv_wait_signal();
    wisp_runtime_free(*rt);
    close(lfd);
}

/* ---- connections ---- */

bool srv_conn_admit(struct srv_conns *c)
{
    /* relaxed: a counter; the limit is approximate by at most the number of
     * concurrent acceptors (one). */
    uint64_t n = atomic_fetch_add_explicit(&c->live, 1, memory_order_relaxed);
    if (c->max && n >= c->max) {
        atomic_fetch_sub_explicit(&c->live, 1, memory_order_relaxed);
        return false;
    }
    return true;
}

void srv_conn_leave(struct srv_conns *c)
{
    atomic_fetch_sub_explicit(&c->live, 1, memory_order_relaxed);
}

void srv_close_start(wisp_io_t *io, int *fd)
{
    wisp_io_close(io, *fd);
    *fd = -1;
}

void srv_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}
