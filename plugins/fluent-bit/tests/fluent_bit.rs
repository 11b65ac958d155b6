//! The plugin inside the real Fluent Bit (`peer fluent-bit`, gated on BUILDLOG_PEERS): the
//! pipelines/fluent-bit/plugin.conf and plugin.yaml configs, with `tail` on a copy of a
//! corpus build, shipping to the test forward server.

mod common;
#[path = "../../../tests/common/forward_server.rs"]
mod forward_server;
#[path = "../../../tests/common/peers.rs"]
mod peers;

use common::{plugin_so, root};
use forward_server::ForwardServer;
use std::collections::BTreeMap;

use std::time::{Duration, Instant};

#[test]
fn real_fluent_bit_tails_a_build_through_the_plugin() {
    let Some(fb) = peers::peer_path("fluent-bit") else {
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
        buildlog::parse::parse_inputs(
            &[buildlog::source::Input::from_path(build.clone())],
            &buildlog::parse::ParseOptions::default(),
            &mut progress,
            &mut |e| {
                if !e.incomplete {
                    want.entry(e.source.file.clone())
                        .or_default()
                        .push(serde_json::from_str(&e.to_json()).unwrap());
                }
                Ok(())
            },
        );
        let total: usize = want.values().map(Vec::len).sum();
        assert!(want.len() >= 2 && total > 10, "{total} events");

        let server = ForwardServer::start();
        // plugin.conf reads Loki_URL; here the events go to the test forward server instead.
        let mut cmd = std::process::Command::new(&fb);
        cmd.arg("-e").arg(plugin_so());
        let cfg = std::fs::read_to_string(root().join("pipelines/fluent-bit").join(config))
            .unwrap()
            .replace("Loki_URL  ${LOKI_URL}", "Forward   ${FORWARD_ADDR}")
            .replace("loki_url: ${LOKI_URL}", "forward: ${FORWARD_ADDR}");
        assert!(
            cfg.contains("FORWARD_ADDR"),
            "{config} names Loki_URL as expected"
        );
        let cfg_path = tmp.path().join(config);
        std::fs::write(&cfg_path, cfg).unwrap();
        cmd.arg("-c").arg(&cfg_path);
        cmd.env("BUILD_LOG_DIR", &build)
            .env("FORWARD_ADDR", &server.addr)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(tmp.path().join("fb.err")).unwrap());
        let guard = peers::KillOnDrop(cmd.spawn().unwrap());
        let deadline = Instant::now() + Duration::from_secs(60);
        while server.entries().len() < total && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        std::thread::sleep(Duration::from_millis(1500));
        drop(guard);
        let err = std::fs::read_to_string(tmp.path().join("fb.err")).unwrap();
        let mut got: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
        for e in server.entries() {
            got.entry(e.record["source"]["file"].as_str().unwrap().to_string())
                .or_default()
                .push(e.record);
        }
        assert_eq!(got.len(), want.len(), "{config}: {err}");
        for (file, events) in &want {
            assert_eq!(got.get(file), Some(events), "{config}: {file}\n{err}");
        }
    }
}
