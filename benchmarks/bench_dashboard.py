"""The offline dashboard on 200 runs x 10,000 steps x 20 metrics: build time and file size,
then (when a headless Chromium is there) how long the page takes to open and to redraw after a
click on a group.

The runs are generated in memory as a RunSet (the loading itself is timed by
bench_analysis.py); the 20 metrics are the first registered curves of the dashboard's sections,
H(R), I(R;Z) and the ratio among them, every one logged at every step (the worst case).

    python benchmarks/bench_dashboard.py [--runs 200] [--steps 10000] [--metrics 20] [--no-browser]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from adadim.analysis import panel_keys
from adadim.analysis.dashboard import build_dashboard
from adadim.analysis.runset import RunSet
from adadim.dynamics import keys

METHODS = ("vicreg", "simclr", "fixed", "linear", "cosine", "adadim")
TARGET_SECONDS, TARGET_MB = 15.0, 20.0


def metric_keys(count: int) -> list[str]:
    curves = [k for s in panel_keys.sections() if s.kind == "line" for k in s.keys]
    first = [panel_keys.PLANE_X, *panel_keys.plane_ys(), panel_keys.RATIO]
    return (first + [k for k in curves if k not in first])[:count]


def generate(runs: int, steps: int, metrics: list[str]) -> RunSet:
    rng = np.random.default_rng(0)
    t = np.arange(steps) / (steps - 1)
    frames, meta = [], []
    for k in range(runs):
        method = METHODS[k % len(METHODS)]
        run_id = f"{method}-s{k // len(METHODS)}"
        scale = rng.uniform(0.5, 1.5)
        columns = {"run_id": run_id, keys.STEP: np.arange(steps), keys.EPOCH: np.arange(steps) / 100}
        for j, key in enumerate(metrics):
            columns[key] = scale * (j + 1) * (1 - np.exp(-4 * t)) + 0.02 * rng.standard_normal(steps)
        frames.append(pd.DataFrame(columns))
        meta.append(
            {
                "run_id": run_id,
                "method": method,
                "run.seed": k // len(METHODS),
                "group": "bench",
                "state": "finished",
                "final/lowlabel_top1": 0.9 - 0.1 * (scale - 1.1) ** 2 + 0.005 * rng.standard_normal(),
            }
        )
    return RunSet(pd.DataFrame(meta).set_index("run_id"), pd.concat(frames, ignore_index=True))


def browser_timings(path: Path) -> tuple[float, float] | None:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not Path(chromium).is_file():
        return None
    flags = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=flags)
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        started = time.perf_counter()
        page.goto(path.as_uri())
        page.wait_for_selector("body[data-ready='1']", timeout=300_000)
        opened = time.perf_counter() - started
        started = time.perf_counter()
        page.click("#group-0")
        page.wait_for_function("document.body.dataset.renders === '2'", timeout=300_000)
        redraw = time.perf_counter() - started
        browser.close()
    return opened, redraw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--metrics", type=int, default=20)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    metrics = metric_keys(args.metrics)
    rs = generate(args.runs, args.steps, metrics)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dashboard.html"
        started = time.perf_counter()
        info = build_dashboard(rs, path)
        seconds = time.perf_counter() - started
        megabytes = info.bytes / 1e6
        print(f"source: {args.runs} runs x {args.steps} steps x {len(metrics)} metrics, every metric at every step")
        print(f"lines: {info.lines}, at most {info.max_points} points each (min/max per bucket)")
        print(f"points: {info.logged_points:,} logged, {info.drawn_points:,} drawn ({info.factor:.1f}x fewer)")
        print(f"{'build (from a loaded RunSet)':<40}{seconds:>8.2f} s   target <= {TARGET_SECONDS:.0f} s")
        print(f"{'file size':<40}{megabytes:>8.2f} MB  target <= {TARGET_MB:.0f} MB")
        timings = None if args.no_browser else browser_timings(path)
        if timings is None:
            print("headless Chromium: not run (--no-browser, or no chromium / playwright)")
        else:
            print(f"{'headless Chromium: open and first draw':<40}{timings[0]:>8.2f} s")
            print(f"{'headless Chromium: redraw after a click':<40}{timings[1]:>8.2f} s")


if __name__ == "__main__":
    main()
