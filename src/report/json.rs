//! `report --json`: the model as data, `{"builds":[{"correlation_id","status",
//! "duration_seconds","features":[{"feature","status","duration_seconds","commands":[...]}],
//! "failures":[...]}]}`.

use super::model::Report;

/// Pretty-printed JSON of the report, with a trailing newline.
pub fn render(r: &Report) -> String {
    let mut s = serde_json::to_string_pretty(r).expect("a report always serialises");
    s.push('\n');
    s
}
