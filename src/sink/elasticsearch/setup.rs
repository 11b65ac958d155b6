//! `buildlog es setup`: installs the lifecycle policies, component templates and index
//! templates of `elasticsearch/` so that the data stream (and dated indices) get the right
//! mappings before the first document. Safe to run again: every step is a create-or-replace.
//!
//! Elasticsearch and OpenSearch differ here: Elasticsearch has ILM (`_ilm/policy`, attached
//! by the `index.lifecycle.name` setting) and the `flattened` field type; OpenSearch has ISM
//! (`_plugins/_ism/policies`, attached by the policy's `ism_template`, replaced only with
//! `if_seq_no`/`if_primary_term`) and `flat_object` (2.7 and later).

use super::client::{error_text, Product, ServerInfo};
use crate::sink::http::Auth;
use anyhow::{bail, Context};
use reqwest::{Method, Url};
use serde_json::Value;

/// The files of `elasticsearch/`, embedded: `(file name, text)`.
pub const FILES: &[(&str, &str)] = &[
    (
        "component-template-settings.json",
        include_str!("../../../elasticsearch/component-template-settings.json"),
    ),
    (
        "component-template-native.json",
        include_str!("../../../elasticsearch/component-template-native.json"),
    ),
    (
        "component-template-ecs.json",
        include_str!("../../../elasticsearch/component-template-ecs.json"),
    ),
    (
        "index-template-stream.json",
        include_str!("../../../elasticsearch/index-template-stream.json"),
    ),
    (
        "index-template-dated.json",
        include_str!("../../../elasticsearch/index-template-dated.json"),
    ),
    (
        "ilm-policy-stream.json",
        include_str!("../../../elasticsearch/ilm-policy-stream.json"),
    ),
    (
        "ilm-policy-dated.json",
        include_str!("../../../elasticsearch/ilm-policy-dated.json"),
    ),
    (
        "ism-policy-stream.json",
        include_str!("../../../elasticsearch/ism-policy-stream.json"),
    ),
    (
        "ism-policy-dated.json",
        include_str!("../../../elasticsearch/ism-policy-dated.json"),
    ),
    (
        "ingest-pipeline.json",
        include_str!("../../../elasticsearch/ingest-pipeline.json"),
    ),
];

pub const POLICY_STREAM: &str = "container-build";
pub const POLICY_DATED: &str = "container-build-dated";
pub const PIPELINE: &str = "container-build";

/// What `setup` installs, beyond the files themselves.
#[derive(Debug, Clone)]
pub struct SetupOptions {
    /// Age after which indices are deleted (`90d`, `12h`...).
    pub delete_after: String,
    /// Index pattern of the data stream template.
    pub data_stream_pattern: String,
    /// Index pattern of the dated-index template.
    pub index_pattern: String,
    /// Also install the optional ingest pipeline.
    pub pipeline: bool,
}

impl Default for SetupOptions {
    fn default() -> Self {
        SetupOptions {
            delete_after: "90d".into(),
            data_stream_pattern: "logs-container_build-*".into(),
            index_pattern: "build-logs-*".into(),
            pipeline: false,
        }
    }
}

/// One step: `PUT path body`. OpenSearch ISM policies first need their current sequence
/// numbers (`ism: true`).
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub path: String,
    pub body: Value,
    pub ism: bool,
}

fn file(name: &str) -> Value {
    let text = FILES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .expect("an embedded file");
    serde_json::from_str(text).expect("embedded JSON is checked by the tests")
}

fn valid_age(age: &str) -> bool {
    let digits = age.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &age[digits.len()..];
    !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
        && matches!(unit, "d" | "h" | "m" | "s")
}

