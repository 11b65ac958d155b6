//! Secret scrubbing: credentials that a build printed are replaced by redaction markers before
//! any event leaves the process.
//!
//! The rules cover every pattern of the logging library's own scrubber, with its markers
//! (`***REDACTED***`, `***GITHUB_TOKEN_REDACTED***`, `https://***CREDENTIALS***@host`, ...), plus
//! token shapes it does not know (Docker, npm, AWS, JWT, PEM private keys, ...). See
//! `docs/scrubbing.md` for the table.
//!
//! Speed: every line is scrubbed. One case-insensitive pass (`scrub/anchors.rs`) looks for the
//! literal anchors that every rule needs (`token`, `ghp_`, `@`, ...); a line without any is
//! returned borrowed. Otherwise only the rules whose anchors were seen run. For an install
//! log's output lines (nearly every line of a build) that pass is the parser's own: its scan
//! for the logger's error and warning literals looks for the anchors too (`LineScanner`)
//! and the event carries the answer ([`AnchorScan`]).
//!
//! Idempotence: markers and the library's own masks (`ghp_****`) are never replaced again, and
//! the rules are applied until nothing changes, so `scrub(scrub(x)) == scrub(x)`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, OnceLock};

mod anchors;

use regex::{Captures, Match, Regex};

/// The library's generic marker, for assignments, headers and arguments.
pub const REDACTED: &str = "***REDACTED***";
/// The library's marker for `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` and `github_pat_` tokens.
pub const GITHUB_TOKEN_REDACTED: &str = "***GITHUB_TOKEN_REDACTED***";
/// The library's marker for GitLab tokens (`glpat-...`).
pub const GITLAB_TOKEN_REDACTED: &str = "***GITLAB_TOKEN_REDACTED***";
/// The library's marker for 1Password service-account tokens (`ops_...`).
pub const OP_TOKEN_REDACTED: &str = "***OP_TOKEN_REDACTED***";
/// The library's marker for `sk-`/`pk-` keys (also used for Stripe and Google API keys).
pub const API_KEY_REDACTED: &str = "***API_KEY_REDACTED***";
/// The library's replacement for the user-info part of a URL: `https://***CREDENTIALS***@host`.
pub const CREDENTIALS: &str = "***CREDENTIALS***";
/// Markers for what only buildlog recognises, in the library's style.
pub const DOCKER_TOKEN_REDACTED: &str = "***DOCKER_TOKEN_REDACTED***";
pub const NPM_TOKEN_REDACTED: &str = "***NPM_TOKEN_REDACTED***";
pub const PYPI_TOKEN_REDACTED: &str = "***PYPI_TOKEN_REDACTED***";
pub const RUBYGEMS_TOKEN_REDACTED: &str = "***RUBYGEMS_TOKEN_REDACTED***";
pub const AWS_KEY_REDACTED: &str = "***AWS_KEY_REDACTED***";
pub const GOOGLE_TOKEN_REDACTED: &str = "***GOOGLE_TOKEN_REDACTED***";
pub const SLACK_TOKEN_REDACTED: &str = "***SLACK_TOKEN_REDACTED***";
pub const HF_TOKEN_REDACTED: &str = "***HF_TOKEN_REDACTED***";
pub const TERRAFORM_TOKEN_REDACTED: &str = "***TERRAFORM_TOKEN_REDACTED***";
pub const JWT_REDACTED: &str = "***JWT_REDACTED***";
pub const PRIVATE_KEY_REDACTED: &str = "***PRIVATE_KEY_REDACTED***";

/// Rounds of rule application before giving up on reaching a fixed point (never reached on
/// any input seen so far: one round changes the text, the second confirms it).
const MAX_ROUNDS: usize = 4;

/// Replaces secrets in text with redaction markers. Cheap to clone (shared rules), `Send + Sync`.
///
/// ```
/// use buildlog::enrich::scrub::Scrubber;
/// let s = Scrubber::global();
/// assert_eq!(s.scrub("export GITHUB_TOKEN=ghp_abc123"), "export GITHUB_TOKEN=***REDACTED***");
/// assert_eq!(
///     s.scrub("git clone https://ci:hunter2@git.example.com/x.git"),
///     "git clone https://***CREDENTIALS***@git.example.com/x.git"
/// );
/// // No secret-ish anchor: the input comes back borrowed, untouched.
/// assert!(matches!(s.scrub("Setting up curl (8.5.0-2) ..."), std::borrow::Cow::Borrowed(_)));
/// ```
#[derive(Clone)]
pub struct Scrubber {
    inner: Arc<Inner>,
}

struct Inner {
    /// Which anchors of the rules (ASCII case-insensitive) a string holds.
    anchors: anchors::AnchorFinder,
    /// The anchors, lowercased, each with the bit set of the rules it may trigger.
    anchor_list: Vec<(String, u64)>,
    rules: Vec<Rule>,
    pem_begin: LazyRegex,
    pem_end: LazyRegex,
}

/// A regex compiled at its first use. Compiling all the rules took 25 million instructions,
/// as much as scrubbing 40,000 clean lines; most logs hold the anchors of a few rules, and a
/// rule whose anchors never appear never runs, so it is never compiled.
struct LazyRegex {
    pattern: &'static str,
    compiled: OnceLock<Regex>,
}

impl LazyRegex {
    const fn new(pattern: &'static str) -> Self {
        LazyRegex {
            pattern,
            compiled: OnceLock::new(),
        }
    }

    fn get(&self) -> &Regex {
        self.compiled.get_or_init(|| {
            // The patterns are constants: `every_pattern_compiles` compiles them all.
            Regex::new(self.pattern).unwrap_or_else(|e| panic!("pattern {}: {e}", self.pattern))
        })
    }
}

struct Rule {
    name: &'static str,
    matcher: Matcher,
}

enum Matcher {
    /// `NAME=value` where NAME looks like a secret's name: hand-written, because a regex scan
    /// would consume `FOO=BAR_TOKEN=x` as one non-secret assignment and miss the second.
    Assignments,
    Regex(LazyRegex, Action),
}

