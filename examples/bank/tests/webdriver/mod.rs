//! A minimal WebDriver client for the browser test: chromedriver as a child process of the test
//! (on a free port of 127.0.0.1), headless Chromium (Debian's `chromium` and
//! `chromium-driver`), and the few commands the test needs (new session, navigate, execute a
//! script, screenshot, delete session), over the tests' own HTTP client (`tests/http`).
//!
//! A missing browser is a failure, not a skip: `.ci/run` installs both packages first.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::{Value, json};

use crate::http::Client;

/// Where a binary is: `$VAR`, else the first of `names` found on `PATH`.
fn find(var: &str, names: &[&str]) -> Option<String> {
    if let Some(path) = std::env::var_os(var) {
        return Some(path.to_string_lossy().into_owned());
    }
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate.to_string_lossy().into_owned());
            }
        }
    }
    None
}

/// A headless Chromium driven through chromedriver. Dropping it ends the session and kills
/// chromedriver.
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    client: Client,
    session: String,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session; panics with what to install when
    /// either is missing.
    pub async fn start() -> Browser {
        let install = "install Debian's `chromium` and `chromium-driver` (`apt-get install -y \
                       chromium chromium-driver`; `.ci/run` does), or set CHROMEDRIVER and CHROMIUM";
        let chromedriver = find("CHROMEDRIVER", &["chromedriver"])
            .unwrap_or_else(|| panic!("chromedriver is not installed: {install}"));
        let chromium = find(
            "CHROMIUM",
            &["chromium", "chromium-browser", "google-chrome"],
        )
        .unwrap_or_else(|| panic!("Chromium is not installed: {install}"));
        let port = {
            let probe = TcpListener::bind("127.0.0.1:0").expect("a free port");
            probe.local_addr().unwrap().port()
        };
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {chromedriver}: {e}"));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut browser = Browser {
            driver,
            addr,
            client: wait_for_driver(addr).await,
            session: String::new(),
        };
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                    "--window-size=1400,1000"
                ]
            }
        } } });
        let reply = tokio::time::timeout(
            Duration::from_secs(90),
            browser
                .client
                .post("/session", &[], &capabilities.to_string()),
        )
        .await
        .expect("Chromium started within 90 s");
        let value = reply.json();
        browser.session = value["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {value}"))
            .to_owned();
        browser
    }

    async fn command(&mut self, method: Method, path: &str, body: Value) -> Value {
        let path = format!("/session/{}{path}", self.session);
        let body = if method == Method::GET {
            String::new()
        } else {
            body.to_string()
        };
        let reply = tokio::time::timeout(
            Duration::from_secs(60),
            self.client.send(method, &path, &[], body),
        )
        .await
        .expect("chromedriver answered within 60 s");
        let value = reply.json();
        assert!(
            reply.status.is_success(),
            "WebDriver {path}: {} {value}",
            reply.status
        );
        value["value"].clone()
    }

    /// Opens `url` and waits for it to load.
    pub async fn goto(&mut self, url: &str) {
        self.command(Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    /// Runs `script` (a function body; `return` gives the value) in the page.
    pub async fn eval(&mut self, script: &str) -> Value {
        self.command(
            Method::POST,
            "/execute/sync",
            json!({ "script": script, "args": [] }),
        )
        .await
    }

    /// Runs `script` until it returns something other than `null` or `false`, at most
    /// `timeout`; panics with `what` and the last value otherwise.
    pub async fn wait_for(&mut self, what: &str, timeout: Duration, script: &str) -> Value {
        let started = Instant::now();
        loop {
            let value = self.eval(script).await;
            if !(value.is_null() || value == false) {
                return value;
            }
            if started.elapsed() > timeout {
                let page = self
                    .eval("return document.body ? document.body.innerText.slice(0, 3000) : ''")
                    .await;
                panic!("timed out after {timeout:?} waiting for {what}; the page shows:\n{page}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A PNG screenshot of the window.
    pub async fn screenshot(&mut self) -> Vec<u8> {
        let value = self.command(Method::GET, "/screenshot", Value::Null).await;
        decode_base64(value.as_str().expect("base64 text"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends the session (closing Chromium) with a plain blocking request, since this may run
        // during a panic, then stops chromedriver.
        let connected = (!self.session.is_empty())
            .then(|| TcpStream::connect_timeout(&self.addr, Duration::from_secs(2)).ok())
            .flatten();
        {
            if let Some(mut stream) = connected {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let request = format!(
                    "DELETE /session/{} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                    self.session, self.addr
                );
                if stream.write_all(request.as_bytes()).is_ok() {
                    let mut sink = Vec::new();
                    let _ = stream.read_to_end(&mut sink);
                }
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

async fn wait_for_driver(addr: SocketAddr) -> Client {
    let started = Instant::now();
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            let mut client = Client::connect(addr).await;
            let status = client.send(Method::GET, "/status", &[], "").await;
            if status.status.is_success() && status.json()["value"]["ready"] == true {
                return client;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "chromedriver did not listen on {addr} within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut buffer, mut bits) = (0u32, 0);
    for sextet in text.bytes().filter_map(value) {
        buffer = (buffer << 6) | u32::from(sextet);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    out
}
