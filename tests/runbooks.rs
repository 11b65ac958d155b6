//! Every alert rule the project ships (Prometheus and Loki) has a runbook page, its
//! `runbook_url` points to it, and the page has the sections an on-call reader needs.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// Rule files: every YAML file under pipelines/ and loki/ that defines `- alert:` rules.
fn rule_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root().join("pipelines"), root().join("loki")];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yml" || x == "yaml")
                && !p.to_string_lossy().contains("/tests/")
                && std::fs::read_to_string(&p).unwrap().contains("- alert:")
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// (alert name, its runbook_url) for each rule of a file.
fn alerts(path: &Path) -> Vec<(String, Option<String>)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("- alert:") {
            out.push((name.trim().to_string(), None));
        } else if let Some(url) = t.strip_prefix("runbook_url:") {
            let url = url.trim().trim_matches('"').to_string();
            if let Some(last) = out.last_mut() {
                assert!(
                    last.1.is_none(),
                    "{}: two runbook_urls for {}",
                    path.display(),
                    last.0
                );
                last.1 = Some(url);
            }
        }
    }
    out
}

#[test]
fn every_shipped_alert_has_a_runbook() {
    let files = rule_files();
    assert!(files.len() >= 2, "{files:?}");
    let mut names = Vec::new();
    for f in &files {
        for (name, url) in alerts(f) {
            let url = url.unwrap_or_else(|| panic!("{}: {name} has no runbook_url", f.display()));
            assert_eq!(url, format!("docs/runbooks/{name}.md"), "{name}");
            let page = std::fs::read_to_string(root().join(&url))
                .unwrap_or_else(|e| panic!("{name}: {url}: {e}"));
            assert!(page.starts_with(&format!("# {name}\n")), "{url}");
            for section in [
                "## Description",
                "## Impact",
                "## Diagnosis",
                "## Resolution",
                "## Prevention",
            ] {
                assert!(page.contains(section), "{url} lacks {section}");
            }
            assert!(page.contains("| severity |"), "{url}");
            names.push(name);
        }
    }
    assert!(names.len() >= 10, "{names:?}");
    // And no runbook is left for an alert that no longer exists.
    for e in std::fs::read_dir(root().join("docs/runbooks")).unwrap() {
        let f = e.unwrap().file_name().to_string_lossy().to_string();
        if f == "README.md" {
            continue;
        }
        let n = f.trim_end_matches(".md");
        assert!(
            names.iter().any(|a| a == n),
            "docs/runbooks/{f} belongs to no alert"
        );
    }
}
