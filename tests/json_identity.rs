//! `Event::write_json_line` is written by hand for speed; over every event of every corpus
//! input it must be byte for byte what the `Serialize` derive gives through serde_json.

use buildlog::build::parse_inputs;
use buildlog::parse::ParseOptions;
use buildlog::source::{Input, Progress};
use std::path::Path;

#[test]
fn every_corpus_event_serialises_like_serde() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus");
    let mut inputs: Vec<_> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_none_or(|x| x != "md"))
        .collect();
    inputs.sort();
    // Every install log alone too: single streams take another path through the parser.
    let one_build = corpus.join("build-15-control-bytes");
    for e in std::fs::read_dir(&one_build).unwrap() {
        let p = e.unwrap().path();
        if p.to_string_lossy().ends_with("-install.log") {
            inputs.push(p);
        }
    }
    let (mut events, mut fast, mut serde) = (0u64, Vec::new(), Vec::new());
    let report = parse_inputs(
        &inputs.into_iter().map(Input::Path).collect::<Vec<_>>(),
        &ParseOptions::default(),
        &mut Progress::new(true),
        &mut |e| {
            fast.clear();
            serde.clear();
            e.write_json_line(&mut fast);
            serde_json::to_writer(&mut serde, &e).unwrap();
            serde.push(b'\n');
            assert_eq!(
                String::from_utf8_lossy(&fast),
                String::from_utf8_lossy(&serde)
            );
            events += 1;
            Ok(())
        },
    );
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(events > 200_000, "only {events} events");
}
