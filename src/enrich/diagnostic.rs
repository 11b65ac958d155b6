//! Diagnostics: is an output line an error or a warning by the format of the tool that
//! printed it? The logger's own judgement (`level`, its substring counts) flags every line
//! holding `error` (`-Werror=format`, `liberror-perl`, `error_prone_annotations-2.36.jar`);
//! this looks at the shapes tools actually print (`file.c:3:5: error:`, `E: `, `npm ERR!`).
//!
//! It runs on every output line, so it is built to say "no" cheaply: a line is trimmed, its
//! first byte picks the few prefixes worth comparing, and the `: error:` family is looked for
//! only where it can be, after the first word.
//! The table of rules is in `docs/schema.md` ("Diagnostics"); the tests below hold a
//! positive and a negative example of each.

use crate::event::Diagnostic;

use Diagnostic::{Error, Warning};

/// What follows `<tool or file:line[:col]>: ` in a tool's diagnostic.
const TOOL_SEVERITIES: [(&str, Diagnostic); 5] = [
    ("fatal error:", Error),
    ("error:", Error),
    ("warning:", Warning),
    ("ERROR:", Error),
    ("WARNING:", Warning),
];

/// The diagnostic an output line is, if it is one. `line` is the message (ANSI codes stripped).
pub fn classify(line: &str) -> Option<Diagnostic> {
    let t = trim_start(line);
    let b = t.as_bytes();
    let first = *b.first()?;
    let by_prefix = match first {
        b'E' => (t.starts_with("E: ")
            || t.starts_with("ERROR: ")
            || t.starts_with("Exception in thread "))
        .then_some(Error),
        b'W' => (t.starts_with("W: ") || t.starts_with("WARNING: ")).then_some(Warning),
        b'e' => {
            if t.starts_with("error: ") || error_code(t) {
                Some(Error)
            } else {
                None
            }
        }
        b'w' => (t.starts_with("warning: ") || warning_code(t)).then_some(Warning),
        b'n' => {
            if t.starts_with("npm ERR!") || t.starts_with("npm error ") {
                Some(Error)
            } else if t.starts_with("npm WARN") || t.starts_with("npm warn ") {
                Some(Warning)
            } else {
                None
            }
        }
        b'c' => curl_error(t).then_some(Error),
        b'T' => t
            .starts_with("Traceback (most recent call last):")
            .then_some(Error),
        b'm' => make_error(t).then_some(Error),
        b'g' => go_error(t).then_some(Error),
        b'[' => {
            if t.starts_with("[ERROR]") {
                Some(Error)
            } else if t.starts_with("[WARNING]") {
                Some(Warning)
            } else {
                None
            }
        }
        b'B' => (t.starts_with("BUILD FAILURE") || t.starts_with("BUILD FAILED")).then_some(Error),
        b'F' => (t.starts_with("FAILURE: Build failed")
            || t.starts_with("FAIL\t")
            || t.starts_with("FAIL "))
        .then_some(Error),
        b'-' => t.starts_with("--- FAIL: ").then_some(Error),
        b'p' => t.starts_with("panic: ").then_some(Error),
        b'd' => {
            if t.starts_with("dpkg: error") {
                Some(Error)
            } else if t.starts_with("dpkg: warning") {
                Some(Warning)
            } else {
                None
            }
        }
        b'f' => (t.starts_with("fatal error: ") || t.starts_with("fatal: ")).then_some(Error),
        _ => None,
    };
    by_prefix.or_else(|| tool_diagnostic(t))
}

/// `str::trim_start`, quicker for the usual line: one that starts with an ASCII byte that is
/// not white space, or with spaces and tabs and then one (`trim_start` steps through the line
/// a character at a time, asking each whether it is Unicode white space).
fn trim_start(line: &str) -> &str {
    let b = line.as_bytes();
    let i = b
        .iter()
        .position(|&c| c != b' ' && c != b'\t')
        .unwrap_or(b.len());
    match b.get(i) {
        Some(&c) if c.is_ascii() && !char::from(c).is_whitespace() => &line[i..],
        None => "",
        Some(_) => line.trim_start(),
    }
}

