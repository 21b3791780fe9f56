//! One small HTTP/1.1 client for the daemons' local APIs: the command-line tools
//! (`edge status`, `supernode release-lease`), the benchmark and the tests use it. One request
//! per connection (`Connection: close`); chunked bodies are decoded.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long an answer may take.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Body (de-chunked), as text.
    pub body: String,
}

impl Response {
    /// True for 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON.
    pub fn json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_str(&self.body)
    }
}

/// A request: method, path, `Host` and extra headers.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// Path and query.
    pub path: &'a str,
    /// The `Host` header (the edge's API wants a loopback name).
    pub host: &'a str,
    /// Extra headers.
    pub headers: &'a [(&'a str, &'a str)],
}

impl<'a> Request<'a> {
    /// `GET path` with `Host: localhost`.
    pub fn get(path: &'a str) -> Self {
        Self {
            method: "GET",
            path,
            host: "localhost",
            headers: &[],
        }
    }

    /// `POST path` (empty body) with `Host: localhost` and `headers`.
    pub fn post(path: &'a str, headers: &'a [(&'a str, &'a str)]) -> Self {
        Self {
            method: "POST",
            path,
            host: "localhost",
            headers,
        }
    }

    /// The request's bytes.
    pub fn encode(&self) -> String {
        let mut s = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.method, self.path, self.host
        );
        for (k, v) in self.headers {
            s.push_str(&format!("{k}: {v}\r\n"));
        }
        if self.method != "GET" {
            s.push_str("Content-Length: 0\r\n");
        }
        s.push_str("\r\n");
        s
    }

    /// Sends it to `addr` and reads the answer (blocking, with the timeouts above).
    pub fn send(&self, addr: SocketAddr) -> io::Result<Response> {
        let mut s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
        s.set_read_timeout(Some(READ_TIMEOUT))?;
        s.write_all(self.encode().as_bytes())?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        parse(&raw)
    }

    /// Sends it to `addr` from async code (tests that run a daemon on the same runtime).
    pub async fn send_async(&self, addr: SocketAddr) -> io::Result<Response> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        s.write_all(self.encode().as_bytes()).await?;
        let mut raw = Vec::new();
        tokio::time::timeout(READ_TIMEOUT, s.read_to_end(&mut raw))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer in time"))??;
        parse(&raw)
    }
}

/// `GET path` from `addr` (blocking).
pub fn get(addr: SocketAddr, path: &str) -> io::Result<Response> {
    Request::get(path).send(addr)
}

/// Parses a whole HTTP/1.1 answer (chunk sizes count bytes, so the body is de-chunked
/// before it becomes text).
pub fn parse(raw: &[u8]) -> io::Result<Response> {
    let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, why.to_string());
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers in the answer"))?;
    let (head, body) = (
        String::from_utf8_lossy(raw.get(..end).unwrap_or_default()),
        raw.get(end + 4..).unwrap_or_default(),
    );
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("no status code in the answer"))?;
    let chunked = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.trim().eq_ignore_ascii_case("chunked")
        })
    });
    let body = if chunked {
        dechunk(body).ok_or_else(|| bad("bad chunked body"))?
    } else {
        body.to_vec()
    };
    Ok(Response {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = rest.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(rest.get(..eol)?).ok()?;
        let n = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        let tail = rest.get(eol + 2..)?;
        if n == 0 {
            return Some(out);
        }
        out.extend_from_slice(tail.get(..n)?);
        rest = tail.get(n..)?.strip_prefix(b"\r\n")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_chunked_answers_are_read() {
        let r = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}").unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "{}"));
        let r = parse(
            b"HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_str(), r.ok()), (404, "abcde", false));
        // Chunk sizes count bytes: a boundary inside a two-byte character is fine.
        let mut raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\na".to_vec();
        raw.extend_from_slice(&[0xc3, b'\r', b'\n', b'1', b'\r', b'\n', 0xbc]);
        raw.extend_from_slice(b"\r\n0\r\n\r\n");
        assert_eq!(parse(&raw).unwrap().body, "a\u{fc}");
    }

    #[test]
    fn broken_answers_are_errors_not_panics() {
        for raw in [
            &b""[..],
            b"HTTP/1.1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nff\r\nabc",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ] {
            assert!(parse(raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn a_post_carries_its_headers_and_an_empty_body() {
        let r = Request::post("/x", &[("x-token", "t")]).encode();
        assert_eq!(
            r,
            "POST /x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nx-token: t\r\nContent-Length: 0\r\n\r\n"
        );
    }
}
