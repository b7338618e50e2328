/* io_runtime.c - the runtime's side of I/O: which backend a runtime uses,
 * a driver for each worker, and the drivers' start, stop and end.
 *
 * Owns: rt->io_backend and each worker's io pointer.  Touches: each
 * worker's parking driver and its users (the idle slot and the timer
 * wheel), which from here on park in the I/O driver.
 *
 * The backend: config.io if it names one; else WISP_IO=io_uring|epoll from
 * the environment; else io_uring when this process may set up rings (not
 * under a seccomp filter that refuses them, not with io_uring_disabled, a
 * kernel from 5.10 on, enough locked memory), else epoll.  A backend asked
 * for by name that cannot be set up fails the runtime's creation (-ENOSYS
 * for io_uring); an automatic choice falls back.  Drivers are created on
 * the thread creating the runtime, before the workers start (a worker's
 * ring is enabled on its own thread, io_uring.c), so that every failure
 * shows in wisp_runtime_new, and a driver exists before anyone can unpark
 * the worker through it. */
#include "io.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "runtime.h"

static unsigned backend_wanted(const struct wisp_runtime *rt)
{
    if (rt->config.io != WISP_IO_AUTO)
        return rt->config.io;
    const char *e = getenv("WISP_IO");
    if (e && !strcmp(e, "epoll"))
        return WISP_IO_EPOLL;
    if (e && !strcmp(e, "io_uring"))
        return WISP_IO_URING;
    return WISP_IO_AUTO;
}

static void drivers_free(struct wisp_runtime *rt)
{
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct worker *w = rt->workers[i];
        if (w && w->io) {
            w->io->backend->free(w->io);
            w->io = NULL;
        }
    }
    if (rt->io_shared) {
        rt->io_shared_free(rt->io_shared);
        rt->io_shared = NULL;
    }
}

static int drivers_new(struct wisp_runtime *rt, unsigned backend)
{
    for (unsigned i = 0; i < rt->nworkers; i++) {
        int err = 0;
        struct worker *w = rt->workers[i];
        w->io = backend == WISP_IO_URING ? wisp__io_uring_new(rt, w, &err)
                                         : wisp__io_epoll_new(rt, w, &err);
        if (!w->io) {
            drivers_free(rt);
            return err ? err : -ENOMEM;
        }
    }
    return 0;
}

int wisp__io_runtime_init(struct wisp_runtime *rt)
{
    unsigned want = backend_wanted(rt);
    int err = -ENOSYS;
    if (want != WISP_IO_EPOLL) {
        err = drivers_new(rt, WISP_IO_URING);
        if (!err)
            rt->io_backend = WISP_IO_URING;
        else if (want == WISP_IO_URING)
            /* asked for by name: say why not, as the config documents */
            return err == -ENOMEM ? err : -ENOSYS;
    }
    if (err) {
        if ((err = drivers_new(rt, WISP_IO_EPOLL)))
            return err;
        rt->io_backend = WISP_IO_EPOLL;
    }
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct worker *w = rt->workers[i];
        w->driver = &w->io->base;
        w->idle.driver = w->driver;
        w->timers.owner = w->driver;
    }
    return 0;
}

void wisp__io_runtime_destroy(struct wisp_runtime *rt)
{
    drivers_free(rt);
}

void wisp__io_worker_start(struct worker *w)
{
    if (w->io)
        w->io->backend->start(w->io);
}

void wisp__io_worker_stop(struct worker *w)
{
    if (w->io)
        w->io->backend->shutdown(w->io);
}