/// `error[E0425]: ...` (rustc, cargo).
fn error_code(t: &str) -> bool {
    t.strip_prefix("error[")
        .and_then(|r| r.split_once("]: "))
        .is_some_and(|(code, _)| is_code(code))
}

/// `warning[E0133]: ...`.
fn warning_code(t: &str) -> bool {
    t.strip_prefix("warning[")
        .and_then(|r| r.split_once("]: "))
        .is_some_and(|(code, _)| is_code(code))
}

fn is_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 32
        && code
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b':')
}

/// `curl: (22) The requested URL returned error: 404`.
fn curl_error(t: &str) -> bool {
    t.strip_prefix("curl: (")
        .and_then(|r| r.split_once(')'))
        .is_some_and(|(n, _)| {
            !n.is_empty() && n.len() <= 3 && n.bytes().all(|c| c.is_ascii_digit())
        })
}

/// `make: *** [Makefile:12: all] Error 2`, `make[1]: *** ... Error 1`.
fn make_error(t: &str) -> bool {
    let Some(rest) = t.strip_prefix("make") else {
        return false;
    };
    let rest = match rest.strip_prefix('[') {
        Some(r) => match r.split_once("]") {
            Some((n, r)) if n.bytes().all(|c| c.is_ascii_digit()) => r,
            _ => return false,
        },
        None => rest,
    };
    let Some(rest) = rest.strip_prefix(": *** ") else {
        return false;
    };
    rest.rsplit_once("Error ")
        .is_some_and(|(_, n)| !n.is_empty() && n.trim_end().bytes().all(|c| c.is_ascii_digit()))
}

/// `go: golang.org/x/tools/gopls@v0.17.1: <why>`: the go command could not get a module
/// (`go: downloading x v1` and friends are progress, not failures).
fn go_error(t: &str) -> bool {
    let Some(rest) = t.strip_prefix("go: ") else {
        return false;
    };
    match rest.split_once(": ") {
        Some((module, why)) => module.contains('@') && !module.contains(' ') && !why.is_empty(),
        None => false,
    }
}

/// `src/a.c:3:5: error: ...`, `collect2: error: ...`, `configure: WARNING: ...`: one token
/// (a file position or a tool's name, no spaces) then the severity. The token holds no
/// whitespace, so the severity can only follow the line's first whitespace, which must be the
/// space of `: `: one short look instead of a search of the whole line.
fn tool_diagnostic(t: &str) -> Option<Diagnostic> {
    let b = t.as_bytes();
    let space = first_ascii_whitespace(b)?;
    // A token of at least one byte, then `: `.
    if space < 2 || b[space - 1] != b':' || b[space] != b' ' {
        return None;
    }
    let rest = &t[space + 1..];
    // Most first words followed by `: ` are not a tool's (`inflating: `, `Get:1 `): a look at
    // the next byte turns them away before five comparisons.
    if !matches!(
        rest.as_bytes().first(),
        Some(b'f' | b'e' | b'w' | b'E' | b'W')
    ) {
        return None;
    }
    TOOL_SEVERITIES
        .iter()
        .find(|(severity, _)| rest.starts_with(severity))
        .map(|&(_, d)| d)
}

