//! The accept loop shared by `serve` and `proxy`: a thread per connection, and a prompt,
//! graceful stop on SIGTERM/SIGINT.
//!
//! As PID 1 in a scratch image the default signal dispositions do not apply (the kernel
//! drops SIGTERM for PID 1 without a handler), so the app installs its own. The listener
//! polls a stop flag instead of blocking in accept(), which keeps shutdown free of
//! wake-up tricks; 20 ms of latency is nothing next to Docker's stop timeout.

use std::io;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const ACCEPT_POLL: Duration = Duration::from_millis(20);
/// In-flight requests get this long to finish after a stop signal; exit stays under ~1 s.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(800);
/// A client that stalls mid-request does not hold a thread (or shutdown) for long.
const CLIENT_IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Set once SIGTERM or SIGINT arrives.
pub fn install_stop_flag() -> io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    Ok(stop)
}

/// Counts a connection as in flight for as long as it lives.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        InFlight(Arc::clone(counter))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serve connections with `handle` until `stop` is set, then stop accepting and give the
/// connections in flight a short time to finish.
pub fn run<H>(listener: TcpListener, stop: &AtomicBool, handle: H) -> io::Result<()>
where
    H: Fn(TcpStream) + Send + Sync + 'static,
{
    listener.set_nonblocking(true)?;
    let handle = Arc::new(handle);
    let in_flight = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => spawn_connection(stream, &handle, &in_flight),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => thread::sleep(ACCEPT_POLL),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                // EMFILE and friends: back off rather than spin or die.
                eprintln!("accept failed: {e}");
                thread::sleep(ACCEPT_POLL);
            }
        }
    }
    drop(listener);
    drain(&in_flight);
    Ok(())
}

fn spawn_connection<H>(stream: TcpStream, handle: &Arc<H>, in_flight: &Arc<AtomicUsize>)
where
    H: Fn(TcpStream) + Send + Sync + 'static,
{
    let guard = InFlight::enter(in_flight);
    let handle = Arc::clone(handle);
    let spawned = thread::Builder::new()
        .name("connection".into())
        .spawn(move || {
            let _guard = guard;
            if configure(&stream).is_ok() {
                handle(stream);
            }
        });
    if let Err(e) = spawned {
        eprintln!("cannot start a connection thread: {e}");
    }
}

fn configure(stream: &TcpStream) -> io::Result<()> {
    // Accepted sockets must block; only the listener polls.
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(CLIENT_IO_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_IO_TIMEOUT))?;
    stream.set_nodelay(true)
}

fn drain(in_flight: &AtomicUsize) {
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    while in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn serves_until_stopped_then_returns_promptly() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let server_stop = Arc::clone(&stop);
        let server = thread::spawn(move || {
            run(listener, &server_stop, |mut s| {
                let _ = s.write_all(b"hi");
            })
        });
        let mut reply = String::new();
        TcpStream::connect(addr)
            .unwrap()
            .read_to_string(&mut reply)
            .unwrap();
        assert_eq!(reply, "hi");
        let asked = Instant::now();
        stop.store(true, Ordering::SeqCst);
        server.join().unwrap().unwrap();
        assert!(asked.elapsed() < Duration::from_secs(1));
        assert!(TcpStream::connect(addr).is_err(), "listener closed");
    }
}
