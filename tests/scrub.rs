//! Secret scrubbing against the real corpus, plus property tests.
//!
//! The corpus holds builds written by the logging library before it scrubbed anything (05, 07,
//! 09), while it scrubbed some things (10, 11, 12) and after (01, 13-16). Scrubbing every line of
//! every file must leave none of the fake secrets, change exactly the lines that hold one, and
//! give the same text the library's later versions wrote for the same call.

mod common;

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use buildlog::enrich::scrub::{PemTracker, Scrubber};
use common::{bin, corpus};
use proptest::prelude::*;

/// Every log file of the corpus (the README is not a log), by path relative to the corpus.
fn corpus_files() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("corpus directory is readable") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let root = corpus();
    let mut paths = Vec::new();
    walk(&root, &mut paths);
    paths.sort();
    let files: Vec<(String, String)> = paths
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n != "README.md"))
        .map(|p| {
            let rel = p
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let bytes = std::fs::read(&p).expect("corpus file is readable");
            (rel, String::from_utf8_lossy(&bytes).into_owned())
        })
        .collect();
    assert!(
        files.len() > 100,
        "corpus incomplete: {} files",
        files.len()
    );
    files
}

/// A file scrubbed line by line as the parser will do it (one `PemTracker` per file).
fn scrub_file(text: &str) -> Vec<(usize, &str, String)> {
    let scrubber = Scrubber::global();
    let mut pem = PemTracker::new();
    text.split('\n')
        .enumerate()
        .map(|(i, line)| (i + 1, line, pem.scrub_line(scrubber, line).into_owned()))
        .collect()
}

fn scrub(s: &str) -> String {
    Scrubber::global().scrub(s).into_owned()
}

/// Every secret that some build of the corpus printed in clear.
const FAKE_SECRETS: &[&str] = &[
    "dckr_pat_REALLOOKINGTOKEN123",
    "pypi-FAKEAgEIcHlwaS5vcmcCJDAwMDAwMDAw",
    "pypi-FAKEAgEIcHlwaS5vcmcCJGYxZjJmM2Y0LWZha2UtdG9rZW4",
    "npm_FAKEq1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8",
    "ghp_FAKE0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f",
    "rubygems_FAKE0123456789abcdef0123456789abcdef0123456789",
    "AKIAIOSFODNN7EXAMPLE",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "FAKEtf1a2b3c4d5e6f.atlasv1.q9w8e7r6t5y4u3i2o1p0",
    "dckr_pat_FAKE9s8d7f6g5h4j3k2l1",
    "glpat-FAKEx1y2z3a4b5c6d7e8f9g0",
];

#[test]
fn no_fake_secret_survives_in_any_corpus_file() {
    let mut seen = BTreeSet::new();
    for (path, text) in corpus_files() {
        for (n, line, out) in scrub_file(&text) {
            for secret in FAKE_SECRETS {
                if line.contains(secret) {
                    seen.insert(*secret);
                }
                assert!(
                    !out.contains(secret),
                    "{path}:{n}: {secret} survived in {out:?}"
                );
            }
            // Every fake secret in the corpus is marked FAKE/EXAMPLE/REALLOOKING.
            for mark in ["FAKE", "EXAMPLE", "REALLOOKING"] {
                assert!(
                    !out.contains(mark),
                    "{path}:{n}: {mark} survived in {out:?}"
                );
            }
        }
    }
    // The test is only as good as its input: each secret must really be in the corpus.
    let missing: Vec<_> = FAKE_SECRETS.iter().filter(|s| !seen.contains(*s)).collect();
    assert!(missing.is_empty(), "not found in the corpus: {missing:?}");
}

/// The builds that printed secrets in clear, as directories and as console logs.
const SECRET_BUILDS: &[&str] = &[
    "build-05-legacy-2025",
    "build-07-config-summary-2025-11",
    "build-09-log-levels-2026-01",
    "build-10-scrubbing-2026-03",
    "build-11-masked-abort-2026-03",
    "build-12-token-patterns-2026-05",
];

