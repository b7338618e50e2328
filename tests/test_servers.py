#!/usr/bin/env python3
"""tests/test_servers.py - wisp-echo, wisp-httpd and wisp-load checked from
outside, as real processes over loopback TCP (standard library only).

    test_servers.py WISP_ECHO WISP_HTTPD WISP_LOAD

Every server runs with --port 0 --workers 2, once per backend (io_uring,
which is skipped with a note when the server says it cannot be set up, and
epoll).  For each server: the cases below, then its descriptors must be back
to the count they had after start, then it gets SIGTERM and must exit 0
with nothing on stderr (a sanitizer's report there fails it).  One line is
printed per case; a failure says what was sent, what was expected and what
came.  Every socket operation has a timeout.  Exit status 0 when every case
passed (skips allowed), else 1.

Timing bounds (idle timeout) are widened under a sanitizer, detected from
the binaries (TSan and ASan builds are several times slower).
"""
import os
import random
import re
import select
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

if len(sys.argv) != 4:
    sys.stderr.write("usage: test_servers.py WISP_ECHO WISP_HTTPD WISP_LOAD\n")
    sys.exit(2)
ECHO, HTTPD, LOAD = (os.path.abspath(p) for p in sys.argv[1:4])


def _sanitizer(path):
    with open(path, "rb") as f:
        data = f.read()
    if b"__tsan_init" in data:
        return "tsan"
    if b"__asan_init" in data:
        return "asan"
    return ""


SAN = _sanitizer(HTTPD)
SLOW = {"tsan": 4, "asan": 3}.get(SAN, 1)
T = 10.0 * SLOW             # one socket operation's timeout
QUICK = 5.0 * SLOW          # a wait for what should come at once (EOF after a half-close)
SEED = int(os.environ.get("WISP_TEST_SEED", str(int(time.time()))))
RNG = random.Random(SEED)
HOST = "127.0.0.1"


# ---- results ----

class Fail(Exception):
    pass


class Skip(Exception):
    pass


RESULTS = {"ok": 0, "FAIL": 0, "skip": 0}
FAILED = []
OPEN_SOCKS = []          # every client socket, closed before a descriptor count
OPEN_LOCK = threading.Lock()


def short(b, n=160):
    """repr of bytes/str, cut to n characters."""
    r = repr(b if not isinstance(b, (bytearray, memoryview)) else bytes(b))
    return r if len(r) <= n else r[:n] + "...(%d bytes)" % len(b)


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def run_case(group, name, fn, *args, server=None):
    t0 = time.monotonic()
    status, msg = "ok", ""
    try:
        fn(*args)
    except Skip as e:
        status, msg = "skip", str(e)
    except Fail as e:
        status, msg = "FAIL", str(e)
    except Exception:  # a test bug, or an unexpected socket error
        status, msg = "FAIL", "unexpected exception:\n" + traceback.format_exc()
    if status == "FAIL" and server is not None and server.proc.poll() is not None:
        msg += "\n    (the server exited with status %s; stderr: %s)" % (
            server.proc.returncode, short(server.stderr_text(), 2000))
    RESULTS[status] += 1
    if status == "FAIL":
        FAILED.append("%s %s" % (group, name))
    line = "%-4s %s %s (%.2fs)" % (status, group, name, time.monotonic() - t0)
    if msg:
        line += ": " + msg.replace("\n", "\n    ")
    print(line, flush=True)
    return status == "ok"


# ---- sockets ----

def track(s):
    with OPEN_LOCK:
        OPEN_SOCKS.append(s)
    return s


def close_all():
    with OPEN_LOCK:
        socks = OPEN_SOCKS[:]
        OPEN_SOCKS.clear()
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def connect(port, timeout=None):
    s = socket.create_connection((HOST, port), timeout=timeout or T)
    return track(s)


