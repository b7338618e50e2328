/* wisp/io.h - asynchronous I/O: sockets, files, a poll on any fd, and any
 * io_uring operation you prepare yourself.
 *
 * Each worker of a runtime has its own I/O driver: an io_uring ring, or,
 * where the kernel refuses io_uring (a seccomp filter, io_uring_disabled,
 * an old kernel) or the config asks for it, an epoll instance (sockets by
 * readiness, file operations on the blocking pool).  wisp_io_backend says
 * which.  Operations are futures: embed a wisp_io_t in your own future (or
 * spawn it directly: wisp_io_poll and wisp_io_drop have the wisp_poll_fn and
 * wisp_drop_fn shapes).
 *
 *   wisp_io_recv(&f->io, fd, f->buf, 0);      // prepare: nothing happens yet
 *   ...
 *   if (wisp_io_poll(&f->io, cx, NULL) == WISP_PENDING) return WISP_PENDING;
 *   int64_t n = wisp_io_result(&f->io);       // bytes, or -errno
 *
 * The first poll starts the operation on the driver of the thread polling
 * it (a worker, or, from wisp_block_on, one of its runtime's workers).  It
 * stays there: if the task is stolen by another worker, the completion still
 * arrives on the first one and wakes the task wherever it runs.
 *
 * Results: a byte count (or an fd, or 0) as an int64_t, or a negative
 * errno.  Bad arguments (NULL buffers, zero lengths where a length is
 * needed, absurd sizes) give -EINVAL before anything is submitted; an
 * operation started on a runtime that is shutting down gives -ESHUTDOWN;
 * one polled on a thread with no runtime gives -ENXIO.
 *
 * BUFFERS AND OWNERSHIP.  Data moves through wisp_buf_t, a buffer wisp can
 * keep alive: from the first poll until the operation's completion the
 * kernel may read or write its bytes, so:
 *   - while the operation runs, the buffer belongs to it: do not touch,
 *     free or reuse it (nor any buffer passed in an array);
 *   - when wisp_io_poll returns READY, it is yours again, updated: a recv,
 *     read or readv appends what arrived at data[len..] and adds it to len;
 *     a send, write or writev takes data[pos..len) and adds what went out
 *     to pos;
 *   - if you drop the future (wisp_io_drop, an abort, runtime shutdown)
 *     while it runs, wisp asks the kernel to cancel it, keeps the buffer
 *     until the completion arrives, and then calls its release function:
 *     the buffer is no longer yours from the drop on.
 * Addresses, paths and iovec arrays you pass are copied at the first poll;
 * outputs (a peer address, a struct statx) are copied to your memory when
 * the poll returns READY, so they only need to be valid then.
 * An operation that creates a descriptor (accept, openat) and completes
 * after its future was dropped closes the descriptor: none leaks.
 *
 * Descriptors: an fd may have operations in flight on several workers.
 * Close it with wisp_io_close (or after its operations completed); on the
 * epoll backend close it only through wisp_io_close, which also forgets
 * its readiness registration (epoll registers a descriptor once, at its
 * first wait: one closed behind wisp's back and reused for a pipe or a
 * socketpair may then never be woken; a number reused by wisp's accept or
 * by a socket wisp connects is recognised as new).  The epoll backend
 * makes listening and connecting sockets non-blocking. */
#ifndef WISP_IO_H
#define WISP_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <wisp/future.h>
#include <wisp/runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- buffers ---------------------------------------------------------------- */

typedef struct wisp_buf wisp_buf_t;

struct wisp_buf {
    char *data;     /* cap bytes */
    size_t pos;     /* start of the bytes a send/write takes */
    size_t len;     /* end of the bytes in use; a recv/read appends here */
    size_t cap;
    /* Frees the buffer when wisp must (see above); wisp_buf_new's frees
     * itself.  NULL: nothing to free (memory that outlives the runtime). */
    void (*release)(wisp_buf_t *b);
    void *user;     /* yours */
};

/* A buffer of cap bytes, header and data in one allocation; NULL when out
 * of memory or cap is 0. */
WISP_API wisp_buf_t *wisp_buf_new(size_t cap);
/* Calls b->release(b) if set.  NULL: nothing. */
WISP_API void wisp_buf_free(wisp_buf_t *b);

/* ---- operations --------------------------------------------------------------- */

/* An operation future.  Opaque; its size is fixed for the ABI. */
typedef struct wisp_io {
    uint64_t opaque[28];
} wisp_io_t;

/* Preparing an operation touches nothing but *io.  On READY the result:
 *   accept     the new descriptor (close-on-exec); the peer's address in
 *              *addr and *addrlen if given
 *   connect    0
 *   recv, send, recvmsg, sendmsg, read, write, readv, writev: bytes (0 at
 *              the end of a stream or file)
 *   openat     the new descriptor
 *   close, fsync: 0
 *   statx      0, *out filled
 *   poll_fd    the events that are ready (POLLIN, POLLOUT, ...)
 *   timeout    0 when it expired
 *   sqe        the completion's res */