/// End to end: what `buildlog convert` writes (messages, raw lines, commands, descriptions and
/// the configuration summaries parsed into metadata maps) holds none of the secrets.
#[test]
fn convert_output_holds_no_fake_secret() {
    for build in SECRET_BUILDS {
        for input in [
            corpus().join(build),
            corpus().join(format!("{build}.console.log")),
        ] {
            let out = bin()
                .args(["convert", "--quiet"])
                .arg(&input)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.lines().count() > 20, "{}: no events", input.display());
            for secret in FAKE_SECRETS
                .iter()
                .chain(&["FAKE", "EXAMPLE", "REALLOOKING"])
            {
                assert!(
                    !text.contains(secret),
                    "{}: {secret} in the events",
                    input.display()
                );
            }
        }
    }
    // `--no-scrub` passes them on, and says so.
    let out = bin()
        .args(["convert", "--quiet", "--no-scrub"])
        .arg(corpus().join("build-10-scrubbing-2026-03"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-scrub"));
}

/// Exactly the lines holding a secret change; all other build output is left byte-identical.
#[test]
fn only_the_lines_with_secrets_change() {
    const EXPECTED: &[(&str, usize)] = &[
        ("build-05-legacy-2025/docker-install.log", 25),
        ("build-05-legacy-2025/docker-install.log", 27),
        ("build-05-legacy-2025.console.log", 28),
        ("build-05-legacy-2025.console.log", 30),
        (
            "build-07-config-summary-2025-11/development-tools-install.log",
            332,
        ),
        (
            "build-07-config-summary-2025-11/development-tools-install.log",
            358,
        ),
        ("build-07-config-summary-2025-11/nodejs-install.log", 78),
        ("build-07-config-summary-2025-11/nodejs-install.log", 108),
        ("build-07-config-summary-2025-11/python-install.log", 1137),
        ("build-07-config-summary-2025-11/python-install.log", 1157),
        ("build-07-config-summary-2025-11.console.log", 1152),
        ("build-07-config-summary-2025-11.console.log", 1173),
        ("build-07-config-summary-2025-11.console.log", 1295),
        ("build-07-config-summary-2025-11.console.log", 1326),
        ("build-07-config-summary-2025-11.console.log", 1696),
        ("build-07-config-summary-2025-11.console.log", 1724),
        ("build-09-log-levels-2026-01/ruby-install.log", 157),
        ("build-09-log-levels-2026-01/ruby-install.log", 404),
        ("build-09-log-levels-2026-01.console.log", 831),
        ("build-09-log-levels-2026-01.console.log", 1081),
        ("build-10-scrubbing-2026-03/aws-cli-v2-install.log", 344),
        ("build-10-scrubbing-2026-03/aws-cli-v2-install.log", 371),
        ("build-10-scrubbing-2026-03/aws-cli-v2-install.log", 372),
        ("build-10-scrubbing-2026-03/nodejs-install.log", 84),
        ("build-10-scrubbing-2026-03/nodejs-install.log", 110),
        ("build-10-scrubbing-2026-03/nodejs-install.log", 111),
        ("build-10-scrubbing-2026-03/python-install.log", 1155),
        ("build-10-scrubbing-2026-03.console.log", 1171),
        ("build-10-scrubbing-2026-03.console.log", 1301),
        ("build-10-scrubbing-2026-03.console.log", 1328),
        ("build-10-scrubbing-2026-03.console.log", 1329),
        ("build-10-scrubbing-2026-03.console.log", 1712),
        ("build-10-scrubbing-2026-03.console.log", 1741),
        ("build-10-scrubbing-2026-03.console.log", 1742),
        (
            "build-11-masked-abort-2026-03/docker-cli-tools-install.log",
            155,
        ),
        ("build-11-masked-abort-2026-03/terraform-install.log", 64),
        ("build-11-masked-abort-2026-03.console.log", 69),
        ("build-11-masked-abort-2026-03.console.log", 452),
        (
            "build-12-token-patterns-2026-05/development-tools-install.log",
            292,
        ),
        ("build-12-token-patterns-2026-05.console.log", 446),
        ("build-12-token-patterns-2026-05.console.log", 456),
    ];
    let mut changed = BTreeSet::new();
    let mut lines = 0;
    for (path, text) in corpus_files() {
        for (n, line, out) in scrub_file(&text) {
            lines += 1;
            if out != line {
                changed.insert((path.clone(), n));
            }
        }
    }
    let expected: BTreeSet<(String, usize)> =
        EXPECTED.iter().map(|(p, n)| (p.to_string(), *n)).collect();
    assert_eq!(
        changed.difference(&expected).collect::<Vec<_>>(),
        Vec::<&(String, usize)>::new(),
        "lines changed that hold no secret"
    );
    assert_eq!(
        expected.difference(&changed).collect::<Vec<_>>(),
        Vec::<&(String, usize)>::new(),
        "lines with a secret left unchanged"
    );
    assert!(lines > 400_000, "only {lines} corpus lines read");
}

fn line_of(path: &str, n: usize) -> String {
    let bytes = std::fs::read(corpus().join(path)).expect("corpus file");
    String::from_utf8_lossy(&bytes)
        .split('\n')
        .nth(n - 1)
        .unwrap_or_else(|| panic!("{path} has no line {n}"))
        .to_string()
}

#[test]
fn corpus_lines_scrub_to_what_the_library_later_wrote() {
    // Build 07 (no scrubbing) and build 10 (the library's first scrubber) ran the same pip call.
    assert_eq!(
        scrub(&line_of(
            "build-07-config-summary-2025-11/python-install.log",
            1137
        )),
        line_of("build-10-scrubbing-2026-03/python-install.log", 1137)
    );
    assert_eq!(
        line_of("build-10-scrubbing-2026-03/python-install.log", 1137),
        "global.index-url='https://***CREDENTIALS***@pypi.internal.example.com/simple'"
    );
    // Build 12's description kept the token that its `Executing:` line had replaced.
    let description = scrub(&line_of(
        "build-12-token-patterns-2026-05/development-tools-install.log",
        292,
    ));
    assert_eq!(
        description,
        "[10:20:45] COMMAND #3: Cloning https://***CREDENTIALS***@gitlab.example.com/platform/team-scripts.git"
    );
    let executing = line_of(
        "build-12-token-patterns-2026-05/development-tools-install.log",
        293,
    );
    assert!(executing
        .contains("https://***CREDENTIALS***@gitlab.example.com/platform/team-scripts.git"));
    assert_eq!(scrub(&executing), executing);
}

#[test]
fn corpus_lines_scrub_to_expected_text() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "build-05-legacy-2025/docker-install.log",
            27,
            "docker login -u ci -p ***REDACTED*** registry.example.com",
        ),
        (
            "build-07-config-summary-2025-11/development-tools-install.log",
            332,
            "Executing: git clone --depth 1 https://***CREDENTIALS***@github.com/acme/dotfiles.git /opt/dotfiles",
        ),
        (
            "build-07-config-summary-2025-11/development-tools-install.log",
            358,
            "  - GITHUB_TOKEN=***REDACTED***",
        ),
        (
            "build-07-config-summary-2025-11/nodejs-install.log",
            78,
            "Executing: npm config set //registry.npmjs.org/:_authToken=***REDACTED***",
        ),
        (
            "build-07-config-summary-2025-11/python-install.log",
            1157,
            "  - PIP_INDEX_URL=https://***CREDENTIALS***@pypi.internal.example.com/simple",
        ),
        (
            "build-09-log-levels-2026-01/ruby-install.log",
            404,
            "  - GEM_HOST_API_KEY=***REDACTED***",
        ),
        (
            "build-10-scrubbing-2026-03/aws-cli-v2-install.log",
            344,
            "Executing: bash -c aws configure set aws_access_key_id ***AWS_KEY_REDACTED*** && aws configure set aws_secret_access_key ***REDACTED*** && aws configure list",
        ),
        (
            "build-10-scrubbing-2026-03/aws-cli-v2-install.log",
            372,
            "  - AWS_SECRET_ACCESS_KEY=***REDACTED***",
        ),
        (
            "build-11-masked-abort-2026-03/docker-cli-tools-install.log",
            155,
            "Executing: bash -c echo '***DOCKER_TOKEN_REDACTED***' | docker login registry.example.com -u ci --password-stdin",
        ),
        (
            "build-11-masked-abort-2026-03/terraform-install.log",
            64,
            "  - TF_TOKEN_app_terraform_io=***REDACTED***",
        ),
    ];
    for (path, n, expected) in cases {
        assert_eq!(scrub(&line_of(path, *n)), *expected, "{path}:{n}");
    }
}

