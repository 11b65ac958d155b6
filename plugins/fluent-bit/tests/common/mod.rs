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

/// The plugin built for this test run: cargo builds the cdylib with the library into
/// `deps/`, and copies it to the profile directory only on `cargo build`; take the newest.
pub fn plugin_so() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    [deps, deps.parent().unwrap()]
        .iter()
        .map(|d| d.join("libbuildlog_fluent_bit.so"))
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .max()
        .map(|(_, p)| p)
        .unwrap_or_else(|| panic!("libbuildlog_fluent_bit.so not found near {}", exe.display()))
}
