//! Shared by the plugin's tests: where the repository and the built plugin are.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn corpus() -> PathBuf {
    root().join("tests/fixtures/corpus")
}

/// The plugin built for this test run (cargo builds the cdylib with the library).
pub fn plugin_so() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    [deps.parent().unwrap(), deps]
        .iter()
        .map(|d| d.join("libbuildlog_fluent_bit.so"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("libbuildlog_fluent_bit.so not found near {}", exe.display()))
}
