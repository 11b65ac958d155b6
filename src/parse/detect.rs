//! Format detection: from the file name where it is the logger's own, else from content.

use super::Format;

/// Detects the format of an input from its name (may be empty) and its first bytes.
pub fn detect(name: &str, head: &[u8]) -> Format {
    let base = name.rsplit('/').next().unwrap_or(name);
    let base = base.strip_suffix(".gz").unwrap_or(base);
    if base.ends_with("-install.log") {
        return Format::InstallLog;
    }
    if base == "master-summary.log" {
        return Format::MasterSummary;
    }
    if base == "build-failure.log" {
        return Format::BuildFailure;
    }
    if base.ends_with(".jsonl") || base == "build-metadata.json" {
        return Format::Json;
    }
    let text = String::from_utf8_lossy(&head[..head.len().min(64 * 1024)]);
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if text.contains("Feature Installation Log: ") && first.starts_with("=====") {
        return Format::InstallLog;
    }
    if first.starts_with(">>> BUILD FAILURE") {
        return Format::BuildFailure;
    }
    if first.starts_with('{') {
        return Format::Json;
    }
    if super::master_summary::is_master_line(first.trim_end()) {
        return Format::MasterSummary;
    }
    Format::Console
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_win_then_content() {
        assert_eq!(detect("x/python-install.log", b""), Format::InstallLog);
        assert_eq!(detect("x/python-install.log.gz", b""), Format::InstallLog);
        assert_eq!(detect("master-summary.log", b""), Format::MasterSummary);
        assert_eq!(
            detect("-", b"=====\nFeature Installation Log: Python\n"),
            Format::InstallLog
        );
        assert_eq!(
            detect("-", b"Python: 0 errors, 2 warnings (145s)\n"),
            Format::MasterSummary
        );
        assert_eq!(detect("-", b"{\"timestamp\":1}\n"), Format::Json);
        assert_eq!(
            detect("-", b"#1 [internal] load build definition\n"),
            Format::Console
        );
    }
}
