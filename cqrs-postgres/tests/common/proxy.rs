//! A TCP proxy between a store and the test database that can lose a reply: armed with a
//! marker, it forwards the first request holding it (an append, recognised by its payload),
//! waits until the server has answered it completely (its `ReadyForQuery`, sent after the
//! commit), and then cuts the connection instead of passing the answer on. It can also refuse
//! new connections, standing in for a server that cannot be reached.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// The end of a server's answer: `ReadyForQuery` (`Z`, length 5), idle (`I`).
const READY_IDLE: &[u8] = &[b'Z', 0, 0, 0, 5, b'I'];

#[derive(Default)]
struct State {
    /// The request bytes that make the proxy cut the connection after the server answered.
    marker: Mutex<Option<Vec<u8>>>,
    /// Whether new connections are refused (accepted and closed at once).
    refusing: AtomicBool,
    /// Signalled when a connection was cut.
    cut: Notify,
}

/// A running proxy (its tasks end with the test's runtime).
pub struct Proxy {
    addr: SocketAddr,
    state: Arc<State>,
}

impl Proxy {
    /// Listens on a free local port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if shared.refusing.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                tokio::spawn(forward(client, server, Arc::clone(&shared)));
            }
        });
        Proxy { addr, state }
    }

    /// `url` (`postgres://user@host:port/db`) with the proxy's address instead.
    pub fn url(&self, url: &str) -> String {
        let start = url.find('@').map_or("postgres://".len(), |at| at + 1);
        let end = start + url[start..].find('/').unwrap_or(url.len() - start);
        format!("{}{}{}", &url[..start], self.addr, &url[end..])
    }

    /// Cuts the connection that next sends a request holding `marker`, once the server has
    /// answered it.
    pub fn cut_after_reply_to(&self, marker: &[u8]) {
        *self.state.marker.lock().unwrap() = Some(marker.to_vec());
    }

    /// Resolves once a connection was cut.
    pub async fn wait_for_cut(&self) {
        self.state.cut.notified().await;
    }

    /// Refuses (or accepts again) new connections.
    pub fn refuse_connections(&self, refuse: bool) {
        self.state.refusing.store(refuse, Ordering::SeqCst);
    }
}

/// Copies bytes both ways until either side closes, or until the armed request was answered.
async fn forward(client: TcpStream, server: TcpStream, state: Arc<State>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let cutting = Arc::new(AtomicBool::new(false));
    let armed = Arc::clone(&cutting);
    let requests = {
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let mut buffer = vec![0; 64 * 1024];
            loop {
                let n = match client_read.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let chunk = &buffer[..n];
                {
                    let mut marker = state.marker.lock().unwrap();
                    if marker
                        .as_deref()
                        .is_some_and(|m| chunk.windows(m.len()).any(|w| w == m))
                    {
                        *marker = None;
                        armed.store(true, Ordering::SeqCst);
                    }
                }
                if server_write.write_all(chunk).await.is_err() {
                    return;
                }
            }
        })
    };
    let mut buffer = vec![0; 64 * 1024];
    let mut swallowed = Vec::new();
    loop {
        let n = match server_read.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if cutting.load(Ordering::SeqCst) {
            // The answer to the armed request: keep it from the client until it is complete.
            swallowed.extend_from_slice(&buffer[..n]);
            if swallowed.ends_with(READY_IDLE) {
                break;
            }
            continue;
        }
        if client_write.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    requests.abort();
    // Dropping both halves of both sockets closes the connections.
    if cutting.load(Ordering::SeqCst) {
        state.cut.notify_one();
    }
}
