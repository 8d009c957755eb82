//! A lean HTTP/1.1 keep-alive client for load generation: one connection per worker, requests
//! written as prepared bytes, answers read by `Content-Length`. pgbench, the raw-SELECT
//! baseline, is a lean C client; a general-purpose client (reqwest) on the same two cores
//! would charge its own cost to the service being measured.

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One kept-alive connection to the service.
/// `count` kept-alive connections to `address`, one per load-generating worker.
pub async fn open_all(
    address: &str,
    count: usize,
) -> anyhow::Result<std::sync::Arc<Vec<tokio::sync::Mutex<Connection>>>> {
    let mut connections = Vec::with_capacity(count);
    for _ in 0..count {
        connections.push(tokio::sync::Mutex::new(Connection::open(address).await?));
    }
    Ok(std::sync::Arc::new(connections))
}

pub struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

/// An answer: its status and body.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Connection {
    pub async fn open(address: &str) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(address)
            .await
            .with_context(|| format!("connecting to {address}"))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buffer: Vec::with_capacity(64 * 1024),
        })
    }

    /// Sends one whole request (see [`request`]) and reads its answer.
    pub async fn send(&mut self, request: &[u8]) -> anyhow::Result<Answer> {
        self.stream.write_all(request).await?;
        let head_end = loop {
            if let Some(end) = find(&self.buffer, b"\r\n\r\n") {
                break end + 4;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buffer[..head_end]).context("a non-UTF-8 head")?;
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .context("no status code")?;
        let length: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .context("an answer without Content-Length")?;
        while self.buffer.len() < head_end + length {
            self.fill().await?;
        }
        let body = self.buffer[head_end..head_end + length].to_vec();
        self.buffer.drain(..head_end + length);
        Ok(Answer { status, body })
    }

    /// Reads what has arrived into the buffer's spare room (not zeroed first).
    async fn fill(&mut self) -> anyhow::Result<()> {
        self.buffer.reserve(64 * 1024);
        if self.stream.read_buf(&mut self.buffer).await? == 0 {
            bail!("the service closed the connection");
        }
        Ok(())
    }
}

/// The bytes of a request with a bearer token and, when `body` is given, a JSON body.
pub fn request(method: &str, path: &str, host: &str, token: &str, body: Option<&str>) -> Vec<u8> {
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {token}\r\n");
    if let Some(body) = body {
        request.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        request.push_str("\r\n");
    }
    request.into_bytes()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