/// The requests for a server, in order: policies, component templates, pipeline, index templates.
pub fn plan(info: &ServerInfo, opts: &SetupOptions) -> anyhow::Result<Vec<Step>> {
    if !valid_age(&opts.delete_after) {
        bail!(crate::error::UsageError(format!(
            "--delete-after {:?}: use a number and a unit d, h, m or s (e.g. 90d)",
            opts.delete_after
        )));
    }
    let os = info.product == Product::OpenSearch;
    // 7.17: composable templates, data streams, `_meta` in ILM policies, rollover by
    // primary shard size.
    if !os && (info.major < 7 || (info.major == 7 && info.minor < 17)) {
        bail!(
            "Elasticsearch {} is too old for these templates and policies; 7.17 or later is needed",
            info.version
        );
    }
    let mut steps = Vec::new();
    let policies = [
        (POLICY_STREAM, "stream", &opts.data_stream_pattern),
        (POLICY_DATED, "dated", &opts.index_pattern),
    ];
    for (name, kind, pattern) in policies {
        if os {
            let mut p = file(&format!("ism-policy-{kind}.json"));
            let policy = &mut p["policy"];
            for state in policy["states"].as_array_mut().into_iter().flatten() {
                for t in state["transitions"].as_array_mut().into_iter().flatten() {
                    if t["state_name"] == "delete" {
                        t["conditions"]["min_index_age"] = opts.delete_after.clone().into();
                    }
                }
            }
            policy["ism_template"][0]["index_patterns"] = serde_json::json!([pattern]);
            steps.push(Step {
                path: format!("_plugins/_ism/policies/{name}"),
                body: p,
                ism: true,
            });
        } else {
            let mut p = file(&format!("ilm-policy-{kind}.json"));
            p["policy"]["phases"]["delete"]["min_age"] = opts.delete_after.clone().into();
            steps.push(Step {
                path: format!("_ilm/policy/{name}"),
                body: p,
                ism: false,
            });
        }
    }
    for kind in ["settings", "native", "ecs"] {
        let mut body = file(&format!("component-template-{kind}.json"));
        if os {
            let replacement = if info.major > 2 || (info.major == 2 && info.minor >= 7) {
                serde_json::json!({"type": "flat_object"})
            } else {
                serde_json::json!({"type": "object", "enabled": false})
            };
            replace_flattened(&mut body, &replacement);
        }
        let name = if kind == "settings" {
            "container-build-settings".to_string()
        } else {
            format!("container-build-mappings-{kind}")
        };
        steps.push(Step {
            path: format!("_component_template/{name}"),
            body,
            ism: false,
        });
    }
    if opts.pipeline {
        steps.push(Step {
            path: format!("_ingest/pipeline/{PIPELINE}"),
            body: file("ingest-pipeline.json"),
            ism: false,
        });
    }
    for (kind, pattern) in [
        ("stream", &opts.data_stream_pattern),
        ("dated", &opts.index_pattern),
    ] {
        let mut body = file(&format!("index-template-{kind}.json"));
        body["index_patterns"] = serde_json::json!([pattern]);
        if os {
            // ISM attaches its policies by pattern; the ILM setting would be refused.
            if let Some(s) = body["template"]["settings"].as_object_mut() {
                s.remove("index.lifecycle.name");
            }
        }
        if opts.pipeline {
            body["template"]["settings"]["index.default_pipeline"] = PIPELINE.into();
        }
        steps.push(Step {
            path: format!("_index_template/container-build-{kind}"),
            body,
            ism: false,
        });
    }
    Ok(steps)
}

fn replace_flattened(v: &mut Value, with: &Value) {
    match v {
        Value::Object(o) => {
            if o.get("type").and_then(Value::as_str) == Some("flattened") {
                *v = with.clone();
                return;
            }
            for (_, c) in o.iter_mut() {
                replace_flattened(c, with);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|c| replace_flattened(c, with)),
        _ => {}
    }
}

/// Talks to the server for `setup`.
pub struct SetupClient {
    pub http: reqwest::Client,
    pub base: Url,
    pub auth: Auth,
}

impl SetupClient {
    fn url(&self, path_and_query: &str) -> anyhow::Result<Url> {
        let mut base = self.base.clone();
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        Ok(base.join(path_and_query)?)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self.http.request(method.clone(), self.url(path)?);
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(b)?);
        }
        let resp = self
            .auth
            .apply(req)
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = resp.status().as_u16();
        let (bytes, _) =
            crate::sink::http::read_capped(resp, crate::sink::http::MAX_RESPONSE_BYTES).await?;
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok((status, v))
    }

    /// `GET /`: which product and version.
    pub async fn server_info(&self) -> anyhow::Result<ServerInfo> {
        let (status, v) = self.call(Method::GET, "", None).await?;
        if status != 200 {
            bail!("GET / answered {status}: {}", reason(&v));
        }
        ServerInfo::from_root(&v).map_err(anyhow::Error::msg)
    }

    /// Applies every step; returns one line per step for the user.
    pub async fn apply(&self, steps: &[Step]) -> anyhow::Result<Vec<String>> {
        let mut done = Vec::new();
        for step in steps {
            let mut path = step.path.clone();
            let mut verb = "created";
            if step.ism {
                let (status, current) = self.call(Method::GET, &step.path, None).await?;
                match status {
                    200 => {
                        let seq = current.get("_seq_no").and_then(Value::as_i64);
                        let term = current.get("_primary_term").and_then(Value::as_i64);
                        let (Some(seq), Some(term)) = (seq, term) else {
                            bail!("GET {} gave no _seq_no/_primary_term", step.path);
                        };
                        if current
                            .get("policy")
                            .is_some_and(|p| same_policy(p, &step.body["policy"]))
                        {
                            done.push(format!("PUT {}: unchanged", step.path));
                            continue;
                        }
                        path = format!("{path}?if_seq_no={seq}&if_primary_term={term}");
                        verb = "updated";
                    }
                    404 => {}
                    s => bail!("GET {} answered {s}: {}", step.path, reason(&current)),
                }
            }
            let (status, v) = self.call(Method::PUT, &path, Some(&step.body)).await?;
            if !(200..300).contains(&status) {
                bail!("PUT {} answered {status}: {}", step.path, reason(&v));
            }
            if !step.ism {
                verb = "installed";
            }
            done.push(format!("PUT {}: {verb}", step.path));
        }
        Ok(done)
    }
}

