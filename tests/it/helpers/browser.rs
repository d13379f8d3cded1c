//! A real browser for the page tests: Debian's `chromium`, headless, driven over
//! WebDriver through `chromedriver` with fantoccini.
//!
//! [`Browser::start`] starts a chromedriver of its own on 127.0.0.1 (`--port=0`, the
//! port read back from its first lines) and one session in it: a temporary profile,
//! `--no-sandbox` when running as root, a desktop window of 1280x900. Dropping the
//! [`Browser`] ends the session (chromium quits) and kills that chromedriver, also
//! when a test panics. Every wait polls the page with a deadline ([`WAIT`]).
//!
//! Without chromium or chromedriver the tests skip with a message; with
//! `BOOKCAL_REQUIRE_BROWSER=1` (CI sets it) they fail instead. `BOOKCAL_CHROMIUM` and
//! `BOOKCAL_CHROMEDRIVER` name other binaries. With `BOOKCAL_SCREENSHOTS=DIR`,
//! [`Browser::page`] writes a full-page PNG of each page at both widths into DIR.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// How long any wait for the page polls before the test fails.
pub const WAIT: Duration = Duration::from_secs(30);

/// The desktop window (CSS pixels).
pub const DESKTOP: (u32, u32) = (1280, 900);
/// The phone window: an iPhone X/11 Pro/12 mini's viewport (CSS pixels).
pub const PHONE: (u32, u32) = (375, 812);

/// At most this many browsers at once: each is a chromium with its renderers, and
/// the suite runs its tests in parallel on small machines.
static BROWSERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// A chromedriver process of our own, killed on drop.
struct Chromedriver {
    child: Child,
    port: u16,
    /// What it printed, for failure messages.
    log: Arc<Mutex<String>>,
    /// The WebDriver session in it, ended on drop so chromium quits with it.
    session: Option<String>,
}

