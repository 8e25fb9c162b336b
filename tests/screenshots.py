"""Screenshots of the dashboard for the README and docs/dashboard.md (``scripts/screenshots``).

Runs the replay of tests/dashboard_book.py (every panel filled; at 20 times real speed, so the
VaR chart has a history) on a private redis-server, waits for its end (the figures then freeze,
so the same commit makes the same pictures, but for the daemon's own counters and uptime), and
takes with Debian's chromium:

- ``docs/dashboard.png``: the first screen, 1600 x 1000 (alerts, exposures, VaR and ES);
- ``docs/dashboard-full.png``: the whole page.

With ``--us``: the US demo (config/demo_us.toml, tests/us_demo.py) once its book is complete
and its forwards are published, its margin, cross-hedge and forwards panels
(``docs/dashboard-us.png``; live simulated figures: they differ from run to run).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

from tests.browser.conftest import CHROMIUM, free_port, riskd
from tests.dashboard_book import write_book
from tests.servers import RedisServer
from tests.us_demo import write_us_demo

ROOT = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 1600, 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="folder of the PNGs")
    parser.add_argument("--width", type=int, default=WIDTH, help="viewport width, CSS px")
    parser.add_argument("--us", action="store_true", help="the US demo: docs/dashboard-us.png")
    args = parser.parse_args(argv)
    if args.us:
        return us_demo(args.out, args.width)
    with RedisServer() as server, tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        config = write_book(Path(tmp), redis_url=server.url, prefix="risk", http_port=port)
        with riskd(config, port) as daemon, sync_playwright() as pw:
            daemon.logged("replay finished: the final state is held and published; Ctrl-C exits")
            browser = pw.chromium.launch(executable_path=str(CHROMIUM))
            page = browser.new_page(viewport={"width": args.width, "height": HEIGHT})
            page.goto(daemon.url)
            expect(page.locator("#status")).to_contain_text("LIVE")
            for panel in ("var", "skew", "strategies"):
                expect(page.locator(f"#panel-{panel} canvas").first).to_be_visible()
            # the risk computed once more on the final state: nothing is stale any more
            expect(page.locator(".stale")).to_have_count(0, timeout=30_000)
            page.evaluate("() => document.fonts.ready")
            args.out.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=args.out / "dashboard.png")
            whole_page(page, args.width)
            page.screenshot(path=args.out / "dashboard-full.png", full_page=True)
            scroll = page.evaluate("() => document.documentElement.scrollWidth")
            browser.close()
    print(f"wrote {args.out / 'dashboard.png'}, {args.out / 'dashboard-full.png'}")  # noqa: T201
    print(f"page width {scroll} px at a {args.width} px viewport")  # noqa: T201
    return 0


def whole_page(page: Page, width: int) -> None:
    """The viewport made as tall as the page, until the page stops growing, each time after a
    redraw: the dashboard skips drawing a panel off screen (``content-visibility: auto``), and
    a full-page picture taken at a screen's height showed the panels below it as empty boxes."""
    height = 0
    for _ in range(5):
        tall = int(page.evaluate("() => document.documentElement.scrollHeight"))
        if tall == height:
            return
        height = tall
        frames = page.evaluate("() => Number(document.body.dataset.frames ?? 0)")
        page.set_viewport_size({"width": width, "height": tall})
        page.wait_for_function(f"() => Number(document.body.dataset.frames ?? 0) > {frames}")


def us_demo(out: Path, width: int) -> int:
    """The US demo's margin, cross-hedge and forwards panels, in one picture."""
    with RedisServer() as server, tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        config = write_us_demo(Path(tmp), redis_url=server.url, prefix="risk-us", http_port=port)
        with riskd(config, port) as daemon, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM))
            page = browser.new_page(viewport={"width": width, "height": HEIGHT})
            page.goto(daemon.url)
            expect(page.locator("#status")).to_contain_text("LIVE")
            margin = page.locator('#panel-margin [data-us=margin] [data-path="margin_cme_span"]')
            expect(margin).not_to_have_attribute("data-value", "", timeout=60_000)
            expect(page.locator("#panel-forwards .card")).to_have_count(3, timeout=60_000)
            for panel in ("margin", "crosshedge", "forwards"):
                # hide the rest: the three panels of the US figures, one after the other
                page.evaluate(
                    "(keep) => document.querySelectorAll('main > section').forEach("
                    "(s) => { if (!keep.includes(s.id)) s.style.display = 'none'; })",
                    [
                        "panel-alerts",
                        "panel-exposures",
                        "panel-margin",
                        "panel-crosshedge",
                        "panel-forwards",
                    ],
                )
                expect(page.locator(f"#panel-{panel} .fig").first).to_be_visible()
            page.evaluate("() => document.fonts.ready")
            out.mkdir(parents=True, exist_ok=True)
            whole_page(page, width)
            page.screenshot(path=out / "dashboard-us.png", full_page=True)
            browser.close()
    print(f"wrote {out / 'dashboard-us.png'}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
