//! The benchmark generator (`examples/gen_bench_log.rs`) makes builds the parser reads the
//! way it reads the corpus: every feature complete, and the summary counts (computed by the
//! generator the logger's way) equal to what the parser recounts from the lines.

#[path = "../benches/gen/mod.rs"]
mod gen;

use buildlog::build::parse_inputs;
use buildlog::parse::ParseOptions;
use buildlog::source::{Input, Progress};
use buildlog::{Event, EventType};

fn convert(dir: &std::path::Path) -> Vec<Event> {
    let mut events = Vec::new();
    let report = parse_inputs(
        &[Input::Path(dir.to_path_buf())],
        &ParseOptions::default(),
        &mut Progress::new(true),
        &mut |e| {
            events.push(e.take());
            Ok(())
        },
    );
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    events
}

#[test]
fn generated_build_parses_with_matching_counts() {
    let corpus = gen::load_corpus(&gen::default_corpus()).unwrap();
    assert_eq!(corpus.features.len(), 19);
    let dir = tempfile::tempdir().unwrap();
    let stats = gen::generate_build(&corpus, 3_000_000, 42, dir.path()).unwrap();
    assert!(stats.bytes >= 3_000_000, "{}", stats.bytes);
    let events = convert(dir.path());

    let ends: Vec<&Event> = events
        .iter()
        .filter(|e| e.event_type == EventType::FeatureEnd)
        .collect();
    assert_eq!(ends.len(), 19);
    for (end, st) in ends.iter().zip(&stats.features) {
        assert_eq!(end.feature, st.name);
        assert!(!end.incomplete, "{}", end.to_json());
        assert!(!end.details.contains_key("recount"), "{}", end.to_json());
        assert_eq!(end.error_count, Some(st.errors), "{}", st.name);
        assert_eq!(end.warning_count, Some(st.warnings), "{}", st.name);
        assert_eq!(end.command_count, Some(st.commands), "{}", st.name);
    }
    let commands = events
        .iter()
        .filter(|e| e.event_type == EventType::Command)
        .count() as u64;
    assert_eq!(
        commands,
        stats.features.iter().map(|f| f.commands).sum::<u64>()
    );
    let summaries = events
        .iter()
        .filter(|e| e.event_type == EventType::BuildSummary)
        .count();
    assert_eq!(summaries, 19);
    // Python's share keeps its compiler lines, counted as errors the logger's way.
    assert!(stats.features[0].name == "Python" && stats.features[0].errors > 100);
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let corpus = gen::load_corpus(&gen::default_corpus()).unwrap();
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    gen::generate_build(&corpus, 500_000, 7, a.path()).unwrap();
    gen::generate_build(&corpus, 500_000, 7, b.path()).unwrap();
    gen::generate_build(&corpus, 500_000, 8, c.path()).unwrap();
    let read = |d: &std::path::Path| std::fs::read(d.join("python-install.log")).unwrap();
    assert_eq!(read(a.path()), read(b.path()));
    assert_ne!(read(a.path()), read(c.path()));
}

#[test]
fn sizes_parse_and_bad_ones_are_refused() {
    assert_eq!(gen::parse_size("200MB"), Some(200_000_000));
    assert_eq!(gen::parse_size("1.5GB"), Some(1_500_000_000));
    assert_eq!(gen::parse_size("512KiB"), Some(524_288));
    assert_eq!(gen::parse_size("12"), Some(12));
    assert_eq!(gen::parse_size("12 parsecs"), None);
    assert_eq!(gen::parse_size("MB"), None);
}

#[test]
fn a_corpus_without_install_logs_is_an_error() {
    let empty = tempfile::tempdir().unwrap();
    let err = gen::load_corpus(empty.path()).err().unwrap();
    assert!(err.to_string().contains("no install logs"), "{err}");
}