enum Action {
    /// The whole match becomes the marker.
    Marker(&'static str),
    /// The whole match becomes the marker, unless it is glued to a preceding word character and
    /// shorter than the given length. (The library matched `ghr_` inside `highr_0.10.0`.)
    WordMarker(&'static str, usize),
    /// Computes the replacement of the whole match; `None` keeps it.
    Custom(fn(&Captures<'_>) -> Option<String>),
}

/// One rule as the table in `docs/scrubbing.md` lists it.
struct RuleDef {
    name: &'static str,
    anchors: &'static [&'static str],
    pattern: Option<&'static str>,
    action: Option<Action>,
}

const fn re(
    name: &'static str,
    anchors: &'static [&'static str],
    pattern: &'static str,
    action: Action,
) -> RuleDef {
    RuleDef {
        name,
        anchors,
        pattern: Some(pattern),
        action: Some(action),
    }
}

/// A pattern `prefix VALUE suffix`, where VALUE is an unquoted secret value: it ends at
/// whitespace, quotes, shell punctuation or `@`. (The library stopped only at whitespace and
/// quotes, and so ate the `;` after a token.)
macro_rules! with_value {
    ($prefix:literal, $suffix:literal) => {
        concat!($prefix, r#"[^\s"'`&;|<>\\@]+"#, $suffix)
    };
}

fn rule_defs() -> Vec<RuleDef> {
    use Action::*;
    vec![
        // Order matters, as in the library: headers and assignments before token shapes, so
        // `GITHUB_TOKEN=ghp_x` gives `GITHUB_TOKEN=***REDACTED***` as the library writes it, and
        // URL credentials last, so `https://user:ghp_x@host` gives `https://***CREDENTIALS***@host`.
        re(
            "pem-private-key",
            &["private key"],
            r"(?s)(-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----)(.*?)(-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\z)",
            Custom(pem_body),
        ),
        re(
            "authorization-header",
            &["authorization"],
            // `Authorization: Bearer x`, `"Authorization": "token x"`, `Authorization: x`.
            with_value!(
                r#"(?i)((?:proxy-)?authorization["']?[ \t]*:[ \t]*["']?)(?:([a-z][a-z0-9_-]*)[ \t]+)?("#,
                ")"
            ),
            Custom(authorization),
        ),
        re(
            "api-key-header",
            &[
                "api-key",
                "auth-token",
                "access-token",
                "vault-token",
                "private-token",
            ],
            with_value!(
                r#"(?i)((?:x-)?(?:api-key|auth-token|access-token|vault-token)|private-token|x-goog-api-key)(["']?[ \t]*:[ \t]*["']?)("#,
                ")"
            ),
            Custom(header_value),
        ),
        re(
            "bearer-token",
            &["bearer"],
            r"(?i)(?-u:\b)(bearer[ \t]+)([A-Za-z0-9._~+/-]+=*)",
            Custom(bearer),
        ),
        RuleDef {
            name: "secret-assignment",
            anchors: &[
                "token",
                "secret",
                "passw",
                "passphrase",
                "credential",
                "key",
                "pwd",
                "auth",
            ],
            pattern: None,
            action: None,
        },
        re(
            "secret-argument",
            &["passw", "token", "secret", "key"],
            // `aws configure set aws_secret_access_key X`, `--password X`, `--token "X"`.
            with_value!(
                r#"(?i)(^|[\s"'])((?:--?(?:password|passwd|token|secret|api-key|apikey|client-secret|access-token|auth-token))|aws_secret_access_key|aws_session_token)([ \t]+)("[^"\n]*"|'[^'\n]*'|"#,
                ")"
            ),
            Custom(argument),
        ),
        re(
            "login-password-flag",
            &["login"],
            // `docker login -u ci -p X registry`
            with_value!(r"(?-u:\b)(login(?-u:\b)[^\n]*?[ \t]-p[ \t]+)(", ")"),
            Custom(second_group_value),
        ),
        re(
            "curl-user-password",
            &["curl"],
            // `curl -u user:password ...`, `curl --user=user:password ...`
            with_value!(
                r#"(?-u:\b)(curl(?-u:\b)[^\n]*?[ \t](?:-u|--user)(?:[ \t]+|=)[^\s:"'@/]+:)("#,
                ")"
            ),
            Custom(second_group_value),
        ),
        re(
            "github-token",
            &["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"],
            r"(?:gh[pousr]_|github_pat_)[A-Za-z0-9_]+",
            WordMarker(GITHUB_TOKEN_REDACTED, 24),
        ),
        re(
            "1password-token",
            &["ops_"],
            r"ops_[A-Za-z0-9_]+",
            WordMarker(OP_TOKEN_REDACTED, 24),
        ),
        re(
            "gitlab-token",
            &["glpat-", "gldt-", "glrt-", "glptt-", "glsoat-", "glcbt-"],
            r"gl(?:pat|dt|rt|ptt|soat|cbt)-[A-Za-z0-9_-]{20,}",
            Marker(GITLAB_TOKEN_REDACTED),
        ),
        re(
            "sk-pk-key",
            &["sk-", "pk-"],
            r"(?:sk|pk)-[A-Za-z0-9_-]{20,}",
            // Never inside a word: `task-`, `disk-` and `flask-` start package names.
            WordMarker(API_KEY_REDACTED, usize::MAX),
        ),
        re(
            "stripe-key",
            &["k_live_", "k_test_"],
            r"(?-u:\b)[rsp]k_(?:live|test)_[A-Za-z0-9]{10,}",
            Marker(API_KEY_REDACTED),
        ),
        re(
            "docker-pat",
            &["dckr_pat_"],
            r"dckr_pat_[A-Za-z0-9_-]+",
            Marker(DOCKER_TOKEN_REDACTED),
        ),
        re(
            "npm-token",
            &["npm_"],
            r"(?-u:\b)npm_[A-Za-z0-9]{20,}",
            Marker(NPM_TOKEN_REDACTED),
        ),
        re(
            "pypi-token",
            &["pypi-age"],
            r"pypi-AgE[A-Za-z0-9_-]{20,}",
            Marker(PYPI_TOKEN_REDACTED),
        ),
        re(
            "rubygems-key",
            &["rubygems_"],
            r"(?-u:\b)rubygems_[A-Za-z0-9]{20,}",
            Marker(RUBYGEMS_TOKEN_REDACTED),
        ),
        re(
            "aws-access-key-id",
            &["akia", "asia"],
            r"(?-u:\b)(?:AKIA|ASIA)[A-Z0-9]{16}(?-u:\b)",
            Marker(AWS_KEY_REDACTED),
        ),
        re(
            "google-oauth-token",
            &["ya29."],
            r"ya29\.[A-Za-z0-9_-]{20,}",
            Marker(GOOGLE_TOKEN_REDACTED),
        ),
        re(
            "google-api-key",
            &["aiza"],
            r"AIza[A-Za-z0-9_-]{35}",
            Marker(API_KEY_REDACTED),
        ),
        re(
            "slack-token",
            &["xox"],
            r"xox[abposr]-[A-Za-z0-9-]{10,}",
            Marker(SLACK_TOKEN_REDACTED),
        ),
        re(
            "huggingface-token",
            &["hf_"],
            r"(?-u:\b)hf_[A-Za-z0-9]{30,}",
            Marker(HF_TOKEN_REDACTED),
        ),
        re(
            "terraform-token",
            &[".atlasv1."],
            r"[A-Za-z0-9]{10,}\.atlasv1\.[A-Za-z0-9_-]{20,}",
            Marker(TERRAFORM_TOKEN_REDACTED),
        ),
        re(
            "jwt",
            &["eyj"],
            r"eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*",
            Marker(JWT_REDACTED),
        ),
        re(
            "url-user-password",
            &["@"],
            // The library's pattern, with any scheme (`git+https`, `postgres`, `redis`, ...).
            r"([A-Za-z][A-Za-z0-9+.-]*://)[^\s@]+:[^\s@]+@",
            Custom(url_credentials),
        ),
        re(
            "url-token-user",
            &["@"],
            // `https://<token>@host`: a user name of 20+ characters with a digit is a token.
            r"([A-Za-z][A-Za-z0-9+.-]*://)([A-Za-z0-9_.~-]{20,})@",
            Custom(url_token_user),
        ),
    ]
}

impl Scrubber {
    /// The default rules, each compiled when a line first needs it: share one instance
    /// ([`Scrubber::global`] or a clone) so that each is compiled once.
    pub fn new() -> Self {
        let defs = rule_defs();
        // Rule sets are u64 bit masks, two bits of which an `AnchorScan` keeps for itself.
        assert!(defs.len() <= 62, "at most 62 rules");
        let mut by_anchor: BTreeMap<String, u64> = BTreeMap::new();
        let mut rules = Vec::with_capacity(defs.len());
        for (i, def) in defs.into_iter().enumerate() {
            for a in def.anchors {
                *by_anchor.entry(a.to_ascii_lowercase()).or_default() |= 1 << i;
            }
            let matcher = match (def.pattern, def.action) {
                (Some(p), Some(action)) => Matcher::Regex(LazyRegex::new(p), action),
                _ => Matcher::Assignments,
            };
            rules.push(Rule {
                name: def.name,
                matcher,
            });
        }
        let anchor_list: Vec<(String, u64)> = by_anchor.into_iter().collect();
        Scrubber {
            inner: Arc::new(Inner {
                anchors: anchors::AnchorFinder::new(&anchor_list),
                anchor_list,
                rules,
                pem_begin: LazyRegex::new(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"),
                pem_end: LazyRegex::new(r"-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"),
            }),
        }
    }

    /// One process-wide instance with the default rules.
    pub fn global() -> &'static Scrubber {
        static GLOBAL: LazyLock<Scrubber> = LazyLock::new(Scrubber::new);
        &GLOBAL
    }

    /// True when `s` holds none of the anchors any rule needs, so [`scrub`](Self::scrub) would
    /// return it unchanged. One pass of a literal search; no regex runs.
    #[inline]
    pub fn is_clean_fast(&self, s: &str) -> bool {
        self.rules_in(s) == 0
    }

    /// The rules the anchors present in `s` may trigger, as a bit set.
    #[inline]
    fn rules_in(&self, s: &str) -> u64 {
        self.inner.anchors.rules_in(s.as_bytes())
    }

    /// `s` with every secret replaced by its marker; borrowed when nothing was replaced.
    /// Colour codes do not hide a secret: `\e[36mDB_PASSWORD\e[0m=x` is scrubbed as
    /// `DB_PASSWORD=x` is, the codes outside the secret kept.
    pub fn scrub<'a>(&self, s: &'a str) -> Cow<'a, str> {
        self.scrub_noting_anchors(s).0
    }

    /// [`scrub`](Self::scrub), and whether `s` held an anchor or an escape sequence. When it
    /// did not, the result is `s` itself and holds no anchor either: no `PRIVATE KEY`, so no
    /// key block can start on it, and the key tracker need not look for one.
    fn scrub_noting_anchors<'a>(&self, s: &'a str) -> (Cow<'a, str>, bool) {
        self.scrub_scanned(s, self.scan(s.as_bytes()))
    }

