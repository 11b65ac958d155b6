//! Property tests: arbitrary bytes never panic a parser, and cutting any input into chunks
//! at arbitrary places gives exactly the events that reading it whole gives.

mod common;

use buildlog::parse::build_failure::BuildFailureParser;
use buildlog::parse::console::ConsoleParser;
use buildlog::parse::install_log::InstallLogParser;
use buildlog::parse::json_logger::JsonParser;
use buildlog::parse::master_summary::MasterSummaryParser;
use buildlog::parse::FormatParser;
use buildlog::source::LineSplitter;
use buildlog::Event;
use proptest::prelude::*;

fn parsers() -> Vec<Box<dyn FormatParser>> {
    let tz = jiff::tz::TimeZone::UTC;
    vec![
        Box::new(InstallLogParser::new(tz.clone())),
        Box::new(ConsoleParser::new(tz)),
        Box::new(JsonParser::default()),
        Box::new(MasterSummaryParser),
        Box::new(BuildFailureParser),
    ]
}

/// Feeds `input` to a parser in chunks ending at `cuts` (offsets, any order).
fn run(parser: &mut dyn FormatParser, input: &[u8], cuts: &[usize], max_line: usize) -> Vec<Event> {
    let mut splitter = LineSplitter::new(max_line);
    let mut out = Vec::new();
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    bounds.push(0);
    bounds.push(input.len());
    bounds.sort_unstable();
    for w in bounds.windows(2) {
        splitter
            .push::<()>(&input[w[0]..w[1]], &mut |l| {
                parser.line(&l, &mut out);
                Ok(())
            })
            .unwrap();
    }
    splitter
        .finish::<()>(&mut |l| {
            parser.line(&l, &mut out);
            Ok(())
        })
        .unwrap();
    parser.finish(&mut out);
    out
}

/// Inputs that look like the logs: lines drawn from the corpus, mixed with noise.
fn loglike() -> impl Strategy<Value = Vec<u8>> {
    let corpus = common::corpus();
    let mut lines: Vec<Vec<u8>> = Vec::new();
    for f in [
        "build-01-success/python-install.log",
        "build-02-failure/java-development-install.log",
        "build-15-control-bytes/cloudflare-tools-install.log",
        "build-01-success/master-summary.log",
        "build-02-failure/build-failure.log",
        "build-08-json-2025-11/json/golang.jsonl",
    ] {
        let bytes = std::fs::read(corpus.join(f)).unwrap();
        lines.extend(bytes.split(|b| *b == b'\n').map(|l| l.to_vec()));
    }
    let line = prop_oneof![
        4 => proptest::sample::select(lines),
        1 => proptest::collection::vec(any::<u8>(), 0..200),
    ];
    proptest::collection::vec(line, 0..80).prop_map(|ls| {
        let mut out = Vec::new();
        for l in ls {
            out.extend_from_slice(&l);
            out.push(b'\n');
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..4000)) {
        for mut p in parsers() {
            let _ = run(p.as_mut(), &input, &[], 1024);
        }
    }

    #[test]
    fn chunking_never_changes_the_events(input in loglike(), cuts in proptest::collection::vec(any::<usize>(), 0..30)) {
        for (mut whole, mut chunked) in parsers().into_iter().zip(parsers()) {
            let a = run(whole.as_mut(), &input, &[], 4096);
            let b = run(chunked.as_mut(), &input, &cuts, 4096);
            prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn every_event_serialises_to_valid_json(input in loglike()) {
        let mut p = InstallLogParser::new(jiff::tz::TimeZone::UTC);
        let events = run(&mut p, &input, &[], 4096);
        for e in &events {
            let json = e.to_json();
            prop_assert!(serde_json::from_str::<serde_json::Value>(&json).is_ok());
        }
    }
}

#[test]
fn corpus_files_chunked_at_every_prime_stride_match_whole() {
    let f = common::corpus().join("build-15-control-bytes/terraform-install.log");
    let input = std::fs::read(f).unwrap();
    let whole = run(
        &mut InstallLogParser::new(jiff::tz::TimeZone::UTC),
        &input,
        &[],
        256 * 1024,
    );
    assert!(whole.len() > 20);
    for stride in [1usize, 7, 4093, 65_537] {
        let cuts: Vec<usize> = (1..input.len() / stride).map(|i| i * stride).collect();
        let chunked = run(
            &mut InstallLogParser::new(jiff::tz::TimeZone::UTC),
            &input,
            &cuts,
            256 * 1024,
        );
        assert_eq!(whole, chunked, "stride {stride}");
    }
}
