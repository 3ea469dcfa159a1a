//! Headless Chromium driven over the W3C WebDriver protocol by chromedriver (both from Debian,
//! installed by `make test`): enough to fill forms, click, read text and take screenshots.
//!
//! Chromium runs with no sandbox (CI containers have none), no GPU and no background network,
//! and every host name resolves to nothing, so the browser only ever reaches loopback IPs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

/// The W3C key under which an element reference comes.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long a lookup waits for its element (pages load and redirect in between).
pub const FIND_WAIT: Duration = Duration::from_secs(30);

/// A browser session.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
    shots: PathBuf,
    _profile: tempfile::TempDir,
}

fn binary(env: &str, default: &str) -> String {
    std::env::var(env).unwrap_or_else(|_| default.to_owned())
}

impl Browser {
    /// Starts chromedriver and a headless Chromium; screenshots go to `shots`.
    pub fn start(shots: &Path) -> Browser {
        let port = super::free_port();
        let driver = Command::new(binary("MOIP_CHROMEDRIVER", "/usr/bin/chromedriver"))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (make test installs Debian's chromium-driver)");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = agent
                .get(format!("{base}/status"))
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_to_string().ok())
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .is_some_and(|v| v["value"]["ready"] == true);
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-default-apps".into(),
            "--disable-extensions".into(),
            "--disable-sync".into(),
            "--no-first-run".into(),
            "--window-size=1200,1000".into(),
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": binary("MOIP_CHROMIUM", "/usr/bin/chromium"), "args": args},
        }}});
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
            agent,
            shots: shots.to_owned(),
            _profile: profile,
        };
        let reply = browser.call("POST", "/session", capabilities);
        browser.session = reply["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {reply}"))
            .to_owned();
        std::fs::create_dir_all(shots).expect("screenshot dir");
        browser
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = if path.starts_with("/session/") || path == "/session" {
            format!("{}{path}", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let mut response = match method {
            "GET" => self.agent.get(&url).call(),
            "DELETE" => self.agent.delete(&url).call(),
            _ => self
                .agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(body.to_string()),
        }
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let text = response
            .body_mut()
            .read_to_string()
            .expect("webdriver reply");
        let value: Value = serde_json::from_str(&text).expect("webdriver json");
        value["value"].clone()
    }

    /// Opens `url` and waits for it to load.
    pub fn goto(&self, url: &str) {
        let reply = self.call("POST", "/url", json!({ "url": url }));
        assert!(reply.is_null(), "navigate to {url}: {reply}");
    }

    /// The element at `css`, waiting for it to appear.
    pub fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + FIND_WAIT;
        loop {
            let reply = self.call(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            );
            if let Some(id) = reply[ELEMENT].as_str() {
                return id.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no element {css} on {}: {reply}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether an element matches `css` now.
    pub fn has(&self, css: &str) -> bool {
        let reply = self.call(
            "POST",
            "/elements",
            json!({"using": "css selector", "value": css}),
        );
        reply.as_array().is_some_and(|a| !a.is_empty())
    }

    /// Types `text` into the field at `css` (cleared first).
    pub fn fill(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.call("POST", &format!("/element/{id}/clear"), json!({}));
        let reply = self.call(
            "POST",
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        );
        assert!(reply.is_null(), "type into {css}: {reply}");
    }

    /// Clicks the element at `css`.
    pub fn click(&self, css: &str) {
        let id = self.find(css);
        let reply = self.call("POST", &format!("/element/{id}/click"), json!({}));
        assert!(reply.is_null(), "click {css}: {reply}");
    }

    /// The visible text of the element at `css`.
    pub fn text(&self, css: &str) -> String {
        let id = self.find(css);
        self.call("GET", &format!("/element/{id}/text"), Value::Null)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// An attribute of the element at `css`.
    pub fn attribute(&self, css: &str, name: &str) -> Option<String> {
        let id = self.find(css);
        self.call(
            "GET",
            &format!("/element/{id}/attribute/{name}"),
            Value::Null,
        )
        .as_str()
        .map(str::to_owned)
    }

    /// Waits until the element at `css` shows text containing `wanted`; returns the text.
    pub fn wait_text(&self, css: &str, wanted: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if self.has(css) {
                let text = self.text(css);
                if text.contains(wanted) {
                    return text;
                }
                assert!(
                    Instant::now() < deadline,
                    "{css} on {} says {text:?}, not {wanted:?}",
                    self.url()
                );
            } else {
                assert!(Instant::now() < deadline, "no {css} on {}", self.url());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The current URL.
    pub fn url(&self) -> String {
        self.call("GET", "/url", Value::Null)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Saves a screenshot as `<name>.png`; returns its path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let data = self.call("GET", "/screenshot", Value::Null);
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().expect("base64 png"))
            .expect("png");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self
                .agent
                .delete(format!("{}/session/{}", self.base, self.session))
                .call();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