#[test]
fn library_markers_and_masks_are_kept() {
    let mut checked = 0;
    for (path, text) in corpus_files() {
        for (n, line, out) in scrub_file(&text) {
            let masked = line.contains("REDACTED***")
                || line.contains("***CREDENTIALS***")
                || line.contains("_TOKEN=")
                || line.contains("_PASSWORD=");
            if masked && line.contains('*') {
                assert_eq!(out, line, "{path}:{n}: a library-masked line changed");
                checked += 1;
            }
        }
    }
    // The markers of families E, F, G and H (`ghp_****`, `dckr****`, `***OP_TOKEN_REDACTED***`,
    // `***GITLAB_TOKEN_REDACTED***`, ...) appear in this many lines of the corpus.
    assert!(checked >= 30, "only {checked} masked lines found");
    for line in [
        "  - GITHUB_TOKEN=ghp_****",
        "  - DOCKER_PASSWORD=dckr****",
        "  - CLOUDSDK_AUTH_ACCESS_TOKEN=ya29****",
        "  - OP_SERVICE_ACCOUNT_TOKEN=ops_****",
        "  - GITLAB_TOKEN=glpa****",
        "Executing: bash -c export OP_SERVICE_ACCOUNT_TOKEN=***REDACTED*** op whoami; echo \"token prefix: ***OP_TOKEN_REDACTED***\"",
        "  ✓ Token: ***GITLAB_TOKEN_REDACTED***",
        "Executing: npm config set //npm.pkg.github.com/:_authToken=***GITHUB_TOKEN_REDACTED***",
        "global.index-url='https://***CREDENTIALS***@pypi.internal.example.com/simple'",
        "curl -H 'Authorization: Bearer ***REDACTED***' https://api.example.com",
        "-p ***API_KEY_REDACTED***",
    ] {
        assert!(
            matches!(Scrubber::global().scrub(line), Cow::Borrowed(s) if s == line),
            "{line}"
        );
    }
}