    /// What this scrubber's scan finds in `s`.
    pub(crate) fn scan(&self, s: &[u8]) -> AnchorScan {
        let (rules, escape) = self.inner.anchors.rules_and_escape_in(s);
        AnchorScan::new(rules, escape)
    }

    /// [`scrub_noting_anchors`](Self::scrub_noting_anchors) of `s` with the answer of
    /// [`scan`](Self::scan) already known.
    fn scrub_scanned<'a>(&self, s: &'a str, scan: AnchorScan) -> (Cow<'a, str>, bool) {
        match (scan.rules(), scan.escape()) {
            (_, true) => (self.scrub_ansi(s), true),
            (0, false) => (Cow::Borrowed(s), false),
            (rules, false) => (self.apply_rules(s, rules, |t| self.rules_in(t)), true),
        }
    }

    /// A scanner that looks for this scrubber's anchors and for `extra`, a caller's own
    /// patterns (at most eight buckets), in one pass over a line; `None` where the CPU has no
    /// AVX2. What it finds of the anchors is what this scrubber's own scan of the line finds.
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn line_scanner<T>(
        &self,
        extra: crate::nibble_filter::Buckets<T>,
    ) -> Option<LineScanner<T>> {
        Some(LineScanner {
            scan: self.inner.anchors.shared_scan(extra)?,
            scrubber: self.clone(),
        })
    }

    /// [`scrub`](Self::scrub) of text without escape sequences.
    #[inline]
    fn scrub_text<'a>(&self, s: &'a str) -> Cow<'a, str> {
        match self.rules_in(s) {
            0 => Cow::Borrowed(s),
            rules => self.apply_rules(s, rules, |t| self.rules_in(t)),
        }
    }

    /// [`scrub`](Self::scrub) of a string holding escape sequences: the rules run on its text
    /// without the sequences, and what they replace there is replaced in the string at the same
    /// place (codes outside a secret stay); then on the payload of each OSC sequence (a
    /// hyperlink's URL), which is not part of the text.
    fn scrub_ansi<'a>(&self, raw: &'a str) -> Cow<'a, str> {
        let mut cur = Cow::Borrowed(raw);
        let (text, map) = strip_ansi_mapped(raw);
        // Owned only when a rule changed something.
        if let Cow::Owned(scrubbed) = self.scrub_text(&text) {
            cur = Cow::Owned(if map.len() != text.len() + 1 {
                // A sequence cut a character in two: no byte map, the text replaces it.
                scrubbed
            } else {
                splice_change(raw, &text, &scrubbed, &map)
            });
        }
        match scrub_osc_payloads(self, &cur) {
            Some(s) => Cow::Owned(s),
            None => cur,
        }
    }

    /// Scrubs the value of a named field, as in a map of environment variables parsed from a
    /// configuration summary (`{"AWS_SECRET_ACCESS_KEY": "wJalr..."}`): the name is not in the
    /// value any more, so a value under a secret's name ([`is_secret_name`]) is replaced whole,
    /// unless it is already masked or the library's `<not set>`. Other values get [`scrub`](Self::scrub).
    pub fn scrub_named<'a>(&self, name: &str, value: &'a str) -> Cow<'a, str> {
        let v = value.trim();
        if !v.is_empty() && v != "<not set>" && !is_masked(v) && is_secret_name(name) {
            return Cow::Owned(REDACTED.to_string());
        }
        self.scrub(value)
    }

    /// The rule names, in the order they are applied (for docs and diagnostics).
    pub fn rule_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.inner.rules.iter().map(|r| r.name)
    }

    /// [`scrub`](Self::scrub) of text without escape sequences, with each anchor searched for
    /// on its own instead of by the one-pass search (the tests compare both to prove that the
    /// search never misses a rule that would change a line).
    #[doc(hidden)]
    pub fn scrub_rules<'a>(&self, s: &'a str) -> Cow<'a, str> {
        let each_anchor = |t: &str| {
            let t = t.to_ascii_lowercase();
            (self.inner.anchor_list.iter())
                .filter(|(anchor, _)| t.contains(anchor.as_str()))
                .fold(0, |set, (_, rules)| set | rules)
        };
        self.apply_rules(s, each_anchor(s), each_anchor)
    }

    /// The rules in `first` applied to `s`, then, while a round changed something, the rules
    /// that `rules_in` finds for the result, up to [`MAX_ROUNDS`] rounds.
    fn apply_rules<'a>(
        &self,
        s: &'a str,
        first: u64,
        rules_in: impl Fn(&str) -> u64,
    ) -> Cow<'a, str> {
        let mut cur: Cow<'a, str> = Cow::Borrowed(s);
        for round in 0..MAX_ROUNDS {
            let set = if round == 0 { first } else { rules_in(&cur) };
            let mut changed = false;
            for (i, rule) in self.inner.rules.iter().enumerate() {
                if set & (1 << i) == 0 {
                    continue;
                }
                if let Some(next) = rule.apply(&cur) {
                    cur = Cow::Owned(next);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        match cur {
            Cow::Owned(o) if o == s => Cow::Borrowed(s),
            other => other,
        }
    }
}

/// What a scan of a line found for the scrubber: the rules its anchors may trigger and
/// whether it holds an ESC byte. The install-log parser's scan of an output line
/// (`LineScanner`) finds it along with the logger's error and warning literals and hands it
/// on in the line's event ([`Event::anchor_scan`](crate::event::Event::anchor_scan)), so that
/// the scrubber does not scan the line again. Rules are numbered as in every [`Scrubber`]
/// (one built-in rule set; the parser and the enricher share [`Scrubber::global`]'s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnchorScan(std::num::NonZeroU64);

impl AnchorScan {
    /// Bit 63 is always set (so that `Option<AnchorScan>` is one word); bit 62 is the ESC byte;
    /// the rules fill the bits below (`Scrubber::new` checks that they fit).
    const PRESENT: u64 = 1 << 63;
    const ESCAPE: u64 = 1 << 62;

    fn new(rules: u64, escape: bool) -> Self {
        debug_assert_eq!(
            rules & (Self::PRESENT | Self::ESCAPE),
            0,
            "at most 62 rules"
        );
        let bits = Self::PRESENT | rules | if escape { Self::ESCAPE } else { 0 };
        AnchorScan(std::num::NonZeroU64::new(bits).expect("bit 63 is set"))
    }

    /// The rules the line's anchors may trigger, as a bit set (0: it holds no anchor).
    pub fn rules(self) -> u64 {
        self.0.get() & !(Self::PRESENT | Self::ESCAPE)
    }

    /// Whether the line holds an ESC byte.
    pub fn escape(self) -> bool {
        self.0.get() & Self::ESCAPE != 0
    }

    /// Neither an anchor nor an ESC byte: the scrubber returns the line as it is.
    pub fn is_clean(self) -> bool {
        self.0.get() == Self::PRESENT
    }
}

/// One pass over a line for the scrubber's anchors and a caller's own patterns
/// ([`Scrubber::line_scanner`]).
#[cfg(target_arch = "x86_64")]
pub(crate) struct LineScanner<T> {
    scrubber: Scrubber,
    scan: anchors::SharedScan<T>,
}

#[cfg(target_arch = "x86_64")]
impl<T> LineScanner<T> {
    /// What the scrubber's scan of `s` would find, and what `s`'s bytes hold; calls
    /// `on_extra(position, item)` for each of the caller's items that may start at a
    /// position of `s` (a candidate: the caller checks it).
    #[inline]
    pub(crate) fn scan(
        &self,
        s: &[u8],
        on_extra: &mut impl FnMut(usize, &T),
    ) -> (AnchorScan, crate::line_bytes::LineBytes) {
        let anchors = &self.scrubber.inner.anchors;
        let (rules, bytes) = anchors.scan_shared(&self.scan, s, on_extra);
        (AnchorScan::new(rules, bytes.escape), bytes)
    }
}

impl Default for Scrubber {
    fn default() -> Self {
        Scrubber::new()
    }
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scrubber")
            .field("rules", &self.rule_names().collect::<Vec<_>>())
            .finish()
    }
}