/// An ISM policy as the server returns it carries extra fields (`policy_id`,
/// `last_updated_time`, `schema_version`...); compare only what we send.
fn same_policy(current: &Value, wanted: &Value) -> bool {
    match (current, wanted) {
        (Value::Object(c), Value::Object(w)) => w
            .iter()
            .all(|(k, wv)| c.get(k).is_some_and(|cv| same_policy(cv, wv))),
        (Value::Array(c), Value::Array(w)) => {
            c.len() == w.len() && c.iter().zip(w).all(|(a, b)| same_policy(a, b))
        }
        (c, w) => c == w,
    }
}

fn reason(v: &Value) -> String {
    match v.get("error") {
        Some(e) => error_text(e),
        None => {
            let s = v.to_string();
            s.chars().take(300).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn es8() -> ServerInfo {
        ServerInfo {
            product: Product::Elasticsearch,
            version: "8.15.0".into(),
            major: 8,
            minor: 15,
        }
    }

    fn os2() -> ServerInfo {
        ServerInfo {
            product: Product::OpenSearch,
            version: "2.17.0".into(),
            major: 2,
            minor: 17,
        }
    }

    #[test]
    fn every_embedded_file_is_json() {
        for (name, text) in FILES {
            let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(v.is_object(), "{name}");
        }
    }

    #[test]
    fn elasticsearch_plan() {
        let opts = SetupOptions {
            delete_after: "30d".into(),
            pipeline: true,
            ..Default::default()
        };
        let steps = plan(&es8(), &opts).unwrap();
        let paths: Vec<&str> = steps.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "_ilm/policy/container-build",
                "_ilm/policy/container-build-dated",
                "_component_template/container-build-settings",
                "_component_template/container-build-mappings-native",
                "_component_template/container-build-mappings-ecs",
                "_ingest/pipeline/container-build",
                "_index_template/container-build-stream",
                "_index_template/container-build-dated",
            ]
        );
        assert_eq!(
            steps[0].body["policy"]["phases"]["delete"]["min_age"],
            "30d"
        );
        let stream = &steps[6].body;
        assert_eq!(stream["index_patterns"][0], "logs-container_build-*");
        assert!(stream["data_stream"].is_object());
        assert_eq!(
            stream["template"]["settings"]["index.lifecycle.name"],
            "container-build"
        );
        assert_eq!(
            stream["template"]["settings"]["index.default_pipeline"],
            "container-build"
        );
        assert!(steps[7].body.get("data_stream").is_none());
        assert_eq!(
            steps[3].body["template"]["mappings"]["properties"]["metadata"]["type"],
            "flattened"
        );
        assert!(steps.iter().all(|s| !s.ism));
    }

    #[test]
    fn opensearch_plan() {
        let steps = plan(&os2(), &SetupOptions::default()).unwrap();
        assert_eq!(steps[0].path, "_plugins/_ism/policies/container-build");
        assert!(steps[0].ism);
        let delete = &steps[0].body["policy"]["states"][0]["transitions"][0];
        assert_eq!(delete["conditions"]["min_index_age"], "90d");
        assert_eq!(
            steps[1].body["policy"]["ism_template"][0]["index_patterns"][0],
            "build-logs-*"
        );
        assert_eq!(
            steps[3].body["template"]["mappings"]["properties"]["metadata"]["type"],
            "flat_object"
        );
        let stream = steps
            .iter()
            .find(|s| s.path.ends_with("container-build-stream"))
            .unwrap();
        assert!(stream.body["template"]["settings"]
            .get("index.lifecycle.name")
            .is_none());
        assert!(steps
            .iter()
            .all(|s| !s.body.to_string().contains("flattened")));
        let old = ServerInfo {
            minor: 3,
            version: "2.3.0".into(),
            ..os2()
        };
        let steps = plan(&old, &SetupOptions::default()).unwrap();
        assert_eq!(
            steps[3].body["template"]["mappings"]["properties"]["metadata"]["enabled"],
            false
        );
    }

    #[test]
    fn refuses_old_elasticsearch_and_bad_ages() {
        for (major, minor) in [(6, 8), (7, 10)] {
            let old = ServerInfo {
                major,
                minor,
                version: format!("{major}.{minor}.0"),
                ..es8()
            };
            assert!(plan(&old, &SetupOptions::default()).is_err());
        }
        let ok = ServerInfo {
            major: 7,
            minor: 17,
            ..es8()
        };
        assert!(plan(&ok, &SetupOptions::default()).is_ok());
        for bad in ["", "90", "d", "9x", "-1d", "1.5d"] {
            let opts = SetupOptions {
                delete_after: bad.into(),
                ..Default::default()
            };
            assert!(plan(&es8(), &opts).is_err(), "{bad}");
        }
    }

    #[test]
    fn policy_comparison_ignores_server_fields() {
        let wanted = serde_json::json!({"description": "d", "states": [{"name": "hot"}]});
        let current = serde_json::json!({"policy_id": "x", "description": "d", "states": [{"name": "hot", "extra": 1}]});
        assert!(same_policy(&current, &wanted));
        let changed = serde_json::json!({"description": "e", "states": [{"name": "hot"}]});
        assert!(!same_policy(&changed, &wanted));
    }
}
