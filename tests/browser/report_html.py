#!/usr/bin/env python3
"""Opens a `buildlog report --html` page in a real headless Chromium (Debian's package,
driven by Playwright; no browser is downloaded) and checks it the way a user sees it:

- every feature and command of the report JSON is drawn, once, with a visible box;
- failed commands (and only they) have the class `failed`;
- hovering a command shows a tooltip with its command, duration and exit code;
- zooming in widens the timeline, zooming back restores it;
- no console errors, no page errors, no network requests.

Usage: report_html.py --html PAGE --json REPORT_JSON [--screenshot PNG]
Exits non-zero with a message on the first failed check.
"""
import argparse
import json
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"


def fail(msg):
    print(f"report_html.py: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--html", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--screenshot")
    a = ap.parse_args()

    report = json.loads(Path(a.json).read_text())
    check(len(report["builds"]) == 1, "one build per page in this test")
    build = report["builds"][0]
    want_features = [f["feature"] for f in build["features"]]
    want_commands = {}
    for f in build["features"]:
        for c in f["commands"]:
            want_commands[f'{f["feature"]}#{c["command_num"]}'] = c
    want_failed = {k for k, c in want_commands.items() if c["status"] != "success"}

    url = Path(a.html).resolve().as_uri()
    console_errors, page_errors, requests = [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on(
            "console",
            lambda m: console_errors.append(m.text) if m.type == "error" else None,
        )
        page.on("pageerror", lambda e: page_errors.append(str(e)))
        page.on(
            "request",
            lambda r: requests.append(r.url) if not r.url.startswith(("file:", "data:")) else None,
        )
        page.goto(url, wait_until="load")

        # Every feature and command drawn, once, with a box on screen.
        got_features = page.eval_on_selector_all(
            "[data-feature]", "els => els.map(e => e.getAttribute('data-feature'))"
        )
        check(got_features == want_features, f"features drawn {got_features} != {want_features}")
        got_commands = page.eval_on_selector_all(
            "[data-command]", "els => els.map(e => e.getAttribute('data-command'))"
        )
        check(len(got_commands) == len(want_commands),
              f"{len(got_commands)} commands drawn, the report has {len(want_commands)}")
        check(set(got_commands) == set(want_commands), "the drawn commands are the report's")
        sizes = page.eval_on_selector_all(
            "[data-feature], [data-command]",
            "els => els.map(e => { const r = e.getBoundingClientRect(); return [r.width, r.height]; })",
        )
        check(all(w >= 2 and h >= 10 for w, h in sizes), f"a bar is not visible: {sizes}")
        got_failed = set(page.eval_on_selector_all(
            "[data-command].failed", "els => els.map(e => e.getAttribute('data-command'))"
        ))
        check(got_failed == want_failed, f"failed commands {got_failed} != {want_failed}")
        check(len(want_failed) > 0, "the builds under test have failed commands")

        # Hover: the tooltip shows command, duration and exit code.
        tip = page.locator("#tip")
        check(not tip.is_visible(), "no tooltip before hovering")
        for cid in sorted(want_failed):
            c = want_commands[cid]
            bar = page.locator(f'[data-command="{cid}"]')
            bar.scroll_into_view_if_needed()
            bar.hover()
            page.wait_for_timeout(50)
            check(tip.is_visible(), f"hovering {cid} shows the tooltip")
            text = tip.inner_text()
            check(c["description"] in text, f"tooltip names the command: {text!r}")
            check("duration: " in text, f"tooltip has the duration: {text!r}")
            want_exit = "none" if c.get("exit_code") is None else str(c["exit_code"])
            check(f"exit code: {want_exit}" in text, f"tooltip has the exit code {want_exit}: {text!r}")
        page.mouse.move(1, 1)

        # Zoom: in doubles the timeline's width, reset restores it.
        gantt = page.locator(".gantt").first
        w0 = gantt.bounding_box()["width"]
        page.locator('button[data-zoom="in"]').first.click()
        w1 = gantt.bounding_box()["width"]
        check(abs(w1 - 2 * w0) < 2, f"zoom in: width {w0} -> {w1}")
        first = page.locator("[data-feature]").first
        fw = first.bounding_box()["width"]
        page.locator('button[data-zoom="in"]').first.click()
        check(first.bounding_box()["width"] > fw * 1.9, "bars grow with the zoom")
        page.locator('button[data-zoom="reset"]').first.click()
        check(abs(gantt.bounding_box()["width"] - w0) < 2, "reset restores the width")
        check(page.locator(".zoomlevel").first.inner_text() == "100%", "zoom level shown")

        if a.screenshot:
            # The whole page, with the tooltip of the last failed command showing.
            page.set_viewport_size({"width": 1400, "height": page.evaluate("document.body.scrollHeight") + 40})
            cid = sorted(want_failed)[-1]
            page.locator(f'[data-command="{cid}"]').hover()
            page.wait_for_timeout(50)
            page.screenshot(path=a.screenshot, full_page=True)
            check(Path(a.screenshot).stat().st_size > 10_000, "screenshot written")
        browser.close()

    check(not console_errors, f"console errors: {console_errors}")
    check(not page_errors, f"page errors: {page_errors}")
    check(not requests, f"network requests: {requests}")
    print(f"report_html.py: ok: {len(want_features)} features, {len(want_commands)} commands, "
          f"{len(want_failed)} failed")


if __name__ == "__main__":
    main()
