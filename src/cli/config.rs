//! The configuration file (`--config FILE`, TOML) and the `BUILDLOG_<FLAG>` environment
//! variables, both turned into command-line arguments before clap sees the command line.
//!
//! Keys are the flags' names, grouped by the section their help heading names, with the
//! section's prefix taken off (`--loki-batch-wait` is `[loki] batch-wait`, `--loki` is
//! `[loki] url`). Precedence, highest first: a flag on the command line, `BUILDLOG_<FLAG>`,
//! the ecosystem's own variable where the flag has one (`LOKI_URL`), the file, the default.

use crate::error::UsageError;
use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Where the file is looked for when neither `--config` nor `$BUILDLOG_CONFIG` names one.
pub const DEFAULT_PATH: &str = "/etc/buildlog/buildlog.toml";

/// The commands a configuration file applies to.
pub const COMMANDS: &[&str] = &["ship", "serve", "metrics", "check"];

/// A section of the file: the help heading its flags are under, the prefix their names
/// share (taken off for the key), and the flag that is the section's `url`.
struct Section {
    name: &'static str,
    heading: &'static str,
    prefixes: &'static [&'static str],
    main: Option<(&'static str, &'static str)>,
}

const SECTIONS: &[Section] = &[
    Section {
        name: "loki",
        heading: "Loki",
        prefixes: &["loki-"],
        main: Some(("loki", "url")),
    },
    Section {
        name: "elasticsearch",
        heading: "Elasticsearch",
        prefixes: &["es-"],
        main: Some(("elasticsearch", "url")),
    },
    Section {
        name: "otlp",
        heading: "OTLP",
        prefixes: &["otlp-"],
        main: Some(("otlp", "url")),
    },
    Section {
        name: "forward",
        heading: "Forward",
        prefixes: &["forward-"],
        main: Some(("forward", "address")),
    },
    Section {
        name: "follow",
        heading: "Follow",
        prefixes: &[],
        main: None,
    },
    Section {
        name: "serve",
        heading: "Serve",
        prefixes: &[],
        main: None,
    },
    Section {
        name: "remote-write",
        heading: "Remote write",
        prefixes: &["remote-write-"],
        main: Some(("remote-write", "url")),
    },
];

/// One key of the file and the argument it stands for in one command.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    /// `""` for the top level.
    pub section: &'static str,
    pub key: String,
    pub command: String,
    pub id: String,
    pub long: Option<String>,
    pub action: KeyKind,
    pub help: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A switch: `true` sets it.
    Switch,
    /// One value.
    Value,
    /// Repeatable: a list.
    List,
}

/// The arguments of a command that the file and the environment can set.
fn settable(cmd: &Command) -> impl Iterator<Item = &clap::Arg> {
    cmd.get_arguments().filter(|a| {
        let id = a.get_id().as_str();
        !matches!(id, "help" | "version" | "config" | "log_format")
            && !a.is_hide_set()
            && (a.get_long().is_some() || a.is_positional())
    })
}

fn kind(a: &clap::Arg) -> KeyKind {
    match a.get_action() {
        ArgAction::SetTrue => KeyKind::Switch,
        ArgAction::Append => KeyKind::List,
        _ if a.is_positional() && a.get_num_args().is_some_and(|n| n.max_values() > 1) => {
            KeyKind::List
        }
        _ => KeyKind::Value,
    }
}

/// The (section, key) of an argument.
fn key_of(a: &clap::Arg) -> (&'static str, String) {
    let name = a
        .get_long()
        .map(str::to_string)
        .unwrap_or_else(|| a.get_id().as_str().replace('_', "-"));
    let heading = a.get_help_heading().unwrap_or("");
    for s in SECTIONS {
        if s.heading != heading {
            continue;
        }
        if let Some((flag, key)) = s.main {
            if name == flag {
                return (s.name, key.to_string());
            }
        }
        for p in s.prefixes {
            if let Some(k) = name.strip_prefix(p) {
                return (s.name, k.to_string());
            }
        }
        return (s.name, name);
    }
    ("", name)
}

