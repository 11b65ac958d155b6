//! Issue 13 as a hostile user tried it: outputs onto inputs, lines that must not vanish,
//! garbage after a gzip member, replaying a dead-letter file.

mod common;

use common::{bin, corpus, parse_events};
use std::path::Path;

fn sha(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

#[test]
fn output_onto_an_input_is_refused_before_it_is_opened() {
    let tmp = tempfile::tempdir().unwrap();
    let src = corpus().join("build-01-success/python-install.log");
    let log = tmp.path().join("python-install.log");
    std::fs::copy(&src, &log).unwrap();
    let before = sha(&log);
    let hard = tmp.path().join("hard.jsonl");
    std::fs::hard_link(&log, &hard).unwrap();
    let sym = tmp.path().join("sym.jsonl");
    std::os::unix::fs::symlink(&log, &sym).unwrap();
    let build = tmp.path().join("build");
    std::fs::create_dir(&build).unwrap();
    std::fs::copy(&src, build.join("python-install.log")).unwrap();
    let inside = build.join("python-install.log");
    let inside_before = sha(&inside);

    let cases: Vec<(Vec<&std::ffi::OsStr>, &Path)> = vec![
        (vec![log.as_os_str()], &log),
        (vec![log.as_os_str()], &hard),
        (vec![log.as_os_str()], &sym),
        // Another spelling of the same path.
        (vec![log.as_os_str()], Path::new("./python-install.log")),
        // A file inside an input directory.
        (vec![build.as_os_str()], &inside),
    ];
    for (inputs, out) in cases {
        let o = bin()
            .current_dir(tmp.path())
            .arg("convert")
            .args(&inputs)
            .arg("-o")
            .arg(out)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{out:?}: {stderr}");
        assert!(stderr.contains("refusing to overwrite"), "{stderr}");
        assert_eq!(sha(&log), before, "-o {out:?} changed the input");
        assert_eq!(sha(&build.join("python-install.log")), inside_before);
    }
    // --follow onto a file it would read back.
    let o = bin()
        .args(["convert", "--follow"])
        .arg(&build)
        .arg("-o")
        .arg(build.join("events-install.log"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(!build.join("events-install.log").exists());

    // A different output is written whole, through a temporary file that does not stay.
    let out = tmp.path().join("events.jsonl");
    std::fs::write(&out, "old\n").unwrap();
    let o = bin()
        .arg("convert")
        .arg(&log)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let events = parse_events(&std::fs::read(&out).unwrap());
    assert!(events.len() > 20, "{}", events.len());
    assert_eq!(events[0].event_type.as_str(), "build_start");
    assert_eq!(events[1].feature, "Python");
    let names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
}

#[test]
fn a_gz_with_trailing_garbage_is_reported_once() {
    let tmp = tempfile::tempdir().unwrap();
    // Small (inside the first 64 KiB read for detection) and large.
    for log in [
        "build-01-success/python-install.log",
        "build-13-large/python-install.log",
    ] {
        let src = corpus().join(log);
        let plain = bin().arg("convert").arg(&src).output().unwrap();
        let want = parse_events(&plain.stdout);
        let gz = tmp.path().join("python-install.log.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, &std::fs::read(&src).unwrap()).unwrap();
        let mut bytes = enc.finish().unwrap();
        bytes.extend_from_slice(b"GARBAGE AFTER THE GZIP MEMBER");
        std::fs::write(&gz, &bytes).unwrap();
        let o = bin().arg("convert").arg(&gz).output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.contains(".gz")).collect();
        assert_eq!(errors.len(), 1, "{log}: {stderr}");
        // Everything before the garbage was converted.
        let got = parse_events(&o.stdout);
        assert_eq!(got.len(), want.len(), "{log}");
        assert_eq!(got.last().unwrap().message, want.last().unwrap().message);
    }
}

#[test]
fn replaying_the_dead_letter_file_into_itself_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dl = tmp.path().join("buildlog-dead-letter.jsonl");
    // A record as ship writes it.
    let event = parse_events(
        &bin()
            .arg("convert")
            .arg(corpus().join("build-01-success/python-install.log"))
            .output()
            .unwrap()
            .stdout,
    )
    .remove(0);
    let rec = serde_json::json!({"sink": "loki", "reason": "test", "event": event});
    std::fs::write(&dl, format!("{rec}\n")).unwrap();
    let before = std::fs::read(&dl).unwrap();
    // The default --dead-letter, run where the file is; and the same file named explicitly.
    for extra in [
        vec![],
        vec!["--dead-letter", "./buildlog-dead-letter.jsonl"],
    ] {
        let o = bin()
            .current_dir(tmp.path())
            .args(["ship", "--loki", "http://127.0.0.1:9"])
            .args(&extra)
            .arg("buildlog-dead-letter.jsonl")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("--dead-letter"), "{stderr}");
        assert_eq!(std::fs::read(&dl).unwrap(), before, "the file was touched");
    }
    // Into another file, the replay runs (the sink is down: dead-lettered there, exit 3).
    let o = bin()
        .current_dir(tmp.path())
        .args([
            "ship",
            "--loki",
            "http://127.0.0.1:9",
            "--loki-max-retries",
            "0",
            "--dead-letter",
            "retry.jsonl",
            "buildlog-dead-letter.jsonl",
        ])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(std::fs::read(&dl).unwrap(), before);
    let retry = std::fs::read_to_string(tmp.path().join("retry.jsonl")).unwrap();
    assert_eq!(retry.lines().count(), 1);
}
