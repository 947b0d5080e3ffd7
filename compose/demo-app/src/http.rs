//! Just enough HTTP/1.1 for the demo: one request per connection, then `Connection: close`.
//!
//! Closing after each exchange keeps the framing trivial (a response ends at EOF), which
//! is all the health checks and the rotation proxy need.

use std::io::{self, Read, Write};

/// Longest request or response head we accept; anything larger is not from our tools.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Largest body we forward or read; the demo's bodies are a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

const HEAD_END: &[u8] = b"\r\n\r\n";

/// One parsed request: the request line's parts, its header lines and any body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The path without its query string.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

/// Read one request (head, then a `Content-Length` body if any).
pub fn read_request(stream: &mut impl Read) -> io::Result<Request> {
    let (head, rest) = read_head(stream)?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("malformed request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(invalid("not an HTTP/1.x request"));
    }
    let headers = parse_headers(lines)?;
    let body = read_body(stream, rest, content_length(&headers)?)?;
    Ok(Request {
        method: method.to_string(),
        target: target.to_string(),
        headers,
        body,
    })
}

/// Write a complete response and flush it; the caller closes the connection.
pub fn write_response(
    stream: &mut impl Write,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        reason_phrase(status),
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}

/// Read a whole response up to EOF and check that it is complete: a status line, a full
/// head, and as many body bytes as it announced. A replica killed mid-answer fails here,
/// which is what lets the proxy retry another replica.
pub fn read_complete_response(stream: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut response = Vec::new();
    stream
        .take((MAX_HEAD_BYTES + MAX_BODY_BYTES) as u64)
        .read_to_end(&mut response)?;
    check_complete_response(&response)?;
    Ok(response)
}

/// The status code of a response's status line.
pub fn status_code(response: &[u8]) -> Option<u16> {
    let line_end = find(response, b"\r\n")?;
    let line = std::str::from_utf8(&response[..line_end]).ok()?;
    let mut parts = line.split(' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    parts.next()?.parse().ok()
}

fn check_complete_response(response: &[u8]) -> io::Result<()> {
    if status_code(response).is_none() {
        return Err(invalid("no status line"));
    }
    let head_end = find(response, HEAD_END).ok_or_else(|| invalid("response head cut short"))?;
    let head = std::str::from_utf8(&response[..head_end]).map_err(|_| invalid("head not UTF-8"))?;
    let headers = parse_headers(head.split("\r\n").skip(1))?;
    let body = &response[head_end + HEAD_END.len()..];
    if let Some(expected) = content_length(&headers)? {
        if body.len() < expected {
            return Err(invalid("response body cut short"));
        }
    } else if header_value(&headers, "transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        && !body.ends_with(b"0\r\n\r\n")
    {
        return Err(invalid("chunked response cut short"));
    }
    Ok(())
}

/// Read until the blank line that ends the head; returns the head text and the bytes after it.
fn read_head(stream: &mut impl Read) -> io::Result<(String, Vec<u8>)> {
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        if let Some(end) = find(&buffer, HEAD_END) {
            let rest = buffer.split_off(end + HEAD_END.len());
            buffer.truncate(end);
            let head = String::from_utf8(buffer).map_err(|_| invalid("head not UTF-8"))?;
            return Ok((head, rest));
        }
        if buffer.len() > MAX_HEAD_BYTES {
            return Err(invalid("request head too large"));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before the end of the head",
            ));
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

fn read_body(
    stream: &mut impl Read,
    mut body: Vec<u8>,
    length: Option<usize>,
) -> io::Result<Vec<u8>> {
    let Some(length) = length else {
        return Ok(Vec::new());
    };
    if length > MAX_BODY_BYTES {
        return Err(invalid("request body too large"));
    }
    if body.len() < length {
        let mut more = Vec::new();
        stream
            .take((length - body.len()) as u64)
            .read_to_end(&mut more)?;
        body.extend_from_slice(&more);
    }
    if body.len() < length {
        return Err(invalid("request body cut short"));
    }
    body.truncate(length);
    Ok(body)
}

fn parse_headers<'a>(lines: impl Iterator<Item = &'a str>) -> io::Result<Vec<(String, String)>> {
    lines
        .filter(|line| !line.is_empty())
        .map(|line| {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| invalid("malformed header line"))?;
            Ok((name.trim().to_string(), value.trim().to_string()))
        })
        .collect()
}

fn content_length(headers: &[(String, String)]) -> io::Result<Option<usize>> {
    header_value(headers, "content-length")
        .map(|v| v.parse().map_err(|_| invalid("bad Content-Length")))
        .transpose()
}

fn header_value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_string())
}

pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_request_with_a_body() {
        let raw = b"POST /x?y=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcEXTRA";
        let request = read_request(&mut &raw[..]).unwrap();
        assert_eq!(request.method, "POST");
        assert_eq!(request.path(), "/x");
        assert_eq!(header_value(&request.headers, "host"), Some("a"));
        assert_eq!(request.body, b"abc");
    }

    #[test]
    fn refuses_a_request_cut_short() {
        assert!(read_request(&mut &b"GET / HTTP/1.1\r\nHost: a\r\n"[..]).is_err());
        assert!(read_request(&mut &b"garbage\r\n\r\n"[..]).is_err());
    }

    #[test]
    fn accepts_only_complete_responses() {
        let full = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        assert_eq!(read_complete_response(&mut &full[..]).unwrap(), full);
        assert_eq!(status_code(full), Some(200));
        let short_body = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok";
        assert!(read_complete_response(&mut &short_body[..]).is_err());
        let short_head = b"HTTP/1.1 200 OK\r\nContent-Len";
        assert!(read_complete_response(&mut &short_head[..]).is_err());
        assert!(read_complete_response(&mut &b""[..]).is_err());
    }

    #[test]
    fn writes_a_closing_response() {
        let mut out = Vec::new();
        write_response(&mut out, 503, "application/json", b"{}").unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(text.contains("Content-Length: 2\r\n"));
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.ends_with("\r\n\r\n{}"));
    }
}