def reset(s):
    """Closes s with a reset (SO_LINGER 0)."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    s.close()


def wait_closed(s, timeout):
    """Reads until EOF or a reset: (True, extra bytes) or (False, bytes) on
    timeout."""
    got = bytearray()
    end = time.monotonic() + timeout
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return False, bytes(got)
        s.settimeout(left)
        try:
            d = s.recv(65536)
        except socket.timeout:
            return False, bytes(got)
        except (ConnectionResetError, BrokenPipeError):
            return True, bytes(got)
        if not d:
            return True, bytes(got)
        got += d


class Resp:
    def __init__(self, status, reason, headers, body, raw_head):
        self.status, self.reason, self.headers, self.body, self.raw_head = (
            status, reason, headers, body, raw_head)

    def h(self, name):
        v = self.headers.get(name.lower())
        return v[0] if v else None

    def __repr__(self):
        return "%d %s %s body=%s" % (self.status, self.reason,
                                     short(self.raw_head, 400), short(self.body, 120))


class Conn:
    """An HTTP client connection; what was sent last is kept for messages."""

    def __init__(self, port, timeout=None):
        self.s = connect(port, timeout)
        self.buf = bytearray()
        self.sent = b""

    def send(self, data):
        self.sent = data
        self.s.sendall(data)

    def _fill(self, what):
        self.s.settimeout(T)
        try:
            d = self.s.recv(1 << 16)
        except socket.timeout:
            raise Fail("sent %s: expected %s, got no more bytes within %gs (have %s)" % (
                short(self.sent), what, T, short(self.buf)))
        except ConnectionResetError:
            raise Fail("sent %s: expected %s, got a reset (have %s)" % (
                short(self.sent), what, short(self.buf)))
        if not d:
            raise Fail("sent %s: expected %s, got the connection closed (have %s)" % (
                short(self.sent), what, short(self.buf)))
        self.buf += d

    def response(self, head=False, what="a response"):
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                break
            if len(self.buf) > 65536:
                raise Fail("sent %s: expected %s, got 64 KiB without a header end: %s" % (
                    short(self.sent), what, short(self.buf)))
            self._fill(what)
        raw = bytes(self.buf[:i])
        del self.buf[:i + 4]
        lines = raw.split(b"\r\n")
        m = re.fullmatch(rb"HTTP/1\.1 (\d{3}) ([^\r\n]*)", lines[0])
        if not m:
            raise Fail("sent %s: expected %s, got a bad status line %s" % (
                short(self.sent), what, short(lines[0])))
        headers = {}
        for ln in lines[1:]:
            name, sep, value = ln.partition(b":")
            if not sep or not name or name != name.strip():
                raise Fail("sent %s: a bad response header line %s in %s" % (
                    short(self.sent), short(ln), short(raw)))
            headers.setdefault(name.decode("latin-1").lower(), []).append(
                value.strip().decode("latin-1"))
        cl = headers.get("content-length")
        if not cl or len(cl) != 1 or not cl[0].isdigit():
            raise Fail("sent %s: response without one valid Content-Length: %s" % (
                short(self.sent), short(raw)))
        n = int(cl[0])
        body = b""
        if not head:
            while len(self.buf) < n:
                self._fill("%s (a body of %d bytes)" % (what, n))
            body = bytes(self.buf[:n])
            del self.buf[:n]
        return Resp(int(m.group(1)), m.group(2).decode("latin-1"), headers, body, raw)

    def expect(self, req, status, body=None, head=False, conn=None, hdrs=None):
        """Sends req (unless None), reads a response and checks its status,
        body (if given) and Connection header (conn: 'close', 'keep-alive',
        None: absent or anything)."""
        if req is not None:
            self.send(req)
        what = "%d%s" % (status, "" if body is None else " " + short(body, 60))
        r = self.response(head=head, what=what)
        if r.status != status or (body is not None and r.body != body):
            raise Fail("sent %s: expected %s, got %r" % (short(self.sent), what, r))
        if conn is not None and (r.h("connection") or "").lower() != conn:
            raise Fail("sent %s: expected 'Connection: %s', got %r" % (short(self.sent), conn, r))
        for k, v in (hdrs or {}).items():
            if r.h(k) != v:
                raise Fail("sent %s: expected '%s: %s', got %r" % (short(self.sent), k, v, r))
        return r

    def expect_closed(self, timeout=None):
        """The server closes now (EOF or reset) and sends nothing more."""
        extra = bytes(self.buf)
        self.buf.clear()
        closed, got = wait_closed(self.s, timeout or T)
        extra += got
        if extra:
            raise Fail("sent %s: expected the connection closed after the response, got more "
                       "bytes: %s" % (short(self.sent), short(extra)))
        if not closed:
            raise Fail("sent %s: expected the connection closed after the response, still open "
                       "after %gs" % (short(self.sent), timeout or T))

    def close(self):
        self.s.close()

    def reset(self):
        reset(self.s)


def get(path=b"/", host=b"x", extra=b"", method=b"GET", version=b"HTTP/1.1"):
    return method + b" " + path + b" " + version + b"\r\nHost: " + host + b"\r\n" + extra + b"\r\n"


# ---- echo traffic ----

def echo_exchange(port, payloads, half_close=False, timeout=None):
    """Opens one connection per payload, sends each while reading back
    concurrently, and checks the echo is intact.  half_close: shutdown
    SHUT_WR after the send, and expect all bytes and then EOF."""
    timeout = timeout or 6 * T
    sel = selectors.DefaultSelector()
    conns = []
    try:
        for i, data in enumerate(payloads):
            s = connect(port)
            s.setblocking(False)
            st = {"i": i, "s": s, "data": memoryview(data), "sent": 0, "got": bytearray(),
                  "eof": False, "done": False}
            conns.append(st)
            sel.register(s, selectors.EVENT_READ | (selectors.EVENT_WRITE if data else 0), st)
            if not data and half_close:
                s.shutdown(socket.SHUT_WR)
        left = len(conns)
        end = time.monotonic() + timeout
        while left:
            if time.monotonic() > end:
                slow = [c for c in conns if not c["done"]]
                raise Fail("%d of %d echo connections unfinished after %gs; e.g. #%d: sent "
                           "%d of %d bytes, got %d back" % (
                               len(slow), len(conns), timeout, slow[0]["i"], slow[0]["sent"],
                               len(slow[0]["data"]), len(slow[0]["got"])))
            for key, ev in sel.select(timeout=0.5):
                st = key.data
                s = st["s"]
                data = st["data"]
                if ev & selectors.EVENT_WRITE and st["sent"] < len(data):
                    try:
                        st["sent"] += s.send(data[st["sent"]:st["sent"] + (256 << 10)])
                    except BlockingIOError:
                        pass
                    except OSError as e:
                        raise Fail("echo #%d (%d bytes): send failed after %d bytes: %s" % (
                            st["i"], len(data), st["sent"], e))
                    if st["sent"] == len(data):
                        if half_close:
                            s.shutdown(socket.SHUT_WR)
                        sel.modify(s, selectors.EVENT_READ, st)
                if ev & selectors.EVENT_READ:
                    try:
                        d = s.recv(256 << 10)
                    except BlockingIOError:
                        continue
                    except OSError as e:
                        raise Fail("echo #%d (%d bytes): expected the bytes back, got %s after "
                                   "%d bytes" % (st["i"], len(data), e, len(st["got"])))
                    if d:
                        st["got"] += d
                        if len(st["got"]) > len(data):
                            raise Fail("echo #%d: sent %d bytes, got %d back" % (
                                st["i"], len(data), len(st["got"])))
                    else:
                        st["eof"] = True
                    finished = st["eof"] if half_close else len(st["got"]) == len(data)
                    if st["eof"] and len(st["got"]) < len(data):
                        raise Fail("echo #%d: sent %d bytes, expected them back%s, got EOF "
                                   "after %d" % (st["i"], len(data),
                                                 " then EOF" if half_close else "", len(st["got"])))
                    if finished:
                        if st["got"] != data:
                            k = next(j for j in range(len(data)) if st["got"][j] != data[j])
                            raise Fail("echo #%d: sent %d bytes, got them back differing from "
                                       "byte %d" % (st["i"], len(data), k))
                        st["done"] = True
                        left -= 1
                        sel.unregister(s)
                        s.close()
    finally:
        sel.close()
        for c in conns:
            c["s"].close()


# ---- processes ----

class BackendUnavailable(Exception):
    pass


class Server:
    def __init__(self, prog, backend, extra=()):
        self.prog, self.backend = prog, backend
        self.name = os.path.basename(prog)
        self.errf = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [prog, "--port", "0", "--workers", "2", "--backend", backend] + list(extra),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.errf)
        line = b""
        end = time.monotonic() + 10 * SLOW
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        while not line.endswith(b"\n"):
            left = end - time.monotonic()
            if left <= 0 or not sel.select(left):
                self.kill()
                raise Fail("%s: no 'listening' line within %ds (got %s)" % (
                    self.name, 10 * SLOW, short(line)))
            d = os.read(self.proc.stdout.fileno(), 4096)
            if not d:
                rc = self.proc.wait(T)
                err = self.stderr_text()
                if "io_uring cannot be set up" in err:
                    raise BackendUnavailable(err.strip())
                raise Fail("%s exited with status %s before listening; stderr: %s" % (
                    self.name, rc, short(err, 2000)))
            line += d
        sel.close()
        self.line = line.decode()
        m = re.fullmatch(r"listening 127\.0\.0\.1:(\d+) backend=(\S+) workers=(\d+)\n", self.line)
        if not m or m.group(2) != backend or m.group(3) != "2":
            self.kill()
            raise Fail("%s: expected 'listening 127.0.0.1:PORT backend=%s workers=2', got %s" % (
                self.name, backend, short(self.line)))
        self.port = int(m.group(1))
        self.baseline = self.fds()

    def fds(self):
        d = "/proc/%d/fd" % self.proc.pid
        out = {}
        for n in os.listdir(d):
            try:
                out[n] = os.readlink(os.path.join(d, n))
            except OSError:
                pass
        return out

    def stderr_text(self):
        self.errf.seek(0)
        return self.errf.read().decode("utf-8", "replace")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        """SIGTERM: exit status 0 and an empty stderr."""
        if self.proc.poll() is not None:
            raise Fail("%s had exited already (status %s); stderr: %s" % (
                self.name, self.proc.returncode, short(self.stderr_text(), 4000)))
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(15 * SLOW)
        except subprocess.TimeoutExpired:
            self.kill()
            raise Fail("%s: SIGTERM, expected an exit, still running after %ds" % (
                self.name, 15 * SLOW))
        err = self.stderr_text()
        check(rc == 0 and not err, "%s: SIGTERM, expected status 0 and nothing on stderr, got "
              "status %s and stderr %s" % (self.name, rc, short(err, 4000)))


def check_fds(srv):
    """All client sockets closed: the server's descriptors return to the
    count after start."""
    close_all()
    end = time.monotonic() + 3 * SLOW
    while True:
        now = srv.fds()
        if len(now) == len(srv.baseline):
            return
        if time.monotonic() > end:
            extra = {k: v for k, v in now.items() if srv.baseline.get(k) != v}
            raise Fail("%s: %d descriptors after start, %d after the cases (all clients closed "
                       "%ds ago); new: %s" % (srv.name, len(srv.baseline), len(now), 3 * SLOW,
                                              short(sorted(extra.items()), 600)))
        time.sleep(0.05)


def run(args, timeout=None):
    try:
        return subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout or 10 * SLOW)
    except subprocess.TimeoutExpired:
        raise Fail("%s: still running after %ds" % (" ".join(args), timeout or 10 * SLOW))


def load_result(p, args):
    """Checks a finished wisp-load: exit 0, errors=0, some requests."""
    out, err = p.stdout.decode(), p.stderr.decode()
    m = re.search(r"^load proto=\S+ .*requests=(\d+) errors=(\d+) ", out, re.M)
    check(p.returncode == 0 and m and m.group(2) == "0" and int(m.group(1)) > 0 and not err,
          "%s: expected exit 0 and 'errors=0' with requests, got status %s, stdout %s, "
          "stderr %s" % (" ".join(args), p.returncode, short(out, 400), short(err, 2000)))


class Load:
    """wisp-load running in the background."""

    def __init__(self, port, backend, *extra):
        self.args = [LOAD, "--port", str(port), "--backend", backend] + list(extra)
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)

    def finish(self):
        try:
            out, err = self.proc.communicate(timeout=30 * SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise Fail("%s: still running after %ds" % (" ".join(self.args), 30 * SLOW))
        load_result(subprocess.CompletedProcess(self.args, self.proc.returncode, out, err),
                    self.args)


class Background:
    """Runs fn() in a loop in threads until stopped; collects failures."""

    def __init__(self):
        self.stop = threading.Event()
        self.threads = []
        self.errors = []
        self.counts = {}

    def add(self, name, fn):
        def loop():
            n = 0
            while not self.stop.is_set():
                try:
                    fn()
                except Fail as e:
                    self.errors.append("%s: %s" % (name, e))
                    return
                except Exception:
                    self.errors.append("%s: %s" % (name, traceback.format_exc()))
                    return
                n += 1
            self.counts[name] = n
        t = threading.Thread(target=loop, daemon=True)
        self.threads.append(t)
        t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(10 * T)
        stuck = sum(t.is_alive() for t in self.threads)
        check(not self.errors and not stuck, "bad clients under load: " + "\n".join(
            self.errors[:5] + (["%d still running %gs after the load" % (stuck, 10 * T)]
                               if stuck else [])))
        for name, n in self.counts.items():
            check(n > 0, "bad client %s under load ran no round" % name)


# ---- echo cases ----

def echo_concurrent(srv):
    sizes = [1 << 20, 1 << 20, 1 << 20] + [
        RNG.choice([1, 2, 100, 1000, 4095, 4096, 4097, 8192, 65536, 100000, 262144, 300001])
        for _ in range(97)]
    RNG.shuffle(sizes)
    echo_exchange(srv.port, [RNG.randbytes(n) for n in sizes])


def echo_half_close(srv):
    echo_exchange(srv.port, [RNG.randbytes(n) for n in (0, 1, 4096, 100000, 1 << 20)],
                  half_close=True, timeout=QUICK)
    # Also in plain blocking style: a small message, SHUT_WR, echo, EOF.
    s = connect(srv.port)
    s.sendall(b"hello, half-closed world")
    s.shutdown(socket.SHUT_WR)
    closed, got = wait_closed(s, T)
    check(closed and got == b"hello, half-closed world",
          "sent 'hello, half-closed world' then SHUT_WR: expected it back then EOF, got %s%s" % (
              short(got), "" if closed else " and no EOF"))
    s.close()


def echo_roundtrip(s, data):
    s.sendall(data)
    got = bytearray()
    while len(got) < len(data):
        s.settimeout(T)
        try:
            d = s.recv(65536)
        except socket.timeout:
            d = None
        if not d:
            raise Fail("echo: sent %d bytes, got %d back then %s" % (
                len(data), len(got), "EOF" if d == b"" else "nothing for %gs" % T))
        got += d
    check(got == data, "echo: sent %s, got %s" % (short(data), short(got)))


def echo_reset_one(port, i):
    s = connect(port)
    kind = i % 4
    if kind == 0:      # reset right after connecting
        pass
    elif kind == 1:    # mid-stream: sent, partly read back
        s.sendall(RNG.randbytes(65536))
        s.recv(1000)
    elif kind == 2:    # the server is blocked sending to us: we do not read
        s.setblocking(False)
        data = RNG.randbytes(1 << 20)
        try:
            s.send(data)
        except BlockingIOError:
            pass
        time.sleep(0.002)
    else:              # bytes in flight both ways
        s.setblocking(False)
        try:
            s.send(RNG.randbytes(300000))
        except BlockingIOError:
            pass
    reset(s)


def echo_reset(srv):
    witness = connect(srv.port)
    for i in range(60):
        echo_reset_one(srv.port, i)
        if i % 10 == 9:
            echo_roundtrip(witness, b"still here %d" % i)
    echo_roundtrip(witness, RNG.randbytes(100000))
    witness.close()
    s = connect(srv.port)
    echo_roundtrip(s, b"a new connection after the resets")
    s.close()


def finish_under_load(loads, bg):
    """Waits for the wisp-load runs and the background clients; fails with
    every load's complaint."""
    errs = []
    for ld in loads:
        try:
            ld.finish()
        except Fail as e:
            errs.append(str(e))
    bg.finish()
    check(not errs, "\n".join(errs))


