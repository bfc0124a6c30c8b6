//! Headless Chromium driven over WebDriver (fantoccini) for the dashboard tests.
//!
//! Each test gets its own `chromedriver` on a free loopback port and its own Chromium profile in
//! a temporary directory, so tests can run in parallel and leave nothing behind. chromedriver is
//! started in a process group of its own, and dropping the [`Browser`] kills that whole group:
//! a test that panics half-way must not leave Chromium processes running on a 2-core CI box.
//!
//! A missing Chromium or chromedriver is a failure, never a skip: a green run must mean the
//! dashboard was exercised in a real browser.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// What to tell whoever runs the tests on a machine without the browser.
const INSTALL_HINT: &str = "the browser tests need Chromium and its WebDriver: \
     apt-get install chromium chromium-driver (.ci/run installs them when missing)";

/// How long chromedriver may take to listen, and Chromium to start a session, on a busy box.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The window of the desktop layout the dashboard is designed for (issue 6: 1280x800).
pub const DESKTOP: (u32, u32) = (1280, 800);

/// A headless Chromium session and the chromedriver that serves it.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    /// chromedriver, leader of the process group that Chromium also runs in.
    driver: Child,
    /// chromedriver's address, for the endpoints fantoccini has no method for (the logs).
    driver_addr: SocketAddr,
    /// Chromium's profile and chromedriver's log; removed on drop.
    dir: tempfile::TempDir,
}

/// Finds `name` on `PATH`, else at `fallback`; panics with the install hint when neither exists.
fn program(name: &str, fallback: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    match on_path {
        Some(path) => path,
        None if Path::new(fallback).is_file() => PathBuf::from(fallback),
        None => panic!("{name} not found on PATH nor at {fallback}: {INSTALL_HINT}"),
    }
}

