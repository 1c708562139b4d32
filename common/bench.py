"""`make bench`: every performance lesson at full size, one table, results.json and a chart.

Each lesson's `main()` runs as a user would run it (servers from `make up` or `make local-up`);
the result its `run()` returns is captured and its `comparisons` collected. Writes
benchmarks/results.json (a list of {name, baseline, optimized, baseline_s, optimized_s, ratio})
and benchmarks/ratios.png, and exits non-zero if any optimized variant failed to win.
"""

from __future__ import annotations

import importlib
import json
import sys

from common import console
from common.catalog import lessons
from common.settings import ROOT

OUT = ROOT / "benchmarks"


def collect(module_name: str) -> list:
    """Run the lesson's main() and keep what its run() returned."""
    module = importlib.import_module(module_name)
    returned = []
    original_run = module.run

    def capturing_run(*args, **kwargs):
        returned.append(original_run(*args, **kwargs))
        return returned[-1]

    module.run = capturing_run
    try:
        module.main()
    finally:
        module.run = original_run
    return [comparison for result in returned for comparison in getattr(result, "comparisons", [])]


def draw(results: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['name']}\n{r['optimized']} vs {r['baseline']}" for r in results]
    figure, axes = plt.subplots(figsize=(10, 0.55 * len(results) + 1.5))
    axes.barh(labels, [r["ratio"] for r in results], color="#3b7dd8")
    axes.set_xscale("log")
    axes.axvline(1, color="grey", linewidth=0.8)
    axes.set_xlabel("speed-up (baseline time / optimized time, log scale)")
    axes.invert_yaxis()
    for y, r in enumerate(results):
        axes.text(r["ratio"], y, f" {r['ratio']:.1f}x", va="center", fontsize=8)
    figure.tight_layout()
    figure.savefig(OUT / "ratios.png", dpi=120)


def main() -> int:
    performance = [lesson for lesson in lessons() if lesson.topic == "performance"]
    results = []
    for lesson in performance:
        print(f"== {lesson.relative}", flush=True)
        console.quiet(True)
        try:
            results += [c.as_dict() for c in collect(lesson.relative.removesuffix(".py").replace("/", "."))]
        finally:
            console.quiet(False)
    OUT.mkdir(exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2))
    console.table(
        ["comparison", "baseline", "optimized", "baseline", "optimized", "speed-up"],
        [
            (r["name"], r["baseline"], r["optimized"], console.seconds(r["baseline_s"]),
             console.seconds(r["optimized_s"]), f"{r['ratio']:.1f}x")
            for r in results
        ],
    )  # fmt: skip
    if results:
        draw(results)
    losers = [r for r in results if r["ratio"] <= 1]
    print(f"\n{len(results)} comparisons; wrote {OUT / 'results.json'} and {OUT / 'ratios.png'}")
    for r in losers:
        print(
            f"NOT FASTER: {r['name']}: {r['optimized']} vs {r['baseline']} ({r['ratio']:.2f}x)",
            file=sys.stderr,
        )
    return 1 if losers else 0


if __name__ == "__main__":
    raise SystemExit(main())
