//! One persistent HTTP/1.1 connection for the status long-poll.
//!
//! An idle `run` asks `GET status?wait=S&since=V` over and over. A pooled
//! client (reqwest/hyper-util) hands a finished connection back to its pool
//! from a background task, so a request issued right after the previous
//! response often finds the pool empty and opens a new connection (which
//! then lingers as a second idle one). Here the connection is held
//! directly: the next request waits until that same connection is ready,
//! so an idle sidecar holds exactly one connection, and opens a new one
//! only after an error or a cancelled call.
//!
//! Only `http://` endpoints use it; the caller falls back to the pooled
//! client for anything else.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Mutex;

/// How long establishing the connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The kept connection to one `http://host:port`.
#[derive(Debug)]
pub struct StatusConnection {
    host: String,
    port: u16,
    sender: Mutex<Option<SendRequest<Empty<Bytes>>>>,
}

impl StatusConnection {
    /// For `base` (`http://host:port/...`); `None` for other schemes or an
    /// unparsable URL.
    pub fn for_url(base: &str) -> Option<Self> {
        let url = reqwest::Url::parse(base).ok()?;
        if url.scheme() != "http" {
            return None;
        }
        Some(StatusConnection {
            host: url.host_str()?.to_owned(),
            port: url.port_or_known_default()?,
            sender: Mutex::new(None),
        })
    }

    /// `GET path_and_query` within `timeout`; the status code and body.
    ///
    /// The connection is taken out for the call and put back only after a
    /// complete response: an error, a timeout or a dropped call closes it,
    /// and the next call connects afresh.
    pub async fn get(
        &self,
        path_and_query: &str,
        timeout: Duration,
    ) -> Result<(u16, Bytes), String> {
        let mut slot = self.sender.lock().await;
        let taken = slot.take().filter(|s| !s.is_closed());
        let call = async {
            let mut sender = match taken {
                Some(s) => s,
                None => self.connect().await?,
            };
            sender.ready().await.map_err(|e| e.to_string())?;
            let authority = format!("{}:{}", self.host, self.port);
            let req = hyper::Request::get(path_and_query)
                .header(hyper::header::HOST, authority)
                .header(hyper::header::ACCEPT, "application/json")
                .body(Empty::new())
                .map_err(|e| e.to_string())?;
            let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
            let code = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok::<_, String>((sender, code, body))
        };
        let (sender, code, body) = tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| format!("no answer within {} s", timeout.as_secs()))??;
        *slot = Some(sender);
        Ok((code, body))
    }

    async fn connect(&self) -> Result<SendRequest<Empty<Bytes>>, String> {
        let stream = tokio::time::timeout(
            CONNECT_TIMEOUT,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| format!("connect timed out after {} s", CONNECT_TIMEOUT.as_secs()))?
        .map_err(|e| format!("connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("status connection closed: {e}");
            }
        });
        Ok(sender)
    }
}
