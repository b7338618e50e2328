/* servers/common.h - what wisp-echo, wisp-httpd and wisp-load share: argument
 * parsing, the listening socket, the runtime with its backend, the accept
 * loop, closing a connection, signals.  Program code, not the library: the
 * three servers are the worked examples of wisp's API (README), written the
 * way a user would write them.
 *
 * Owns: nothing global but the programs' name for messages (srv_prog). */
#ifndef WISP_SERVERS_COMMON_H
#define WISP_SERVERS_COMMON_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <wisp/wisp.h>

extern const char *srv_prog;

/* Prints "PROG: message" to stderr and exits with status (2: bad usage,
 * 1: the rest). */
_Noreturn void srv_die(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The options every program takes.  srv_common_opt parses argv[*i] into o
 * when it is one of them (--host ADDR, --port P (0..65535), --workers N,
 * --backend B), taking its value, and returns true; else false. */
struct srv_opts {
    const char *host;
    const char *backend;
    unsigned port;
    unsigned workers;
};
bool srv_common_opt(int argc, char **argv, int *i, struct srv_opts *o);

/* An unsigned decimal in [min, max] for option opt, else srv_die(2). */
uint64_t srv_parse_u64(const char *opt, const char *s, uint64_t min, uint64_t max);
/* argv[*i + 1], the value of option argv[*i]; srv_die(2) if missing. */
const char *srv_optarg(int argc, char **argv, int *i);

/* The runtime: workers (0: one per CPU) and backend ("io_uring", "epoll" or
 * NULL for the default: io_uring where the kernel allows it).  srv_die(1)
 * on failure, with the reason (io_uring asked for and refused, ...). */
wisp_runtime_t *srv_runtime(unsigned workers, const char *backend);

/* A listening TCP socket on host:port (IPv4 or IPv6 literal; port 0: any
 * free one), SO_REUSEADDR, close-on-exec; *bound gets the port.  srv_die(1)
 * with the reason (a port in use, ...). */
int srv_listen(const char *host, unsigned port, unsigned *bound);

/* Prints "listening HOST:PORT backend=B workers=N" to stdout and flushes it
 * (scripts read the port from it). */
void srv_print_listening(const char *host, unsigned port, wisp_runtime_t *rt);

/* Raises the soft limit on open descriptors to the hard one (as nginx's
 * worker_rlimit_nofile and Go's runtime do). */
void srv_raise_nofile(void);

/* Blocks SIGINT, SIGTERM and SIGHUP in the calling thread (call before the
 * runtime starts its threads, which inherit the mask) and ignores SIGPIPE;
 * srv_wait_signal then waits for one of them and returns it. */
void srv_signals_block(void);
int srv_wait_signal(void);

/* ---- the accept loop ---- */

/* Called on a worker for each accepted descriptor, which it owns from then
 * on (it must close it, also on failure). */
typedef void (*srv_conn_fn)(int fd, void *arg);

/* Spawns the task accepting on lfd until the runtime shuts down: a
 * multishot accept; on EMFILE/ENFILE/ENOBUFS/ENOMEM it backs off 10 ms
 * (the others keep running: their descriptors come back), on
 * ECONNABORTED it goes on.  0 or a negative errno from wisp_spawn. */
int srv_accept_spawn(wisp_runtime_t *rt, int lfd, srv_conn_fn fn, void *arg);

/* ---- connections ---- */

/* Connection count and limit (max 0: none).  srv_conn_admit takes a slot,
 * false when the limit is reached; srv_conn_leave gives it back. */
struct srv_conns {
    _Atomic uint64_t live;
    uint64_t max;
};
bool srv_conn_admit(struct srv_conns *c);
void srv_conn_leave(struct srv_conns *c);

/* Closing inside a task: srv_close_start prepares the close of *fd through
 * the I/O layer (which also forgets the epoll backend's registration) and
 * sets *fd to -1; poll io until READY, then drop it.  A connection whose
 * task is dropped with its fd still open (runtime shutdown) closes it with
 * close(2): the runtime is going away with its registrations. */
void srv_close_start(wisp_io_t *io, int *fd);

/* TCP_NODELAY on fd (errors ignored: a socket reset already is closed by
 * its next operation). */
void srv_nodelay(int fd);

/* Monotonic nanoseconds (wisp_now_ns). */
static inline uint64_t srv_now_ns(void)
{
    return wisp_now_ns();
}

#endif
