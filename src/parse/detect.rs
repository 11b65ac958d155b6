//! Format detection from content.

use super::Format;

/// Detects the format of an input from its first bytes (its name is `crate::build::kind`'s).
pub fn detect_content(head: &[u8]) -> Format {
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
    fn content_decides() {
        assert_eq!(
            detect_content(b"=====\nFeature Installation Log: Python\n"),
            Format::InstallLog
        );
        assert_eq!(
            detect_content(b"Python: 0 errors, 2 warnings (145s)\n"),
            Format::MasterSummary
        );
        assert_eq!(detect_content(b"{\"timestamp\":1}\n"), Format::Json);
        assert_eq!(
            detect_content(b"#1 [internal] load build definition\n"),
            Format::Console
        );
    }
}
