//! The plugin inside the real Fluent Bit (`peer fluent-bit`, gated on BUILDLOG_PEERS): the
//! pipelines/fluent-bit/plugin.conf and plugin.yaml configs, with `tail` on a copy of a
//! corpus build, shipping to the test Loki.

mod common;
#[path = "../../../tests/peers/mod.rs"]
mod peers;
#[path = "../../../tests/test_loki/mod.rs"]
mod test_loki;

use common::{plugin_so, root};
use std::collections::BTreeMap;

use std::time::{Duration, Instant};

#[test]
fn real_fluent_bit_tails_a_build_through_the_plugin() {
    let Some(fb) = peers::peer_path("fluent_bit_plugin", "fluent-bit") else {
        return;
    };
    let src = root().join("tests/fixtures/corpus/build-02-failure");
    for config in ["plugin.conf", "plugin.yaml"] {
        let tmp = tempfile::tempdir().unwrap();
        let build = tmp.path().join("build");
        std::fs::create_dir(&build).unwrap();
        for e in std::fs::read_dir(&src).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if name.ends_with("-install.log") {
                std::fs::copy(&p, build.join(&name)).unwrap();
            }
        }
        // What convert makes of the same files (the plugin does not finish features that
        // may still be running, so compare with the events convert does not flag incomplete).
        let mut want: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
        let mut progress = buildlog::source::Progress::new(true);
        buildlog::build::parse_inputs(
            &[buildlog::source::Input::from_path(build.clone())],
            &buildlog::parse::ParseOptions::default(),
            &mut progress,
            &mut |e| {
                // `build_end` comes when the build is over (Idle_End, or when Fluent Bit
                // stops): not within this comparison.
                let build_level = matches!(e.event_type, buildlog::EventType::BuildEnd);
                if !e.incomplete && !build_level {
                    want.entry(e.source.file.to_string())
                        .or_default()
                        .push(serde_json::from_str(&e.to_json()).unwrap());
                }
                Ok(())
            },
        );
        let total: usize = want.values().map(Vec::len).sum();
        assert!(want.len() >= 2 && total > 10, "{total} events");

        let loki = test_loki::TestLoki::start();
        let mut cmd = std::process::Command::new(&fb);
        cmd.arg("-e").arg(plugin_so());
        cmd.arg("-c")
            .arg(root().join("pipelines/fluent-bit").join(config));
        cmd.env("BUILD_LOG_DIR", &build)
            .env("LOKI_URL", &loki.url)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(tmp.path().join("fb.err")).unwrap());
        let guard = peers::KillOnDrop(cmd.spawn().unwrap());
        let deadline = Instant::now() + Duration::from_secs(60);
        while loki.entries().len() < total && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        std::thread::sleep(Duration::from_millis(1500));
        drop(guard);
        let err = std::fs::read_to_string(tmp.path().join("fb.err")).unwrap();
        let mut got: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
        for e in loki.entries() {
            assert_eq!(e.labels["job"], "container-build");
            let rec: serde_json::Value = serde_json::from_str(&e.line).unwrap();
            got.entry(rec["source"]["file"].as_str().unwrap().to_string())
                .or_default()
                .push(rec);
        }
        // Loki returns entries by time; compare each file's events in their own order.
        for v in got.values_mut() {
            v.sort_by_key(|r| r["seq"].as_u64());
        }
        assert_eq!(got.len(), want.len(), "{config}: {err}");
        for (file, events) in &want {
            assert_eq!(got.get(file), Some(events), "{config}: {file}\n{err}");
        }
    }
}

/// pipelines/fluent-bit/plugins.conf's way: the plugin listed in a plugins file named by
/// `Plugins_File`, no `-e`. Fluent Bit's dry run only accepts the `buildlog` output when
/// the plugin was loaded.
#[test]
fn a_plugins_file_loads_the_plugin() {
    let Some(fb) = peers::peer_path("a_plugins_file_loads_the_plugin", "fluent-bit") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let shipped =
        std::fs::read_to_string(root().join("pipelines/fluent-bit/plugins.conf")).unwrap();
    let plugins = shipped.replace(
        "/usr/local/lib/libbuildlog_fluent_bit.so",
        plugin_so().to_str().unwrap(),
    );
    assert_ne!(plugins, shipped);
    std::fs::write(tmp.path().join("plugins.conf"), plugins).unwrap();
    let conf = std::fs::read_to_string(root().join("pipelines/fluent-bit/plugin.conf")).unwrap();
    let dry_run = |conf: &str| {
        let path = tmp.path().join("fluent-bit.conf");
        std::fs::write(&path, conf).unwrap();
        let out = std::process::Command::new(&fb)
            .arg("-c")
            .arg(&path)
            .arg("--dry-run")
            .env("BUILD_LOG_DIR", tmp.path())
            .env("LOKI_URL", "http://127.0.0.1:3100")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    let without = dry_run(&conf);
    assert!(
        without.contains("plugin name that doesn't exist"),
        "{without}"
    );
    let with = dry_run(&conf.replace("[SERVICE]", "[SERVICE]\n    Plugins_File plugins.conf"));
    assert!(with.contains("configuration test is successful"), "{with}");
}