impl Rule {
    /// The text with this rule applied, or `None` when it changed nothing.
    fn apply(&self, hay: &str) -> Option<String> {
        let (re, action) = match &self.matcher {
            Matcher::Assignments => return scrub_assignments(hay),
            Matcher::Regex(re, action) => (re.get(), action),
        };
        let mut out = String::new();
        let mut last = 0;
        let mut changed = false;
        for caps in re.captures_iter(hay) {
            let Some(m) = caps.get(0) else { continue };
            let rep: Option<Cow<'_, str>> = match action {
                Action::Marker(marker) => Some(Cow::Borrowed(marker)),
                Action::WordMarker(marker, glued_min) => {
                    let glued = m.start() > 0 && is_word_byte(hay.as_bytes()[m.start() - 1]);
                    (!glued || m.len() >= *glued_min).then_some(Cow::Borrowed(*marker))
                }
                Action::Custom(f) => f(&caps).map(Cow::Owned),
            };
            if let Some(rep) = rep.filter(|r| r != m.as_str()) {
                out.push_str(&hay[last..m.start()]);
                out.push_str(&rep);
                last = m.end();
                changed = true;
            }
        }
        if !changed {
            return None;
        }
        out.push_str(&hay[last..]);
        Some(out)
    }
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// A value that is already a marker (`***REDACTED***`, `***GITHUB_TOKEN_REDACTED***`) or one of
/// the library's masks (`ghp_****`, `****`): it stays as it is.
pub fn is_masked(v: &str) -> bool {
    if v.len() >= 6 && v.starts_with("***") && v.ends_with("***") {
        return true;
    }
    let stars = v.len() - v.trim_end_matches('*').len();
    stars >= 4 && v.len() - stars <= 4 && !v[..v.len() - stars].contains('*')
}

fn group<'h>(caps: &Captures<'h>, i: usize) -> &'h str {
    caps.get(i).map_or("", |m: Match<'h>| m.as_str())
}

fn pem_body(caps: &Captures<'_>) -> Option<String> {
    let body = group(caps, 2).trim();
    if body.is_empty() || body == PRIVATE_KEY_REDACTED {
        return None;
    }
    // Without an END in the text, only what looks like key material is a body
    // (`grep -- '-----BEGIN PRIVATE KEY-----' file` is not).
    if caps.get(3).is_none_or(|m| m.is_empty()) && !has_base64_run(body, 16) {
        return None;
    }
    Some(format!(
        "{}{PRIVATE_KEY_REDACTED}{}",
        group(caps, 1),
        group(caps, 3)
    ))
}

fn authorization(caps: &Captures<'_>) -> Option<String> {
    let value = group(caps, 3);
    if is_masked(value) {
        return None;
    }
    let scheme = match caps.get(2).map(|m| m.as_str()) {
        None => String::new(),
        // The library writes these three schemes this way whatever case they came in.
        Some(s) if s.eq_ignore_ascii_case("bearer") => "Bearer ".into(),
        Some(s) if s.eq_ignore_ascii_case("token") => "token ".into(),
        Some(s) if s.eq_ignore_ascii_case("basic") => "Basic ".into(),
        Some(s) => format!("{s} "),
    };
    Some(format!("{}{scheme}{REDACTED}", group(caps, 1)))
}

fn header_value(caps: &Captures<'_>) -> Option<String> {
    if is_masked(group(caps, 3)) {
        return None;
    }
    Some(format!("{}{}{REDACTED}", group(caps, 1), group(caps, 2)))
}

fn bearer(caps: &Captures<'_>) -> Option<String> {
    let value = group(caps, 2);
    // Prose ("Bearer authentication failed") has no digits; tokens are long and have some.
    if value.len() < 12 || !value.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(format!("{}{REDACTED}", group(caps, 1)))
}

fn argument(caps: &Captures<'_>) -> Option<String> {
    let value = group(caps, 4);
    let (open, inner, close) = match value.as_bytes().first() {
        Some(q @ (b'"' | b'\'')) => {
            let q = if *q == b'"' { "\"" } else { "'" };
            (q, &value[1..value.len() - 1], q)
        }
        _ => ("", value, ""),
    };
    if inner.is_empty() || inner.starts_with('-') || is_masked(inner) {
        return None;
    }
    Some(format!(
        "{}{}{}{open}{REDACTED}{close}",
        group(caps, 1),
        group(caps, 2),
        group(caps, 3)
    ))
}

fn second_group_value(caps: &Captures<'_>) -> Option<String> {
    let value = group(caps, 2);
    if is_masked(value) || value.starts_with('-') {
        return None;
    }
    Some(format!("{}{REDACTED}", group(caps, 1)))
}

fn url_credentials(caps: &Captures<'_>) -> Option<String> {
    Some(format!("{}{CREDENTIALS}@", group(caps, 1)))
}

fn url_token_user(caps: &Captures<'_>) -> Option<String> {
    let user = group(caps, 2);
    if !user.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(format!("{}{CREDENTIALS}@", group(caps, 1)))
}

/// Whether a variable, option or key name is the name of a secret: one of its words (split at
/// `_`, `-`, `.` and camelCase) is `token`, `secret`, `password`, ..., or it ends in `_KEY` or
/// `_PWD` (as the library masks `*_TOKEN`, `*_SECRET`, `*_PASSWORD`, `*_KEY`, `*_CREDENTIAL*`),
/// or it is npm's `_auth`.
pub fn is_secret_name(name: &str) -> bool {
    holds_a_secret_stem(name) && is_secret_name_by_words(name)
}

/// Whether `name` holds (ASCII case-insensitively) a stem that every secret name holds: each
/// of [`is_secret_name_by_words`]'s words and endings contains one. Most names that reach the
/// check hold none (`inflating:` in unzip's output, `Get:1` in apt's), and this quick no spares
/// them the split into words, which allocates twice.
fn holds_a_secret_stem(name: &str) -> bool {
    let b = name.as_bytes();
    let at = |i: usize, stem: &[u8]| {
        b.get(i..i + stem.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(stem))
    };
    (0..b.len()).any(|i| match b[i] | 0x20 {
        b't' => at(i, b"tok"),
        b's' => at(i, b"secret"),
        b'p' => at(i, b"pass") || at(i, b"pwd"),
        b'c' => at(i, b"cred"),
        b'k' => at(i, b"key"),
        b'a' => at(i, b"auth"),
        _ => false,
    })
}

/// [`is_secret_name`] by its definition: the name split into words.
fn is_secret_name_by_words(name: &str) -> bool {
    const WORDS: &[&str] = &[
        "token",
        "secret",
        "password",
        "passwd",
        "passphrase",
        "credential",
        "credentials",
        "apikey",
        "authtoken",
        "accesstoken",
        "secretkey",
        "privatekey",
        "clientsecret",
    ];
    let mut norm = String::with_capacity(name.len() + 4);
    let mut prev_lower = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            if c.is_ascii_uppercase() && prev_lower {
                norm.push('_');
            }
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
            norm.push(c.to_ascii_lowercase());
        } else {
            norm.push('_');
            prev_lower = false;
        }
    }
    if norm.ends_with("_auth") && name.to_ascii_lowercase().ends_with("_auth") {
        return true;
    }
    // Docker's `config.json`: `"auth": "<base64 of user:password>"`.
    if name.eq_ignore_ascii_case("auth") {
        return true;
    }
    let words: Vec<&str> = norm.split('_').filter(|w| !w.is_empty()).collect();
    if words.iter().any(|w| WORDS.contains(w)) {
        return true;
    }
    words.len() >= 2 && matches!(words.last(), Some(&"key") | Some(&"pwd"))
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

fn ends_unquoted_value(b: u8) -> bool {
    b.is_ascii_whitespace()
        || matches!(
            b,
            b'"' | b'\'' | b'`' | b'&' | b';' | b'|' | b'<' | b'>' | b'\\'
        )
}

