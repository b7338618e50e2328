/* wisp/runtime.h - the worker pool: create, free, query, block_on. */
#ifndef WISP_RUNTIME_H
#define WISP_RUNTIME_H

#include <wisp/future.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wisp_runtime wisp_runtime_t;

/* Largest worker count wisp_runtime_new accepts. */
#define WISP_MAX_WORKERS 4096u

/* The runtime's settings.  Fields are only ever added at the end (with no
 * padding before them), and a zeroed field means its default, so
 * `&(wisp_runtime_config_t){ .workers = N }` and NULL always work.  A
 * program passes the size its header gave the struct (the wisp_runtime_new
 * macro does it), so one built against an older header keeps working with a
 * newer library: the library reads only the fields the program knew. */
typedef struct wisp_runtime_config {
    unsigned workers;        /* 0: one per online CPU */
    unsigned queue_capacity; /* each worker's deque, a power of two >= 2; 0: 256 */
    size_t stack_size;       /* worker thread stacks in bytes; 0: the system default */
    const char *thread_name; /* workers are named "<thread_name>-<index>" (cut to 15
                                bytes, for ps, top and debuggers); NULL: "wisp" */
    unsigned cpus;           /* where workers run: WISP_CPUS_SPREAD (0), _PIN or _OS */
    unsigned io;             /* the I/O backend: WISP_IO_AUTO (0), _URING or _EPOLL;
                                AUTO takes WISP_IO=io_uring|epoll from the
                                environment, else io_uring when the kernel
                                allows it, else epoll (wisp/io.h) */
    unsigned ring_entries;   /* each worker's io_uring submission queue; 0: 256 */
    unsigned blocking_threads; /* blocking pool threads, at most; 0: 512 */
    uint64_t blocking_keepalive_ns; /* an idle blocking thread exits after; 0: 10 s */
} wisp_runtime_config_t;

/* wisp_runtime_config_t.cpus.  Worker i's CPU is the i-th of the process's
 * affinity mask (wrapping when there are more workers than CPUs). */
#define WISP_CPUS_SPREAD 0u /* each worker starts on its CPU, then the OS may move it */
#define WISP_CPUS_PIN 1u    /* each worker stays on its CPU */
#define WISP_CPUS_OS 2u     /* the OS places the workers from the start */

/* wisp_runtime_config_t.io */
#define WISP_IO_AUTO 0u
#define WISP_IO_URING 1u
#define WISP_IO_EPOLL 2u

/* Creates a runtime and starts its workers.  cfg NULL: all defaults.
 * -EINVAL: rt NULL, workers > WISP_MAX_WORKERS, queue_capacity not a power
 * of two (or over 2^24), stack_size below PTHREAD_STACK_MIN, cpus or io
 * unknown, ring_entries over 32768, or a field this library does not know
 * set (a program built against a newer header); -ENOSYS: io is
 * WISP_IO_URING and io_uring cannot be set up here;
 * -ENOMEM / -EAGAIN: out of memory or threads (nothing is leaked and no
 * thread is left running). */
WISP_API int wisp_runtime_new(wisp_runtime_t **rt, const wisp_runtime_config_t *cfg);

/* wisp_runtime_new with the size of the caller's wisp_runtime_config_t.  A
 * call to wisp_runtime_new compiles to this (the macro below), so the size
 * is always that of the header the program was built with; the function
 * wisp_runtime_new itself (through a pointer to it) reads only `workers`. */
WISP_API int wisp_runtime_new_sized(wisp_runtime_t **rt, const wisp_runtime_config_t *cfg,
                                    size_t cfg_size);
#define wisp_runtime_new(rt, ...) \
    wisp_runtime_new_sized((rt), (__VA_ARGS__), sizeof(wisp_runtime_config_t))

/* Shuts down and frees: later spawns fail with -ESHUTDOWN, every unfinished
 * task is closed and its future dropped exactly once, workers are joined.
 * -EDEADLK on one of rt's own workers, or from a drop function this thread
 * is running for one of rt's tasks (nothing done); -EINVAL for NULL or a
 * runtime already being freed. */
WISP_API int wisp_runtime_free(wisp_runtime_t *rt);

WISP_API unsigned wisp_runtime_workers(const wisp_runtime_t *rt); /* 0 for NULL */

/* Runtime of the calling worker or block_on thread, else NULL. */
WISP_API wisp_runtime_t *wisp_runtime_current(void);

/* 0..workers-1 on a worker, -1 elsewhere. */
WISP_API int wisp_worker_index(void);

/* Polls future in place on the calling outside thread until READY, parking
 * between polls.  While it runs wisp_runtime_current() returns rt (which may
 * be NULL).  -EDEADLK on a worker thread (checked first), -EINVAL for NULL
 * poll, -ENOMEM if the parking waker cannot be allocated. */
WISP_API int wisp_block_on(wisp_runtime_t *rt, wisp_poll_fn poll, void *future, void **output);

#ifdef __cplusplus
}
#endif

#endif /* WISP_RUNTIME_H */
