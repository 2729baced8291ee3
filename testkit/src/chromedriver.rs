//! Debian's `chromedriver` on a free loopback port, and the capabilities that start
//! Debian's Chromium headless and offline, for browser tests of pages served on loopback.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tempfile::TempDir;

use crate::names::temp_dir;
use crate::process::spawn_tied_to_process;

/// The WebDriver server of Debian's `chromium-driver` package.
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The browser binary of Debian's `chromium` package. `/usr/bin/chromium` is a shell
/// wrapper that adds flags from `/etc/chromium.d`, such as remote extensions, so the
/// tests start the binary itself with their own flags.
const CHROMIUM: &str = "/usr/lib/chromium/chromium";

const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Line that chromedriver prints once it listens, followed by the port and a period.
const STARTED_MARKER: &str = "started successfully on port ";

/// Chromium flags that keep the browser from reaching any address but loopback: no
/// background services, updates, sync, metrics upload or safe-browsing lists. Every host
/// but `localhost`, `127.0.0.1` and `[::1]` fails to resolve, IP literals included, and
/// requests to other hosts go to a proxy on a loopback port where nothing listens, since
/// Chromium sends loopback requests past a proxy.
///
/// A net log of Chromium 156 on Debian 12 with these flags showed that it still starts an
/// update check and an account list request, which fail at that proxy. To learn whether
/// IPv6 works it also connects a UDP socket to a public address, which sends no packet.
const OFFLINE_FLAGS: &[&str] = &[
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--metrics-recording-only",
    "--disable-breakpad",
    "--disable-crash-reporter",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--safebrowsing-disable-auto-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-component-extensions-with-background-pages",
    "--disable-field-trial-config",
    "--no-pings",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-features=OptimizationHints,Translate,MediaRouter,DialMediaRouteProvider,\
     AutofillServerCommunication,CertificateTransparencyComponentUpdater,\
     NetworkTimeServiceQuerying",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1, EXCLUDE [::1]",
    "--proxy-server=http://127.0.0.1:9",
];

/// A running chromedriver. `Drop` kills it with every browser it started; it also dies
/// with the test process, though browsers it started may then outlive it.
pub struct ChromeDriver {
    child: Child,
    url: String,
    dir: TempDir,
}

impl ChromeDriver {
    /// Starts chromedriver on a free loopback port. Panics when `chromium-driver` or
    /// `chromium` is not installed, naming the packages to install.
    pub fn start() -> Self {
        for path in [CHROMEDRIVER, CHROMIUM] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: install the Debian packages chromium and chromium-driver \
                 (bash scripts/setup does)"
            );
        }

        let dir = temp_dir("chromedriver");
        let output_path = dir.path().join("chromedriver.out");
        let output = fs::File::create(&output_path)
            .unwrap_or_else(|error| panic!("failed to create {}: {error}", output_path.display()));
        let stderr = output
            .try_clone()
            .unwrap_or_else(|error| panic!("failed to open {}: {error}", output_path.display()));

        let mut command = Command::new(CHROMEDRIVER);
        command
            .args(["--port=0", "--allowed-ips=127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(stderr)
            // A group of its own, so that Drop can kill the browsers with the driver.
            .process_group(0);
        let child = spawn_tied_to_process(command)
            .unwrap_or_else(|error| panic!("failed to start {CHROMEDRIVER}: {error}"));

        let mut driver = Self {
            child,
            url: String::new(),
            dir,
        };
        let port = driver.wait_for_port(&output_path);
        driver.url = format!("http://127.0.0.1:{port}");
        driver
    }

    /// Returns the WebDriver URL, such as `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Returns WebDriver capabilities that start Debian's Chromium headless, offline
    /// (see [`OFFLINE_FLAGS`]), with a fresh profile and a window of `width` × `height`
    /// CSS pixels at a device scale factor of 1.
    pub fn capabilities(&self, width: u32, height: u32) -> Map<String, Value> {
        let profile = self
            .dir
            .path()
            .join(format!("profile-{}", crate::names::unique_name("chromium")));
        let mut args: Vec<String> = vec![
            "--headless".to_owned(),
            // The tests run as root, where Chromium starts only without its sandbox.
            "--no-sandbox".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-gpu".to_owned(),
            "--force-device-scale-factor=1".to_owned(),
            "--lang=en-US".to_owned(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.display()),
        ];
        args.extend(OFFLINE_FLAGS.iter().map(|flag| (*flag).to_owned()));

        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": args,
            },
        });
        match capabilities {
            Value::Object(map) => map,
            _ => unreachable!("the capabilities are a JSON object"),
        }
    }

    /// Returns what chromedriver has printed so far, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.output_path()).unwrap_or_default()
    }

    fn output_path(&self) -> PathBuf {
        self.dir.path().join("chromedriver.out")
    }

    fn wait_for_port(&mut self, output_path: &Path) -> u16 {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let output = fs::read_to_string(output_path).unwrap_or_default();
            if let Some(port) = started_port(&output) {
                return port;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("chromedriver exited with {status} before it listened:\n{output}");
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen within {START_TIMEOUT:?}:\n{output}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // The negative pid names the process group that chromedriver leads, so the
        // browsers it started die with it.
        let group = -(self.child.id() as libc::pid_t);
        // SAFETY: kill has no memory-safety preconditions; the group is one this value
        // created and has not yet reaped.
        unsafe {
            libc::kill(group, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// Finds the port in chromedriver's output line `… started successfully on port N.`.
fn started_port(output: &str) -> Option<u16> {
    let (_, rest) = output.split_once(STARTED_MARKER)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn started_port_from_output() {
        let output = "Starting ChromeDriver 156.0.8078.114 on port 0\n\
            Only local connections are allowed.\n\
            ChromeDriver was started successfully on port 42325.\n";

        assert_eq!(started_port(output), Some(42325));
    }

    #[test]
    fn started_port_missing() {
        assert_eq!(started_port("Starting ChromeDriver on port 0\n"), None);
    }
}