#[test]
fn normal_build_output_is_untouched() {
    let scrubber = Scrubber::global();
    // apt, pip, cargo and npm lines: no anchor at all, so no rule even runs.
    for line in [
        "Get:1 http://deb.debian.org/debian trixie/main amd64 Packages [9170 kB]",
        "Setting up libgpg-error0:amd64 (1.50-4) ...",
        "Collecting poetry==1.8.3",
        "Successfully installed poetry-1.8.3 pipx-1.7.1",
        "   Compiling proc-macro2 v1.0.92",
        "warning: unused variable: `x`",
        "[10:20:45] COMMAND #3: Installing build dependencies",
    ] {
        assert!(scrubber.is_clean_fast(line), "{line}");
        assert!(matches!(scrubber.scrub(line), Cow::Borrowed(s) if s == line));
    }
    // Candidates that are still not secrets.
    for line in [
        "npm http fetch GET 200 https://registry.npmjs.org/@types/node/-/@types/node-3.8.3.tgz 312ms (cache miss)",
        "go: github.com/acme/lint-rules@latest: module github.com/acme/lint-rules: reading https://proxy.golang.org/github.com/acme/lint-rules/@v/list: 404 Not Found",
        "Executing: apt-get install -y --no-install-recommends gnupg && apt-key adv --keyserver keyserver.ubuntu.com",
        "  Downloading tokenizers-0.21.0-cp39-abi3-manylinux_2_17_x86_64.whl (3.0 MB)",
        "export TOKENIZERS_PARALLELISM=false",
        "WARNING! Your password will be stored unencrypted in /root/.docker/config.json.",
        "  inflating: aws/dist/awscli/data/secretsmanager/2019-01-12/examples-1.json",
        "access_key     ****************MPLE shared-credentials-file",
        "trying URL 'https://cloud.r-project.org/src/contrib/highr_0.10.0.tar.gz'",
    ] {
        assert!(matches!(scrubber.scrub(line), Cow::Borrowed(s) if s == line), "{line}");
    }
    // Every line of build 01 (family H, already scrubbed by the library) comes back as it was.
    for (path, text) in corpus_files() {
        if path.starts_with("build-01-success") {
            for (n, line, out) in scrub_file(&text) {
                assert_eq!(out, line, "{path}:{n}");
            }
        }
    }
}

#[test]
fn idempotent_on_every_corpus_line() {
    let scrubber = Scrubber::global();
    for (path, text) in corpus_files() {
        for (n, line) in text.split('\n').enumerate() {
            let once = scrubber.scrub(line);
            let twice = scrubber.scrub(&once);
            assert_eq!(twice, once, "{path}:{}", n + 1);
        }
    }
}