/// A loopback port that was free a moment ago (chromedriver binds it itself).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium at the desktop size. `network_log` turns on
    /// Chromium's performance log, which records every request the page makes (URL and
    /// headers); read it with [`Browser::requests`].
    pub async fn start(network_log: bool) -> Browser {
        let chromium = program("chromium", "/usr/bin/chromium");
        let chromedriver = program("chromedriver", "/usr/bin/chromedriver");
        let dir = tempfile::tempdir().expect("tempdir");
        // A port taken between free_port() and chromedriver's bind makes chromedriver exit;
        // try a few ports before giving up.
        let mut attempts = 0;
        let (driver, driver_addr) = loop {
            attempts += 1;
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let mut driver = Command::new(&chromedriver)
                .arg(format!("--port={}", addr.port()))
                .arg(format!(
                    "--log-path={}",
                    dir.path().join("chromedriver.log").display()
                ))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "{} does not start ({e}): {INSTALL_HINT}",
                        chromedriver.display()
                    )
                });
            let deadline = Instant::now() + START_TIMEOUT;
            let listening = loop {
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    break true;
                }
                if driver.try_wait().ok().flatten().is_some() || Instant::now() > deadline {
                    break false;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            if listening {
                break (driver, addr);
            }
            kill_group(&mut driver);
            assert!(
                attempts < 3,
                "chromedriver did not listen on a free port after 3 attempts: {INSTALL_HINT}"
            );
        };
        let mut browser_options = json!({
            "binary": chromium,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
                format!("--user-data-dir={}", dir.path().join("profile").display()),
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
            ],
        });
        // Downloads (the fleet page's CSV) land in the test's own directory, never in the
        // home directory of whoever runs the tests.
        let downloads = dir.path().join("downloads");
        std::fs::create_dir_all(&downloads).expect("downloads directory");
        browser_options["prefs"] = json!({
            "download.default_directory": downloads,
            "download.prompt_for_download": false,
            "download.directory_upgrade": true,
        });
        if network_log {
            browser_options["perfLoggingPrefs"] =
                json!({"enableNetwork": true, "enablePage": false});
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert("goog:chromeOptions".into(), browser_options);
        if network_log {
            capabilities.insert("goog:loggingPrefs".into(), json!({"performance": "ALL"}));
        }
        let session = tokio::time::timeout(
            START_TIMEOUT,
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(capabilities)
                .connect(&format!("http://{driver_addr}")),
        )
        .await;
        let client = match session {
            Ok(Ok(client)) => client,
            failed => {
                let mut driver = driver;
                kill_group(&mut driver);
                let log = std::fs::read_to_string(dir.path().join("chromedriver.log"))
                    .unwrap_or_default();
                let why = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no session within {START_TIMEOUT:?}"),
                };
                panic!(
                    "Chromium did not start a WebDriver session ({why}); {INSTALL_HINT}\n\
                     chromedriver log tail:\n{}",
                    tail(&log, 3000)
                );
            }
        };
        let browser = Browser {
            client,
            driver,
            driver_addr,
            dir,
        };
        browser.set_size(DESKTOP.0, DESKTOP.1).await;
        browser
    }

    /// Resizes the window and waits until the page's viewport has the requested width: in
    /// headless Chromium the window has no decorations, so this is the CSS viewport width.
    pub async fn set_size(&self, width: u32, height: u32) {
        self.client
            .set_window_size(width, height)
            .await
            .expect("set window size");
    }

    /// Opens `url` and waits until the dashboard has rendered its first route
    /// (`body[data-ready="1"]`).
    pub async fn open(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
        self.wait_for(
            "body[data-ready=\"1\"] (the app rendered)",
            WAIT,
            || async {
                (self
                    .js("return document.body && document.body.dataset.ready === '1'")
                    .await
                    == json!(true))
                .then_some(())
            },
        )
        .await;
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its value.
    pub async fn js_with(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Runs `script` without arguments.
    pub async fn js(&self, script: &str) -> Value {
        self.js_with(script, Vec::new()).await
    }

    /// The trimmed text of the first element matching `selector`, `None` while there is none.
    pub async fn text(&self, selector: &str) -> Option<String> {
        self.js_with(
            "const el = document.querySelector(arguments[0]);
             return el ? el.textContent.trim() : null;",
            vec![json!(selector)],
        )
        .await
        .as_str()
        .map(str::to_owned)
    }

    /// Attribute `name` of the first element matching `selector`.
    pub async fn attr(&self, selector: &str, name: &str) -> Option<String> {
        self.js_with(
            "const el = document.querySelector(arguments[0]);
             return el ? el.getAttribute(arguments[1]) : null;",
            vec![json!(selector), json!(name)],
        )
        .await
        .as_str()
        .map(str::to_owned)
    }

    /// Whether an element matching `selector` exists and is rendered (has a layout box).
    pub async fn visible(&self, selector: &str) -> bool {
        self.js_with(
            "const el = document.querySelector(arguments[0]);
             return !!el && el.getClientRects().length > 0
                 && getComputedStyle(el).visibility !== 'hidden';",
            vec![json!(selector)],
        )
        .await
            == json!(true)
    }

    /// Waits for `selector` to be rendered, then finds it: what a user can see is what a user
    /// can act on (`what` names the action in the timeout message).
    async fn visible_element(&self, selector: &str, what: &str) -> fantoccini::elements::Element {
        self.wait_for(&format!("{selector} to {what}"), WAIT, || async {
            self.visible(selector).await.then_some(())
        })
        .await;
        self.client
            .find(Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("find {selector}: {e}"))
    }

    /// Waits for `selector` to be rendered, then clicks it the way a user does (WebDriver
    /// element click: scrolled into view, refused if something covers it).
    pub async fn click(&self, selector: &str) {
        let element = self.visible_element(selector, "click").await;
        element
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {selector}: {e}"));
    }

    /// Replaces the value of the input matching `selector` by typing `value` into it (an empty
    /// `value` empties it).
    pub async fn type_into(&self, selector: &str, value: &str) {
        let element = self.visible_element(selector, "type into").await;
        element
            .clear()
            .await
            .unwrap_or_else(|e| panic!("clear {selector}: {e}"));
        // WebDriver's clear fires no `input` event, so a page that filters as the user types
        // would not notice an emptied box: type a character and delete it, as a user would.
        let keys = if value.is_empty() {
            format!("x{}", fantoccini::key::Key::Backspace)
        } else {
            value.to_owned()
        };
        element
            .send_keys(&keys)
            .await
            .unwrap_or_else(|e| panic!("type into {selector}: {e}"));
    }

    /// Picks the option of value `value` in the `select` matching `selector`, as a user does.
    pub async fn select(&self, selector: &str, value: &str) {
        self.visible_element(selector, "choose from")
            .await
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("choose {value} in {selector}: {e}"));
    }

    /// Polls `check` every 50 ms until it yields a value; panics after `timeout` with what was
    /// awaited and the state of the page, so a failure in CI says what the page showed.
    pub async fn wait_for<T, F, Fut>(&self, what: &str, timeout: Duration, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(value) = check().await {
                return value;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}\n{}",
                    self.describe().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the page has finished no request for `quiet` (the resource timing list stops
    /// growing; a streaming response such as the event stream only counts once it ends).
    ///
    /// Pages re-read their state from the API whenever the live stream (re)opens. A test that
    /// wants to prove an update came through the stream starts after that re-read, or a late
    /// re-read could deliver the update instead and hide a broken stream.
    pub async fn wait_network_idle(&self, quiet: Duration) {
        self.js("performance.setResourceTimingBufferSize(100000); return null")
            .await;
        let last = std::cell::Cell::new((u64::MAX, Instant::now()));
        self.wait_for(
            &format!("no request finishing for {quiet:?}"),
            WAIT,
            || async {
                let count = self
                    .js("return performance.getEntriesByType('resource').length")
                    .await
                    .as_u64()
                    .unwrap_or(0);
                let (seen, since) = last.get();
                if count != seen {
                    last.set((count, Instant::now()));
                    return None;
                }
                (since.elapsed() >= quiet).then_some(())
            },
        )
        .await;
    }

    /// The URL, live state, collected errors and the start of the page text.
    pub async fn describe(&self) -> String {
        let state = self
            .client
            .execute(
                "return {
                   url: location.href,
                   ready: document.body && document.body.dataset.ready,
                   live: (document.querySelector('[data-live-state]') || {}).outerHTML || null,
                   errors: window.__dashboardErrors === undefined ? 'undefined'
                       : window.__dashboardErrors.map(String),
                   text: document.body ? document.body.innerText.slice(0, 3000) : null,
                 };",
                Vec::new(),
            )
            .await;
        match state {
            Ok(state) => format!(
                "page state: {}",
                serde_json::to_string_pretty(&state).unwrap_or_default()
            ),
            Err(e) => format!("page state unavailable: {e}"),
        }
    }

    /// Panics unless `window.__dashboardErrors` is an empty array: the app collects every
    /// uncaught error, unhandled rejection and `console.error` there (DOM contract).
    pub async fn assert_no_errors(&self) {
        let errors = self
            .js("return Array.isArray(window.__dashboardErrors)
                     ? window.__dashboardErrors.map(e => (e && e.stack) || String(e))
                     : 'window.__dashboardErrors is not an array';")
            .await;
        assert_eq!(
            errors,
            json!([]),
            "the dashboard reported errors\n{}",
            self.describe().await
        );
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        self.client.screenshot().await.expect("screenshot")
    }

    /// Every request the page sent since the previous call, from Chromium's performance log
    /// (needs `network_log` at start): `(url, request headers)`. The log endpoint is a
    /// chromedriver extension fantoccini has no method for, so it is called directly.
    pub async fn requests(&self) -> Vec<(String, Value)> {
        let session = self
            .client
            .session_id()
            .await
            .expect("session id")
            .expect("a session");
        let url = format!("http://{}/session/{session}/se/log", self.driver_addr);
        let mut response = awc::Client::builder()
            .timeout(Duration::from_secs(30))
            .finish()
            .post(&url)
            .send_json(&json!({"type": "performance"}))
            .await
            .expect("performance log request");
        let body: Value = response
            .json()
            .limit(256 << 20)
            .await
            .expect("performance log is JSON");
        let entries = body["value"]
            .as_array()
            .unwrap_or_else(|| panic!("performance log: unexpected answer {body}"));
        let mut requests = Vec::new();
        for entry in entries {
            let Some(message) = entry["message"].as_str() else {
                continue;
            };
            let Ok(message) = serde_json::from_str::<Value>(message) else {
                continue;
            };
            let message = &message["message"];
            if message["method"] == "Network.requestWillBeSent" {
                let request = &message["params"]["request"];
                if let Some(url) = request["url"].as_str() {
                    requests.push((url.to_owned(), request["headers"].clone()));
                }
            }
        }
        requests
    }

    /// The directory the browser saves downloads in (empty at start).
    pub fn downloads(&self) -> PathBuf {
        self.dir.path().join("downloads")
    }

    /// Ends the WebDriver session (Chromium quits); chromedriver is killed on drop.
    pub async fn close(self) {
        let _ = tokio::time::timeout(Duration::from_secs(10), self.client.clone().close()).await;
    }
}

/// The default bound of a wait: generous for a busy 2-core CI machine, short enough that a
/// broken feature fails the run in seconds rather than minutes.
pub const WAIT: Duration = Duration::from_secs(15);

/// The last `max` bytes of `text` (on a character boundary).
fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// Kills chromedriver's process group: chromedriver and every Chromium process it started.
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&mut self.driver);
        // The profile directory goes with `dir`; keep it alive until Chromium is gone.
        let _ = self.dir.path();
    }
}
