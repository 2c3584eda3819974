"""Tracing's cost: pipeline throughput with tracing on, off, and with no tracing code at all.

Each repetition runs three pipelines (bench/pipeline.py through bench/ab_one_run.py, each in
a subprocess with its own Redis, PostgreSQL database and SMTP sink, every effect counted
exactly once), in an order that rotates from one repetition to the next, all three from
temporary git worktrees of HEAD (commit first what you measure):

- **tracing on**: the workers, the relay and the producer (`place_order` inside the
  `POST /orders` span, as web/routes.py opens it) export over OTLP/HTTP to a receiver in
  this process (devtools/otlp_receiver.py, counting the spans, not decoding them: a real
  collector runs elsewhere);
- **tracing off**: the same code with OTEL_EXPORTER_OTLP_ENDPOINT unset, the default;
- **no tracing code**: bench/no_tracing.patch applied to its worktree, which removes every
  tracing call and header from the hot path (place_order, the publisher, the delivery task,
  the runtime). When the patch no longer applies, the bench says so: regenerate it by
  deleting those calls again.

Targets (docs/operations.md "Tracing"): on / off ≥ 0.9; off / no tracing code within noise.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.ab import one_run
from bench.common import REPO_ROOT, wait_for
from devtools.otlp_receiver import OtlpReceiver

PATCH = Path(__file__).with_name("no_tracing.patch")
ON, OFF, NONE = "tracing on (OTLP/HTTP)", "tracing off", "no tracing code"
SPANS_PER_ORDER = 5  # the request, the publish, one attempt per consumer


@contextmanager
def tree_at_head(*, without_tracing: bool) -> Iterator[Path]:
    """HEAD in a temporary git worktree, with bench/no_tracing.patch applied or not. Every variant
    runs from such a tree: an A/A check ran a fresh worktree 0.76-1.04x as fast as this checkout
    (median 0.86), so comparing a worktree with this checkout would measure the worktree."""
    with tempfile.TemporaryDirectory(prefix="bench-tracing-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), "HEAD"], cwd=REPO_ROOT, check=True,
                       capture_output=True)
        try:
            applied = (subprocess.run(["git", "apply", str(PATCH)], cwd=tree, capture_output=True, text=True)
                       if without_tracing else None)
            if applied is not None and applied.returncode:
                raise SystemExit(f"bench: {PATCH.name} no longer applies to HEAD ({applied.stderr.strip()}); "
                                 "remove the tracing calls again in a worktree and save `git diff` there")
            yield tree
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO_ROOT,
                           capture_output=True)


def run(*, n_orders: int = 1000, repeat: int = 3) -> dict:
    runs: dict[str, list[dict]] = {ON: [], OFF: [], NONE: []}
    expected = n_orders * SPANS_PER_ORDER * repeat
    with OtlpReceiver(keep=False) as receiver, tree_at_head(without_tracing=False) as head, \
            tree_at_head(without_tracing=True) as bare_tree:
        trees = {ON: (head, "traced"), OFF: (head, "orderflow"), NONE: (bare_tree, "orderflow")}
        names = list(trees)
        for rep in range(1, repeat + 1):
            shift = (rep - 1) % len(names)
            for name in names[shift:] + names[:shift]:  # a drift in load favours no variant
                tree, variant = trees[name]
                r = one_run(tree, variant, n_orders, {"BENCH_OTLP_ENDPOINT": receiver.url})
                runs[name].append(r)
                print(f"[tracing {rep}/{repeat}] {name}: {r['executions_per_s']:,.0f} deliveries/s "
                      f"({receiver.received:,} spans received so far)", file=sys.stderr, flush=True)
        # The last traced run's processes are gone: what they exported has arrived, or never will.
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: receiver.received >= expected, 5, "the last spans")
        received = receiver.received
    return {"runs": runs, "orders": n_orders, "spans_expected": expected, "spans_received": received}