/// Where the first ASCII white-space byte of `b` is (`u8::is_ascii_whitespace`: space, tab,
/// LF, FF, CR). Every output line's first word is measured so: sixteen bytes a step where the
/// CPU has SSE2 instead of a byte (a fifth of `classify`'s instructions went to the byte loop).
#[inline]
fn first_ascii_whitespace(b: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_set1_epi8,
        };
        let mut i = 0;
        while i + 16 <= b.len() {
            // SAFETY: SSE2 is part of the x86-64 baseline; the load reads b[i..i + 16].
            let mut at_most_space = unsafe {
                let x = _mm_loadu_si128(b.as_ptr().add(i).cast());
                // The white space and the other control bytes: `min(x, 0x20) == x`, unsigned.
                _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(x, _mm_set1_epi8(0x20)), x)) as u32
            };
            while at_most_space != 0 {
                let p = i + at_most_space.trailing_zeros() as usize;
                if b[p].is_ascii_whitespace() {
                    return Some(p);
                }
                at_most_space &= at_most_space - 1;
            }
            i += 16;
        }
        b[i..]
            .iter()
            .position(u8::is_ascii_whitespace)
            .map(|p| i + p)
    }
    #[cfg(not(target_arch = "x86_64"))]
    b.iter().position(u8::is_ascii_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The first white space wherever it is and whatever control bytes come before it.
        #[test]
        fn the_first_white_space_is_the_byte_loops(
            line in proptest::collection::vec(proptest::sample::select(vec![
                b'a', b':', b'\t', b'\n', 0x0b, 0x0c, b'\r', b' ', 0x00, 0x1f, 0x21, 0x80, 0xa0, 0xff,
            ]), 0..70),
            filler in 0usize..50,
        ) {
            let mut b = vec![b'x'; filler];
            b.extend_from_slice(&line);
            proptest::prop_assert_eq!(
                first_ascii_whitespace(&b),
                b.iter().position(u8::is_ascii_whitespace)
            );
        }
    }

    #[test]
    fn trim_start_is_strs() {
        for line in [
            "",
            " ",
            "\t \t",
            "error: x",
            "  error: x",
            "\t\terror",
            "\u{b}error",
            " \u{c}x",
            "\u{a0}error: x",
            " \u{3000}E: x",
            "\u{85}x",
            "é",
            "  é ",
            "\r\nx",
        ] {
            assert_eq!(trim_start(line), line.trim_start(), "{line:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn trim_start_is_strs_on_any_line(line in "[ \t\u{b}\u{c}\r\n\u{a0}\u{3000}a:é]{0,8}") {
            proptest::prop_assert_eq!(trim_start(&line), line.trim_start());
        }
    }

    /// The quick look before the comparisons knows the first byte of every severity.
    #[test]
    fn every_tool_severity_passes_the_first_byte_look() {
        for (severity, d) in TOOL_SEVERITIES {
            let line = format!("tool: {severity} x");
            assert_eq!(tool_diagnostic(&line), Some(d), "{line}");
        }
    }

    /// Each rule: (name, a line it flags and as what, a line of the same family it does not).
    const RULES: &[(&str, &str, Diagnostic, &str)] = &[
        (
            "compiler error",
            "src/main.c:12:5: error: 'x' undeclared (first use in this function)",
            Error,
            "gcc -c -Wall -Werror=format-security -Werror=implicit-function-declaration main.c",
        ),
        (
            "compiler fatal error",
            "foo.c:1:10: fatal error: zlib.h: No such file or directory",
            Error,
            "checking for zlib.h... no (fatal errors are reported later)",
        ),
        (
            "compiler warning",
            "format.cpp:120:23: warning: comparison of integer expressions of different signedness",
            Warning,
            "g++ -std=gnu++17 -Wno-warning-option -fpic -c format.cpp -o format.o",
        ),
        (
            "tool error",
            "collect2: error: ld returned 1 exit status",
            Error,
            "Setting up liberror-perl (0.17029-2) ...",
        ),
        (
            "tool warning",
            "configure: WARNING: pkg-config is missing. Some dependencies may not be detected",
            Warning,
            "checking whether to enable -Werror... no",
        ),
        (
            "bare fatal error",
            "fatal error: too many errors emitted, stopping now",
            Error,
            "fatality-rs 0.1.0 downloaded",
        ),
        (
            "git fatal",
            "fatal: repository 'https://example.com/x.git/' not found",
            Error,
            "fatalism: none",
        ),
        (
            "rustc error code",
            "error[E0425]: cannot find value `x` in this scope",
            Error,
            "error_prone_annotations-2.36.0.jar",
        ),
        (
            "rustc/cargo error",
            "error: could not compile `foo` (lib) due to 2 previous errors",
            Error,
            "errorlint: all good",
        ),
        (
            "rustc/cargo warning",
            "warning: unexpected `cfg` condition name: `nightly`",
            Warning,
            "   = note: `#[warn(unexpected_cfgs)]` on by default",
        ),
        (
            "rustc warning code",
            "warning[E0133]: call to unsafe function is unsafe",
            Warning,
            "warnings-as-errors: off",
        ),
        (
            "npm ERR!",
            "npm ERR! code E404",
            Error,
            "npm http fetch GET 200 https://registry.npmjs.org/make-error/-/make-error-1.3.6.tgz 12ms",
        ),
        (
            "npm error",
            "npm error 404 Not Found - GET https://registry.npmjs.org/@acme/eslint-config-private",
            Error,
            "npm info using npm@10.9.2",
        ),
        (
            "npm warn",
            "npm warn deprecated rimraf@3.0.2: Rimraf versions prior to v4 are no longer supported",
            Warning,
            "npm notice New major version of npm available",
        ),
        (
            "apt E:",
            "E: jdtls archive could not be downloaded",
            Error,
            "Get:1 http://deb.debian.org/debian bookworm/main amd64 liberror-perl all 0.17029-2 [29.7 kB]",
        ),
        (
            "apt W:",
            "W: GPG error: https://example.com stable InRelease: NO_PUBKEY 1234",
            Warning,
            "Wrote 12 files",
        ),
        (
            "dpkg error",
            "dpkg: error processing package foo (--configure):",
            Error,
            "dpkg: status database area is locked, waiting",
        ),
        (
            "curl",
            "curl: (22) The requested URL returned error: 404",
            Error,
            "curl: try 'curl --help' or 'curl --manual' for more information",
        ),
        (
            "Python traceback",
            "Traceback (most recent call last):",
            Error,
            "Traceback module loaded",
        ),
        (
            "pip ERROR",
            "ERROR: Could not find a version that satisfies the requirement foo==9.9",
            Error,
            "ERRORS: 0",
        ),
        (
            "pip WARNING",
            "WARNING: Running pip as the 'root' user can result in broken permissions",
            Warning,
            "WARNINGS: none",
        ),
        (
            "Go module failure",
            "go: golang.org/x/tools/gopls@v0.17.1: Get \"https://proxy.golang.org/...\": dial tcp: no such host",
            Error,
            "go: downloading github.com/polyfloyd/go-errorlint v1.7.0",
        ),
        (
            "Go test FAIL",
            "FAIL\tgithub.com/example/service/internal/db\t0.412s",
            Error,
            "ok  \tgithub.com/example/service/internal/db\t0.412s\tcoverage: 81.2% of statements",
        ),
        (
            "Go test --- FAIL",
            "--- FAIL: TestParse (0.00s)",
            Error,
            "--- PASS: TestParse (0.00s)",
        ),
        (
            "Go panic",
            "panic: runtime error: index out of range [3] with length 3",
            Error,
            "panicking is fine in tests",
        ),
        (
            "Java exception",
            "Exception in thread \"main\" java.lang.NoClassDefFoundError: org/example/Main",
            Error,
            "Exceptions: 0",
        ),
        (
            "Maven [ERROR]",
            "[ERROR] Failed to execute goal org.apache.maven.plugins:maven-compiler-plugin:3.13.0:compile",
            Error,
            "Downloading from central: https://repo.maven.apache.org/maven2/com/google/errorprone/error_prone_annotations/2.36.0/error_prone_annotations-2.36.0.pom",
        ),
        (
            "Maven [WARNING]",
            "[WARNING] The POM for httpcore:4.4.16 is invalid, transitive dependencies (if any) will not be available",
            Warning,
            "[INFO] BUILD SUCCESS",
        ),
        (
            "Maven BUILD FAILURE",
            "BUILD FAILURE",
            Error,
            "BUILD SUCCESSFUL in 12s",
        ),
        (
            "Gradle BUILD FAILED",
            "BUILD FAILED in 3s",
            Error,
            "BUILD SUCCESSFUL in 3s",
        ),
        (
            "Gradle FAILURE",
            "FAILURE: Build failed with an exception.",
            Error,
            "Downloaded from central: https://repo.maven.apache.org/maven2/com/google/guava/failureaccess/1.0.2/failureaccess-1.0.2.jar",
        ),
        (
            "make",
            "make: *** [Makefile:42: all] Error 2",
            Error,
            "*** installing help indices",
        ),
        (
            "sub-make",
            "make[1]: *** [Makefile:7: install] Error 1",
            Error,
            "make[1]: Leaving directory '/tmp/build'",
        ),
    ];

    #[test]
    fn every_rule_has_a_positive_and_a_negative_example() {
        for (name, yes, what, no) in RULES {
            assert_eq!(classify(yes), Some(*what), "{name}: {yes}");
            assert_eq!(classify(no), None, "{name}: {no}");
        }
    }

    #[test]
    fn indentation_and_empty_lines() {
        assert_eq!(classify("   E: broken"), Some(Error));
        assert_eq!(classify(""), None);
        assert_eq!(classify("    "), None);
    }

    #[test]
    fn flags_and_names_holding_error_are_not_diagnostics() {
        for l in [
            "  Compiling thiserror v1.0.69",
            "Setting up liberror-perl (0.17029-2) ...",
            "go: downloading github.com/polyfloyd/go-errorlint v1.7.0",
            "# get https://proxy.golang.org/github.com/polyfloyd/go-errorlint/@v/v1.7.0.zip: 200 OK (0.1s)",
            "cc -Werror=format-security -c x.c: ok",
            "curl: (abc) no",
            "make: *** No rule. Error x",
        ] {
            assert_eq!(classify(l), None, "{l}");
        }
    }

    /// The rule as first written: the leftmost `: <severity>:` anywhere in the line, then the
    /// token before it checked for whitespace.
    fn tool_diagnostic_by_search(t: &str) -> Option<Diagnostic> {
        static SEARCH: std::sync::LazyLock<aho_corasick::AhoCorasick> =
            std::sync::LazyLock::new(|| {
                aho_corasick::AhoCorasick::builder()
                    .match_kind(aho_corasick::MatchKind::LeftmostFirst)
                    .build(TOOL_SEVERITIES.map(|(s, _)| format!(": {s}")))
                    .expect("fixed patterns build")
            });
        let m = SEARCH.find(t)?;
        let head = &t[..m.start()];
        if head.is_empty() || head.bytes().any(|c| c.is_ascii_whitespace()) {
            return None;
        }
        Some(TOOL_SEVERITIES[m.pattern().as_usize()].1)
    }

    #[test]
    fn the_severity_after_the_first_word_is_the_leftmost_one() {
        for t in [
            "a.c:1: error: x",
            "a.c:1:  error: two spaces",
            "a.c:1:\terror: a tab",
            ": error: no token",
            "x: error:",
            "x: fatal error: y",
            "x: warning: a: error: b",
            "two words: error: x",
            "x:error: no space",
            "configure: WARNING: y",
            "x: Error: other case",
            "x:\u{a0}error: a no-break space is not ASCII whitespace",
        ] {
            assert_eq!(tool_diagnostic(t), tool_diagnostic_by_search(t), "{t}");
        }
        assert_eq!(tool_diagnostic("a.c:1: error: x"), Some(Error));
        assert_eq!(tool_diagnostic("x: warning: a: error: b"), Some(Warning));
        assert_eq!(tool_diagnostic("two words: error: x"), None);
    }

    /// Every distinct line of the corpus gets the same answer as the whole-line search gave.
    #[test]
    fn the_corpus_lines_get_what_the_search_gave() {
        let lines = crate::test_support::corpus_lines();
        let mut found = 0;
        for line in &lines {
            let line = String::from_utf8_lossy(line);
            let t = crate::parse::text::strip_ansi(line.trim_end_matches('\r'));
            let t = t.trim_start();
            let want = tool_diagnostic_by_search(t);
            assert_eq!(tool_diagnostic(t), want, "{t}");
            found += usize::from(want.is_some());
        }
        assert!(
            lines.len() > 200_000 && found > 10,
            "{found} of {}",
            lines.len()
        );
    }

    proptest::proptest! {
        /// Lines made of the pieces the rule looks at, in any order.
        #[test]
        fn any_line_gets_what_the_search_gives(
            pieces in proptest::collection::vec(proptest::sample::select(vec![
                "src/a.c:3:5", ":", " ", "\t", "error:", "warning:", "fatal error:", "ERROR:",
                "WARNING:", "fatal", "x", "Error:", ": ", "\u{e9}",
            ]), 0..8)
        ) {
            let t = pieces.concat();
            proptest::prop_assert_eq!(tool_diagnostic(&t), tool_diagnostic_by_search(&t), "{:?}", t);
        }
    }
}