#[test]
fn pem_key_printed_in_a_buildkit_log_is_redacted() {
    let body = [
        "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun",
        "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK",
        "LxoS2tFczGkPLPgizskuemMghRniWaoLcyehkd3qqGElvW/VDL5AaWTg0nLVkjRo",
        "9z+7Q1a0",
    ];
    let mut log = vec!["#7 0.211 -----BEGIN RSA PRIVATE KEY-----".to_string()];
    log.extend(body.iter().map(|b| format!("#7 0.212 {b}")));
    log.push("#7 0.213 -----END RSA PRIVATE KEY-----".into());
    log.push("#7 0.214 Identity added: /root/.ssh/id_rsa".into());
    let text = log.join("\n");
    let out = scrub_file(&text);
    for (_, _, o) in &out {
        for b in body {
            assert!(!o.contains(b), "key material survived: {o}");
        }
    }
    assert_eq!(out[1].2, "#7 0.212 ***PRIVATE_KEY_REDACTED***");
    assert_eq!(out[4].2, "#7 0.212 ***PRIVATE_KEY_REDACTED***");
    assert_eq!(out[5].2, log[5]);
    assert_eq!(out[6].2, log[6]);
    // Scrubbing the scrubbed stream again changes nothing.
    let scrubbed = out
        .iter()
        .map(|o| o.2.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let again = scrub_file(&scrubbed);
    assert!(again.iter().zip(&out).all(|(a, b)| a.2 == b.2));
}

#[test]
fn clones_share_rules_and_work_across_threads() {
    let scrubber = Scrubber::new();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let s = scrubber.clone();
            std::thread::spawn(move || s.scrub(&format!("t{i} GH_TOKEN=abc{i}")).into_owned())
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), format!("t{i} GH_TOKEN=***REDACTED***"));
    }
    assert_eq!(
        Scrubber::global().rule_names().count(),
        scrubber.rule_names().count()
    );
}

// ---------------------------------------------------------------------------------------------
// Properties

/// Pieces of text that come close to the rules: anchors, markers, separators, secrets.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("token".to_string()),
        Just("TOKEN=".to_string()),
        Just("_authToken=".to_string()),
        Just("password".to_string()),
        Just("=".to_string()),
        Just("==".to_string()),
        Just("\"".to_string()),
        Just("'".to_string()),
        Just("\\\"".to_string()),
        Just(" ".to_string()),
        Just("\n".to_string()),
        Just(";".to_string()),
        Just("@".to_string()),
        Just(":".to_string()),
        Just("://".to_string()),
        Just("https://".to_string()),
        Just("Authorization: ".to_string()),
        Just("Bearer ".to_string()),
        Just("--password ".to_string()),
        Just("curl -u ".to_string()),
        Just("docker login -p ".to_string()),
        Just("aws_secret_access_key ".to_string()),
        Just("ghp_".to_string()),
        Just("ops_".to_string()),
        Just("glpat-".to_string()),
        Just("sk-".to_string()),
        Just("eyJ".to_string()),
        Just(".".to_string()),
        Just("AKIA".to_string()),
        Just("npm_".to_string()),
        Just("dckr_pat_".to_string()),
        Just("-----BEGIN PRIVATE KEY-----".to_string()),
        Just("-----END PRIVATE KEY-----".to_string()),
        Just("***REDACTED***".to_string()),
        Just("***CREDENTIALS***".to_string()),
        Just("ghp_****".to_string()),
        "[A-Za-z0-9_]{1,30}",
        "[a-z]{1,8}",
        "\\PC{0,6}",
    ]
}

fn near_miss_text() -> impl Strategy<Value = String> {
    prop::collection::vec(fragment(), 0..24).prop_map(|v| v.concat())
}

