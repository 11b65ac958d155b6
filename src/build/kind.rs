//! The one place that maps a file's name inside a build directory to what the logger wrote
//! there.

use crate::parse::Format;

/// A file of the logger's, by its name (a trailing `.gz` is ignored).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileKind {
    /// `<slug>-install.log`
    Install(String),
    /// `<slug>-summary.log`: repeats the install log's summary block.
    Summary(String),
    /// `<slug>-errors.log`: repeats the install log's error and warning lines.
    Errors(String),
    /// `master-summary.log`
    Master,
    /// `build-failure.log`
    Failure,
    /// `json/<slug>.jsonl`
    JsonFeature(String),
    /// `json/build-summary.jsonl`
    JsonBuildSummary,
    /// `json/build-metadata.json`
    JsonMetadata,
}

impl FileKind {
    /// The kind of the file `name` (its base name) in a build directory, or in its `json/`
    /// subdirectory when `in_json` is set. `None`: not the logger's.
    pub fn of(name: &str, in_json: bool) -> Option<FileKind> {
        let base = strip_gz(name);
        if in_json {
            return match base {
                "build-summary.jsonl" => Some(FileKind::JsonBuildSummary),
                "build-metadata.json" => Some(FileKind::JsonMetadata),
                _ => base
                    .strip_suffix(".jsonl")
                    .map(|s| FileKind::JsonFeature(s.to_string())),
            };
        }
        if let Some(s) = base.strip_suffix("-install.log") {
            Some(FileKind::Install(s.to_string()))
        } else if base == "master-summary.log" {
            Some(FileKind::Master)
        } else if base == "build-failure.log" {
            Some(FileKind::Failure)
        } else if let Some(s) = base.strip_suffix("-summary.log") {
            Some(FileKind::Summary(s.to_string()))
        } else {
            base.strip_suffix("-errors.log")
                .map(|s| FileKind::Errors(s.to_string()))
        }
    }

    /// The kind of a file given by path on its own: a `.jsonl` anywhere is the JSON logger's.
    pub fn of_path(path: &str) -> Option<FileKind> {
        let base = path.rsplit('/').next().unwrap_or(path);
        let in_json = strip_gz(base).ends_with(".jsonl") || strip_gz(base) == "build-metadata.json";
        FileKind::of(base, in_json)
    }

    /// The input format its lines are in.
    pub fn format(&self) -> Format {
        match self {
            FileKind::Install(_) | FileKind::Summary(_) | FileKind::Errors(_) => Format::InstallLog,
            FileKind::Master => Format::MasterSummary,
            FileKind::Failure => Format::BuildFailure,
            FileKind::JsonFeature(_) | FileKind::JsonBuildSummary | FileKind::JsonMetadata => {
                Format::Json
            }
        }
    }
}

pub fn strip_gz(name: &str) -> &str {
    name.strip_suffix(".gz").unwrap_or(name)
}

/// The logger's file name slug: lower case, spaces to `-`, only `[a-z0-9-]`.
pub fn slug(feature: &str) -> String {
    feature
        .to_lowercase()
        .replace(' ', "-")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect()
}

/// The input format of a stream: from its name where that is the logger's, else from its
/// first bytes.
pub fn detect(name: &str, head: &[u8]) -> Format {
    FileKind::of_path(name)
        .filter(|k| !matches!(k, FileKind::Summary(_) | FileKind::Errors(_)))
        .map(|k| k.format())
        .unwrap_or_else(|| crate::parse::detect::detect_content(head))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_kinds() {
        assert_eq!(
            FileKind::of("python-install.log.gz", false),
            Some(FileKind::Install("python".into()))
        );
        assert_eq!(
            FileKind::of("master-summary.log", false),
            Some(FileKind::Master)
        );
        assert_eq!(
            FileKind::of("python-summary.log", false),
            Some(FileKind::Summary("python".into()))
        );
        assert_eq!(
            FileKind::of("build-failure.log", false),
            Some(FileKind::Failure)
        );
        assert_eq!(
            FileKind::of("python.jsonl", true),
            Some(FileKind::JsonFeature("python".into()))
        );
        assert_eq!(
            FileKind::of("build-summary.jsonl", true),
            Some(FileKind::JsonBuildSummary)
        );
        assert_eq!(FileKind::of("notes.txt", false), None);
        assert_eq!(FileKind::of("python.jsonl", false), None);
    }

    #[test]
    fn names_win_then_content() {
        assert_eq!(detect("x/python-install.log", b""), Format::InstallLog);
        assert_eq!(detect("x/python-install.log.gz", b""), Format::InstallLog);
        assert_eq!(detect("master-summary.log", b""), Format::MasterSummary);
        assert_eq!(detect("x/json/python.jsonl", b""), Format::Json);
        assert_eq!(
            detect("-", b"=====\nFeature Installation Log: Python\n"),
            Format::InstallLog
        );
        assert_eq!(
            detect("-", b"#1 [internal] load build definition\n"),
            Format::Console
        );
    }
}