/// Replaces the values of `NAME=value` assignments and `NAME: value` pairs whose NAME is a
/// secret's name ([`is_secret_name`]): `GITHUB_TOKEN=x`, `password = "x"`,
/// `//registry/:_authToken=x`, `?access_token=x&`, `\"x\"` inside escaped JSON, `password: x`,
/// `client_secret: "x"`, `{"password":"x"}`, `"SecretAccessKey": "x"`, docker's `"auth":"x"`.
/// Returns `None` when nothing changed.
fn scrub_assignments(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = String::new();
    let mut last = 0;
    for eq in memchr::memchr2_iter(b'=', b':', b) {
        let colon = b[eq] == b':';
        if eq < last || (!colon && b.get(eq + 1) == Some(&b'=')) {
            continue; // inside a value already replaced, or `==`
        }
        if colon && matches!(b.get(eq + 1), Some(b'/' | b':')) {
            continue; // `https://`, `::`
        }
        let mut j = eq;
        while j > last && matches!(b[j - 1], b' ' | b'\t') {
            j -= 1;
        }
        // A quoted name: `"password":`, `\"token\":` in escaped JSON, `'key':`.
        let quote = j > last && matches!(b[j - 1], b'"' | b'\'');
        if quote {
            j -= 1;
            if j > last && b[j - 1] == b'\\' {
                j -= 1;
            }
        }
        let name_end = j;
        while j > last && is_name_byte(b[j - 1]) {
            j -= 1;
        }
        if j == name_end || !is_secret_name(&s[j..name_end]) {
            continue;
        }
        // `scheme://user:password@host` is the URL rules' (`***CREDENTIALS***`).
        if colon && s[..j].ends_with("//") {
            continue;
        }
        let Some((vs, mut ve)) = value_span(b, eq + 1) else {
            continue;
        };
        if colon
            && ["bearer", "basic", "token", "digest", "negotiate"]
                .iter()
                .any(|w| s[vs..ve].eq_ignore_ascii_case(w))
            && b.get(ve) == Some(&b' ')
        {
            continue; // `auth: Bearer x`: a header whose scheme the bearer rule keeps
        }
        if colon {
            // YAML and JSON settings about secrets, not secrets: `persist-credentials: true`,
            // and GitHub's own mask `token: ***`.
            let v = s[vs..ve].trim_end_matches([',', '}', ']']);
            if matches!(
                v.to_ascii_lowercase().as_str(),
                "true" | "false" | "null" | "yes" | "no" | "none" | "~"
            ) || (!v.is_empty() && v.bytes().all(|c| c == b'*'))
            {
                continue;
            }
            // In JSON and YAML flow style an unquoted value also ends at `,`, `}` and `]`.
            if let Some(p) = s[vs..ve].find([',', '}', ']']) {
                ve = vs + p;
            }
            if ve == vs {
                continue;
            }
        }
        if is_masked(&s[vs..ve]) {
            continue;
        }
        out.push_str(&s[last..vs]);
        out.push_str(REDACTED);
        last = ve;
    }
    if last == 0 {
        return None;
    }
    out.push_str(&s[last..]);
    Some(out)
}

/// The byte range of the value that starts at `start` (after optional blanks): the inside of
/// `"..."`, `'...'` or `\"...\"` on one line, else up to the first [`ends_unquoted_value`] byte.
fn value_span(b: &[u8], start: usize) -> Option<(usize, usize)> {
    let mut k = start;
    while k < b.len() && matches!(b[k], b' ' | b'\t') {
        k += 1;
    }
    let (open, quote) = match (b.get(k), b.get(k + 1)) {
        (Some(q @ (b'"' | b'\'')), _) => (k + 1, Some(*q)),
        (Some(b'\\'), Some(q @ (b'"' | b'\''))) => (k + 2, Some(*q)),
        _ => (k, None),
    };
    if let Some(q) = quote {
        // The search stops at the next quote or newline, so it never rescans a long line.
        if let Some(off) = memchr::memchr2(q, b'\n', &b[open..]) {
            let mut close = open + off;
            if b[close] == q {
                if close > open && b[close - 1] == b'\\' {
                    close -= 1;
                }
                return (close > open).then_some((open, close));
            }
        }
    }
    let end = b[open..]
        .iter()
        .position(|&c| ends_unquoted_value(c))
        .map_or(b.len(), |p| open + p);
    (end > open).then_some((open, end))
}

/// Redacts the body lines of a PEM private key that a log prints one line at a time, which
/// [`Scrubber::scrub`] alone cannot know about. Keep one per input stream (per file):
///
/// ```
/// use buildlog::enrich::scrub::{PemTracker, Scrubber};
/// let scrubber = Scrubber::global();
/// let mut pem = PemTracker::new();
/// let lines = [
///     "-----BEGIN RSA PRIVATE KEY-----",
///     "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun",
///     "-----END RSA PRIVATE KEY-----",
///     "done",
/// ];
/// let out: Vec<String> = lines.iter().map(|l| pem.scrub_line(scrubber, l).into_owned()).collect();
/// assert_eq!(out[1], "***PRIVATE_KEY_REDACTED***");
/// assert_eq!(out[2], "-----END RSA PRIVATE KEY-----");
/// assert_eq!(out[3], "done");
/// ```
#[derive(Debug, Clone, Default)]
pub struct PemTracker {
    /// Open blocks, one per stream (BuildKit step) at most: BuildKit interleaves the lines of
    /// steps that run at once, so another step's line must not end this step's key.
    blocks: Vec<(Option<u32>, PemBlock)>,
}

#[derive(Debug, Clone)]
struct PemBlock {
    lines: u32,
    /// Words before `-----BEGIN` on its line (BuildKit's `#5 0.280`, a runner timestamp): body
    /// lines carry the same number of prefix words.
    prefix_words: usize,
    /// The previous body line was a full 64-character PEM line, so a short one may follow.
    prev_full: bool,
}

/// A key block longer than this many lines without an `-----END` is not a key (an 8192-bit
/// RSA key is about 100 lines).
const MAX_PEM_LINES: u32 = 256;

/// Streams with a key block open at once; beyond, the oldest block is forgotten.
const MAX_PEM_STREAMS: usize = 64;

enum BodyLine {
    /// Blank, or an armor header (`Proc-Type:`, `DEK-Info:`, `Version:`): kept.
    Keep,
    /// Key material at this byte range (after the prefix words).
    Data(usize, usize),
    /// Not key material: the block is over.
    Other,
}

impl PemTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// True between a `-----BEGIN ... PRIVATE KEY-----` line and its `-----END` line.
    pub fn in_key(&self) -> bool {
        !self.blocks.is_empty()
    }

    /// [`Scrubber::scrub`] for one line of a stream, also redacting key lines inside a block.
    pub fn scrub_line<'a>(&mut self, scrubber: &Scrubber, line: &'a str) -> Cow<'a, str> {
        self.scrub_stream_line(scrubber, None, line)
    }

    /// [`scrub_line`](Self::scrub_line) for a line of one of several interleaved streams of a
    /// source (`stream`: the BuildKit step it belongs to): each stream has its own key block.
    pub fn scrub_stream_line<'a>(
        &mut self,
        scrubber: &Scrubber,
        stream: Option<u32>,
        line: &'a str,
    ) -> Cow<'a, str> {
        self.scrub_scanned_line(scrubber, stream, line, None)
    }

    /// [`scrub_stream_line`](Self::scrub_stream_line), given what a scan of `line` found
    /// where one was made ([`AnchorScan`]: the scrubber then does not scan it again).
    #[inline]
    pub fn scrub_scanned_line<'a>(
        &mut self,
        scrubber: &Scrubber,
        stream: Option<u32>,
        line: &'a str,
        scan: Option<AnchorScan>,
    ) -> Cow<'a, str> {
        // Nearly every line: no anchor, no escape sequence, no key block open.
        if self.blocks.is_empty() && scan.is_some_and(AnchorScan::is_clean) {
            return Cow::Borrowed(line);
        }
        self.scrub_line_in_blocks(scrubber, stream, line, scan)
    }

    /// [`scrub_scanned_line`](Self::scrub_scanned_line) when a block may be open or the line
    /// may need the rules.
    fn scrub_line_in_blocks<'a>(
        &mut self,
        scrubber: &Scrubber,
        stream: Option<u32>,
        line: &'a str,
        scan: Option<AnchorScan>,
    ) -> Cow<'a, str> {
        if let Some(i) = self.blocks.iter().position(|(k, _)| *k == stream) {
            let block = &mut self.blocks[i].1;
            if let Some(end) = scrubber.inner.pem_end.get().find(line) {
                let (head, tail) = line.split_at(end.start());
                let head = match block.classify(head) {
                    BodyLine::Data(s, e) => Cow::Owned(redact_range(head, s, e)),
                    BodyLine::Keep | BodyLine::Other => scrubber.scrub(head),
                };
                self.blocks.remove(i);
                let tail = scrubber.scrub(tail);
                self.open_block(scrubber, stream, &tail);
                return match (head, tail) {
                    (Cow::Borrowed(_), Cow::Borrowed(_)) => Cow::Borrowed(line),
                    (h, t) => Cow::Owned(format!("{h}{t}")),
                };
            }
            block.lines += 1;
            if block.lines <= MAX_PEM_LINES {
                match block.classify(line) {
                    BodyLine::Keep => return scrubber.scrub(line),
                    BodyLine::Data(s, e) => {
                        block.prev_full = e - s >= 60;
                        if &line[s..e] == PRIVATE_KEY_REDACTED {
                            // Already redacted; the rest of the line gets the rules.
                            return scrubber.scrub(line);
                        }
                        return Cow::Owned(redact_range(line, s, e));
                    }
                    BodyLine::Other => {}
                }
            }
            self.blocks.remove(i);
        }
        let scan = scan.unwrap_or_else(|| scrubber.scan(line.as_bytes()));
        let (out, anchored) = scrubber.scrub_scanned(line, scan);
        if anchored {
            self.open_block(scrubber, stream, &out);
        }
        out
    }

    /// Starts a block when `scrubbed` (already scrubbed, so that scrubbing a scrubbed stream
    /// takes the same decisions) ends with a BEGIN line whose END is not on it.
    fn open_block(&mut self, scrubber: &Scrubber, stream: Option<u32>, scrubbed: &str) {
        if !scrubbed.contains("-----BEGIN ") {
            return;
        }
        let Some(begin) = scrubber.inner.pem_begin.get().find_iter(scrubbed).last() else {
            return;
        };
        let prefix = &scrubbed[..begin.start()];
        // A BEGIN glued to other text (`grep '-----BEGIN ...`) is not a key being printed.
        let starts_word = prefix.is_empty() || prefix.ends_with(|c: char| c.is_ascii_whitespace());
        if starts_word
            && !scrubber
                .inner
                .pem_end
                .get()
                .is_match(&scrubbed[begin.end()..])
        {
            if self.blocks.len() >= MAX_PEM_STREAMS {
                self.blocks.remove(0);
            }
            self.blocks.push((
                stream,
                PemBlock {
                    lines: 0,
                    prefix_words: prefix.split_ascii_whitespace().count(),
                    prev_full: false,
                },
            ));
        }
    }
}

