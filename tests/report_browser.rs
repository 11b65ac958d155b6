//! `buildlog report --html` in a real headless Chromium (Debian's `chromium`, driven by
//! Python Playwright through `tests/browser/report_html.py`): every feature and command drawn,
//! failed ones marked, the tooltip, the zoom, no console errors, no network requests.
//! `scripts/test` installs both; without them the test says what it skipped, and with `CI`
//! set it fails. `BUILDLOG_UPDATE_DOCS=1` writes build 13's screenshot to
//! `docs/report-timeline.png`.

mod common;

use common::{bin, corpus};
use std::path::Path;
use std::process::Command;

const CHROMIUM: &str = "/usr/bin/chromium";

fn browser_available() -> Result<(), String> {
    if !Path::new(CHROMIUM).exists() {
        return Err(format!(
            "{CHROMIUM} not installed (apt-get install chromium)"
        ));
    }
    let ok = Command::new("python3")
        .args(["-c", "import playwright.sync_api"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        return Err("python3 playwright not installed (pip install playwright)".into());
    }
    Ok(())
}

fn check_page(build: &str, screenshot: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    let json = dir.path().join("report.json");
    let out = bin()
        .args(["report", "-q", "--json", "--html"])
        .arg(&html)
        .arg(corpus().join(build))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&json, &out.stdout).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/report_html.py");
    let out = Command::new("python3")
        .arg(script)
        .arg("--html")
        .arg(&html)
        .arg("--json")
        .arg(&json)
        .arg("--screenshot")
        .arg(screenshot)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{build}: {stdout}{stderr}");
    assert!(stdout.contains("report_html.py: ok"), "{stdout}");
    eprintln!("{build}: {}", stdout.trim());
}

#[test]
fn the_html_timeline_in_chromium() {
    if let Err(why) = browser_available() {
        if std::env::var_os("CI").is_some() {
            panic!("CI is set and the browser test cannot run: {why}");
        }
        eprintln!("skipped: {why}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    check_page("build-02-failure", &tmp.path().join("02.png"));
    let shot = if std::env::var_os("BUILDLOG_UPDATE_DOCS").is_some() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/report-timeline.png")
    } else {
        tmp.path().join("13.png")
    };
    check_page("build-13-large", &shot);
}
