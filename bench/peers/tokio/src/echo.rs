//! TCP echo server on Tokio's multi-thread runtime: the Tokio peer of wisp's
//! echo server, written the way Tokio's own echo example is (an accept loop
//! that spawns one task per connection; each task reads into a buffer and
//! writes back what it read until the peer closes).
//!
//! Usage: `wisp-echo-tokio [--port P] [--workers N]`
//!
//! Listens on 127.0.0.1:P (P = 0, the default, picks a free port) with
//! SO_REUSEADDR and a backlog of 1024, and prints exactly one line to stdout:
//!
//! ```text
//! listening 127.0.0.1:PORT backend=tokio
//! ```
//!
//! `--workers` is the runtime's `worker_threads` (default: the number of CPUs
//! this process may run on). Each connection gets TCP_NODELAY and a 4096-byte
//! buffer. Runs until killed (SIGTERM, SIGINT).
//!
//! Exit status: 0 after `--help`, 1 if it cannot listen (port in use),
//! 2 on bad arguments.

use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::process;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

const USAGE: &str = "usage: wisp-echo-tokio [--port P] [--workers N]";

/// Bytes read (and then written back) per read call.
const BUF_SIZE: usize = 4096;

/// listen(2) backlog (the kernel caps it at net.core.somaxconn).
const BACKLOG: u32 = 1024;

/// Upper bound on --workers (as Go caps GOMAXPROCS).
const MAX_WORKERS: u64 = 1024;

fn usage_error(msg: &str) -> ! {
    eprintln!("wisp-echo-tokio: {msg}");
    eprintln!("{USAGE}");
    process::exit(2);
}

fn help() -> ! {
    println!("{USAGE}");
    println!();
    println!("TCP echo server on Tokio's multi-thread runtime.");
    println!("  --port P      listen on 127.0.0.1:P; 0 (default) picks a free port");
    println!("  --workers N   runtime worker threads (default: number of CPUs)");
    println!("  --help        print this help and exit");
    println!("Prints \"listening 127.0.0.1:PORT backend=tokio\" once listening;");
    println!("runs until SIGTERM or SIGINT.");
    process::exit(0);
}

/// Parse an integer option value in [min, max].
fn parse_int(opt: &str, value: Option<String>, min: u64, max: u64) -> u64 {
    let value = value.unwrap_or_else(|| usage_error(&format!("{opt} needs a value")));
    match value.parse::<u64>() {
        Ok(v) if v >= min && v <= max => v,
        _ => usage_error(&format!("{opt}: expected an integer in {min}..{max}, got '{value}'")),
    }
}

struct Args {
    port: u16,
    workers: usize,
}

fn parse_args() -> Args {
    let mut argv = std::env::args().skip(1);
    let mut port = 0u64;
    let mut workers = None;
    while let Some(arg) = argv.next() {
        if arg == "--help" || arg == "-h" {
            help();
        }
        // Accept both "--opt VALUE" and "--opt=VALUE".
        let (opt, inline) = match arg.split_once('=') {
            Some((o, v)) => (o.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        match opt.as_str() {
            "--port" => port = parse_int(&opt, inline.or_else(|| argv.next()), 0, 65535),
            "--workers" => {
                workers = Some(parse_int(&opt, inline.or_else(|| argv.next()), 1, MAX_WORKERS))
            }
            _ => usage_error(&format!("unknown argument '{arg}'")),
        }
    }
    let workers = match workers {
        Some(n) => n as usize,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    Args { port: port as u16, workers }
}

/// A listening socket on `addr`: SO_REUSEADDR (as `TcpListener::bind` sets
/// it), backlog [`BACKLOG`].
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// One connection: echo until EOF or an error, then close.
async fn echo(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; BUF_SIZE];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stream.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn serve(port: u16) {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let listener = listen(addr).unwrap_or_else(|e| {
        eprintln!("wisp-echo-tokio: cannot listen on {addr}: {e}");
        process::exit(1);
    });
    let local = listener.local_addr().unwrap_or_else(|e| {
        eprintln!("wisp-echo-tokio: getsockname: {e}");
        process::exit(1);
    });
    {
        let mut out = io::stdout().lock();
        if writeln!(out, "listening {local} backend=tokio").and_then(|_| out.flush()).is_err() {
            process::exit(1);
        }
    }
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(echo(stream));
            }
            // A connection reset before it was accepted: take the next.
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
            // Out of descriptors or memory: the server stays up (the open
            // connections give theirs back); the pause keeps EMFILE from
            // spinning.
            Err(e) => {
                eprintln!("wisp-echo-tokio: accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

fn main() {
    let args = parse_args();
    // What #[tokio::main] expands to, with the worker count set: the accept
    // loop runs in block_on on the main thread, the connections on workers.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers)
        .enable_all()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("wisp-echo-tokio: cannot build runtime: {e}");
            process::exit(1);
        });
    rt.block_on(serve(args.port));
}
