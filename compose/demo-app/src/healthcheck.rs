//! `demo-app healthcheck`: the image's HEALTHCHECK (a scratch image has no curl).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::http;

const TIMEOUT: Duration = Duration::from_secs(2);

/// Whether `GET /health` on 127.0.0.1:`port` answers 200.
pub fn is_healthy(port: u16) -> Result<bool, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream =
        TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let mut response = Vec::new();
    stream
        .take(64 * 1024)
        .read_to_end(&mut response)
        .map_err(|e| format!("read from {addr}: {e}"))?;
    let status = http::status_code(&response).ok_or("no HTTP status line in the answer")?;
    Ok(status == 200)
}
