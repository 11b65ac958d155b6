//! The fuzz target of the parsers (issue 13): every format's parser and the JSON logger's
//! lenient reader, fed arbitrary bytes and corpus files with mutated lines and foreign lines
//! inserted anywhere. Asserted: no panic, every event serialises to JSON, and every inserted
//! line reaches an event (its text is in one of the event's strings).
//!
//! The case count is modest by default so that CI stays within its time; set
//! `BUILDLOG_FUZZ_CASES` (e.g. 20000) for a long run.

use buildlog::parse::build_failure::BuildFailureParser;
use buildlog::parse::console::ConsoleParser;
use buildlog::parse::install_log::InstallLogParser;
use buildlog::parse::json_logger::JsonParser;
use buildlog::parse::master_summary::MasterSummaryParser;
use buildlog::parse::FormatParser;
use buildlog::source::LineSplitter;
use buildlog::Event;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::Value;

mod common;

fn cases(default: u32) -> u32 {
    std::env::var("BUILDLOG_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A format: its name, a maker of its parser, the corpus files it reads.
type Target = (
    &'static str,
    fn() -> Box<dyn FormatParser>,
    Vec<&'static str>,
);

/// Each format's parser with the corpus files it reads.
fn targets() -> Vec<Target> {
    vec![
        (
            "install log",
            || Box::new(InstallLogParser::new(jiff::tz::TimeZone::UTC)),
            vec![
                "build-01-success/python-install.log",
                "build-02-failure/java-development-install.log",
                "build-07-config-summary-2025-11/nodejs-install.log",
                "build-15-control-bytes/cloudflare-tools-install.log",
            ],
        ),
        (
            "console",
            || Box::new(ConsoleParser::new(jiff::tz::TimeZone::UTC)),
            vec![
                "build-01-success.buildkit.log",
                "build-02-failure.console.log",
                "build-16-github-actions.github-actions.log",
            ],
        ),
        (
            "master summary",
            || Box::new(MasterSummaryParser),
            vec!["build-01-success/master-summary.log"],
        ),
        (
            "build failure",
            || Box::new(BuildFailureParser),
            vec!["build-02-failure/build-failure.log"],
        ),
        (
            "json logger",
            || Box::new(JsonParser::default()),
            vec![
                "build-08-json-2025-11/json/golang.jsonl",
                "build-01-success/json/build-summary.jsonl",
                "build-15-control-bytes/json/terraform.jsonl",
            ],
        ),
    ]
}

fn run(parser: &mut dyn FormatParser, input: &[u8]) -> Vec<Event> {
    let mut splitter = LineSplitter::new(4096);
    let mut out = Vec::new();
    splitter
        .push::<()>(input, &mut |l| {
            parser.line(&l, &mut out);
            Ok(())
        })
        .unwrap();
    splitter
        .finish::<()>(&mut |l| {
            parser.line(&l, &mut out);
            Ok(())
        })
        .unwrap();
    parser.finish(&mut out);
    out
}

/// Every string an event carries, joined.
fn strings(events: &[Event]) -> String {
    fn walk(v: &Value, out: &mut String) {
        match v {
            Value::String(s) => {
                out.push_str(s);
                out.push('\n');
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(m) => m.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = String::new();
    for e in events {
        let v: Value = serde_json::from_str(&e.to_json()).expect("an event is JSON");
        walk(&v, &mut out);
    }
    out
}

/// A corpus line changed the way a damaged or hostile log changes it.
#[derive(Debug, Clone)]
enum Mutation {
    FlipByte(prop::sample::Index, u8),
    Truncate(prop::sample::Index),
    Duplicate,
    Drop,
    InsertBytes(prop::sample::Index, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::FlipByte(i, b)),
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        Just(Mutation::Duplicate),
        Just(Mutation::Drop),
        (
            any::<prop::sample::Index>(),
            prop::collection::vec(any::<u8>(), 1..8)
        )
            .prop_map(|(i, b)| Mutation::InsertBytes(i, b)),
    ]
}

fn mutate(lines: &mut Vec<Vec<u8>>, at: prop::sample::Index, m: &Mutation) {
    if lines.is_empty() {
        return;
    }
    let i = at.index(lines.len());
    match m {
        Mutation::FlipByte(p, b) if !lines[i].is_empty() => {
            let j = p.index(lines[i].len());
            lines[i][j] ^= b | 1;
        }
        Mutation::Truncate(p) if !lines[i].is_empty() => {
            let j = p.index(lines[i].len());
            lines[i].truncate(j);
        }
        Mutation::Duplicate => {
            let l = lines[i].clone();
            lines.insert(i, l);
        }
        Mutation::Drop => {
            lines.remove(i);
        }
        Mutation::InsertBytes(p, b) => {
            let j = p.index(lines[i].len() + 1);
            lines[i].splice(j..j, b.iter().copied());
        }
        _ => {}
    }
}

/// A foreign line: a marker token no format gives a meaning to, and some words.
fn foreign() -> impl Strategy<Value = String> {
    ("[0-9]{1,8}", "[a-zA-Z0-9 .,:=/_-]{0,40}")
        .prop_map(|(id, rest)| format!("zqx{id} {}", rest.trim_end()))
}

fn check_inserted(name: &str, events: &[Event], inserted: &[String]) -> Result<(), TestCaseError> {
    let hay = strings(events);
    for l in inserted {
        let token = l.split(' ').next().unwrap();
        prop_assert!(
            hay.contains(token),
            "{}: the inserted line {:?} reached no event",
            name,
            l
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(256),
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes_never_panic_any_parser(input in prop::collection::vec(any::<u8>(), 0..8192)) {
        for (name, make, _) in targets() {
            let events = run(make().as_mut(), &input);
            for e in &events {
                prop_assert!(serde_json::from_str::<Value>(&e.to_json()).is_ok(), "{}", name);
            }
        }
    }

    #[test]
    fn mutated_corpus_files_keep_every_inserted_line(
        target in any::<prop::sample::Index>(),
        file in any::<prop::sample::Index>(),
        mutations in prop::collection::vec((any::<prop::sample::Index>(), mutation()), 0..12),
        inserts in prop::collection::vec((any::<prop::sample::Index>(), foreign()), 1..6),
    ) {
        let targets = targets();
        let (name, make, files) = &targets[target.index(targets.len())];
        let path = common::corpus().join(files[file.index(files.len())]);
        let bytes = std::fs::read(&path).unwrap();
        let mut lines: Vec<Vec<u8>> = bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
        // Large files: a window of them, so that a case stays fast.
        if lines.len() > 400 {
            let start = file.index(lines.len() - 400);
            lines = lines[start..start + 400].to_vec();
        }
        for (at, m) in &mutations {
            mutate(&mut lines, *at, m);
        }
        let mut inserted = Vec::new();
        for (at, l) in &inserts {
            lines.insert(at.index(lines.len() + 1), l.clone().into_bytes());
            inserted.push(l.clone());
        }
        let input = lines.join(&b'\n');
        let events = run(make().as_mut(), &input);
        check_inserted(name, &events, &inserted)?;
    }
}
