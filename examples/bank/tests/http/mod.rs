//! A small HTTP/1.1 client for the end-to-end tests, on hyper's connection API: one keep-alive
//! connection per `Client`, requests in order, and a reader of Server-Sent Events.

#![allow(dead_code)]

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};

/// One keep-alive connection.
pub struct Client {
    sender: SendRequest<Full<Bytes>>,
    addr: SocketAddr,
}

/// A response read to its end.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an RFC 9457 problem of this type and status; returns its JSON.
    pub fn problem(&self, status: u16, slug: &str) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "status of {}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        let json = self.json();
        let uri = json["type"].as_str().expect("a type").to_owned();
        assert!(
            uri.ends_with(&format!("#{slug}")),
            "type {uri}, expected {slug}"
        );
        assert_eq!(json["status"], status);
        assert!(
            json["title"].is_string() && json["detail"].is_string(),
            "{json}"
        );
        json
    }
}

async fn handshake(stream: TcpStream, addr: SocketAddr) -> Client {
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    Client { sender, addr }
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).unwrap();
        handshake(stream, addr).await
    }

    /// A connection whose socket takes at most about `bytes` before the server must wait.
    pub async fn connect_with_small_buffer(addr: SocketAddr, bytes: u32) -> Client {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(bytes).unwrap();
        let stream = socket.connect(addr).await.expect("connect");
        handshake(stream, addr).await
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends a request and returns the response with its body unread.
    pub async fn start(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Response<Incoming> {
        self.try_start(method, path, headers, body)
            .await
            .expect("response")
    }

    /// As `start`, with the connection's error (a server that closed it) as an error.
    pub async fn try_start(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<Response<Incoming>, hyper::Error> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let body: Bytes = body.into();
        if !body.is_empty() {
            request = request.header("content-type", "application/json");
        }
        self.sender.ready().await?;
        self.sender
            .send_request(request.body(Full::new(body)).unwrap())
            .await
    }

    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        let response = self.start(method, path, headers, body).await;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    pub async fn post(&mut self, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        self.send(Method::POST, path, headers, body.to_owned())
            .await
    }

    pub async fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.send(Method::GET, path, headers, Bytes::new()).await
    }
}

/// One Server-Sent Event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub id: Option<String>,
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).expect("SSE data is JSON")
    }
}

/// Reads Server-Sent Events from a response body as they arrive.
pub struct SseReader {
    body: Incoming,
    buffer: String,
}

impl SseReader {
    pub fn new(response: Response<Incoming>) -> Self {
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers().get("content-type").unwrap(),
            "text/event-stream"
        );
        SseReader {
            body: response.into_body(),
            buffer: String::new(),
        }
    }

    /// The next event (comments skipped), or `None` when the stream ended.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent::default();
                let mut data = Vec::new();
                for line in block.lines() {
                    let (field, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    match field {
                        "event" => event.event = Some(value.to_owned()),
                        "id" => event.id = Some(value.to_owned()),
                        "data" => data.push(value.to_owned()),
                        _ => {}
                    }
                }
                if data.is_empty() && event.event.is_none() {
                    continue; // a comment (keep-alive)
                }
                event.data = data.join("\n");
                return Some(event);
            }
            match self.body.frame().await {
                None => return None,
                Some(frame) => {
                    let frame = frame.expect("SSE body");
                    if let Ok(data) = frame.into_data() {
                        self.buffer.push_str(std::str::from_utf8(&data).unwrap());
                    }
                }
            }
        }
    }
}