def echo_under_load(srv):
    bg = Background()
    cnt = [0]

    def half_closed():
        echo_exchange(srv.port, [RNG.randbytes(RNG.choice([10, 5000, 70000]))], half_close=True,
                      timeout=QUICK)

    def resets():
        cnt[0] += 1
        echo_reset_one(srv.port, cnt[0])
        time.sleep(0.01)

    def short_lived():
        s = connect(srv.port)
        echo_roundtrip(s, b"x" * RNG.randint(1, 9000))
        s.close()

    loads = [Load(srv.port, srv.backend, "--proto", "echo", "--conns", "16", "--seconds", "2",
                  "--size", "1000"),
             Load(srv.port, srv.backend, "--proto", "echo", "--conns", "4", "--seconds", "2",
                  "--size", "100", "--pipeline", "8")]
    bg.add("half-closed", half_closed)
    bg.add("reset", resets)
    bg.add("short-lived", short_lived)
    finish_under_load(loads, bg)


def echo_shutdown_open(srv):
    """SIGTERM with connections open: idle, and one the server is blocked
    sending to (we do not read)."""
    idle = connect(srv.port)
    echo_roundtrip(idle, b"ping")
    busy = connect(srv.port)
    busy.setblocking(False)
    try:
        busy.send(RNG.randbytes(4 << 20))
    except BlockingIOError:
        pass
    time.sleep(0.2)
    try:
        srv.stop()
    finally:
        close_all()


# ---- HTTP cases ----

HELLO = b"Hello, World!"


