"""`orderflow dead-letters list|show|replay|discard`: dead letters from the command line.

    orderflow dead-letters list [--consumer email] [--error 550] [--since 2h] [--until ...]
    orderflow dead-letters show 12                      (or the task id <event_id>:<consumer>)
    orderflow dead-letters replay 12 --reason "SMTP fixed"
    orderflow dead-letters replay --consumer email --since 2h --rate 5 --reason "SMTP fixed"
    orderflow dead-letters discard 12 --reason "customer cancelled"
    orderflow dead-letters groups [--consumer email]     by consumer and error, with counts
    orderflow dead-letters replay-group 3f2a9c0d11b7@812 --reason "SMTP fixed"   (exactly those listed)
    orderflow dead-letters discard-group 3f2a9c0d11b7@812 --reason "addresses do not exist"

Who did it is `--by` (default: $USER); replay and discard are kept in the audit trail.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from bootstrap import Services
from config.settings import ORDERS, SHIPPING, mask_url, operator_name
from orders.errors import InvalidArgument
from outbox import dead_letter_actions as actions
from outbox import dead_letter_groups as groups
from outbox import dead_letters
from outbox.db import SessionFactory
from outbox.subscriptions import registry

ERROR_WIDTH = 70
SERVICES = (ORDERS, SHIPPING)


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("dead-letters", help="list, show, replay or discard dead letters")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = sub.add_parser("list", help="dead letters, newest first (a table)")
    _add_filters(listing)
    listing.add_argument("--state", choices=dead_letters.LISTABLE_STATES, default="dead")
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")

    show = sub.add_parser("show", help="one delivery: payload, every attempt's error, traceback, audit")
    show.add_argument("id", help="delivery id, or task id <event_id>:<consumer>")
    show.add_argument("--json", action="store_true")
    _add_service(show)

    replay = sub.add_parser("replay", help="publish again to its consumer's queue only")
    replay.add_argument("id", nargs="?", help="one delivery (id or task id)")
    _add_filters(replay)
    replay.add_argument("--rate", type=float, default=5.0, help="bulk: replays per second (default 5)")
    _add_audit(replay, reason_required=False)
    _add_service(replay)

    discard = sub.add_parser("discard", help="set a dead letter aside for good")
    discard.add_argument("id", help="delivery id, or task id <event_id>:<consumer>")
    _add_audit(discard, reason_required=True)
    _add_service(discard)

    groups = sub.add_parser("groups", help="dead letters grouped by consumer and error, with counts")
    groups.add_argument("--consumer", help="only this consumer")
    groups.add_argument("--json", action="store_true", help="JSON (with the delivery ids), not a table")
    replay_group = sub.add_parser("replay-group", help="replay one group as listed (throttled)")
    replay_group.add_argument("group", help="the GROUP column of `dead-letters groups`: <key>@<number>")
    replay_group.add_argument("--rate", type=float, default=5.0, help="replays per second (default 5)")
    _add_audit(replay_group, reason_required=False)
    discard_group = sub.add_parser("discard-group", help="discard the letters of one group as listed")
    discard_group.add_argument("group", help="the GROUP column of `dead-letters groups`")
    _add_audit(discard_group, reason_required=True)


def run(args: argparse.Namespace, services: Services) -> None:
    if args.action == "replay":
        _replay(args, services)
        return
    if args.action in ("groups", "replay-group", "discard-group"):
        _groups(args, services)
        return
    {"list": _list, "show": _show, "discard": _discard}[args.action](args, services)


def _list(args: argparse.Namespace, services: Services) -> None:
    filters = dead_letters.make_filters(consumer=args.consumer, error=args.error, since=args.since,
                                        until=args.until, state=args.state, limit=args.limit)
    rows = dead_letters.list_dead_letters_everywhere(services.databases, filters)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        print(f"no {filters.state} deliveries match")
        return
    print(table(["ID", "SERVICE", "CONSUMER", "ATTEMPTS", "DIED (UTC)", "TASK ID", "LAST ERROR"],
                [[r["id"], r["service"], r["consumer"], r["attempts"], r["updated_at"], r["task_id"],
                  _clip(r["last_error"])] for r in rows]))
    print(f"{len(rows)} {filters.state} deliver{'y' if len(rows) == 1 else 'ies'}")


def _show(args: argparse.Namespace, services: Services) -> None:
    database, elsewhere = _database_of(args, services)
    letter = dead_letters.show_dead_letter(database, args.id, event_sources=elsewhere)
    if args.json:
        print(json.dumps(letter, indent=2))
        return
    for key in ("id", "service", "task_id", "flower_task_id", "consumer", "state", "attempts", "order_id",
                "event_type", "updated_at", "trace_id"):
        print(f"{key + ':':<16}{letter[key]}")
    print("payload:")
    print(json.dumps(letter["payload"], indent=2))
    print("attempts:")
    print(table(["ATTEMPT", "AT (UTC)", "OUTCOME", "ERROR"],
                [[e["attempt"], e["at"], e["outcome"], e["error"]] for e in letter["errors"]])
          if letter["errors"] else "  (no failed attempt recorded)")
    print("traceback:")
    print(letter["traceback"] or "  (none)")
    print("audit trail:")
    print(table(["AT (UTC)", "ACTION", "BY", "ATTEMPTS BEFORE", "REASON"],
                [[a["at"], a["action"], a["actor"], a["attempts_before"], a["reason"]]
                 for a in letter["actions"]]) if letter["actions"] else "  (no action yet)")


def _replay(args: argparse.Namespace, services: Services) -> None:
    session_factory, elsewhere = _database_of(args, services)

    bulk = args.consumer is not None
    if bool(args.id) == bulk:
        raise InvalidArgument("replay takes either one delivery id or --consumer (bulk), not both")
    if not bulk and (args.since or args.until or args.error):
        raise InvalidArgument("--since/--until/--error select a bulk replay: add --consumer")
    publish = services.replay_publish
    if not bulk:
        done = actions.replay_dead_letter(session_factory, ref=args.id, actor=args.by,
                                          reason=args.reason, publish=publish, event_sources=elsewhere)
        print(f"replayed delivery {done.delivery_id}: task {done.task_id} sent to queue {done.consumer} "
              f"on {_broker()}")
        return
    filters = dead_letters.make_filters(consumer=args.consumer, error=args.error, since=args.since,
                                        until=args.until, limit=args.limit)
    result = actions.replay_dead_letters(
        session_factory, filters=filters, actor=args.by, reason=args.reason, publish=publish,
        per_second=args.rate, event_sources=elsewhere,
        progress=lambda done: print(f"replayed delivery {done.delivery_id}: task {done.task_id}"),
    )
    for delivery_id, why in result.refused:
        print(f"skipped delivery {delivery_id}: {why}")
    print(f"{len(result.replayed)} replayed, {len(result.refused)} skipped (broker {_broker()})")


def _discard(args: argparse.Namespace, services: Services) -> None:
    session_factory, _elsewhere = _database_of(args, services)
    done = actions.discard_dead_letter(session_factory, ref=args.id, actor=args.by, reason=args.reason)
    print(f"discarded delivery {done['id']} ({done['task_id']})")


def _groups(args: argparse.Namespace, services: Services) -> None:
    databases = services.databases
    if args.action in ("replay-group", "discard-group"):
        session_factory = groups.database_of_group(databases, args.group)
    if args.action == "replay-group":
        result = groups.replay_group(session_factory, group=args.group, actor=args.by, reason=args.reason,
                                     publish=services.replay_publish, per_second=args.rate,
                                     event_sources=databases.others(session_factory))
        for delivery_id, why in result.refused:
            print(f"skipped delivery {delivery_id}: {why}")
        print(f"group {args.group}: {len(result.replayed)} replayed, {len(result.refused)} skipped")
        return
    if args.action == "discard-group":
        done = groups.discard_group(session_factory, group=args.group, actor=args.by, reason=args.reason)
        print(f"group {args.group}: {len(done)} discarded")
        return
    if args.consumer:
        dead_letters.make_filters(consumer=args.consumer)  # an unknown consumer: one line
    found = groups.list_groups_everywhere(databases, consumer=args.consumer)
    if args.json:
        print(json.dumps([g.as_dict() for g in found], indent=2))
        return
    if not found:
        print("no dead letters")
        return
    print(table(["GROUP", "SERVICE", "CONSUMER", "COUNT", "FIRST SEEN (UTC)", "LAST SEEN (UTC)", "ERROR"],
                [[g.name, registry.service_of(g.consumer), g.consumer, len(g.ids), d["first_seen"],
                  d["last_seen"], _clip(g.error)]
                 for g in found for d in [g.as_dict()]]))


def _database_of(args: argparse.Namespace, services: Services) -> tuple[SessionFactory, list[SessionFactory]]:
    """The database of the letter named (outbox/databases.py: `--service`, the consumer of
    `--consumer` or of the task id, else where a dead letter of that number is), and the
    others, where its event is when another service wrote it."""
    databases = services.databases
    service = getattr(args, "service", None)
    if getattr(args, "consumer", None):
        database = databases.of_consumer(args.consumer, service)
    else:
        database = databases.of_letter(args.id, service)
    return database, databases.others(database)


def _broker() -> str:
    from tasks import app  # the app whose broker the replay went to

    return mask_url(str(app.conf.broker_url))


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [headers, *[["" if v is None else str(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
                     for row in cells)


def _clip(text: str | None) -> str:
    line = (text or "").splitlines()[0] if text else ""
    return line if len(line) <= ERROR_WIDTH else line[: ERROR_WIDTH - 1] + "…"


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--consumer", help="only this consumer (email, inventory, analytics)")
    parser.add_argument("--error", help="only those whose last error contains this text")
    parser.add_argument("--since", help="died at or after: 30m, 2h, 7d or an ISO time (UTC)")
    parser.add_argument("--until", help="died before: same forms as --since")
    parser.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")


def _add_service(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--service", choices=SERVICES, help="whose database the delivery id is in (needed "
                        "only when both have a dead letter of that number); a task id says it by itself")


def _add_audit(parser: argparse.ArgumentParser, *, reason_required: bool) -> None:
    parser.add_argument("--by", default=operator_name(), help="who does this (default: $USER)")
    parser.add_argument("--reason", required=reason_required, default="" if reason_required else
                        "manual replay", help="why (kept in the audit trail)")