WISP_API void wisp_io_accept(wisp_io_t *io, int fd, struct sockaddr *addr, socklen_t *addrlen);
WISP_API void wisp_io_connect(wisp_io_t *io, int fd, const struct sockaddr *addr, socklen_t len);
WISP_API void wisp_io_recv(wisp_io_t *io, int fd, wisp_buf_t *buf, int flags);
WISP_API void wisp_io_send(wisp_io_t *io, int fd, wisp_buf_t *buf, int flags);
/* Vectored messages: nbufs (1..16) buffers, filled (recvmsg) or sent
 * (sendmsg) in order; an optional address (the peer's, out for recvmsg). */
WISP_API void wisp_io_recvmsg(wisp_io_t *io, int fd, wisp_buf_t **bufs, unsigned nbufs,
                              struct sockaddr *addr, socklen_t *addrlen, int flags);
WISP_API void wisp_io_sendmsg(wisp_io_t *io, int fd, wisp_buf_t **bufs, unsigned nbufs,
                              const struct sockaddr *addr, socklen_t addrlen, int flags);
/* At offset (WISP_IO_CURRENT: the file's position, for pipes and
 * sockets). */
#define WISP_IO_CURRENT UINT64_MAX
WISP_API void wisp_io_read(wisp_io_t *io, int fd, wisp_buf_t *buf, uint64_t offset);
WISP_API void wisp_io_write(wisp_io_t *io, int fd, wisp_buf_t *buf, uint64_t offset);
WISP_API void wisp_io_readv(wisp_io_t *io, int fd, wisp_buf_t **bufs, unsigned nbufs, uint64_t offset);
WISP_API void wisp_io_writev(wisp_io_t *io, int fd, wisp_buf_t **bufs, unsigned nbufs,
                             uint64_t offset);
WISP_API void wisp_io_openat(wisp_io_t *io, int dirfd, const char *path, int flags, mode_t mode);
WISP_API void wisp_io_close(wisp_io_t *io, int fd);
WISP_API void wisp_io_fsync(wisp_io_t *io, int fd, int datasync);
struct statx;
WISP_API void wisp_io_statx(wisp_io_t *io, int dirfd, const char *path, int flags, unsigned mask,
                            struct statx *out);
WISP_API void wisp_io_poll_fd(wisp_io_t *io, int fd, unsigned events);
WISP_API void wisp_io_timeout(wisp_io_t *io, uint64_t duration_ns);
/* Any io_uring operation: prep fills the SQE (opcode, fd, addresses; not
 * user_data), on the worker that submits it.  Memory the SQE points to is
 * yours to keep alive until the completion: if the future is dropped while
 * it runs, release(arg, res) is called when the completion arrives (on that
 * worker), else nothing is.  -ENOTSUP on the epoll backend. */
struct io_uring_sqe;
WISP_API void wisp_io_sqe(wisp_io_t *io, void (*prep)(struct io_uring_sqe *sqe, void *arg),
                          void (*release)(void *arg, int64_t res), void *arg);

/* Multishot: one operation, many results.  Each READY delivers the next
 * (accept_multi: a new descriptor; recv_multi: bytes appended to buf, 0 at
 * the end of the stream); poll again for the next one.  A negative result
 * ends the stream.  Drop to stop: descriptors accepted but not delivered
 * are closed.  On the epoll backend they are readiness loops with the same
 * results.  recv_multi receives into buffers of the driver's own (a
 * provided-buffer ring) and copies into buf on delivery, inside
 * wisp_io_poll: buf stays yours throughout (consume its bytes between
 * polls; with no room left in it a ready result reports -ENOBUFS and stays
 * queued). */
WISP_API void wisp_io_accept_multi(wisp_io_t *io, int fd);
WISP_API void wisp_io_recv_multi(wisp_io_t *io, int fd, wisp_buf_t *buf);

/* Drives the operation: the first poll starts it.  READY when it
 * completed; *output (may be NULL) gets the result as (void *)(intptr_t),
 * also readable with wisp_io_result.  A multishot operation returns READY
 * once per result. */
WISP_API wisp_poll_t wisp_io_poll(void *io, wisp_context_t *cx, void **output);
WISP_API int64_t wisp_io_result(const wisp_io_t *io);
/* Drops the operation: cancels it if it runs (see BUFFERS).  Call it for
 * every prepared operation once you are done with it, also after READY;
 * it may then be prepared again. */
WISP_API void wisp_io_drop(void *io);

/* The backend of rt's workers: WISP_IO_URING or WISP_IO_EPOLL (runtime.h),
 * 0 for NULL. */
WISP_API unsigned wisp_io_backend(const wisp_runtime_t *rt);
WISP_API const char *wisp_io_backend_name(const wisp_runtime_t *rt);

#ifdef __cplusplus
}
#endif

#endif /* WISP_IO_H */
