"""`make bench-ab AGAINST=<commit>`: this tree's pipeline against an earlier commit's, interleaved.

The pipeline ratio (section 2) moves with the machine's load: orderflow runs
more processes than bare Celery (relay, PostgreSQL, Flower, three workers, the
producer), so on a shared 2-core machine it loses more to other work. When the
ratio drops, this answers the question that matters: did the code get slower,
or the machine busier? Each repetition runs, back to back, bare Celery, the
pipeline at `AGAINST` (a temporary git worktree) and the pipeline here; the
same harness (`bench/pipeline.py` of each tree) counts every effect exactly
once. The verdict is the median of per-repetition ratios here / there.

Results: docs/bench/ab.json, shown by bench/report.py in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.stats import ratio_summary

REPO_ROOT = Path(__file__).resolve().parent.parent
ONE_RUN = Path(__file__).with_name("ab_one_run.py")
# Within this of 1.0 the two trees are the same speed on this machine (runs move by tens of percent).
NOISE = 0.15


def one_run(tree: Path, variant: str, n_orders: int, extra_env: dict[str, str] | None = None) -> dict:
    """One run in a subprocess whose imports (bench, orders, tasks ...) come from `tree`."""
    env = {**os.environ, **(extra_env or {}), "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, str(ONE_RUN), variant, str(n_orders)], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=900)
    found = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not found:
        raise SystemExit(f"bench-ab: {variant} run in {tree} failed:\n{done.stderr[-3000:]}")
    return json.loads(found[-1].removeprefix("RESULT "))


def measure(against: str, *, repeat: int, n_orders: int) -> dict:
    commit = subprocess.run(["git", "rev-parse", "--short", against], cwd=REPO_ROOT, check=True,
                            capture_output=True, text=True).stdout.strip()
    here = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, check=True,
                          capture_output=True, text=True).stdout.strip()
    started, t0, load_start = dt.datetime.now(dt.UTC), time.monotonic(), os.getloadavg()[0]
    runs: dict[str, list[dict]] = {"bare": [], "there": [], "here": []}
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as tmp:
        old_tree = Path(tmp) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", str(old_tree), commit], cwd=REPO_ROOT,
                       check=True, capture_output=True)
        try:
            for rep in range(1, repeat + 1):
                for name, tree, variant in (("bare", REPO_ROOT, "bare"), ("there", old_tree, "orderflow"),
                                            ("here", REPO_ROOT, "orderflow")):
                    runs[name].append(one_run(tree, variant, n_orders))
                    print(f"bench-ab: rep {rep} {name}: {runs[name][-1]['executions_per_s']:.0f} "
                          f"deliveries/s (load {os.getloadavg()[0]:.1f})", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old_tree)], cwd=REPO_ROOT,
                           capture_output=True)
    return {"meta": {"command": os.environ.get("BENCH_COMMAND") or f"python -m bench.ab --against {against}",
                     "started": started.strftime("%Y-%m-%d %H:%M UTC"),
                     "minutes": round((time.monotonic() - t0) / 60, 1), "against": commit, "here": here,
                     "load_start": round(load_start, 1), "load_end": round(os.getloadavg()[0], 1),
                     "orders": n_orders},
            "runs": runs}


def section(res: dict) -> list[str]:
    """BENCHMARKS.md: this tree against an earlier commit (bench/report.py adds it when ab.json exists)."""
    meta, runs = res["meta"], res["runs"]

    def values(name: str, key: str) -> list[float]:
        return [r[key] for r in runs[name]]

    def cell(xs: list[float], digits: int = 0) -> str:
        s = sorted(xs)
        return f"{s[len(s) // 2]:,.{digits}f} ({s[0]:,.{digits}f}–{s[-1]:,.{digits}f})"

    speed = ratio_summary(values("here", "executions_per_s"), values("there", "executions_per_s"))
    rows = []
    for name, label in (("bare", "bare Celery (defaults)"), ("there", f"orderflow at {meta['against']}"),
                        ("here", f"orderflow at {meta['here']} (this tree)")):
        per_bare = ratio_summary(values(name, "executions_per_s"), values("bare", "executions_per_s"))
        batch = ("–" if name == "bare" else cell(values(name, "deliveries_per_message"), 1))
        rows.append(f"| {label} | {cell(values(name, 'executions_per_s'))} | "
                    f"{cell(values(name, 'cpu_ms_per_execution'), 2)} | {batch} | "
                    f"{per_bare['median']:.2f} ({per_bare['min']:.2f}–{per_bare['max']:.2f}) |")
    same = abs(speed["median"] - 1.0) <= NOISE
    verdict = ("the same speed within the noise" if same else
               "faster" if speed["median"] > 1 else "**slower: a regression to find**")
    return [
        "", "## The delivery hot path against an earlier commit (`make bench-ab`)", "",
        f"Command: `{meta['command']}` — started {meta['started']}, took {meta['minutes']} min; load average "
        f"{meta['load_start']} at start, {meta['load_end']} at end. {len(runs['here'])} repetitions of "
        f"{meta['orders']:,} orders, each running bare Celery, then the pipeline of commit "
        f"`{meta['against']}` (a git worktree: its own code and harness), "
        "then this tree's, back to back (`bench/ab.py`).", "",
        "| variant | deliveries/s | worker CPU ms / delivery | deliveries / message | / bare Celery |",
        "|---|---|---|---|---|",
        *rows, "",
        f"This tree / `{meta['against']}`: **{speed['median']:.2f}** "
        f"({speed['min']:.2f}–{speed['max']:.2f}), {verdict} (within ±{NOISE:.2f} counts as the same).",
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--against", required=True, help="the earlier commit (any git revision)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--orders", type=int, default=2000)
    p.add_argument("--charts", default=str(REPO_ROOT / "docs" / "bench"))
    p.add_argument("--out", default=str(REPO_ROOT / "BENCHMARKS.md"))
    args = p.parse_args(argv)
    result = measure(args.against, repeat=args.repeat, n_orders=args.orders)
    charts = Path(args.charts)
    (charts / "ab.json").write_text(json.dumps(result, indent=2))
    print("\n".join(section(result)))
    saved = charts / "results.json"
    if saved.exists():  # rewrite BENCHMARKS.md with the new section in place
        from bench import report

        whole = json.loads(saved.read_text())
        report.write(whole["meta"], whole["results"], out=Path(args.out), charts=charts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
