//! HTTP for the load generator.
//!
//! `http://` targets get one persistent HTTP/1.1 connection per virtual client, driven with
//! hyper's connection API directly (like `wrk`: no pool, no per-request lookup), because on a
//! 2-core box every microsecond the generator spends is taken from the server under test.
//! `https://` targets (another team's server behind TLS) go through a shared `reqwest` client.

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::http::{HeaderName, HeaderValue, Method, Request};
use hyper_util::rt::TokioIo;
use std::time::Duration;

/// A request to send: absolute URL, headers, body.
pub struct Outgoing {
    /// The method.
    pub method: Method,
    /// The absolute URL.
    pub url: String,
    /// Extra headers (lower-case names).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The body (empty for none).
    pub body: Bytes,
}

/// A response read whole.
pub struct Incoming {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: Bytes,
}

/// Why a request got no HTTP answer.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(pub String);

/// The message of a [`TransportError`] for a request or connection that ran out of time.
const TIMED_OUT: &str = "timeout";

impl TransportError {
    fn timed_out() -> Self {
        TransportError(TIMED_OUT.into())
    }

    /// Whether the request ran out of time (rather than failing).
    pub fn is_timeout(&self) -> bool {
        self.0 == TIMED_OUT
    }
}

/// A target URL split into what a connection needs.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Origin {
    authority: String,
}

fn split_http(url: &str) -> Option<(Origin, &str)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    Some((
        Origin {
            authority: authority.to_string(),
        },
        path,
    ))
}

/// One plain-HTTP keep-alive connection to one origin.
struct PlainConn {
    origin: Origin,
    sender: Option<SendRequest<Full<Bytes>>>,
}

/// The connections of one virtual client (at most one per origin), or a shared TLS client.
pub struct Client {
    plain: Vec<PlainConn>,
    tls: reqwest::Client,
    timeout: Duration,
}

impl Client {
    /// A client; `tls` is shared by all virtual clients (it pools internally).
    pub fn new(tls: reqwest::Client, timeout: Duration) -> Self {
        Client {
            plain: Vec::new(),
            tls,
            timeout,
        }
    }

    /// Opens the keep-alive connection to `url`'s origin now, if it is a plain `http://` one
    /// and not open yet, so that the first timed request does not pay for it.
    pub async fn connect_ahead(&mut self, url: &str) -> Result<(), TransportError> {
        let Some((origin, _)) = split_http(url) else {
            return Ok(());
        };
        let (slot, sender) = tokio::time::timeout(self.timeout, self.live_sender(&origin))
            .await
            .map_err(|_| TransportError::timed_out())??;
        self.plain[slot].sender = Some(sender);
        Ok(())
    }

    /// Takes the open connection to `origin`, or opens one; returns it with the index of its
    /// slot, to put it back there once used.
    async fn live_sender(
        &mut self,
        origin: &Origin,
    ) -> Result<(usize, SendRequest<Full<Bytes>>), TransportError> {
        let slot = match self.plain.iter().position(|c| c.origin == *origin) {
            Some(i) => i,
            None => {
                self.plain.push(PlainConn {
                    origin: origin.clone(),
                    sender: None,
                });
                self.plain.len() - 1
            }
        };
        let sender = match self.plain[slot].sender.take() {
            Some(s) if !s.is_closed() => s,
            _ => connect(origin).await?,
        };
        Ok((slot, sender))
    }

    /// Sends `request` and reads the whole response.
    pub async fn send(&mut self, request: Outgoing) -> Result<Incoming, TransportError> {
        match tokio::time::timeout(self.timeout, self.send_inner(request)).await {
            Ok(result) => result,
            Err(_) => {
                // The connection's state is unknown after a timeout: start afresh.
                self.plain.clear();
                Err(TransportError::timed_out())
            }
        }
    }

    async fn send_inner(&mut self, request: Outgoing) -> Result<Incoming, TransportError> {
        let Some((origin, path)) = split_http(&request.url) else {
            return self.send_tls(request).await;
        };
        let (slot, mut sender) = self.live_sender(&origin).await?;
        sender
            .ready()
            .await
            .map_err(|e| TransportError(format!("connection: {e}")))?;
        let mut builder = Request::builder()
            .method(request.method)
            .uri(path)
            .header(hyper::header::HOST, origin.authority.as_str());
        for (name, value) in request.headers {
            builder = builder.header(name, value);
        }
        let req = builder
            .body(Full::new(request.body))
            .map_err(|e| TransportError(format!("request: {e}")))?;
        let response = sender
            .send_request(req)
            .await
            .map_err(|e| TransportError(format!("send: {e}")))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| TransportError(format!("body: {e}")))?
            .to_bytes();
        self.plain[slot].sender = Some(sender);
        Ok(Incoming { status, body })
    }

    async fn send_tls(&mut self, request: Outgoing) -> Result<Incoming, TransportError> {
        let mut builder = self
            .tls
            .request(request.method, &request.url)
            .body(request.body);
        for (name, value) in request.headers {
            builder = builder.header(name, value);
        }
        let response = builder
            .send()
            .await
            .map_err(|e| TransportError(format!("send: {e}")))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| TransportError(format!("body: {e}")))?;
        Ok(Incoming { status, body })
    }
}

async fn connect(origin: &Origin) -> Result<SendRequest<Full<Bytes>>, TransportError> {
    let stream = tokio::net::TcpStream::connect(origin.authority.as_str())
        .await
        .map_err(|e| TransportError(format!("connect {}: {e}", origin.authority)))?;
    // Small request/response pairs: do not let Nagle hold them back.
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| TransportError(format!("handshake: {e}")))?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the peer closes; errors show up on the sender.
        let _ = connection.await;
    });
    Ok(sender)
}

/// The shared TLS client for `https://` targets.
pub fn tls_client(concurrency: usize, timeout: Duration) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(timeout)
        .tcp_nodelay(true)
        .user_agent(concat!("latchkey-bench/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot build the HTTPS client")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_plain_urls() {
        let (o, p) = split_http("http://127.0.0.1:8080/token/abc").expect("http");
        assert_eq!(o.authority, "127.0.0.1:8080");
        assert_eq!(p, "/token/abc");
        let (o, p) = split_http("http://localhost:1").expect("http");
        assert_eq!(o.authority, "localhost:1");
        assert_eq!(p, "/");
        assert!(split_http("https://x.example/").is_none());
    }
}