/// A secret of a shape the rules know, and the part of it that must not survive.
fn secret() -> impl Strategy<Value = (String, String)> {
    let alnum = |n: usize| {
        prop::collection::vec(
            prop::sample::select(
                b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".to_vec(),
            ),
            n,
        )
        .prop_map(|v| String::from_utf8(v).unwrap())
    };
    let upper = prop::collection::vec(
        prop::sample::select(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".to_vec()),
        16,
    )
    .prop_map(|v| String::from_utf8(v).unwrap());
    prop_oneof![
        alnum(36).prop_map(|v| (format!("ghp_{v}"), v)),
        alnum(36).prop_map(|v| (format!("github_pat_{v}"), v)),
        alnum(30).prop_map(|v| (format!("glpat-{v}"), v)),
        alnum(40).prop_map(|v| (format!("ops_{v}"), v)),
        alnum(40).prop_map(|v| (format!("sk-proj-{v}"), v)),
        alnum(36).prop_map(|v| (format!("npm_{v}"), v)),
        alnum(27).prop_map(|v| (format!("dckr_pat_{v}"), v)),
        upper.prop_map(|v| (format!("AKIA{v}"), v)),
        (alnum(20), alnum(30), alnum(25)).prop_map(|(a, b, c)| (format!("eyJ{a}.eyJ{b}.{c}"), b)),
        (alnum(12), "[A-Z]{2,8}").prop_map(|(v, n)| (format!("{n}_TOKEN={v}"), v)),
        (alnum(12), "[a-z]{2,8}")
            .prop_map(|(v, n)| (format!("{n}_password=\"{v} x\""), format!("{v} x"))),
        alnum(14).prop_map(|v| (format!("Authorization: Bearer {v}"), v)),
        (alnum(6), alnum(14)).prop_map(|(u, p)| (
            format!("https://{u}:{p}@git.example.com/r.git"),
            format!("{u}:{p}")
        )),
        alnum(40).prop_map(|v| (format!("aws configure set aws_secret_access_key {v}"), v)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics_and_is_idempotent(s in "\\PC{0,200}") {
        let scrubber = Scrubber::global();
        let once = scrubber.scrub(&s).into_owned();
        prop_assert_eq!(scrubber.scrub(&once).into_owned(), once.clone());
        prop_assert_eq!(scrubber.scrub_rules(&s).into_owned(), once);
    }

    #[test]
    fn near_misses_are_idempotent_and_prefilter_is_exact(s in near_miss_text()) {
        let scrubber = Scrubber::global();
        let once = scrubber.scrub(&s).into_owned();
        prop_assert_eq!(scrubber.scrub(&once).into_owned(), once.clone(), "input {:?}", s);
        // The prefilter never skips a string that a rule would change.
        prop_assert_eq!(scrubber.scrub_rules(&s).into_owned(), once.clone());
        if scrubber.is_clean_fast(&s) {
            prop_assert_eq!(once, s);
        }
    }

    #[test]
    fn text_without_anchors_is_returned_borrowed(s in "[a-zA-Z0-9 .,:/()\\[\\]#-]{0,120}") {
        let scrubber = Scrubber::global();
        prop_assume!(scrubber.is_clean_fast(&s));
        prop_assert!(matches!(scrubber.scrub(&s), Cow::Borrowed(b) if b == s));
    }

    #[test]
    fn secrets_between_words_never_survive(
        before in "[a-z]{1,8}( [a-z0-9.:/-]{1,12}){0,4}",
        (secret, value) in secret(),
        after in "( [a-z0-9.:/-]{1,12}){0,4}",
    ) {
        let line = format!("{before} {secret}{after}");
        let out = Scrubber::global().scrub(&line).into_owned();
        prop_assert!(!out.contains(&value), "{:?} -> {:?}", line, out);
        prop_assert!(out.contains("***"), "{:?} -> {:?}", line, out);
    }

    #[test]
    fn colour_codes_anywhere_never_hide_a_secret(
        before in "[a-z]{1,8}( [a-z0-9.:/-]{1,12}){0,3}",
        (secret, value) in secret(),
        after in "( [a-z0-9.:/-]{1,12}){0,3}",
        codes in prop::collection::vec((any::<prop::sample::Index>(), prop::sample::select(vec![
            "\x1b[36m", "\x1b[0m", "\x1b[1;31m", "\x1b[K", "\x1b]0;title\x07",
        ])), 1..4),
    ) {
        let plain = format!("{before} {secret}{after}");
        let mut raw = plain.clone();
        for (at, code) in codes {
            let mut i = at.index(raw.len() + 1);
            while !raw.is_char_boundary(i) {
                i -= 1;
            }
            // Not inside another code.
            if raw[..i].rfind('\x1b').is_some_and(|e| !raw[e..i].contains(['m', 'K', '\x07'])) {
                continue;
            }
            raw.insert_str(i, code);
        }
        let scrubber = Scrubber::global();
        let out = scrubber.scrub(&raw).into_owned();
        let text = buildlog::parse::text::strip_ansi(&out).into_owned();
        prop_assert!(!text.contains(&value), "{:?} -> {:?}", raw, out);
        prop_assert_eq!(scrubber.scrub(&out).into_owned(), out.clone(), "not idempotent on {:?}", raw);
    }

    #[test]
    fn pem_tracker_never_panics_and_is_idempotent(lines in prop::collection::vec(near_miss_text(), 0..12)) {
        let scrubber = Scrubber::global();
        let mut first = PemTracker::new();
        let once: Vec<String> = lines.iter().map(|l| first.scrub_line(scrubber, l).into_owned()).collect();
        let mut second = PemTracker::new();
        let twice: Vec<String> = once.iter().map(|l| second.scrub_line(scrubber, l).into_owned()).collect();
        prop_assert_eq!(twice, once);
    }
}
