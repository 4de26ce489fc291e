//! The console in a real browser: headless Debian chromium driven by playwright-core
//! (`tests/browser/console.mjs`) against a real influxd — the form, a wrong and a right
//! connectivity check, a bad value and an unreachable TDengine shown at their fields, the task
//! added and watched to 100% with its charts, Verify equal; a task that keeps syncing, its
//! charts moving while it runs. Afterwards the target holds every row. The screenshot of the
//! running task is kept in
//! `target/console-screenshot.png`. Needs `chromium` and `npm ci` in tests/browser
//! (`.ci/run` installs both); without them the test says it was skipped (and fails under CI).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use influx2td_testkit::{Influxd, KillOnDrop};
use influx2td_writer::replay::replay_directory;

mod common;
use common::{free_port, terminate, wait_for_http};

const PASSWORD: &str = "Browser-Sentinel-Pw-2231";
const T0: i64 = 1_700_000_000_000_000_000;
const ROWS: i64 = 240;
/// Points of the last minutes, for the task that keeps syncing.
const LIVE_ROWS: i64 = 60;
/// Two more rows, in a measurement named like an HTML element with a script.
const HOSTILE: &str = "<img src=x onerror=window.hacked=1>";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/browser")
}

/// The browser and the driver, or why not.
fn tools() -> Result<PathBuf, String> {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
        .ok_or("chromium is not installed (apt-get install chromium)")?;
    if !browser_dir().join("node_modules/playwright-core").exists() {
        return Err("playwright-core is not installed (npm ci in tests/browser)".into());
    }
    Ok(chromium)
}

#[test]
fn a_person_adds_a_task_in_the_browser_and_watches_it_finish() {
    let chromium = match tools() {
        Ok(chromium) => chromium,
        Err(why) => {
            assert!(
                std::env::var("CI").is_err(),
                "browser test cannot run: {why}"
            );
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
    let Some(influxd) = Influxd::with_reader("db", "copier", PASSWORD) else {
        return;
    };
    let lines: String = (0..ROWS)
        .map(|n| {
            let measurement = if n % 2 == 0 { "mem" } else { "cpu" };
            format!(
                "{measurement},host=h{} value={n}i {}\n",
                n % 3,
                T0 + n * 1_000_000_000
            )
        })
        .collect();
    influxd.write("db", &lines);
    // A measurement whose name is markup: the page must show it as text, never run it.
    let escaped = HOSTILE.replace(' ', "\\ ");
    influxd.write(
        "db",
        &format!(
            "{escaped} value=1i {T0}\n{escaped} value=2i {}\n",
            T0 + 1_000_000_000
        ),
    );

    // Recent points, for the task that keeps syncing: from four minutes ago, one a second.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        * 1_000_000_000;
    let live: String = (0..LIVE_ROWS)
        .map(|n| {
            format!(
                "cpu,host=h0 value={n}i {}\n",
                now - 240_000_000_000 + n * 1_000_000_000
            )
        })
        .collect();
    influxd.write("db", &live);

    let directory = tempfile::tempdir().unwrap();
    let target = directory.path().join("target");
    let port = free_port();
    let mut console = KillOnDrop(
        common::influx2td()
            .args([
                "console",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--state-dir",
            ])
            .arg(directory.path().join("state"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_http(port, "the console");
    // datetime-local wants `YYYY-MM-DDTHH:MM:SS`, taken as UTC by the page.
    let local = |ns: i64| {
        influx2td_config::format_time(ns)
            .trim_end_matches('Z')
            .to_owned()
    };
    let screenshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/console-screenshot.png");
    let output = Command::new("node")
        .arg(browser_dir().join("console.mjs"))
        .env("CONSOLE_URL", format!("http://127.0.0.1:{port}/"))
        .env("INFLUX_PORT", influxd.http_port().to_string())
        .env("INFLUX_PASSWORD", PASSWORD)
        .env("TARGET_DIR", &target)
        .env("BEGIN", local(T0))
        .env("END", local(T0 + ROWS * 1_000_000_000))
        .env("ROWS", (ROWS + 2).to_string())
        .env("LIVE_BEGIN", local(now - 300_000_000_000))
        .env("LIVE_ROWS", LIVE_ROWS.to_string())
        .env("CLOSED_PORT", free_port().to_string())
        .env("HOSTILE", HOSTILE)
        .env("SCREENSHOT", &screenshot)
        .env("CHROMIUM", &chromium)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let model = replay_directory(&target).unwrap();
    assert_eq!(
        model.tables.values().map(|t| t.rows.len()).sum::<usize>(),
        ROWS as usize + 2
    );
    assert!(std::fs::metadata(&screenshot).unwrap().len() > 10_000);
    terminate(&mut console.0);
}