impl Chromedriver {
    async fn start(exe: &Path) -> Chromedriver {
        let mut child = Command::new(exe)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
        let log = Arc::new(Mutex::new(String::new()));
        let (port_tx, port_rx) = tokio::sync::oneshot::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stdout_log = log.clone();
        std::thread::spawn(move || {
            let mut port_tx = Some(port_tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(port) = started_on_port(&line) {
                    if let Some(tx) = port_tx.take() {
                        let _ = tx.send(port);
                    }
                }
                append(&stdout_log, &line);
            }
        });
        let stderr = child.stderr.take().expect("piped stderr");
        let stderr_log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                append(&stderr_log, &line);
            }
        });
        let port = match tokio::time::timeout(WAIT, port_rx).await {
            Ok(Ok(port)) => port,
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "chromedriver did not say which port it listens on:\n{}",
                    log.lock().map(|l| l.clone()).unwrap_or_default()
                );
            }
        };
        Chromedriver {
            child,
            port,
            log,
            session: None,
        }
    }

    fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Ends the session with a plain blocking request (drop cannot await): chromium
    /// quits with its session, and would outlive a killed chromedriver otherwise.
    fn end_session(&mut self) {
        let Some(id) = self.session.take() else {
            return;
        };
        let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return;
        };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
        let request = format!(
            "DELETE /session/{id} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        );
        if conn.write_all(request.as_bytes()).is_ok() {
            // The answer comes once chromium is gone.
            let mut answer = Vec::new();
            let _ = conn.read_to_end(&mut answer);
        }
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        self.end_session();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn append(log: &Mutex<String>, line: &str) {
    if let Ok(mut log) = log.lock() {
        log.push_str(line);
        log.push('\n');
    }
}

/// The port in chromedriver's "ChromeDriver was started successfully on port N." line.
fn started_on_port(line: &str) -> Option<u16> {
    let rest = line.split("started successfully on port ").nth(1)?;
    rest.trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()
}

/// `name` on `PATH`, or the binary an environment variable names.
fn binary(var: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(var) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's effective user.
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// One headless chromium session against the service at `base`.
pub struct Browser {
    client: Client,
    base: String,
    /// `BOOKCAL_SCREENSHOTS`, where [`Browser::page`] writes.
    shots: Option<PathBuf>,
    /// How much wider and taller the window is than its viewport.
    frame: (AtomicU64, AtomicU64),
    // Dropped in this order: the session and chromedriver, then the profile.
    driver: Chromedriver,
    _profile: tempfile::TempDir,
    _permit: tokio::sync::SemaphorePermit<'static>,
}

impl Browser {
    /// A browser on the desktop window, or `None` (with a message) when chromium or
    /// chromedriver is missing and `BOOKCAL_REQUIRE_BROWSER` is not set.
    pub async fn start(base: &str) -> Option<Browser> {
        Browser::start_with(base, true).await
    }

    /// [`Browser::start`] with the page's scripts on or off (off: as for a person
    /// who disabled JavaScript; the test can still run its own scripts).
    pub async fn start_with(base: &str, javascript: bool) -> Option<Browser> {
        let tools = (
            binary("BOOKCAL_CHROMEDRIVER", &["chromedriver"]),
            binary("BOOKCAL_CHROMIUM", &["chromium", "chromium-browser"]),
        );
        let (Some(chromedriver), Some(chromium)) = tools else {
            if std::env::var("BOOKCAL_REQUIRE_BROWSER").as_deref() == Ok("1") {
                panic!(
                    "BOOKCAL_REQUIRE_BROWSER=1 but chromium or chromedriver is missing \
                     (apt-get install chromium chromium-driver)"
                );
            }
            eprintln!(
                "skipping: chromium or chromedriver is missing \
                 (apt-get install chromium chromium-driver, or set BOOKCAL_CHROMIUM/BOOKCAL_CHROMEDRIVER)"
            );
            return None;
        };
        let permit = BROWSERS
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let mut driver = Chromedriver::start(&chromedriver).await;
        let profile = tempfile::tempdir().expect("temporary browser profile");
        let mut args = vec![
            "--headless=new".to_string(),
            format!("--user-data-dir={}", profile.path().display()),
            format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
            "--force-device-scale-factor=1".into(),
            "--hide-scrollbars".into(),
            "--lang=en-US".into(),
            "--no-first-run".into(),
            "--no-default-browser-check".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-extensions".into(),
            "--disable-background-networking".into(),
            "--password-store=basic".into(),
        ];
        if running_as_root() {
            args.push("--no-sandbox".into());
        }
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.display().to_string(),
                "args": args,
                "prefs": {
                    "profile.managed_default_content_settings.javascript":
                        if javascript { 1 } else { 2 },
                },
            },
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object literal")
        };
        let webdriver = format!("http://127.0.0.1:{}", driver.port);
        let client =
            match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(capabilities)
                .connect(&webdriver)
                .await
            {
                Ok(client) => client,
                Err(e) => panic!(
                    "cannot start a chromium session: {e}\nchromedriver said:\n{}",
                    driver.log()
                ),
            };
        driver.session = client.session_id().await.expect("session id");
        let browser = Browser {
            client,
            base: base.trim_end_matches('/').to_string(),
            shots: std::env::var_os("BOOKCAL_SCREENSHOTS").map(PathBuf::from),
            frame: (AtomicU64::new(0), AtomicU64::new(0)),
            driver,
            _profile: profile,
            _permit: permit,
        };
        browser.resize(DESKTOP).await;
        Some(browser)
    }

    /// Grants the page a permission (`clipboard-read`, say) through chromedriver's
    /// WebDriver permissions command.
    pub async fn grant(&self, permission: &str) {
        self.client
            .issue_cmd(SetPermission(permission.to_string()))
            .await
            .unwrap_or_else(|e| panic!("grant {permission}: {e}"));
    }

    /// Presses Tab once (a real key press: the focus moves as for a person).
    pub async fn tab(&self) {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        use fantoccini::key::Key;
        let press = KeyActions::new("keyboard".into())
            .then(KeyAction::Down {
                value: Key::Tab.into(),
            })
            .then(KeyAction::Up {
                value: Key::Tab.into(),
            });
        self.client.perform_actions(press).await.expect("press Tab");
    }

    /// The WebDriver client, for what the helpers here do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Ends the session (chromium quits) and chromedriver.
    pub async fn close(mut self) {
        if self.driver.session.take().is_some() {
            let _ = self.client.clone().close().await;
        }
    }

    /// Opens `path` (under the service's base URL, or an absolute URL).
    pub async fn goto(&self, path: &str) {
        let url = if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{}", self.base, path)
        };
        self.client
            .goto(&url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// The path (and query) of the current page.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("current url");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        }
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) and returns its value.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Polls `script` (a function body) until it returns something other than
    /// `null`, `undefined` or `false`, and returns that; fails the test after
    /// [`WAIT`], saying `what` was awaited and where the browser is.
    pub async fn wait_js(&self, what: &str, script: &str, args: Vec<Value>) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let last = self.client.execute(script, args.clone()).await;
            if let Ok(v) = &last {
                if !v.is_null() && v != &Value::Bool(false) {
                    return v.clone();
                }
            }
            if tokio::time::Instant::now() >= deadline {
                let at = self.path().await;
                let text = self.text("body").await;
                panic!(
                    "waited {WAIT:?} for {what} on {at} (last: {last:?}); the page says:\n{text}"
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until the page shows an element matching `css` and returns it.
    pub async fn find(&self, css: &str) -> Element {
        self.wait_js(
            &format!("an element `{css}`"),
            "return document.querySelector(arguments[0]) !== null;",
            vec![json!(css)],
        )
        .await;
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("find {css}: {e}"))
    }

    /// Whether the page has an element matching `css` now (no waiting).
    pub async fn has(&self, css: &str) -> bool {
        self.js(
            "return document.querySelector(arguments[0]) !== null;",
            vec![json!(css)],
        )
        .await
            == Value::Bool(true)
    }

    /// The visible text of the first element matching `css` (waiting for it).
    pub async fn text(&self, css: &str) -> String {
        let v = self
            .client
            .execute(
                "const e = document.querySelector(arguments[0]); return e ? e.innerText : null;",
                vec![json!(css)],
            )
            .await;
        match v {
            Ok(Value::String(s)) => s,
            _ => String::new(),
        }
    }

    /// Waits until an element matching `css` contains `text`.
    pub async fn wait_text(&self, css: &str, text: &str) {
        self.wait_js(
            &format!("a `{css}` containing {text:?}"),
            "return [...document.querySelectorAll(arguments[0])]\
               .some(e => e.innerText.includes(arguments[1]));",
            vec![json!(css), json!(text)],
        )
        .await;
    }

    /// Waits until the current path starts with `prefix` and the page is loaded.
    pub async fn wait_path(&self, prefix: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let path = self.path().await;
            let ready = self
                .client
                .execute("return document.readyState === 'complete';", vec![])
                .await;
            if path.starts_with(prefix) && matches!(ready, Ok(Value::Bool(true))) {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!("waited {WAIT:?} for a page under {prefix}; still on {path}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Clicks the element matching `css` (waiting for it).
    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Clicks the first element matching `css` whose text contains `text` (a
    /// button or link named by what it says, as a person finds it).
    pub async fn click_text(&self, css: &str, text: &str) {
        self.wait_js(
            &format!("a `{css}` saying {text:?}"),
            "return [...document.querySelectorAll(arguments[0])]\
               .some(e => (e.innerText || e.value || '').includes(arguments[1]));",
            vec![json!(css), json!(text)],
        )
        .await;
        let all = self
            .client
            .find_all(Locator::Css(css))
            .await
            .expect("find elements");
        for e in all {
            let label = e.text().await.unwrap_or_default();
            let value = e.prop("value").await.ok().flatten().unwrap_or_default();
            if label.contains(text) || value.contains(text) {
                e.click()
                    .await
                    .unwrap_or_else(|err| panic!("click {css} {text:?}: {err}"));
                return;
            }
        }
        panic!("no `{css}` saying {text:?} any more");
    }

    /// Types `value` into the field matching `css` (waiting for it), replacing
    /// what it held.
    pub async fn fill(&self, css: &str, value: &str) {
        let field = self.find(css).await;
        field.clear().await.expect("clear the field");
        field
            .send_keys(value)
            .await
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// The window's inner size in CSS pixels.
    pub async fn viewport(&self) -> (u64, u64) {
        let v = self
            .js("return [window.innerWidth, window.innerHeight];", vec![])
            .await;
        (
            v[0].as_u64().expect("innerWidth"),
            v[1].as_u64().expect("innerHeight"),
        )
    }

    /// Sets the viewport to `size` CSS pixels. The window is larger than its
    /// viewport by a frame (headless chromium draws none, but still counts its
    /// height), learnt on the first resize; the new size reaches the page a moment
    /// later, so the viewport is polled until it matches.
    pub async fn resize(&self, size: (u32, u32)) {
        use std::sync::atomic::Ordering::Relaxed;
        let want = (u64::from(size.0), u64::from(size.1));
        let mut got = (0, 0);
        for _ in 0..3 {
            let frame = (self.frame.0.load(Relaxed), self.frame.1.load(Relaxed));
            let outer = (want.0 + frame.0, want.1 + frame.1);
            self.client
                .set_window_size(outer.0 as u32, outer.1 as u32)
                .await
                .expect("set the window size");
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            loop {
                got = self.viewport().await;
                if got == want {
                    return;
                }
                if tokio::time::Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            self.frame.0.store(outer.0.saturating_sub(got.0), Relaxed);
            self.frame.1.store(outer.1.saturating_sub(got.1), Relaxed);
        }
        panic!(
            "cannot give the window a {}x{} viewport (got {got:?})",
            want.0, want.1
        );
    }

    /// How far the current page is wider than the viewport (0: no horizontal
    /// scrolling), with the widest element sticking out, for the failure message.
    pub async fn overflow(&self) -> (i64, String) {
        let v = self
            .js(
                "const d = document.scrollingElement;\
                 const over = d.scrollWidth - window.innerWidth;\
                 let widest = '';\
                 if (over > 0) {\
                   let max = window.innerWidth;\
                   for (const e of document.body.querySelectorAll('*')) {\
                     const r = e.getBoundingClientRect();\
                     if (r.right > max) { max = r.right;\
                       widest = e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +\
                         (e.className && typeof e.className === 'string' ? '.' + e.className.trim().split(/\\s+/).join('.') : '') +\
                         ' (right edge ' + Math.round(r.right) + 'px)'; }\
                   }\
                 }\
                 return [over, widest];",
                vec![],
            )
            .await;
        (
            v[0].as_i64().expect("overflow"),
            v[1].as_str().unwrap_or_default().to_string(),
        )
    }

    /// Records the current page: at phone width it must not scroll sideways; with
    /// `BOOKCAL_SCREENSHOTS` set, a full-page PNG at desktop and at phone width is
    /// written as `{name}-desktop.png` and `{name}-phone.png`. Leaves the window at
    /// desktop width.
    pub async fn page(&self, name: &str) {
        self.resize(PHONE).await;
        let (over, widest) = self.overflow().await;
        let at = self.path().await;
        assert!(
            over <= 0,
            "{name} ({at}) scrolls sideways by {over}px at phone width; widest: {widest}"
        );
        self.screenshot(name, "phone", PHONE).await;
        self.resize(DESKTOP).await;
        self.screenshot(name, "desktop", DESKTOP).await;
    }

    /// Writes a full-page screenshot at the current width when asked to: the
    /// window is made as tall as the page, then given back its height.
    async fn screenshot(&self, name: &str, width_name: &str, size: (u32, u32)) {
        let Some(dir) = &self.shots else { return };
        let height = self
            .js(
                "return Math.ceil(document.scrollingElement.scrollHeight);",
                vec![],
            )
            .await
            .as_u64()
            .unwrap_or(u64::from(size.1));
        let tall = height.clamp(u64::from(size.1), 8000) as u32;
        self.resize((size.0, tall)).await;
        let png = self.client.screenshot().await.expect("screenshot");
        self.resize(size).await;
        std::fs::create_dir_all(dir).expect("create the screenshot directory");
        let file = dir.join(format!("{name}-{width_name}.png"));
        std::fs::write(&file, png).unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
    }

    /// The element that has the keyboard focus: its tag, text, and whether its
    /// focus is visible (an outline, or a box shadow, drawn by the page's style).
    pub async fn focused(&self) -> Value {
        self.js(
            "const e = document.activeElement;\
             if (!e || e === document.body) return null;\
             const s = getComputedStyle(e);\
             const outline = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0;\
             const shadow = s.boxShadow && s.boxShadow !== 'none';\
             return { tag: e.tagName.toLowerCase(), id: e.id,\
                      text: (e.innerText || e.value || e.getAttribute('aria-label') || '').trim(),\
                      visible: outline || shadow,\
                      outline: s.outlineStyle + ' ' + s.outlineWidth + ' ' + s.outlineColor };",
            vec![],
        )
        .await
    }
}

/// `POST /session/{id}/permissions` (the W3C Permissions extension to WebDriver).
#[derive(Debug)]
struct SetPermission(String);

impl fantoccini::wd::WebDriverCompatibleCommand for SetPermission {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/permissions",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        let body = json!({"descriptor": {"name": self.0}, "state": "granted"});
        (axum::http::Method::POST, Some(body.to_string()))
    }
}

#[test]
fn chromedrivers_start_line_names_its_port() {
    for (line, want) in [
        (
            "ChromeDriver was started successfully on port 40051.",
            Some(40051),
        ),
        (
            "ChromeDriver was started successfully on port 9515",
            Some(9515),
        ),
        ("Starting ChromeDriver 156.0 on port 0", None),
        ("Only local connections are allowed.", None),
    ] {
        assert_eq!(started_on_port(line), want, "{line}");
    }
}
