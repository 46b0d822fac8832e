"""What every request handler needs, opened once per process in the app's lifespan."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from litestar.datastructures import State

from taskhub.api.sse import Killer
from taskhub.api.views import LiveWorkers
from taskhub.errors import TaskHubError
from taskhub.events.clock import Clock
from taskhub.events.log import Log
from taskhub.runtime.registry_loader import Registry
from taskhub.runtime.registry_watch import RegistryWatcher
from taskhub.settings import Settings

if TYPE_CHECKING:  # only a type here; handlers never annotate with it
    from taskhub.api.broadcast import Broadcaster

# SSE comment interval. SPEC: a comment at least every 15 s; a ping due at exactly 15 s reached the
# client a little after (15.001 s), so leave a margin for a busy loop.
KEEPALIVE_S = 10.0
CLIENT_QUEUE = 2048  # events buffered per SSE client before a slow one is dropped
LOG_POLL_S = 0.15  # how often a live log stream looks at the file's size


class TooManyStreams(TaskHubError):
    """Too many live streams are open on this server; retry later."""

    status_code = 503


@dataclass
class StreamSlots:
    """The open SSE streams (events and logs), capped at `settings.max_streams`. `on_first_stream` is
    called once, as the first stream ever opens (before it reads anything)."""

    limit: int
    on_first_stream: Callable[[], None] | None = None
    streams: set[Killer] = field(default_factory=set)

    @property
    def open(self) -> int:
        return len(self.streams)

    def acquire(self) -> Killer:
        """A Killer for a new stream; closing it frees the slot. TooManyStreams (503) past the cap."""
        if len(self.streams) >= self.limit:
            raise TooManyStreams(
                f"too many live streams ({self.open} open, limit {self.limit}, TASKHUB_MAX_STREAMS); retry later"
            )
        if self.on_first_stream is not None:
            first, self.on_first_stream = self.on_first_stream, None
            first()
        killer = Killer()
        killer.set_on_close(lambda: self.streams.discard(killer))
        self.streams.add(killer)
        return killer

    def stop_all(self) -> None:
        """Ask every stream to end cleanly (server shutdown)."""
        for killer in list(self.streams):
            killer.stop()


@dataclass
class Hub:
    settings: Settings
    clock: Clock
    log: Log
    watcher: RegistryWatcher
    broadcaster: Broadcaster
    slots: StreamSlots
    live: LiveWorkers = field(default_factory=LiveWorkers)
    sqlite_version: str = ""
    containment: str = "unknown"
    keepalive_s: float = KEEPALIVE_S
    log_poll_s: float = LOG_POLL_S
    schemas: dict[tuple[str, str], dict[str, object]] = field(default_factory=dict)

    @property
    def registry(self) -> Registry:
        return self.watcher.current


def hub_of(state: State) -> Hub:
    return cast(Hub, state["hub"])


def extra_float(settings: Settings, key: str, default: float) -> float:
    """A tuning knob from `settings.extra` (tests shorten keepalives this way)."""
    raw = settings.extra.get(key)
    return default if raw in (None, "") else float(raw)
