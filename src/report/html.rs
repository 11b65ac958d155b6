//! `report --html`: one self-contained page (styles and script inline, nothing fetched; a
//! Content-Security-Policy forbids it), with per build a zoomable Gantt timeline of its
//! features and their commands. Each feature bar is an element with `data-feature="<name>"`,
//! each command bar one with `data-command="<feature>#<n>"`; failed ones have the class
//! `failed`; hovering one shows its command, duration and exit code. With several builds, a
//! trend view: each feature's duration across the builds, and the success rate.

use super::model::{BuildReport, CommandReport, FeatureReport, Report};
use super::text::human;
use std::fmt::Write;

/// HTML text and attribute escaping.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => o.push('\u{fffd}'),
            c => o.push(c),
        }
    }
    o
}

const STYLE: &str = r#"
:root { --ok: #2e7d32; --okbg: #a5d6a7; --bad: #c62828; --badbg: #ef9a9a; --grid: #e0e0e0; }
* { box-sizing: border-box; }
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5rem; color: #212121; }
h1 { font-size: 1.4rem; margin: 0 0 1rem; }
h2 { font-size: 1.15rem; margin: 2rem 0 .3rem; }
.status { font-weight: 600; padding: 0 .4em; border-radius: 3px; }
.status.success { color: #fff; background: var(--ok); }
.status.failed { color: #fff; background: var(--bad); }
.meta { color: #616161; margin: .2rem 0; }
.why { color: var(--bad); margin: .2rem 0; }
.toolbar { margin: .6rem 0; display: flex; gap: .4rem; align-items: center; }
.toolbar button { font: inherit; padding: .1rem .6rem; cursor: pointer; }
.scroll { overflow-x: auto; border: 1px solid var(--grid); }
.gantt { --zoom: 1; width: calc(var(--zoom) * 100%); min-width: 100%; position: relative; }
.row { display: grid; grid-template-columns: 280px 1fr; height: 22px; align-items: center; }
.row:nth-child(even) { background: #fafafa; }
.label { position: sticky; left: 0; z-index: 2; background: inherit; background-color: #fff; padding: 0 .5rem;
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; height: 100%; line-height: 22px; border-right: 1px solid var(--grid); }
.row.feature-row .label { font-weight: 600; }
.row.command-row .label { padding-left: 1.4rem; color: #424242; }
.track { position: relative; height: 100%; }
.bar { position: absolute; top: 3px; height: 16px; min-width: 3px; border-radius: 2px; background: var(--okbg); border: 1px solid var(--ok); cursor: default; }
.bar.feature { top: 2px; height: 18px; background: #90caf9; border-color: #1565c0; }
.bar.failed { background: var(--badbg); border-color: var(--bad); }
.bar.feature.failed { background: #e57373; }
.bar:hover { outline: 2px solid #000; }
.axis { position: relative; height: 18px; font-size: 11px; color: #757575; }
.tick { position: absolute; top: 0; border-left: 1px solid var(--grid); padding-left: 2px; height: 100%; }
#tip { position: fixed; display: none; z-index: 10; max-width: 40rem; background: #263238; color: #fff; padding: .4rem .6rem;
  border-radius: 4px; font-size: 12px; white-space: pre-wrap; pointer-events: none; }
table { border-collapse: collapse; margin: .4rem 0; }
th, td { text-align: left; padding: .15rem .6rem; border-bottom: 1px solid var(--grid); vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { margin: .2rem 0 .6rem; background: #f5f5f5; padding: .4rem; overflow-x: auto; font-size: 12px; }
.trend-bar { display: inline-block; height: 12px; background: #90caf9; border: 1px solid #1565c0; vertical-align: middle; min-width: 2px; }
.trend-bar.failed { background: #e57373; border-color: var(--bad); }
"#;

const SCRIPT: &str = r#"
(function () {
  var tip = document.getElementById('tip');
  document.addEventListener('mouseover', function (ev) {
    var t = ev.target.closest ? ev.target.closest('[data-tip]') : null;
    if (!t) { tip.style.display = 'none'; return; }
    tip.textContent = t.getAttribute('data-tip');
    tip.style.display = 'block';
  });
  document.addEventListener('mousemove', function (ev) {
    if (tip.style.display !== 'block') return;
    var x = ev.clientX + 14, y = ev.clientY + 14;
    var w = tip.offsetWidth, h = tip.offsetHeight;
    if (x + w > window.innerWidth) x = Math.max(0, ev.clientX - w - 14);
    if (y + h > window.innerHeight) y = Math.max(0, ev.clientY - h - 14);
    tip.style.left = x + 'px'; tip.style.top = y + 'px';
  });
  function setZoom(g, z) {
    z = Math.max(1, Math.min(64, z));
    g.style.setProperty('--zoom', String(z));
    g.setAttribute('data-zoom', String(z));
    var lvl = g.closest('.build').querySelector('.zoomlevel');
    if (lvl) lvl.textContent = Math.round(z * 100) + '%';
  }
  function zoomOf(g) { return parseFloat(g.getAttribute('data-zoom') || '1'); }
  document.querySelectorAll('.build').forEach(function (b) {
    var g = b.querySelector('.gantt');
    if (!g) return;
    b.querySelectorAll('button[data-zoom]').forEach(function (btn) {
      btn.addEventListener('click', function () {
        var a = btn.getAttribute('data-zoom');
        setZoom(g, a === 'in' ? zoomOf(g) * 2 : a === 'out' ? zoomOf(g) / 2 : 1);
      });
    });
    b.querySelector('.scroll').addEventListener('wheel', function (ev) {
      if (!ev.ctrlKey) return;
      ev.preventDefault();
      setZoom(g, zoomOf(g) * (ev.deltaY < 0 ? 1.25 : 0.8));
    }, { passive: false });
  });
})();
"#;

/// The page.
pub fn render(r: &Report) -> String {
    let mut o = String::with_capacity(64 * 1024);
    o.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    o.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n");
    o.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    o.push_str("<link rel=\"icon\" href=\"data:,\">\n");
    let title = match r.builds.as_slice() {
        [b] => format!("Build {} ({})", b.correlation_id, b.status),
        bs => format!("{} builds", bs.len()),
    };
    let _ = writeln!(o, "<title>{}</title>", esc(&title));
    let _ = writeln!(o, "<style>{STYLE}</style>\n</head>\n<body>");
    let _ = writeln!(o, "<h1>{}</h1>", esc(&title));
    if r.builds.len() > 1 {
        trend(&mut o, r);
    }
    for b in &r.builds {
        build(&mut o, b);
    }
    o.push_str("<div id=\"tip\" role=\"tooltip\"></div>\n");
    let _ = writeln!(o, "<script>{SCRIPT}</script>\n</body>\n</html>");
    o
}

fn pct(x: f64) -> String {
    format!("{:.4}%", x.clamp(0.0, 100.0))
}

fn feature_tip(f: &FeatureReport) -> String {
    let mut t = format!(
        "{}\nstatus: {}\nduration: {}\ncommands: {}",
        f.feature,
        f.status,
        f.duration_seconds
            .map(human)
            .unwrap_or_else(|| "unfinished".into()),
        f.commands.len()
    );
    if f.diagnostic_errors + f.diagnostic_warnings > 0 {
        let _ = write!(
            t,
            "\ndiagnostics: {} errors, {} warnings",
            f.diagnostic_errors, f.diagnostic_warnings
        );
    }
    t
}

fn command_tip(feature: &str, c: &CommandReport) -> String {
    let mut t = format!("{feature} #{}: {}", c.command_num, c.description);
    if let Some(cmd) = &c.command {
        let short: String = cmd.chars().take(300).collect();
        let _ = write!(t, "\ncommand: {short}");
    }
    let _ = write!(
        t,
        "\nduration: {}",
        c.duration_seconds
            .map(human)
            .unwrap_or_else(|| "unfinished".into())
    );
    match c.exit_code {
        Some(x) => {
            let _ = write!(t, "\nexit code: {x}");
        }
        None => t.push_str("\nexit code: none"),
    }
    if let Some(o) = &c.outcome {
        let _ = write!(t, "\noutcome: {o}");
    }
    t
}

fn build(o: &mut String, b: &BuildReport) {
    let total = (b.end_ms - b.start_ms).max(1) as f64;
    let at = |ms: i64| (ms - b.start_ms) as f64 / total * 100.0;
    let _ = writeln!(
        o,
        "<section class=\"build\" data-build=\"{}\" data-status=\"{}\">",
        esc(&b.correlation_id),
        esc(&b.status)
    );
    let _ = writeln!(
        o,
        "<h2>{} <span class=\"status {}\">{}</span> {}</h2>",
        esc(&b.correlation_id),
        if b.failed() { "failed" } else { "success" },
        esc(&b.status),
        esc(&human(b.duration_seconds))
    );
    let commands: usize = b.features.iter().map(|f| f.commands.len()).sum();
    let _ = writeln!(
        o,
        "<p class=\"meta\">{} .. {} · {} features · {} commands · {} failed · diagnostics: {} errors, {} warnings (the logger counted {} errors, {} warnings)</p>",
        esc(&b.start),
        esc(&b.end),
        b.features.len(),
        commands,
        b.failures.len(),
        b.diagnostic_errors,
        b.diagnostic_warnings,
        b.logger_errors,
        b.logger_warnings
    );
    for w in &b.failed_because {
        let _ = writeln!(o, "<p class=\"why\">failed because: {}</p>", esc(w));
    }
    o.push_str("<div class=\"toolbar\">zoom <button type=\"button\" data-zoom=\"out\" title=\"zoom out\">−</button><button type=\"button\" data-zoom=\"in\" title=\"zoom in\">+</button><button type=\"button\" data-zoom=\"reset\">reset</button><span class=\"zoomlevel\">100%</span><span class=\"meta\">(or Ctrl + wheel over the timeline)</span></div>\n");
    o.push_str("<div class=\"scroll\"><div class=\"gantt\" data-zoom=\"1\">\n");
    // Time axis.
    o.push_str(
        "<div class=\"row axis-row\"><div class=\"label\">time</div><div class=\"track axis\">",
    );
    for i in 0..10 {
        let _ = write!(
            o,
            "<span class=\"tick\" style=\"left:{}\">{}</span>",
            pct(i as f64 * 10.0),
            esc(&human(total / 1000.0 * i as f64 / 10.0))
        );
    }
    o.push_str("</div></div>\n");
    for f in &b.features {
        let start = f.start_ms.unwrap_or(b.start_ms);
        let end = f
            .end_ms
            .or_else(|| {
                f.commands
                    .iter()
                    .filter_map(|c| c.end_ms.or(c.start_ms))
                    .max()
            })
            .unwrap_or(b.end_ms)
            .max(start);
        let _ = writeln!(
            o,
            "<div class=\"row feature-row\"><div class=\"label\" title=\"{name}\">{name}</div><div class=\"track\"><div class=\"bar feature{failed}\" data-feature=\"{name}\" data-status=\"{status}\" data-duration=\"{dur}\" style=\"left:{left};width:{width}\" data-tip=\"{tip}\"></div></div></div>",
            name = esc(&f.feature),
            failed = if f.failed() { " failed" } else { "" },
            status = esc(&f.status),
            dur = f.duration_seconds.map(|d| d.to_string()).unwrap_or_default(),
            left = pct(at(start)),
            width = pct(at(end) - at(start)),
            tip = esc(&feature_tip(f)),
        );
        for c in &f.commands {
            let cs = c.start_ms.unwrap_or(start);
            let ce = match (c.duration_seconds, c.end_ms) {
                (Some(d), _) => cs + (d * 1000.0) as i64,
                (None, Some(e)) => e,
                (None, None) => cs,
            }
            .max(cs);
            let _ = writeln!(
                o,
                "<div class=\"row command-row\"><div class=\"label\" title=\"{desc}\">#{n} {desc}</div><div class=\"track\"><div class=\"bar command{failed}\" data-command=\"{name}#{n}\" data-exit-code=\"{exit}\" style=\"left:{left};width:{width}\" data-tip=\"{tip}\"></div></div></div>",
                desc = esc(&c.description),
                n = c.command_num,
                failed = if c.failed() { " failed" } else { "" },
                name = esc(&f.feature),
                exit = c.exit_code.map(|x| x.to_string()).unwrap_or_default(),
                left = pct(at(cs)),
                width = pct(at(ce) - at(cs)),
                tip = esc(&command_tip(&f.feature, c)),
            );
        }
    }
    o.push_str("</div></div>\n");
    if !b.failures.is_empty() {
        o.push_str("<h3>Failed commands</h3>\n");
        for f in &b.failures {
            let _ = writeln!(
                o,
                "<p class=\"failure\"><strong>{} #{} {}</strong>: {}{}</p>",
                esc(&f.feature),
                f.command_num,
                esc(&f.description),
                esc(&f.outcome),
                f.exit_code
                    .filter(|_| !f.outcome.contains("exit"))
                    .map(|c| format!(" (exit {c})"))
                    .unwrap_or_default()
            );
            if !f.last_output.is_empty() {
                let _ = writeln!(o, "<pre>{}</pre>", esc(&f.last_output.join("\n")));
            }
        }
    }
    let with: Vec<_> = b
        .features
        .iter()
        .filter(|f| f.diagnostic_errors + f.diagnostic_warnings > 0)
        .collect();
    if !with.is_empty() {
        o.push_str("<h3>Diagnostics per feature</h3>\n<table class=\"diagnostics\"><tr><th>feature</th><th class=\"num\">errors</th><th class=\"num\">warnings</th></tr>\n");
        for f in with {
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                esc(&f.feature),
                f.diagnostic_errors,
                f.diagnostic_warnings
            );
        }
        o.push_str("</table>\n");
    }
    o.push_str("</section>\n");
}

/// Duration per feature across builds, and the success rate.
fn trend(o: &mut String, r: &Report) {
    let n = r.builds.len();
    let ok = r.builds.iter().filter(|b| !b.failed()).count();
    let _ = writeln!(
        o,
        "<section class=\"trend\" id=\"trend\"><h2>Trend over {n} builds</h2>\n<p class=\"success-rate\" data-success=\"{ok}\" data-builds=\"{n}\">{ok} of {n} builds succeeded ({:.0}%)</p>",
        ok as f64 * 100.0 / n as f64
    );
    let mut names: Vec<&str> = Vec::new();
    for b in &r.builds {
        for f in &b.features {
            if !names.contains(&f.feature.as_str()) {
                names.push(&f.feature);
            }
        }
    }
    let max = r
        .builds
        .iter()
        .flat_map(|b| b.features.iter().filter_map(|f| f.duration_seconds))
        .fold(0.0f64, f64::max)
        .max(1.0);
    o.push_str("<table><tr><th>feature</th>");
    for (i, b) in r.builds.iter().enumerate() {
        let _ = write!(
            o,
            "<th title=\"{}\">#{} <span class=\"status {}\">{}</span></th>",
            esc(&b.correlation_id),
            i + 1,
            if b.failed() { "failed" } else { "success" },
            esc(&b.status)
        );
    }
    o.push_str("</tr>\n");
    for name in names {
        let _ = write!(o, "<tr data-trend-feature=\"{0}\"><td>{0}</td>", esc(name));
        for b in &r.builds {
            match b.feature(name) {
                Some(f) => {
                    let d = f.duration_seconds.unwrap_or(0.0);
                    let _ = write!(
                        o,
                        "<td><span class=\"trend-bar{}\" style=\"width:{:.1}px\" data-tip=\"{}\"></span> {}</td>",
                        if f.failed() { " failed" } else { "" },
                        d / max * 160.0,
                        esc(&format!("{}: {} in build {}", name, f.duration_seconds.map(human).unwrap_or_else(|| "unfinished".into()), b.correlation_id)),
                        esc(&f.duration_seconds.map(human).unwrap_or_else(|| "–".into()))
                    );
                }
                None => o.push_str("<td>–</td>"),
            }
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</table></section>\n");
}
