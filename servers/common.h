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

/* ---- the accept loop ---- */

/* Called on a worker for each accepted descriptor, which it owns from then
 * on (it must close it, also on failure). */
typedef void (*srv_conn_fn)(int fd, void *arg);

/* The life of a server once its options are parsed: blocks the signals,
 * raises the descriptor limit, listens on o's address, starts the runtime
 * (stored in *rt before any connection can arrive), spawns the acceptor
 * with fn, prints the listening line, and waits for SIGINT/SIGTERM/SIGHUP;
 * then frees the runtime (every connection task dropped) and closes the
 * listening socket.  srv_die on any failure. */
void srv_serve(const struct srv_opts *o, srv_conn_fn fn, wisp_runtime_t **rt);

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
