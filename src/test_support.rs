//! Helpers for the unit tests: the corpus copied into `tests/fixtures/corpus`.

use std::collections::HashSet;
use std::path::PathBuf;

/// Every file of the corpus, in every build directory.
pub(crate) fn corpus_files() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus")];
    let mut files = Vec::new();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("the corpus is in the repository") {
            let path = entry.expect("a corpus entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Every distinct line of the corpus's files, as bytes (without the `\n`).
pub(crate) fn corpus_lines() -> HashSet<Vec<u8>> {
    let mut lines = HashSet::new();
    for path in corpus_files() {
        let bytes = std::fs::read(&path).expect("a corpus file");
        lines.extend(bytes.split(|&b| b == b'\n').map(<[u8]>::to_vec));
    }
    lines
}
