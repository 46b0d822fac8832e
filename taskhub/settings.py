"""One settings object, built from the TASKHUB_* environment in one place."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from taskhub.errors import ConfigError

LEASE_S = 30.0
HEARTBEAT_S = 10.0
HOST = "127.0.0.1"
PORT = 8000
LOG_CAP_BYTES = 1 << 30  # per stream, per run
MAX_BODY_BYTES = 1 << 20
MAX_STREAMS = 256
DRAIN_S = 30.0
KILL_GRACE_S = 5.0
READY_PER_SLOT = 1  # claimed runs a busy worker keeps ready per slot while its runs end quickly
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
SOURCE_DIR = Path(__file__).resolve().parent.parent  # the checkout TaskHub runs from


@dataclass(frozen=True)
class Settings:
    home: Path
    db_path: Path
    host: str = HOST
    port: int = PORT
    lease_s: float = LEASE_S
    heartbeat_s: float = HEARTBEAT_S
    token: str | None = None
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS
    synchronous: str = "FULL"
    log_cap_bytes: int = LOG_CAP_BYTES
    max_body_bytes: int = MAX_BODY_BYTES
    max_streams: int = MAX_STREAMS
    drain_s: float = DRAIN_S
    kill_grace_s: float = KILL_GRACE_S
    ready_per_slot: int = READY_PER_SLOT
    access_log: bool = False  # uvicorn's line per request: ~40 us of the API's CPU each, so off by default
    web_dist: Path | None = None  # the built UI; default: web/dist under the home, else beside the code
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def ui_dir(self) -> Path:
        if self.web_dist is not None:
            return self.web_dist
        in_home = self.home / "web" / "dist"
        return in_home if in_home.is_dir() else SOURCE_DIR / "web" / "dist"

    @property
    def tasks_dir(self) -> Path:
        return self.home / "tasks"

    @cached_property  # asked for on every run's start
    def runs_dir(self) -> Path:
        return self.home / "data" / "runs"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id


def _number(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value):  # float() takes "nan" and "inf": a lease that never ends, say
        raise ConfigError(f"{name} must be a finite number, got {raw!r}")
    if value <= minimum:
        raise ConfigError(f"{name} must be greater than {minimum:g}, got {raw!r}")
    return value


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    value = _number(env, name, default, minimum=-1)
    if not float(value).is_integer():
        raise ConfigError(f"{name} must be a whole number, got {env.get(name)!r}")
    return int(value)


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1 or 0 (true/false, yes/no, on/off), got {env.get(name)!r}")


def load_settings(env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build Settings from TASKHUB_* variables; errors name the variable."""
    env = os.environ if env is None else env
    home = Path(env.get("TASKHUB_HOME") or os.getcwd()).resolve()
    db_path = Path(env.get("TASKHUB_DB") or home / "data" / "taskhub.db").absolute()
    lease_s = _number(env, "TASKHUB_LEASE_S", LEASE_S)
    heartbeat_s = _number(env, "TASKHUB_HEARTBEAT_S", min(HEARTBEAT_S, lease_s / 3))
    if heartbeat_s * 2 >= lease_s:
        raise ConfigError(
            f"TASKHUB_HEARTBEAT_S ({heartbeat_s:g}) must be less than half of TASKHUB_LEASE_S ({lease_s:g})"
        )
    port = _count(env, "TASKHUB_PORT", PORT)
    if not 0 < port < 65536:
        raise ConfigError(f"TASKHUB_PORT must be a TCP port (1-65535), got {env.get('TASKHUB_PORT')!r}")
    allowed = tuple(h.strip() for h in (env.get("TASKHUB_ALLOWED_HOSTS") or "").split(",") if h.strip())
    synchronous = (env.get("TASKHUB_SYNCHRONOUS") or "FULL").upper()
    if synchronous not in ("FULL", "NORMAL", "EXTRA"):
        raise ConfigError(f"TASKHUB_SYNCHRONOUS must be FULL, NORMAL or EXTRA, got {synchronous!r}")
    values: dict[str, object] = dict(
        home=home,
        db_path=db_path,
        host=env.get("TASKHUB_HOST") or HOST,
        port=port,
        lease_s=lease_s,
        heartbeat_s=heartbeat_s,
        token=env.get("TASKHUB_TOKEN") or None,
        allowed_hosts=LOOPBACK_HOSTS + allowed,
        synchronous=synchronous,
        log_cap_bytes=int(_number(env, "TASKHUB_LOG_CAP_BYTES", LOG_CAP_BYTES)),
        max_body_bytes=int(_number(env, "TASKHUB_MAX_BODY_BYTES", MAX_BODY_BYTES)),
        max_streams=int(_number(env, "TASKHUB_MAX_STREAMS", MAX_STREAMS)),
        drain_s=_number(env, "TASKHUB_DRAIN_S", DRAIN_S, minimum=-1),
        kill_grace_s=_number(env, "TASKHUB_KILL_GRACE_S", KILL_GRACE_S),
        ready_per_slot=_count(env, "TASKHUB_READY_PER_SLOT", READY_PER_SLOT),
        access_log=_flag(env, "TASKHUB_ACCESS_LOG", False),
        web_dist=Path(env["TASKHUB_WEB_DIST"]).resolve() if env.get("TASKHUB_WEB_DIST") else None,
    )
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]
