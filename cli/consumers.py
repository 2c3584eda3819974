"""`orderflow consumers list|pause|resume`: hold a consumer's deliveries, and let them go again.

    orderflow consumers list                          status, breaker, held deliveries, last actions
    orderflow consumers pause email --reason "provider maintenance until 14:00"
    orderflow consumers resume email [--reason "..."]

Who did it is `--by` (default: $USER); pause and resume are kept in the audit trail.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from bootstrap import Services
from cli.dead_letters import table
from config.settings import operator_name
from outbox import consumer_control


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("consumers", help="list, pause or resume consumers")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = sub.add_parser("list", help="each consumer: running, paused or breaker open; held count")
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    pause = sub.add_parser("pause", help="hold the consumer's deliveries (no attempt spent)")
    pause.add_argument("name", help="the consumer (email, inventory, analytics)")
    pause.add_argument("--reason", required=True, help="why (kept in the audit trail)")
    pause.add_argument("--by", default=operator_name(), help="who does this (default: $USER)")
    resume = sub.add_parser("resume", help="let its held deliveries flow again (at its rate limit)")
    resume.add_argument("name")
    resume.add_argument("--reason", default="", help="why (kept in the audit trail)")
    resume.add_argument("--by", default=operator_name(), help="who does this (default: $USER)")


def run(args: argparse.Namespace, services: Services) -> None:
    if args.action == "pause":
        view = consumer_control.pause(services.databases.of_consumer(args.name), args.name, actor=args.by,
                                      reason=args.reason)
        print(f"paused {view.consumer} (by {view.paused_by}): its deliveries are held until resumed")
        return
    if args.action == "resume":
        view = consumer_control.resume(services.databases.of_consumer(args.name), args.name, actor=args.by,
                                       reason=args.reason)
        print(f"resumed {view.consumer}: now {view.status}")
        return
    # Each consumer as its own service's database has it (its workers read its state there).
    rows = consumer_control.list_consumers_everywhere(services.databases)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(table(["CONSUMER", "STATUS", "HELD", "BREAKER", "SINCE (UTC)", "BY", "REASON"],
                [[r["consumer"], r["status"], r["held"], _breaker(r["breaker"]),
                  r["paused_at"] or r["breaker"]["opened_at"] or "", r["paused_by"] or "",
                  r["paused_reason"] or ""] for r in rows]))


def _breaker(breaker: dict[str, Any]) -> str:
    if breaker["state"] == "closed":
        failures = breaker["failures_in_a_row"]
        return f"closed ({failures} failure(s) in a row)" if failures else "closed"
    return f"{breaker['state']}, next probe {breaker['next_probe_at'] or 'now'}"