/// Every key the file can hold, for every command it applies to.
pub fn all_keys(root: &Command) -> Vec<KeyInfo> {
    let mut out = Vec::new();
    for name in COMMANDS {
        let Some(cmd) = root.find_subcommand(name) else {
            continue;
        };
        for a in settable(cmd) {
            let (section, key) = key_of(a);
            out.push(KeyInfo {
                section,
                key,
                command: name.to_string(),
                id: a.get_id().to_string(),
                long: a.get_long().map(str::to_string),
                action: kind(a),
                help: a
                    .get_help()
                    .map(|h| h.to_string())
                    .unwrap_or_default()
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string(),
            });
        }
    }
    out
}

/// `BUILDLOG_<FLAG>`: the flag's long name upper-cased, `-` as `_`.
pub fn env_name(long: &str) -> String {
    format!("BUILDLOG_{}", long.to_ascii_uppercase().replace('-', "_"))
}

/// The configuration file to read: `--config`, else `$BUILDLOG_CONFIG` (both through
/// clap), else the default path when it exists.
pub fn config_path(given: Option<&PathBuf>) -> Option<PathBuf> {
    if let Some(p) = given.filter(|p| !p.as_os_str().is_empty()) {
        return Some(p.clone());
    }
    let d = Path::new(DEFAULT_PATH);
    d.is_file().then(|| d.to_path_buf())
}

/// A parsed configuration file: `(section, key)` to its TOML value.
#[derive(Debug, Default)]
pub struct ConfigFile {
    pub path: PathBuf,
    pub entries: BTreeMap<(String, String), toml::Value>,
}

fn suggest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    let best = candidates
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((_, c)) => format!("; did you mean `{c}`?"),
        None => String::new(),
    }
}

impl ConfigFile {
    /// Reads and checks `path`: TOML, every section and key known, `${VAR}` resolved.
    pub fn load(path: &Path, root: &Command) -> Result<ConfigFile, UsageError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            UsageError(format!(
                "cannot read configuration file {}: {e}",
                path.display()
            ))
        })?;
        Self::parse(&text, path, root)
    }

    pub fn parse(text: &str, path: &Path, root: &Command) -> Result<ConfigFile, UsageError> {
        let file = path.display();
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| UsageError(format!("{file}: not valid TOML: {e}")))?;
        let keys = all_keys(root);
        let mut entries = BTreeMap::new();
        let known =
            |section: &str, key: &str| keys.iter().any(|k| k.section == section && k.key == key);
        let section_keys = |section: &str| -> Vec<String> {
            let mut v: Vec<String> = keys
                .iter()
                .filter(|k| k.section == section)
                .map(|k| k.key.clone())
                .collect();
            v.dedup();
            v
        };
        for (name, value) in &table {
            let norm = name.replace('_', "-");
            match value {
                toml::Value::Table(t) => {
                    if !SECTIONS.iter().any(|s| s.name == norm) {
                        return Err(UsageError(format!(
                            "{file}: unknown section [{name}]{}",
                            suggest(&norm, SECTIONS.iter().map(|s| s.name))
                        )));
                    }
                    let sec = SECTIONS.iter().find(|s| s.name == norm).unwrap().name;
                    for (k, v) in t {
                        let nk = k.replace('_', "-");
                        if !known(sec, &nk) {
                            let cands = section_keys(sec);
                            return Err(UsageError(format!(
                                "{file}: unknown key `{k}` in [{sec}]{}",
                                suggest(&nk, cands.iter().map(String::as_str))
                            )));
                        }
                        let what = format!("{file}: [{sec}] {nk}");
                        let v = interpolate_value(v, &what)?;
                        validate(root, &keys, sec, &nk, &v, &what)?;
                        entries.insert((sec.to_string(), nk), v);
                    }
                }
                v => {
                    if !known("", &norm) {
                        let cands = section_keys("");
                        let mut hint = suggest(&norm, cands.iter().map(String::as_str));
                        if hint.is_empty() {
                            // A sink's key at the top level: name its section.
                            if let Some(k) =
                                keys.iter().find(|k| k.key == norm && !k.section.is_empty())
                            {
                                hint = format!("; it belongs in [{}]", k.section);
                            }
                        }
                        return Err(UsageError(format!("{file}: unknown key `{name}`{hint}")));
                    }
                    let what = format!("{file}: {norm}");
                    let v = interpolate_value(v, &what)?;
                    validate(root, &keys, "", &norm, &v, &what)?;
                    entries.insert((String::new(), norm), v);
                }
            }
        }
        Ok(ConfigFile {
            path: path.to_path_buf(),
            entries,
        })
    }
}

