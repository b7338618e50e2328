// Command wisp-echo-go is a TCP echo server: the Go peer of wisp's echo
// server, written the way Go's own echo example (package net) is: an accept
// loop that starts one goroutine per connection; each goroutine reads into a
// buffer and writes back what it read until the peer closes.
//
// Usage: wisp-echo-go [--port P] [--workers N]
//
// Listens on 127.0.0.1:P (P = 0, the default, picks a free port) with
// net.Listen's defaults (SO_REUSEADDR; the backlog is net.core.somaxconn)
// and prints exactly one line to stdout:
//
//	listening 127.0.0.1:PORT backend=go
//
// --workers sets GOMAXPROCS (default: the number of CPUs this process may
// run on, runtime.NumCPU). Each connection gets TCP_NODELAY and a 4096-byte
// buffer. Runs until killed (SIGTERM, SIGINT).
//
// Exit status: 0 after --help, 1 if it cannot listen (port in use),
// 2 on bad arguments.
package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

const usage = "usage: wisp-echo-go [--port P] [--workers N]"

// bufSize is how many bytes a connection reads (and then writes back) per
// read call.
const bufSize = 4096

// maxWorkers bounds --workers (Go caps GOMAXPROCS there too).
const maxWorkers = 1024

func usageError(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "wisp-echo-go: %s\n", fmt.Sprintf(format, args...))
	fmt.Fprintln(os.Stderr, usage)
	os.Exit(2)
}

func help() {
	fmt.Println(usage)
	fmt.Println()
	fmt.Println("TCP echo server, one goroutine per connection.")
	fmt.Println("  --port P      listen on 127.0.0.1:P; 0 (default) picks a free port")
	fmt.Println("  --workers N   GOMAXPROCS (default: number of CPUs)")
	fmt.Println("  --help        print this help and exit")
	fmt.Println("Prints \"listening 127.0.0.1:PORT backend=go\" once listening;")
	fmt.Println("runs until SIGTERM or SIGINT.")
	os.Exit(0)
}

// parseInt parses an integer option value in [min, max].
func parseInt(opt, value string, ok bool, min, max uint64) uint64 {
	if !ok {
		usageError("%s needs a value", opt)
	}
	v, err := strconv.ParseUint(value, 10, 64)
	if err != nil || v < min || v > max {
		usageError("%s: expected an integer in %d..%d, got '%s'", opt, min, max, value)
	}
	return v
}

type options struct {
	port    uint64
	workers int
}

func parseArgs(argv []string) options {
	o := options{workers: runtime.NumCPU()}
	for i := 0; i < len(argv); i++ {
		arg := argv[i]
		if arg == "--help" || arg == "-h" {
			help()
		}
		// Accept both "--opt VALUE" and "--opt=VALUE".
		opt, value, ok := strings.Cut(arg, "=")
		if !ok && i+1 < len(argv) && (opt == "--port" || opt == "--workers") {
			i++
			value, ok = argv[i], true
		}
		switch opt {
		case "--port":
			o.port = parseInt(opt, value, ok, 0, 65535)
		case "--workers":
			o.workers = int(parseInt(opt, value, ok, 1, maxWorkers))
		default:
			usageError("unknown argument '%s'", arg)
		}
	}
	return o
}

// echo serves one connection: echo until EOF or an error, then close.
func echo(c *net.TCPConn) {
	defer c.Close()
	c.SetNoDelay(true) // Go's default for TCP already; set as the others do
	buf := make([]byte, bufSize)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			// Write returns only once all n bytes are written (or on error).
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil { // io.EOF included
			return
		}
	}
}

func main() {
	o := parseArgs(os.Args[1:])
	runtime.GOMAXPROCS(o.workers)

	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.FormatUint(o.port, 10)))
	if err != nil {
		fmt.Fprintf(os.Stderr, "wisp-echo-go: cannot listen: %v\n", err)
		os.Exit(1)
	}
	l := ln.(*net.TCPListener)
	// os.Stdout is unbuffered: the line is out when Printf returns.
	if _, err := fmt.Printf("listening %s backend=go\n", l.Addr()); err != nil {
		os.Exit(1)
	}
	for {
		c, err := l.AcceptTCP()
		if err != nil {
			// Out of descriptors or memory: the server stays up (the open
			// connections give theirs back); the pause keeps EMFILE from
			// spinning. (ECONNABORTED the runtime already retries.)
			fmt.Fprintf(os.Stderr, "wisp-echo-go: accept: %v\n", err)
			if errors.Is(err, net.ErrClosed) {
				os.Exit(1)
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go echo(c)
	}
}