def http_get_root(srv):
    c = Conn(srv.port)
    r = c.expect(get(), 200, HELLO, hdrs={"content-length": "13"})
    check(r.h("connection") is None or r.h("connection").lower() != "close",
          "GET / HTTP/1.1: expected a keep-alive response, got %r" % r)
    # Absolute form, a query, and empty lines before the request line.
    c.expect(get(b"http://x/?a=1"), 200, HELLO)
    c.expect(b"\r\n\r\n" + get(b"/?q=/../../"), 200, HELLO)
    c.close()


def http_head_root(srv):
    c = Conn(srv.port)
    c.expect(get(method=b"HEAD"), 200, b"", head=True, hdrs={"content-length": "13"})
    # No body came: the next bytes are the next response.
    c.expect(get(), 200, HELLO)
    c.send(get(method=b"HEAD"))
    c.response(head=True)
    extra = b""
    c.s.settimeout(0.3)
    try:
        extra = c.s.recv(100)
    except socket.timeout:
        pass
    check(extra == b"", "HEAD /: expected no body, got %s after the header" % short(extra))
    c.close()


def http_keep_alive(srv):
    c = Conn(srv.port)
    for i in range(10):
        if i % 3 == 2:
            c.expect(get(b"/f%d.txt" % (i % 10)), 200, FILES["f%d.txt" % (i % 10)])
        else:
            c.expect(get(), 200, HELLO)
        time.sleep(0.01)
    c.close()


def http_pipeline(srv):
    reqs, expect = [], []
    for i in range(100):
        k = RNG.randrange(10)
        kind = RNG.choice(["root", "head-root", "file", "head-file", "missing", "head-missing",
                           "post"])
        if i == 50:
            kind = "big"
        if kind == "root":
            reqs.append(get())
            expect.append((200, HELLO, False))
        elif kind == "head-root":
            reqs.append(get(method=b"HEAD"))
            expect.append((200, None, True))
        elif kind == "file":
            reqs.append(get(b"/f%d.txt" % k))
            expect.append((200, FILES["f%d.txt" % k], False))
        elif kind == "head-file":
            reqs.append(get(b"/f%d.txt" % k, method=b"HEAD"))
            expect.append((200, len(FILES["f%d.txt" % k]), True))
        elif kind == "missing":
            reqs.append(get(b"/missing-%d" % i))
            expect.append((404, None, False))
        elif kind == "head-missing":
            reqs.append(get(b"/missing-%d" % i, method=b"HEAD"))
            expect.append((404, None, True))
        elif kind == "post":
            body = b"b" * k
            reqs.append(get(b"/", method=b"POST", extra=b"Content-Length: %d\r\n" % k) + body)
            expect.append((405, None, False))
        else:
            reqs.append(get(b"/big.bin"))
            expect.append((200, FILES["big.bin"], False))
    c = Conn(srv.port)
    c.send(b"".join(reqs))
    for i, (req, (status, body, head)) in enumerate(zip(reqs, expect)):
        r = c.response(head=head, what="response %d of 100" % i)
        ok = r.status == status
        if isinstance(body, bytes):
            ok = ok and r.body == body
        elif isinstance(body, int):
            ok = ok and r.h("content-length") == str(body)
        check(ok, "100 pipelined requests: request %d was %s: expected %d %s, got %r" % (
            i, short(req), status, short(body, 60) if isinstance(body, bytes)
            else "Content-Length %s" % body if body is not None else "", r))
    c.expect(get(), 200, HELLO)
    c.close()
    # Over the 16 KiB input buffer: 600 small requests at once.
    c = Conn(srv.port)
    c.send(get() * 600)
    for i in range(600):
        c.expect(None, 200, HELLO)
    c.close()


def http_10(srv):
    c = Conn(srv.port)
    c.expect(b"GET / HTTP/1.0\r\n\r\n", 200, HELLO, conn="close")
    c.expect_closed()
    # A big file with HTTP/1.0: all of it, then the close.
    c = Conn(srv.port)
    c.expect(b"GET /big.bin HTTP/1.0\r\n\r\n", 200, FILES["big.bin"], conn="close")
    c.expect_closed()
    c = Conn(srv.port)
    c.expect(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 200, HELLO, conn="keep-alive")
    c.expect(b"GET /f1.txt HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 200, FILES["f1.txt"],
             conn="keep-alive")
    c.expect(b"HEAD / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n", 200, head=True,
             conn="keep-alive")
    c.expect(b"GET / HTTP/1.0\r\n\r\n", 200, HELLO, conn="close")
    c.expect_closed()


def http_connection_close(srv):
    c = Conn(srv.port)
    c.expect(get(), 200, HELLO)
    c.expect(get(extra=b"Connection: close\r\n"), 200, HELLO, conn="close")
    c.expect_closed()
    # Requests pipelined behind the close are not answered.
    c = Conn(srv.port)
    c.send(get(b"/f2.txt") + get(extra=b"Connection: keep-alive, close\r\n") + get() + get())
    c.expect(None, 200, FILES["f2.txt"])
    c.expect(None, 200, HELLO, conn="close")
    c.expect_closed()


def http_post_length(srv):
    c = Conn(srv.port)
    r = c.expect(get(method=b"POST", extra=b"Content-Length: 11\r\n") + b"hello world" + get(),
                 405)
    check(r.h("allow") == "GET, HEAD", "POST: expected 'Allow: GET, HEAD' in the 405, got %r" % r)
    c.expect(None, 200, HELLO)
    # A body over the input buffer, sent in pieces, then a GET.
    body = RNG.randbytes(200000)
    c.send(get(b"/f3.txt", method=b"PUT", extra=b"Content-Length: %d\r\n" % len(body)) +
           body[:1000])
    c.expect(None, 405)
    for i in range(1000, len(body), 50000):
        c.s.sendall(body[i:i + 50000])
    c.expect(get(), 200, HELLO)
    # A GET with a body (skipped as well), and Content-Length: 0.
    c.expect(get(extra=b"Content-Length: 4\r\n") + b"GET " + get(), 200, HELLO)
    c.expect(None, 200, HELLO)
    c.expect(get(method=b"DELETE", extra=b"Content-Length: 0\r\n") + get(b"/f4.txt"), 405)
    c.expect(None, 200, FILES["f4.txt"])
    # The same body again, trickled a few bytes at a time.
    req = get(method=b"POST", extra=b"Content-Length: 10\r\n") + b"0123456789" + get()
    c.sent = req
    for i in range(0, len(req), 7):
        c.s.sendall(req[i:i + 7])
        time.sleep(0.002)
    c.expect(None, 405)
    c.expect(None, 200, HELLO)
    c.close()


CHUNKED = (b"5;ext=1\r\nhello\r\n"
           b"6 ; name=\"quoted;value\"\r\n world\r\n"
           b"A\r\n0123456789\r\n"
           b"1a;a;b=c\r\n" + b"z" * 26 + b"\r\n"
           b"0\r\n"
           b"Trailer-One: 1\r\nTrailer-Two: two\r\n\r\n")