/// Checks a file's value against the flag it stands for (in the first command that has it).
fn validate(
    root: &Command,
    keys: &[KeyInfo],
    section: &str,
    key: &str,
    v: &toml::Value,
    what: &str,
) -> Result<(), UsageError> {
    let Some(info) = keys.iter().find(|k| k.section == section && k.key == key) else {
        return Ok(());
    };
    let Some(cmd) = root.find_subcommand(&info.command) else {
        return Ok(());
    };
    let Some(arg) = cmd.get_arguments().find(|a| a.get_id().as_str() == info.id) else {
        return Ok(());
    };
    let vals = values(v, what, info.action)?;
    check_values(arg, &vals, what)
}

/// Resolves `${VAR}` and `${VAR:-default}` in strings (also inside lists).
fn interpolate_value(v: &toml::Value, what: &str) -> Result<toml::Value, UsageError> {
    Ok(match v {
        toml::Value::String(s) => toml::Value::String(interpolate(s, what)?),
        toml::Value::Array(a) => toml::Value::Array(
            a.iter()
                .map(|x| interpolate_value(x, what))
                .collect::<Result<_, _>>()?,
        ),
        toml::Value::Table(_) => {
            return Err(UsageError(format!("{what}: a table is not a value here")))
        }
        other => other.clone(),
    })
}

/// `${VAR}` is the variable's value (an unset variable is an error), `${VAR:-default}` the
/// default when it is unset or empty, `$$` a `$`.
pub fn interpolate(s: &str, what: &str) -> Result<String, UsageError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| UsageError(format!("{what}: `${{` without a closing `}}`")))?;
            let inner = &body[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(UsageError(format!(
                    "{what}: `${{{inner}}}` is not a variable name"
                )));
            }
            match (std::env::var(name).ok().filter(|v| !v.is_empty()), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(UsageError(format!(
                        "{what}: ${{{name}}} is not set (use ${{{name}:-default}} for a default)"
                    )))
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The value(s) of a TOML value as command-line strings.
fn values(v: &toml::Value, what: &str, kind: KeyKind) -> Result<Vec<String>, UsageError> {
    let scalar = |v: &toml::Value| -> Result<String, UsageError> {
        Ok(match v {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            _ => {
                return Err(UsageError(format!(
                    "{what}: expected a string, number or true/false"
                )))
            }
        })
    };
    match (v, kind) {
        (toml::Value::Array(a), KeyKind::List) => a.iter().map(scalar).collect(),
        (toml::Value::Array(_), _) => {
            Err(UsageError(format!("{what}: takes one value, not a list")))
        }
        (v, _) => Ok(vec![scalar(v)?]),
    }
}

fn truthy(s: &str, what: &str) -> Result<bool, UsageError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "" | "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(UsageError(format!(
            "{what}: expected true or false, not {s:?}"
        ))),
    }
}

/// Checks values with the flag's own parser: `[loki] retry-initial = "5x"` is refused
/// naming the file and key, not as if it had been typed on the command line.
fn check_values(a: &clap::Arg, vals: &[String], what: &str) -> Result<(), UsageError> {
    if kind(a) == KeyKind::Switch {
        for v in vals {
            truthy(v, what)?;
        }
        return Ok(());
    }
    for v in vals {
        let probe = Command::new("buildlog").no_binary_name(true).arg(
            clap::Arg::new("v")
                .long("v")
                .action(ArgAction::Set)
                .value_parser(a.get_value_parser().clone()),
        );
        if let Err(e) = probe.try_get_matches_from([format!("--v={v}")]) {
            let msg = e.to_string();
            let first = msg
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ")
                .replace(" for '--v <v>'", "");
            return Err(UsageError(format!("{what} = {v:?}: {first}")));
        }
    }
    Ok(())
}

