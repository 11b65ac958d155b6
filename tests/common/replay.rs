//! Writes a finished corpus build into a directory the way the logging library writes it,
//! for the tests that follow a build while it is written.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What a text line of an install log makes the JSON logger write next.
fn trigger(line: &str) -> Option<&'static str> {
    let bracketed = line.len() > 11 && line.starts_with('[') && &line[9..11] == "] ";
    if line.starts_with("Exit code:") {
        Some("command")
    } else if bracketed && line[11..].starts_with("WARNING:") {
        Some("warning")
    } else if bracketed && line[11..].starts_with("ERROR:") {
        Some("error")
    } else if line.starts_with("End Time:") {
        Some("feature_end")
    } else {
        None
    }
}

fn event_type(json_line: &str) -> String {
    let i = json_line.find("\"event_type\":\"").map(|i| i + 14);
    i.and_then(|i| json_line[i..].split('"').next().map(str::to_string))
        .unwrap_or_default()
}

pub fn start_time(install_log: &Path) -> String {
    std::fs::read_to_string(install_log)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Start Time: ").map(str::to_string))
        .unwrap_or_default()
}

fn appender(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

fn lines_of(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap_or_default();
    let mut v: Vec<Vec<u8>> = bytes
        .split_inclusive(|b| *b == b'\n')
        .map(<[u8]>::to_vec)
        .collect();
    if v.last().is_some_and(|l| l.is_empty()) {
        v.pop();
    }
    v
}

/// Writes the build `src` into `dst` as the library does: metadata first; features in the
/// order they started, each install log line by line with its JSON lines right after the
/// text lines they repeat; a feature's summary and errors logs, its master-summary and
/// build-summary lines when it ends; `build-failure.log` last.
pub fn replay(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    let json_src = src.join("json");
    let has_json = json_src.is_dir();
    if has_json {
        std::fs::create_dir_all(dst.join("json")).unwrap();
        if json_src.join("build-metadata.json").exists() {
            std::fs::copy(
                json_src.join("build-metadata.json"),
                dst.join("json/build-metadata.json"),
            )
            .unwrap();
        }
    }
    let mut features: Vec<(String, PathBuf, String)> = std::fs::read_dir(src)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            let name = p.file_name()?.to_string_lossy().to_string();
            let slug = name.strip_suffix("-install.log")?.to_string();
            Some((start_time(&p), p, slug))
        })
        .collect();
    features.sort();
    let master = lines_of(&src.join("master-summary.log"));
    let summaries = lines_of(&json_src.join("build-summary.jsonl"));
    let mut master_out = None;
    let mut summary_out = None;
    for (_, path, slug) in &features {
        let name = path.file_name().unwrap();
        let mut text = appender(&dst.join(name));
        let json_lines = lines_of(&json_src.join(format!("{slug}.jsonl")));
        let mut json_out =
            (!json_lines.is_empty()).then(|| appender(&dst.join(format!("json/{slug}.jsonl"))));
        let mut next_json = 0;
        let (mut seen_start, mut past_header) = (false, false);
        for line in lines_of(path) {
            text.write_all(&line).unwrap();
            let s = String::from_utf8_lossy(&line);
            let s = s.trim_end();
            seen_start |= s.starts_with("Start Time:");
            let t = if seen_start && !past_header && s.starts_with("=====") {
                past_header = true;
                Some("feature_start")
            } else {
                trigger(s)
            };
            if let Some(t) = t {
                if next_json < json_lines.len()
                    && event_type(&String::from_utf8_lossy(&json_lines[next_json])) == t
                {
                    json_out
                        .as_mut()
                        .unwrap()
                        .write_all(&json_lines[next_json])
                        .unwrap();
                    next_json += 1;
                }
            }
        }
        if let Some(out) = json_out.as_mut() {
            for l in &json_lines[next_json..] {
                out.write_all(l).unwrap();
            }
        }
        for twin in ["summary", "errors"] {
            let p = src.join(format!("{slug}-{twin}.log"));
            if p.exists() {
                std::fs::copy(&p, dst.join(format!("{slug}-{twin}.log"))).unwrap();
            }
        }
        let feature = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .find_map(|l| {
                l.strip_prefix("Feature Installation Log: ")
                    .map(str::to_string)
            })
            .unwrap_or_default();
        for l in master
            .iter()
            .filter(|l| l.starts_with(format!("{feature}:").as_bytes()))
        {
            master_out
                .get_or_insert_with(|| appender(&dst.join("master-summary.log")))
                .write_all(l)
                .unwrap();
        }
        let needle = format!("\"feature\":\"{feature}\"");
        for l in summaries
            .iter()
            .filter(|l| String::from_utf8_lossy(l).contains(&needle))
        {
            summary_out
                .get_or_insert_with(|| appender(&dst.join("json/build-summary.jsonl")))
                .write_all(l)
                .unwrap();
        }
    }
    // Whatever the per-feature matching left out (lines of no feature), in order.
    for (from, to) in [
        (
            src.join("master-summary.log"),
            dst.join("master-summary.log"),
        ),
        (
            json_src.join("build-summary.jsonl"),
            dst.join("json/build-summary.jsonl"),
        ),
    ] {
        let want = lines_of(&from);
        let have = lines_of(&to);
        if want.len() != have.len() && !want.is_empty() {
            std::fs::write(&to, want.concat()).unwrap();
        }
    }
    if src.join("build-failure.log").exists() {
        std::fs::copy(src.join("build-failure.log"), dst.join("build-failure.log")).unwrap();
    }
}