def http_post_chunked(srv):
    c = Conn(srv.port)
    c.expect(get(method=b"POST", extra=b"Transfer-Encoding: chunked\r\n") + CHUNKED + get(),
             405)
    c.expect(None, 200, HELLO)
    # No trailers, bare LF line ends, and a lower-case coding name.
    c.expect(get(method=b"POST", extra=b"Transfer-Encoding: Chunked\r\n") +
             b"3\nabc\n0\n\n" + get(), 405)
    c.expect(None, 200, HELLO)
    # Trickled a few bytes at a time, with big chunks in between.
    big = b"%x\r\n%s\r\n" % (70000, b"q" * 70000)
    req = (get(method=b"POST", extra=b"Transfer-Encoding: chunked\r\n") + CHUNKED[:-len(
        b"0\r\nTrailer-One: 1\r\nTrailer-Two: two\r\n\r\n")] + big +
        b"0\r\nTrailer-One: 1\r\nTrailer-Two: two\r\n\r\n" + get(b"/f5.txt"))
    c.sent = req
    head_end = req.index(b"\r\n\r\n") + 4
    c.s.sendall(req[:head_end])
    c.expect(None, 405)
    i = head_end
    while i < len(req):
        n = 3 if RNG.random() < 0.5 else 20000
        c.s.sendall(req[i:i + n])
        i += n
        if n == 3:
            time.sleep(0.001)
    c.expect(None, 200, FILES["f5.txt"])
    # A malformed chunk size: 400 and closed.
    c.expect(get(method=b"POST", extra=b"Transfer-Encoding: chunked\r\n") + b"zz\r\nab\r\n", 405)
    c.expect(None, 400, conn="close")
    c.expect_closed()