/// Arguments from the file and the environment for subcommand `sub` (whose matches from
/// the command line alone are `m`): flags to insert after the subcommand, positionals to
/// append. Values are checked with the flag's own parser, so an error names its origin.
pub fn injected_args(
    root: &Command,
    sub: &str,
    m: &ArgMatches,
    file: Option<&ConfigFile>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Vec<OsString>, Vec<OsString>), UsageError> {
    let Some(cmd) = root.find_subcommand(sub) else {
        return Ok((Vec::new(), Vec::new()));
    };
    let cmd = &cmd.clone();
    let mut flags = Vec::new();
    let mut positionals = Vec::new();
    for a in settable(cmd) {
        let id = a.get_id().as_str();
        let source = m.value_source(id);
        if source == Some(ValueSource::CommandLine) {
            continue;
        }
        let kind = kind(a);
        let (section, key) = key_of(a);
        // BUILDLOG_<FLAG>, unless that is already the flag's own variable (clap read it).
        let mut found: Option<(String, Vec<String>)> = None;
        if let Some(long) = a.get_long() {
            let name = env_name(long);
            let own = a.get_env().is_some_and(|e| e == name.as_str());
            if !own {
                if let Some(v) = env(&name) {
                    let vals = match kind {
                        KeyKind::List => v
                            .split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect(),
                        _ => vec![v],
                    };
                    found = Some((format!("${name}"), vals));
                }
            }
        }
        if found.is_none() && source != Some(ValueSource::EnvVariable) {
            if let Some(f) = file {
                if let Some(v) = f.entries.get(&(section.to_string(), key.clone())) {
                    let what = if section.is_empty() {
                        format!("{}: {key}", f.path.display())
                    } else {
                        format!("{}: [{section}] {key}", f.path.display())
                    };
                    found = Some((what.clone(), values(v, &what, kind)?));
                }
            }
        }
        let Some((what, vals)) = found else { continue };
        if kind == KeyKind::Switch {
            if vals
                .iter()
                .try_fold(false, |acc, v| truthy(v, &what).map(|t| acc || t))?
            {
                flags.push(OsString::from(format!("--{}", a.get_long().unwrap_or(id))));
            }
            continue;
        }
        check_values(a, &vals, &what)?;
        for v in &vals {
            match a.get_long() {
                Some(long) => flags.push(OsString::from(format!("--{long}={v}"))),
                None => positionals.push(OsString::from(v)),
            }
        }
    }
    Ok((flags, positionals))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation() {
        std::env::set_var("BUILDLOG_TEST_INTERP", "tenant-a");
        assert_eq!(
            interpolate("x-${BUILDLOG_TEST_INTERP}-y", "k").unwrap(),
            "x-tenant-a-y"
        );
        assert_eq!(
            interpolate("${BUILDLOG_TEST_UNSET_Q:-fallback}", "k").unwrap(),
            "fallback"
        );
        assert_eq!(interpolate("cost $$5 $x", "k").unwrap(), "cost $5 $x");
        let e = interpolate("${BUILDLOG_TEST_UNSET_Q}", "f.toml: [loki] url").unwrap_err();
        assert!(
            e.0.contains("f.toml: [loki] url") && e.0.contains("not set"),
            "{e}"
        );
        assert!(interpolate("${oops", "k").is_err());
        assert!(interpolate("${a b}", "k").is_err());
    }

    #[test]
    fn env_names() {
        assert_eq!(env_name("loki-retry-max"), "BUILDLOG_LOKI_RETRY_MAX");
        assert_eq!(env_name("stdout"), "BUILDLOG_STDOUT");
    }

    #[test]
    fn truthiness() {
        assert!(truthy("TRUE", "x").unwrap());
        assert!(!truthy("0", "x").unwrap());
        assert!(truthy("maybe", "x").is_err());
    }
}