impl PemBlock {
    fn classify(&self, line: &str) -> BodyLine {
        let b = line.as_bytes();
        let mut i = 0;
        for _ in 0..self.prefix_words {
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            while i < b.len() && !b[i].is_ascii_whitespace() {
                i += 1;
            }
        }
        let rest = line[i..].trim_ascii();
        if rest.is_empty() {
            return BodyLine::Keep;
        }
        const HEADERS: &[&str] = &[
            "Proc-Type:",
            "DEK-Info:",
            "Version:",
            "Comment:",
            "Hash:",
            "Charset:",
        ];
        if HEADERS.iter().any(|h| rest.starts_with(h)) {
            return BodyLine::Keep;
        }
        let start = line.len() - line[i..].trim_ascii_start().len();
        let range = (start, start + rest.len());
        if rest == PRIVATE_KEY_REDACTED {
            return BodyLine::Data(range.0, range.1);
        }
        let base64 = rest
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'='));
        if base64 && (rest.len() >= 16 || self.prev_full) {
            BodyLine::Data(range.0, range.1)
        } else {
            BodyLine::Other
        }
    }
}

/// `raw` with the one span where `text` (its text without escape sequences, `map` giving each
/// byte's index in `raw`) and `scrubbed` differ replaced by the scrubbed bytes.
fn splice_change(raw: &str, text: &str, scrubbed: &str, map: &[usize]) -> String {
    let (t, n) = (text.as_bytes(), scrubbed.as_bytes());
    let mut p = t.iter().zip(n).take_while(|(a, b)| a == b).count();
    while !text.is_char_boundary(p) || !scrubbed.is_char_boundary(p) {
        p -= 1;
    }
    let mut q = t[p..]
        .iter()
        .rev()
        .zip(n[p..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    while !text.is_char_boundary(t.len() - q) || !scrubbed.is_char_boundary(n.len() - q) {
        q -= 1;
    }
    let start = map[p];
    let mut end = if t.len() - q > p {
        map[t.len() - q - 1] + 1
    } else {
        start
    };
    while !raw.is_char_boundary(end) {
        end += 1;
    }
    let mut out = String::with_capacity(raw.len() + 16);
    out.push_str(&raw[..start]);
    out.push_str(&scrubbed[p..n.len() - q]);
    out.push_str(&raw[end..]);
    out
}

/// The payloads of OSC sequences (`ESC ] ... BEL` or `ESC ] ... ESC \\`) scrubbed; `None`
/// when none changed.
fn scrub_osc_payloads(scrubber: &Scrubber, s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = String::new();
    let mut last = 0;
    let mut i = 0;
    while let Some(off) = memchr::memchr(0x1b, &b[i..]) {
        let at = i + off;
        if b.get(at + 1) != Some(&b']') {
            i = at + 1;
            continue;
        }
        let body = at + 2;
        let mut j = body;
        while j < b.len() && b[j] != 0x07 && !(b[j] == 0x1b && b.get(j + 1) == Some(&b'\\')) {
            j += 1;
        }
        let payload = &s[body..j];
        if let Cow::Owned(new) = scrubber.scrub_text(payload) {
            out.push_str(&s[last..body]);
            out.push_str(&new);
            last = j;
        }
        i = j.max(at + 1);
        if i >= b.len() {
            break;
        }
    }
    if last == 0 {
        return None;
    }
    out.push_str(&s[last..]);
    Some(out)
}

/// `s` without its escape sequences (CSI, OSC, two-byte escapes: those the parsers strip from
/// `message`), and for each byte of the result the index of the byte it came from.
fn strip_ansi_mapped(s: &str) -> (String, Vec<usize>) {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut map = Vec::with_capacity(b.len() + 1);
    let mut i = 0;
    while i < b.len() {
        if b[i] != 0x1b {
            out.push(b[i]);
            map.push(i);
            i += 1;
            continue;
        }
        match b.get(i + 1) {
            Some(b'[') => {
                let mut j = i + 2;
                while j < b.len() && !(0x40..=0x7e).contains(&b[j]) {
                    j += 1;
                }
                i = (j + 1).min(b.len());
            }
            Some(b']') => {
                let mut j = i + 2;
                while j < b.len() {
                    if b[j] == 0x07 {
                        j += 1;
                        break;
                    }
                    if b[j] == 0x1b && b.get(j + 1) == Some(&b'\\') {
                        j += 2;
                        break;
                    }
                    j += 1;
                }
                i = j;
            }
            Some(&c) if (0x40..=0x5f).contains(&c) => i += 2,
            _ => i += 1,
        }
    }
    map.push(b.len());
    // Sequences end on ASCII bytes, so what is left is normally whole characters; when a
    // sequence swallowed part of one, the lossy text has another length and no usable map.
    match String::from_utf8(out) {
        Ok(text) => (text, map),
        Err(e) => (
            String::from_utf8_lossy(e.as_bytes()).into_owned(),
            Vec::new(),
        ),
    }
}

fn redact_range(line: &str, start: usize, end: usize) -> String {
    format!("{}{PRIVATE_KEY_REDACTED}{}", &line[..start], &line[end..])
}

/// Whether `s` holds a run of at least `n` base64 characters (key material).
fn has_base64_run(s: &str, n: usize) -> bool {
    let mut run = 0;
    for c in s.bytes() {
        if c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=') {
            run += 1;
            if run >= n {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> String {
        Scrubber::global().scrub(x).into_owned()
    }

    #[test]
    fn library_markers_and_shapes() {
        assert_eq!(
            s("curl -H 'Authorization: Bearer abc.def-123' https://api.example.com"),
            "curl -H 'Authorization: Bearer ***REDACTED***' https://api.example.com"
        );
        assert_eq!(
            s("authorization: TOKEN abc123"),
            "authorization: token ***REDACTED***"
        );
        assert_eq!(
            s("Authorization: basic dXNlcjpwYXNz"),
            "Authorization: Basic ***REDACTED***"
        );
        assert_eq!(
            s("token ghp_abc123 ok"),
            "token ***GITHUB_TOKEN_REDACTED*** ok"
        );
        assert_eq!(s("github_pat_11ABC_def"), "***GITHUB_TOKEN_REDACTED***");
        assert_eq!(
            s("prefix: ops_abcdef123"),
            "prefix: ***OP_TOKEN_REDACTED***"
        );
        assert_eq!(
            s("glpat-abcdefghij0123456789"),
            "***GITLAB_TOKEN_REDACTED***"
        );
        assert_eq!(
            s("key sk-abcdefghij0123456789xyz"),
            "key ***API_KEY_REDACTED***"
        );
        assert_eq!(s("pk-abcdefghij0123456789xyz"), "***API_KEY_REDACTED***");
        assert_eq!(s("GH_TOKEN=abc"), "GH_TOKEN=***REDACTED***");
        assert_eq!(
            s("password=hunter2&user=x"),
            "password=***REDACTED***&user=x"
        );
        assert_eq!(
            s("https://user:pa55@host.example.com/x"),
            "https://***CREDENTIALS***@host.example.com/x"
        );
    }

    #[test]
    fn shapes_the_library_does_not_know() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        for (input, expected) in [
            (
                "docker login -u ci -p dckr_pat_abcDEF123 r.example.com",
                "docker login -u ci -p ***REDACTED*** r.example.com",
            ),
            (
                "echo dckr_pat_abcDEF123-_x |",
                "echo ***DOCKER_TOKEN_REDACTED*** |",
            ),
            (
                "npm_abcdefghij0123456789ABCDEFGHIJ0123",
                "***NPM_TOKEN_REDACTED***",
            ),
            (
                "id AKIAIOSFODNN7EXAMPLE, ASIAY34FZKBOKMUTVV7A",
                "id ***AWS_KEY_REDACTED***, ***AWS_KEY_REDACTED***",
            ),
            (
                "aws configure set aws_secret_access_key wJalrXUtnFEMI/K7MDENG",
                "aws configure set aws_secret_access_key ***REDACTED***",
            ),
            (
                "aws_session_token 'abc def'",
                "aws_session_token '***REDACTED***'",
            ),
            (&format!("jwt={jwt}"), "jwt=***JWT_REDACTED***"),
            (&format!("cookie: {jwt};"), "cookie: ***JWT_REDACTED***;"),
            (
                "vault login --token s.abcdef123 --method=x",
                "vault login --token ***REDACTED*** --method=x",
            ),
            (
                "mysql --password \"p w\" db",
                "mysql --password \"***REDACTED***\" db",
            ),
            ("cmd --password --verbose", "cmd --password --verbose"),
            (
                "curl -fsSL -u admin:s3cret https://x",
                "curl -fsSL -u admin:***REDACTED*** https://x",
            ),
            (
                "curl --user=admin:s3cret https://x",
                "curl --user=admin:***REDACTED*** https://x",
            ),
            ("docker run -u 1000:1000 img", "docker run -u 1000:1000 img"),
            (
                "-H 'PRIVATE-TOKEN: glx_abc'",
                "-H 'PRIVATE-TOKEN: ***REDACTED***'",
            ),
            ("X-Api-Key: abc123", "X-Api-Key: ***REDACTED***"),
            (
                "auth: Bearer abcdef0123456789",
                "auth: Bearer ***REDACTED***",
            ),
            (
                "\"Authorization\": \"ApiKey Zm9vOmJhcg==\"",
                "\"Authorization\": \"ApiKey ***REDACTED***\"",
            ),
            (
                "https://x-access-token:ghs_abc@github.com/o/r",
                "https://***CREDENTIALS***@github.com/o/r",
            ),
            (
                "https://a1b2c3d4e5f6a7b8c9d0e1f2@github.com/o/r",
                "https://***CREDENTIALS***@github.com/o/r",
            ),
            ("ssh://git@github.com/o/r", "ssh://git@github.com/o/r"),
            (
                "postgres://app:pw@db:5432/x",
                "postgres://***CREDENTIALS***@db:5432/x",
            ),
            (
                "ya29.a0AfH6SMBx3dFakeFakeFake123",
                "***GOOGLE_TOKEN_REDACTED***",
            ),
            (
                "key=AIzaSyA1234567890abcdefghijklmnopqrstuv",
                "key=***API_KEY_REDACTED***",
            ),
            (
                "xoxb-123456789012-abcdefABCDEF",
                "***SLACK_TOKEN_REDACTED***",
            ),
            (
                "hf_abcdefghijklmnopqrstuvwxyzABCDEF12",
                "***HF_TOKEN_REDACTED***",
            ),
            (
                "pypi-AgEIcHlwaS5vcmcCJGFiY2RlZmdo",
                "***PYPI_TOKEN_REDACTED***",
            ),
            (
                "rubygems_0123456789abcdef0123456789",
                "***RUBYGEMS_TOKEN_REDACTED***",
            ),
            ("sk_live_abcdef0123456789", "***API_KEY_REDACTED***"),
            (
                "abcdef0123456789.atlasv1.abcdefghijklmnopqrstuvwxyz",
                "***TERRAFORM_TOKEN_REDACTED***",
            ),
            (
                "GOOGLE_APPLICATION_CREDENTIALS=/run/key.json",
                "GOOGLE_APPLICATION_CREDENTIALS=***REDACTED***",
            ),
            (
                "-Dhttps.proxyPassword=s3cret -Dx=y",
                "-Dhttps.proxyPassword=***REDACTED*** -Dx=y",
            ),
            (
                "//registry.npmjs.org/:_auth=dXNlcjpwYXNz",
                "//registry.npmjs.org/:_auth=***REDACTED***",
            ),
            (
                "OP_SERVICE_ACCOUNT_TOKEN=ops_abc; op whoami",
                "OP_SERVICE_ACCOUNT_TOKEN=***REDACTED***; op whoami",
            ),
        ] {
            assert_eq!(s(input), expected, "{input}");
        }
    }

    #[test]
    fn named_values() {
        let sc = Scrubber::global();
        assert_eq!(
            sc.scrub_named("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG"),
            REDACTED
        );
        assert_eq!(sc.scrub_named("TF_TOKEN_app_terraform_io", "abc"), REDACTED);
        assert_eq!(sc.scrub_named("GITHUB_TOKEN", "ghp_****"), "ghp_****");
        assert_eq!(sc.scrub_named("NPM_TOKEN", "<not set>"), "<not set>");
        assert_eq!(sc.scrub_named("GITHUB_TOKEN", ""), "");
        assert_eq!(
            sc.scrub_named("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
            AWS_KEY_REDACTED
        );
        assert_eq!(
            sc.scrub_named(
                "PIP_INDEX_URL",
                "https://__token__:pypi-x@pypi.example.com/simple"
            ),
            "https://***CREDENTIALS***@pypi.example.com/simple"
        );
        assert!(matches!(
            sc.scrub_named("command", "apt-get update"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn already_masked_values_stay() {
        for line in [
            "  - GITHUB_TOKEN=ghp_****",
            "  - DOCKER_PASSWORD=dckr****",
            "  - SHORT_SECRET=****",
            "export OP_SERVICE_ACCOUNT_TOKEN=***REDACTED*** op whoami",
            "NPM_CONFIG_TOKEN=***GITHUB_TOKEN_REDACTED***",
            "Authorization: Bearer ***REDACTED***",
            "https://***CREDENTIALS***@gitlab.example.com/x.git",
            "trying URL 'https://cloud.r-project.org/src/contrib/hi***GITHUB_TOKEN_REDACTED***.10.0.tar.gz'",
        ] {
            assert_eq!(s(line), line);
            assert!(matches!(Scrubber::global().scrub(line), Cow::Borrowed(_)), "{line}");
        }
    }

    #[test]
    fn secret_names() {
        for n in [
            "GITHUB_TOKEN",
            "TF_TOKEN_app_terraform_io",
            "_authToken",
            "AWS_SECRET_ACCESS_KEY",
            "GEM_HOST_API_KEY",
            "DB_PASSWORD",
            "password",
            "--password",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "apiKey",
            "_auth",
            "npm_config__auth",
            "DB_PWD",
        ] {
            assert!(is_secret_name(n), "{n}");
        }
        for n in [
            "PIP_INDEX_URL",
            "TOKENIZERS_PARALLELISM",
            "AWS_ACCESS_KEY_ID",
            "PWD",
            "key",
            "MAX_TOKENS",
            "oauth",
            "signed-by",
        ] {
            assert!(!is_secret_name(n), "{n}");
        }
    }

    proptest::proptest! {
        /// The quick stem check never turns a secret name away: names made of the words and
        /// endings the definition knows, separators and other words, in any case.
        #[test]
        fn the_stem_check_turns_away_no_secret_name(
            pieces in proptest::collection::vec(proptest::sample::select(vec![
                "token", "secret", "password", "passwd", "passphrase", "credential",
                "credentials", "apikey", "authtoken", "accesstoken", "secretkey", "privatekey",
                "clientsecret", "key", "pwd", "auth", "_", "-", ".", "db", "Api", "my", "TOKENS",
                "x1",
            ]), 0..6),
            flips in proptest::collection::vec(proptest::bool::ANY, 64),
        ) {
            let name: String = pieces
                .concat()
                .chars()
                .zip(flips.iter().cycle())
                .map(|(c, &up)| if up { c.to_ascii_uppercase() } else { c })
                .collect();
            proptest::prop_assert!(
                !is_secret_name_by_words(&name) || holds_a_secret_stem(&name),
                "{}", name
            );
        }
    }

    #[test]
    fn masks() {
        assert!(is_masked("ghp_****"));
        assert!(is_masked("****"));
        assert!(is_masked("***REDACTED***"));
        assert!(!is_masked("ghp_abc****x"));
        assert!(!is_masked("abcde****"));
        assert!(!is_masked("hunter2"));
    }

    #[test]
    fn assignment_values() {
        assert_eq!(
            s(r#"PASSWORD="a b c" next"#),
            r#"PASSWORD="***REDACTED***" next"#
        );
        assert_eq!(
            s("db_password = 's3cr3t'"),
            "db_password = '***REDACTED***'"
        );
        assert_eq!(
            s(r#"{\"GITHUB_TOKEN=abc\"}"#),
            r#"{\"GITHUB_TOKEN=***REDACTED***\"}"#
        );
        assert_eq!(
            s(r#"env \"API_KEY=\"xyz\"\""#),
            r#"env \"API_KEY=\"***REDACTED***\"\""#
        );
        assert_eq!(s("FOO=BAR_TOKEN=secret"), "FOO=BAR_TOKEN=***REDACTED***");
        assert_eq!(s("TOKEN=abc== x"), "TOKEN=***REDACTED*** x");
        assert_eq!(s("if [ $TOKEN == x ]"), "if [ $TOKEN == x ]");
        assert_eq!(s("GITHUB_TOKEN="), "GITHUB_TOKEN=");
    }

    #[test]
    fn glued_prefixes_are_not_tokens() {
        for line in [
            "highr_0.10.0.tar.gz",
            "devops_team loops_x",
            "gnome-disk-utility-abcdefghijklmnopqrst",
            "flask-sqlalchemy-extension-helpers",
            "npm_config_cache=/root/.npm",
            "Bearer authentication failed for user",
        ] {
            assert_eq!(s(line), line);
        }
    }

    #[test]
    fn pem_single_string() {
        let key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----";
        assert_eq!(
            s(key),
            "-----BEGIN OPENSSH PRIVATE KEY-----***PRIVATE_KEY_REDACTED***-----END OPENSSH PRIVATE KEY-----"
        );
        assert_eq!(
            s(r#""key": "-----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY-----\n""#),
            r#""key": "-----BEGIN PRIVATE KEY-----***PRIVATE_KEY_REDACTED***-----END PRIVATE KEY-----\n""#
        );
        assert_eq!(
            s("-----BEGIN EC PRIVATE KEY-----MHcCAQEEIBxV3q9Fz0Lk2P"),
            "-----BEGIN EC PRIVATE KEY-----***PRIVATE_KEY_REDACTED***"
        );
        assert_eq!(
            s("-----BEGIN RSA PRIVATE KEY-----"),
            "-----BEGIN RSA PRIVATE KEY-----"
        );
    }

    #[test]
    fn pem_tracker_with_prefixes_and_short_last_line() {
        let scrubber = Scrubber::global();
        let mut pem = PemTracker::new();
        let full = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun";
        let lines = [
            "#5 0.280 -----BEGIN RSA PRIVATE KEY-----".to_string(),
            "#5 0.280 Proc-Type: 4,ENCRYPTED".to_string(),
            "#5 0.280 ".to_string(),
            format!("#5 0.281 {full}"),
            "#5 0.281 Zw==".to_string(),
            "#5 0.282 -----END RSA PRIVATE KEY-----".to_string(),
            "#5 0.283 key written".to_string(),
        ];
        let out: Vec<String> = lines
            .iter()
            .map(|l| pem.scrub_line(scrubber, l).into_owned())
            .collect();
        assert_eq!(out[0], lines[0]);
        assert_eq!(out[1], lines[1]);
        assert_eq!(out[3], "#5 0.281 ***PRIVATE_KEY_REDACTED***");
        assert_eq!(out[4], "#5 0.281 ***PRIVATE_KEY_REDACTED***");
        assert_eq!(out[5], lines[5]);
        assert_eq!(out[6], lines[6]);
        assert!(!pem.in_key());
    }

    #[test]
    fn pem_tracker_leaves_a_block_that_is_not_a_key() {
        let scrubber = Scrubber::global();
        let mut pem = PemTracker::new();
        let grep = "grep -- '-----BEGIN PRIVATE KEY-----' file";
        assert_eq!(pem.scrub_line(scrubber, grep), grep);
        assert!(
            !pem.in_key(),
            "a BEGIN glued to a quote is not a printed key"
        );
        let begin = "#5 0.280 -----BEGIN PRIVATE KEY-----";
        assert_eq!(pem.scrub_line(scrubber, begin), begin);
        assert!(pem.in_key());
        // Prose is not key material: the block ends and the line is scrubbed as usual.
        assert_eq!(
            pem.scrub_line(scrubber, "#5 0.300 no match found, password=x"),
            "#5 0.300 no match found, password=***REDACTED***"
        );
        assert!(!pem.in_key());
    }

    #[test]
    fn every_pattern_compiles() {
        let s = Scrubber::new();
        for rule in &s.inner.rules {
            if let Matcher::Regex(re, _) = &rule.matcher {
                re.get();
            }
        }
        s.inner.pem_begin.get();
        s.inner.pem_end.get();
    }

    #[test]
    fn a_rule_is_compiled_only_when_a_line_needs_it() {
        let s = Scrubber::new();
        let compiled = || -> Vec<&str> {
            (s.inner.rules.iter())
                .filter(
                    |r| matches!(&r.matcher, Matcher::Regex(re, _) if re.compiled.get().is_some()),
                )
                .map(|r| r.name)
                .collect()
        };
        assert!(compiled().is_empty());
        assert_eq!(
            s.scrub("Setting up libc6 (2.36) ..."),
            "Setting up libc6 (2.36) ..."
        );
        assert!(
            compiled().is_empty(),
            "a clean line compiled {:?}",
            compiled()
        );
        let token = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
        assert_eq!(
            s.scrub(&format!("token {token}")),
            format!("token {GITHUB_TOKEN_REDACTED}")
        );
        let after = compiled();
        assert!(
            !after.is_empty() && after.len() < s.inner.rules.len(),
            "{after:?}"
        );
        assert!(s.inner.pem_begin.compiled.get().is_none());
    }

    #[test]
    fn scrubber_is_send_sync_and_clone() {
        fn assert_traits<T: Send + Sync + Clone>() {}
        assert_traits::<Scrubber>();
        assert_traits::<PemTracker>();
    }

    #[test]
    fn scrub_event_covers_message_raw_and_metadata() {
        let mut ev = crate::event::Event::new(
            crate::event::EventType::Command,
            crate::event::Level::Info,
            "Node.js",
            "npm config set //registry.npmjs.org/:_authToken=npm_abcdefghij0123456789abcdefghij",
        )
        .with_meta(
            "command",
            "git clone https://ci:ghp_abc@github.com/acme/x.git",
        )
        .with_meta("exit_code", 0);
        ev.metadata.insert(
            "args".into(),
            serde_json::json!(["--token", "glpat-abcdefghij0123456789", {"k": "AKIAIOSFODNN7EXAMPLE"}]),
        );
        ev.raw = Some("Authorization: Bearer abc".into());
        crate::enrich::scrub_event(Scrubber::global(), &mut ev);
        assert_eq!(
            ev.message,
            "npm config set //registry.npmjs.org/:_authToken=***REDACTED***"
        );
        assert_eq!(
            ev.metadata["command"],
            "git clone https://***CREDENTIALS***@github.com/acme/x.git"
        );
        assert_eq!(ev.metadata["exit_code"], 0);
        assert_eq!(
            ev.metadata["args"],
            serde_json::json!(["--token", "***GITLAB_TOKEN_REDACTED***", {"k": "***AWS_KEY_REDACTED***"}])
        );
        assert_eq!(
            ev.raw.as_deref(),
            Some("Authorization: Bearer ***REDACTED***")
        );
    }
}