MALFORMED = [
    (b"hello world\r\n\r\n", 400),
    (b"\x00\x01\x02\x03 garbage\r\n\r\n", 400),
    (b"GET /\r\nHost: x\r\n\r\n", 400),                             # no version
    (b"GET / \r\nHost: x\r\n\r\n", 400),
    (b"GET\r\n\r\n", 400),
    (b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400),
    (b"GET / http/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET / HTTP/1\r\nHost: x\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),                   # space before the colon
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-A : b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400),     # NUL in a value
    (b"GET / HTTP/1.1\r\nHost: x\r\nX\x00A: ab\r\n\r\n", 400),      # NUL in a name
    (b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n", 400),                # NUL in the target
    (b"GET /%00 HTTP/1.1\r\nHost: x\r\n\r\n", 400),                 # an encoded NUL
    (b"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET x HTTP/1.1\r\nHost: x\r\n\r\n", 400),                    # not an origin-form path
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", 400),       # a bare CR
    (b"GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400),         # obs-fold
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
     b"0\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400),
    (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n\r\n", 400),                               # HTTP/1.1 without Host
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    (b"GET / HTTP/3.1\r\nHost: x\r\n\r\n", 505),
    (b"GET / HTTP/0.9\r\nHost: x\r\n\r\n", 505),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
    (b"\r\n" * 40 + b"GET / HTTP/1.1\r\n\r\n", 400),                # too many empty lines
]


def http_malformed_one(port, req, status, after_good=False):
    c = Conn(port)
    if after_good:  # a good request in the same send first
        c.send(get() + req)
        c.expect(None, 200, HELLO)
    else:
        c.send(req)
    c.expect(None, status, conn="close")
    c.expect_closed()
    c.close()


def http_malformed(srv):
    for i, (req, status) in enumerate(MALFORMED):
        http_malformed_one(srv.port, req, status, after_good=(i % 3 == 1))
    # Bare LF line ends are allowed.
    c = Conn(srv.port)
    c.expect(b"GET / HTTP/1.1\nHost: x\nX-A: b\n\n", 200, HELLO)
    c.expect(b"GET / HTTP/1.1\r\nHost: x\nX-A: b\r\n\n", 200, HELLO)
    # Two equal Content-Lengths are one.
    c.expect(get(b"/", method=b"POST", extra=b"Content-Length: 2\r\nContent-Length: 2\r\n") +
             b"ab" + get(), 405)
    c.expect(None, 200, HELLO)
    c.close()


def http_too_large(srv):
    # A header block over 8 KiB: 431 (or 400) and closed; with and without
    # its end, in one send and in pieces.
    for big, pieces in ((b"X-Big: " + b"a" * 9000 + b"\r\n\r\n", 1),
                        (b"X-Big: " + b"a" * 9000, 1),
                        (b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 80) for i in range(100)) +
                         b"\r\n", 5),
                        (b"".join(b"X-H%d: v\r\n" % i for i in range(101)) + b"\r\n", 1)):
        req = b"GET / HTTP/1.1\r\nHost: x\r\n" + big
        c = Conn(srv.port)
        c.sent = req
        step = (len(req) + pieces - 1) // pieces
        for i in range(0, len(req), step):
            c.s.sendall(req[i:i + step])
            time.sleep(0.005)
        r = c.response(what="431")
        check(r.status in (431, 400), "sent %s: expected 431 (or 400), got %r" % (short(req), r))
        c.expect_closed()
        c.close()
    # A long target: 414, and the connection stays.
    c = Conn(srv.port)
    c.expect(get(b"/" + b"a" * 5000), 414)
    c.expect(get(), 200, HELLO)
    c.close()


def http_unknown_method(srv):
    c = Conn(srv.port)
    c.expect(get(method=b"OPTIONS"), 405)
    c.expect(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 405)
    c.expect(get(method=b"get"), 405)
    c.expect(get(method=b"BREW"), 405)
    c.expect(get(), 200, HELLO)
    c.close()


# The files below --root.
FILES = {}


def make_root(d):
    FILES.clear()
    FILES["hello.txt"] = b"hello from a file\n"
    FILES["big.bin"] = RNG.randbytes(1 << 20)
    FILES["empty"] = b""
    FILES["odd.bin"] = RNG.randbytes(65536 + 4095)   # not a multiple of the buffer
    FILES["index.html"] = b"<html>hi</html>\n"
    for k in range(10):
        FILES["f%d.txt" % k] = (b"file %d\n" % k) * (k + 1)
    for name, data in FILES.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    os.mkdir(os.path.join(d, "sub"))
    with open(os.path.join(d, "sub", "inner.txt"), "wb") as f:
        f.write(b"inner\n")
    with open(os.path.join(d, "sub", "a b.txt"), "wb") as f:
        f.write(b"with a space\n")
    os.symlink("/etc/passwd", os.path.join(d, "passwd"))
    os.symlink("/etc", os.path.join(d, "etc"))
    os.symlink("hello.txt", os.path.join(d, "link.txt"))
    os.symlink("sub", os.path.join(d, "linkdir"))
    os.symlink("../hello.txt", os.path.join(d, "sub", "up.txt"))
    os.mkfifo(os.path.join(d, "fifo"))
    # Outside the root, beside it: must never be served.
    with open(os.path.join(os.path.dirname(d), "secret.txt"), "wb") as f:
        f.write(b"SECRET outside the root\n")


def http_static(srv):
    c = Conn(srv.port)
    for name in ("hello.txt", "big.bin", "empty", "odd.bin", "index.html", "f9.txt"):
        c.expect(get(b"/" + name.encode()), 200, FILES[name],
                 hdrs={"content-length": str(len(FILES[name]))})
        c.expect(get(b"/" + name.encode(), method=b"HEAD"), 200, b"", head=True,
                 hdrs={"content-length": str(len(FILES[name]))})
    c.expect(get(b"/hello.txt"), 200, hdrs={"content-type": "text/plain"})
    c.expect(get(b"/index.html"), 200, hdrs={"content-type": "text/html"})
    c.expect(get(b"/sub/inner.txt"), 200, b"inner\n")
    c.expect(get(b"/sub/a%20b.txt"), 200, b"with a space\n")
    c.expect(get(b"//sub/./inner.txt?x=../../etc/passwd#frag"), 200, b"inner\n")
    c.expect(get(b"/%68ello.txt"), 200, FILES["hello.txt"])
    c.expect(get(b"http://x/sub/inner.txt"), 200, b"inner\n")
    c.close()
    # Two big files at once on a connection, read back while others run.
    c = Conn(srv.port)
    c.send(get(b"/big.bin") + get(b"/odd.bin") + get(b"/big.bin", method=b"HEAD") +
           get(b"/big.bin"))
    c.expect(None, 200, FILES["big.bin"])
    c.expect(None, 200, FILES["odd.bin"])
    c.expect(None, 200, b"", head=True, hdrs={"content-length": str(1 << 20)})
    c.expect(None, 200, FILES["big.bin"])
    c.close()


ESCAPES = [b"/../x", b"/../secret.txt", b"/%2e%2e/secret.txt", b"/%2E%2E/secret.txt",
           b"/sub/%2E%2E/%2e%2e/etc/passwd", b"/sub/../../secret.txt", b"/%2fetc/passwd",
           b"/%2Fetc%2Fpasswd", b"/passwd", b"/etc/passwd", b"/link.txt", b"/linkdir/inner.txt",
           b"/sub/up.txt", b"/..", b"/sub/..", b"/./../secret.txt", b"/sub%2f..%2f..%2fsecret.txt",
           b"/..%2fsecret.txt", b"/proc/self/environ", b"http://x/../secret.txt"]


def http_static_escapes(srv):
    with open("/etc/passwd", "rb") as f:
        passwd = f.read()
    c = Conn(srv.port)
    for path in ESCAPES:
        c.send(get(path))
        r = c.response(what="403 or 404")
        check(r.status in (403, 404) and b"SECRET" not in r.body and
              (not passwd or passwd[:20] not in r.body),
              "sent %s: expected 403 or 404 and never the content, got %r" % (
                  short(get(path)), r))
        # HEAD must not reveal a size either.
        c.send(get(path, method=b"HEAD"))
        r = c.response(head=True, what="403 or 404")
        check(r.status in (403, 404), "sent %s: expected 403 or 404, got %r" % (
            short(get(path, method=b"HEAD")), r))
    c.expect(get(), 200, HELLO)
    c.close()


def http_static_other(srv):
    c = Conn(srv.port)
    c.expect(get(b"/sub"), 403)
    c.expect(get(b"/sub/"), 403)
    c.expect(get(b"/missing"), 404)
    c.expect(get(b"/sub/missing/deeper"), 404)
    c.expect(get(b"/hello.txt/x"), 404)
    # The FIFO: 403 at once, the server not blocked (the same connection and
    # another one are answered).
    t0 = time.monotonic()
    c.expect(get(b"/fifo"), 403)
    c.expect(get(b"/fifo", method=b"HEAD"), 403, head=True)
    c.expect(get(b"/f1.txt"), 200, FILES["f1.txt"])
    d = Conn(srv.port)
    d.expect(get(b"/fifo"), 403)
    d.expect(get(), 200, HELLO)
    check(time.monotonic() - t0 < 2 * SLOW, "GET /fifo: answers took %.1fs" % (
        time.monotonic() - t0))
    c.close()
    d.close()


def http_resets(srv):
    for i in range(30):
        c = Conn(srv.port)
        kind = i % 5
        if kind == 0:       # mid-request line
            c.s.sendall(b"GET /big.b")
        elif kind == 1:     # mid-header
            c.s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: b")
        elif kind == 2:     # mid-body
            c.s.sendall(get(method=b"POST", extra=b"Content-Length: 100000\r\n") + b"x" * 5000)
        elif kind == 3:     # mid-response of a big file, some of it read
            c.s.sendall(get(b"/big.bin"))
            c.s.recv(1000)
        else:               # several big files pipelined, nothing read
            c.s.sendall(get(b"/big.bin") * 4 + get(b"/odd.bin"))
            time.sleep(0.005)
        c.reset()
    c = Conn(srv.port)
    c.expect(get(b"/big.bin"), 200, FILES["big.bin"])
    c.close()


def http_half_closed(port):
    c = Conn(port)
    c.send(get(b"/f7.txt") + get())
    c.s.shutdown(socket.SHUT_WR)
    c.expect(None, 200, FILES["f7.txt"])
    c.expect(None, 200, HELLO)
    c.expect_closed(QUICK)
    c.close()


def http_half_close(srv):
    http_half_closed(srv.port)
    # Half-closed in the middle of a request: no response, a close.
    c = Conn(srv.port)
    c.send(b"GET / HTTP/1.1\r\nHo")
    c.s.shutdown(socket.SHUT_WR)
    c.expect_closed(QUICK)
    c.close()


def http_under_load(srv):
    bg = Background()
    cnt = [0]

    def malformed():
        cnt[0] += 1
        req, status = MALFORMED[cnt[0] % len(MALFORMED)]
        http_malformed_one(srv.port, req, status, after_good=cnt[0] % 2 == 0)

    def resets():
        c = Conn(srv.port)
        if RNG.random() < 0.5:
            c.s.sendall(get(b"/big.bin"))
            c.s.recv(100)
        else:
            c.s.sendall(b"GET / HTTP/1.1\r\nHost")
        c.reset()
        time.sleep(0.01)

    def half_closed():
        http_half_closed(srv.port)

    def files():
        c = Conn(srv.port)
        c.expect(get(b"/odd.bin"), 200, FILES["odd.bin"])
        c.expect(get(b"/missing"), 404)
        c.expect(get(b"/../secret.txt"), 403)
        c.close()

    loads = [Load(srv.port, srv.backend, "--conns", "16", "--seconds", "2"),
             Load(srv.port, srv.backend, "--conns", "4", "--seconds", "2", "--pipeline", "8",
                  "--path", "/f3.txt")]
    for name, fn in (("malformed", malformed), ("reset", resets), ("half-closed", half_closed),
                     ("files", files)):
        bg.add(name, fn)
    finish_under_load(loads, bg)


def http_shutdown_open(srv):
    """SIGTERM with connections open: idle, mid-request, mid-body and mid-
    response (a big file not read)."""
    a = Conn(srv.port)
    a.expect(get(), 200, HELLO)
    b = Conn(srv.port)
    b.s.sendall(b"GET / HTTP/1.1\r\nHo")
    c = Conn(srv.port)
    c.s.sendall(get(method=b"POST", extra=b"Content-Length: 1000000\r\n") + b"abc")
    d = Conn(srv.port)
    d.s.sendall(get(b"/big.bin") * 8)
    time.sleep(0.2)
    try:
        srv.stop()
    finally:
        close_all()


# ---- idle timeout (--idle-timeout-ms 500) ----

IDLE = 0.5
IDLE_MAX = 1.5 * SLOW   # "closed after ~0.5 s" on a noisy machine


def http_idle(srv):
    out = {}

    def idle():
        c = Conn(srv.port)
        t0 = time.monotonic()
        closed, extra = wait_closed(c.s, 5 * IDLE_MAX)
        out["idle"] = (closed, extra, time.monotonic() - t0)

    def trickle():
        c = Conn(srv.port)
        t0 = time.monotonic()
        req = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
        i, closed, got = 0, False, b""
        while time.monotonic() - t0 < 5 * IDLE_MAX and i < len(req):
            try:
                c.s.sendall(req[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            i += 1
            rd, _, _ = select.select([c.s], [], [], 0.1)
            if rd:
                closed, got = wait_closed(c.s, T)
                break
        out["trickle"] = (closed, got, time.monotonic() - t0, i)

    def busy():
        c = Conn(srv.port)
        t0 = time.monotonic()
        n = 0
        try:
            while True:
                c.expect(get(), 200, HELLO)
                t1 = time.monotonic()   # the last response
                n += 1
                if t1 - t0 >= 3 * IDLE:
                    break
                time.sleep(0.1)
        except Fail as e:
            out["busy"] = "after %d requests in %.2fs: %s" % (n, time.monotonic() - t0, e)
            return
        closed, extra = wait_closed(c.s, 5 * IDLE_MAX)
        out["busy"] = (n, closed, extra, time.monotonic() - t1)

    def slow_body():
        c = Conn(srv.port)
        t0 = time.monotonic()
        try:
            c.expect(get(method=b"POST", extra=b"Content-Length: 16\r\n"), 405)
            for k in range(16):
                time.sleep(0.1)
                c.s.sendall(b"z")
            c.expect(get(), 200, HELLO)
        except (Fail, OSError) as e:
            out["slow_body"] = "after %.2fs: %s" % (time.monotonic() - t0, e)
            return
        out["slow_body"] = None

    threads = [threading.Thread(target=f) for f in (idle, trickle, busy, slow_body)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10 * IDLE_MAX + 5 * T)
    errs = []
    closed, extra, dt = out["idle"]
    if not closed or extra or not (IDLE * 0.9 <= dt <= IDLE_MAX):
        errs.append("an idle connection (nothing sent): expected closed after ~%gs, got %s "
                    "after %.2fs%s" % (IDLE, "closed" if closed else "still open", dt,
                                       ", bytes " + short(extra) if extra else ""))
    closed, got, dt, n = out["trickle"]
    if not closed or got or not (IDLE * 0.9 <= dt <= IDLE_MAX):
        errs.append("a header trickled one byte per 100 ms: expected closed after ~%gs, got %s "
                    "after %.2fs and %d bytes%s" % (IDLE, "closed" if closed else "still open", dt,
                                                    n, ", bytes " + short(got) if got else ""))
    b = out["busy"]
    if isinstance(b, str):
        errs.append("a busy connection (a GET every 100 ms for %gs) was not kept: %s" % (
            3 * IDLE, b))
    else:
        n, closed, extra, dt = b
        if not closed or extra or not (IDLE * 0.9 <= dt <= IDLE_MAX):
            errs.append("a connection idle after %d requests: expected closed ~%gs after the "
                        "last response, got %s after %.2fs" % (
                            n, IDLE, "closed" if closed else "still open", dt))
    if out["slow_body"]:
        errs.append("a POST body trickled one byte per 100 ms (progress): expected 405, then "
                    "the connection kept, a GET answered; failed " + out["slow_body"])
    check(not errs, "\n".join(errs))


def http_idle_send_blocked(srv):
    """A client that stops reading a big response is closed after the idle
    timeout (its send makes no progress)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)   # before the window is set
    s.settimeout(T)
    s.connect((HOST, srv.port))
    track(s)
    s.sendall(get(b"/big.bin") * 4)
    c = Conn.__new__(Conn)
    c.s, c.buf, c.sent = s, bytearray(), get(b"/big.bin") * 4
    time.sleep(IDLE_MAX + 2 * IDLE)
    # Now read: the data in flight, then the close (EOF or reset), well
    # before the 4 MiB could have been sent.
    closed, got = wait_closed(c.s, 2 * T)
    check(closed and len(got) < 4 << 20,
          "4 GETs of a 1 MiB file, the client not reading for %.1fs: expected the connection "
          "closed by the idle timeout, got %s after %d bytes" % (
              IDLE_MAX + 2 * IDLE, "a close" if closed else "still open", len(got)))
    c.close()


# ---- --max-conns 8 ----

def refused_check(port, what):
    """A connection over the limit: a 503 or a close, never served.  Returns
    what came (maybe nothing)."""
    s = connect(port)
    closed, got = wait_closed(s, T)
    s.close()
    check(closed, "%s: expected a 503 or a close, the connection stayed open %gs" % (what, T))
    check(not got or got.startswith(b"HTTP/1.1 503 "),
          "%s: expected a 503 or a close, got %s" % (what, short(got, 400)))
    return got


def admitted(port, timeout):
    """A new connection served within timeout (retrying while refused)."""
    end = time.monotonic() + timeout
    last = ""
    while time.monotonic() < end:
        c = Conn(port)
        try:
            c.expect(get(), 200, HELLO)
            return c
        except Fail as e:
            last = str(e)
            c.close()
            time.sleep(0.05)
    raise Fail("expected a new connection admitted within %gs, last try: %s" % (timeout, last))


def http_max_conns(srv):
    held = []
    for i in range(8):
        c = Conn(srv.port)
        c.expect(get(), 200, HELLO)
        held.append(c)
    refused_check(srv.port, "a 9th connection with 8 held (--max-conns 8)")
    for i in range(10):
        s = connect(srv.port)
        s.close()
    for c in held:
        c.expect(get(b"/"), 200, HELLO)
    held[0].close()
    held[1].reset()
    held[0:2] = [admitted(srv.port, 5 * SLOW), admitted(srv.port, 5 * SLOW)]
    refused_check(srv.port, "a 9th connection after 2 of 8 were replaced")
    for c in held:
        c.expect(get(), 200, HELLO)
    # Connections that end with an error, a reset or Connection: close give
    # their slot back.
    for c in held[:4]:
        c.close()
    del held[:4]
    for i in range(12):
        c = admitted(srv.port, 5 * SLOW)
        if i % 3 == 0:
            c.expect(b"BAD\r\n\r\n", 400)
        elif i % 3 == 1:
            c.expect(get(extra=b"Connection: close\r\n"), 200, HELLO)
        else:
            c.reset()
            continue
        c.expect_closed()
        c.close()
    while len(held) < 8:
        held.append(admitted(srv.port, 5 * SLOW))
    refused_check(srv.port, "a 9th connection after the churn")
    for c in held:
        c.close()


def http_503_framing(srv):
    """The 503 sent over the limit is a well-formed response: its
    Content-Length is its body's length."""
    held = [admitted(srv.port, 5 * SLOW) for _ in range(8)]
    what = "a 9th connection with 8 held (--max-conns 8)"
    got = refused_check(srv.port, what)
    if not got:
        raise Skip("the 9th connection was closed without a 503")
    m = re.match(rb"HTTP/1\.1 503 [^\r\n]*\r\n(.*?)\r\n\r\n", got, re.S)
    check(m is not None, "%s: expected a 503 response, got %s" % (what, short(got, 400)))
    cl = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", m.group(1))
    body = got[m.end():]
    check(cl is not None and int(cl.group(1)) == len(body),
          "%s: expected a 503 whose Content-Length is its body's length, got Content-Length "
          "%s and a body of %d bytes before the close: %s" % (
              what, cl.group(1).decode() if cl else "missing", len(body), short(got, 400)))
    for c in held:
        c.close()


# ---- CLI ----

def cli_help():
    for prog in (ECHO, HTTPD, LOAD):
        p = run([prog, "--help"])
        check(p.returncode == 0 and b"usage" in p.stdout.lower(),
              "%s --help: expected status 0 and 'usage' on stdout, got status %d, stdout %s" % (
                  prog, p.returncode, short(p.stdout)))


def expect_status(args, status, want_err=b""):
    p = run(args)
    check(p.returncode == status and p.stderr.strip() and want_err in p.stderr,
          "%s: expected status %d and a message%s on stderr, got status %d, stderr %s" % (
              " ".join(os.path.basename(a) for a in args), status,
              " with %s" % short(want_err) if want_err else "", p.returncode, short(p.stderr, 600)))
    for bad in (b"Sanitizer", b"runtime error"):
        check(bad not in p.stderr, "%s: a sanitizer report on stderr: %s" % (
            " ".join(args), short(p.stderr, 2000)))


def cli_bad_args():
    for prog in (ECHO, HTTPD, LOAD):
        port = ["--port", "1234"] if prog == LOAD else []
        expect_status([prog, "--bogus"], 2, b"--bogus")
        expect_status([prog] + port + ["extra"], 2, b"extra")
        expect_status([prog, "--port", "70000"], 2)
        expect_status([prog, "--port", "-1"], 2)
        expect_status([prog, "--port", "12x"], 2)
        expect_status([prog] + port + ["--workers", "0"], 2)
        expect_status([prog] + port + ["--workers"], 2)
        expect_status([prog, "--port", "0", "--workers", "1", "--backend", "kqueue"]
                      if prog != LOAD else [prog, "--port", "1234", "--backend", "kqueue"], 2)
    expect_status([HTTPD, "--port", "0", "--idle-timeout-ms", "x"], 2)
    expect_status([HTTPD, "--port", "0", "--root", "/nonexistent/dir"], 2)
    expect_status([LOAD], 2, b"--port")
    expect_status([LOAD, "--port", "1234", "--proto", "ftp"], 2)
    expect_status([LOAD, "--port", "1234", "--seconds", "0"], 2)
    expect_status([LOAD, "--port", "1234", "--path", "noslash"], 2)


def cli_port_in_use():
    ls = socket.socket()
    ls.bind((HOST, 0))
    ls.listen(1)
    port = ls.getsockname()[1]
    try:
        for prog in (ECHO, HTTPD):
            expect_status([prog, "--port", str(port), "--workers", "2", "--backend", "epoll"], 1,
                          str(port).encode())
    finally:
        ls.close()


def cli_load_refuses():
    for host in ("10.0.0.1", "8.8.8.8", "192.168.1.1", "::ffff:8.8.8.8", "2001:db8::1",
                 "example.com"):
        expect_status([LOAD, "--host", host, "--port", "80", "--seconds", "1"], 2)


def cli_load_nothing_listening():
    s = socket.socket()
    s.bind((HOST, 0))   # bound, not listening: connections are refused
    port = s.getsockname()[1]
    try:
        expect_status([LOAD, "--port", str(port), "--conns", "2", "--seconds", "1"], 1)
        expect_status([LOAD, "--port", str(port), "--proto", "echo", "--conns", "2",
                       "--seconds", "1"], 1)
    finally:
        s.close()


# ---- the runs ----

def with_server(group, prog, backend, extra, cases, final):
    """Starts a server, runs cases [(name, fn)], its descriptor check, then
    final (a shutdown case).  False when the backend is unavailable."""
    try:
        srv = Server(prog, backend, extra)
    except BackendUnavailable as e:
        print("skip %s: %s cannot set up io_uring here, the backend is skipped (%s)" % (
            group, os.path.basename(prog), e), flush=True)
        RESULTS["skip"] += 1
        return False
    except Fail as e:
        err = e

        def start():
            raise err
        run_case(group, "start", start)
        return True
    try:
        for name, fn in cases:
            run_case(group, name, fn, srv, server=srv)
        close_all()
        run_case(group, "descriptors back to %d" % len(srv.baseline), check_fds, srv, server=srv)
        run_case(group, final[0], final[1], srv)
    finally:
        close_all()
        srv.kill()
    return True


def stop_case(srv):
    srv.stop()


def run_backend(backend, root):
    g = "[echo %s]" % backend
    if not with_server(g, ECHO, backend, [], [
            ("100 concurrent connections, sizes up to 1 MiB", echo_concurrent),
            ("half-close: all bytes back, then EOF", echo_half_close),
            ("60 resets mid-stream, others served", echo_reset),
            ("bad clients while wisp-load runs", echo_under_load),
    ], ("SIGTERM with connections open: status 0, empty stderr", echo_shutdown_open)):
        return
    g = "[httpd %s]" % backend
    with_server(g, HTTPD, backend, ["--root", root], [
        ("GET /", http_get_root),
        ("HEAD /", http_head_root),
        ("keep-alive", http_keep_alive),
        ("100 pipelined requests in order", http_pipeline),
        ("HTTP/1.0 close and keep-alive", http_10),
        ("Connection: close", http_connection_close),
        ("POST with Content-Length skipped, 405", http_post_length),
        ("POST chunked skipped, 405", http_post_chunked),
        ("malformed requests: 400/505/501 and closed", http_malformed),
        ("header over 8 KiB: 431 and closed; long URI 414", http_too_large),
        ("other methods: 405", http_unknown_method),
        ("static files byte-exact, HEAD lengths", http_static),
        ("escapes and symlinks: 403/404", http_static_escapes),
        ("directory 403, missing 404, FIFO 403", http_static_other),
        ("half-closed clients", http_half_close),
        ("resets mid-request and mid-response", http_resets),
        ("bad clients while wisp-load runs", http_under_load),
    ], ("SIGTERM with connections open: status 0, empty stderr", http_shutdown_open))
    g = "[httpd %s --idle-timeout-ms 500]" % backend
    with_server(g, HTTPD, backend, ["--root", root, "--idle-timeout-ms", "500"], [
        ("idle and trickling clients closed, busy ones kept", http_idle),
        ("a client not reading is closed", http_idle_send_blocked),
    ], ("SIGTERM: status 0, empty stderr", stop_case))
    g = "[httpd %s --max-conns 8]" % backend
    with_server(g, HTTPD, backend, ["--max-conns", "8"], [
        ("8 held, 9th refused, slots given back", http_max_conns),
        ("the 503's Content-Length matches its body", http_503_framing),
    ], ("SIGTERM: status 0, empty stderr", stop_case))


def main():
    t0 = time.monotonic()
    print("test_servers: seed %d (WISP_TEST_SEED=%d to repeat)%s" % (
        SEED, SEED, ", %s build: timeouts x%d" % (SAN, SLOW) if SAN else ""), flush=True)
    for name, fn in (("--help", cli_help), ("bad arguments: status 2", cli_bad_args),
                     ("port in use: status 1", cli_port_in_use),
                     ("wisp-load refuses non-loopback hosts: status 2", cli_load_refuses),
                     ("wisp-load with nothing listening: status 1", cli_load_nothing_listening)):
        run_case("[cli]", name, fn)
    with tempfile.TemporaryDirectory(prefix="wisp-test-servers-") as top:
        root = os.path.join(top, "root")
        os.mkdir(root)
        make_root(root)
        for backend in ("io_uring", "epoll"):
            run_backend(backend, root)
    print("test_servers: %d passed, %d failed, %d skipped in %.1fs%s" % (
        RESULTS["ok"], RESULTS["FAIL"], RESULTS["skip"], time.monotonic() - t0,
        "" if not FAILED else "; failed: " + ", ".join(FAILED)), flush=True)
    return 1 if RESULTS["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
