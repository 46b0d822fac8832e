"""`taskhub api`: serve create_app(settings) with uvicorn (uvloop + httptools in this process).

A bind address other than loopback is refused unless TASKHUB_TOKEN is set (exit code 2), and so is
an address that cannot be bound (a busy port), with a line that says what to do. The address bound
is added to the Host allowlist so clients that use it are let in. uvicorn's access log
is off unless TASKHUB_ACCESS_LOG is set (a line per request costs ~40 us of CPU, a quarter of what a
durable submit costs in all); when on, it never shows a `?token=`.
"""

from __future__ import annotations

import dataclasses
import gc
import ipaddress
import logging
import re
import sys
from typing import Any

from taskhub.settings import Settings

log = logging.getLogger(__name__)

EXIT_REFUSED = 2
SHUTDOWN_GRACE_S = 3.0  # SSE streams never end on their own: cut them after this on shutdown
_TOKEN_RE = re.compile(r"([?&]token=)[^&\s]*")
# The cyclic GC's youngest generation is collected when tracked allocations outnumber frees by this
# much. At the default 700, the objects of 64 requests in flight alone cross it: ~1 collection per 50
# submits (~200 us each, with the older generations ~5 us of loop CPU per submit). Requests leave
# little cyclic garbage, so a collection per 10,000 costs little memory.
GC_GEN0_THRESHOLD = 10_000


def is_loopback(host: str) -> bool:
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class RedactToken(logging.Filter):
    """Blank `token=` query values in uvicorn's access log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(isinstance(a, str) and "token=" in a for a in args):
            record.args = tuple(_TOKEN_RE.sub(r"\1***", a) if isinstance(a, str) else a for a in args)
        return True


def _allow_bound_host(settings: Settings, host: str) -> Settings:
    wildcard = host in ("0.0.0.0", "::", "")
    if wildcard or host in settings.allowed_hosts:
        return settings
    name = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return dataclasses.replace(settings, allowed_hosts=(*settings.allowed_hosts, name))


def _configure_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("uvicorn.access").addFilter(RedactToken())


def _server_class(base: type[Any]) -> type[Any]:
    class Server(base):  # type: ignore[misc, valid-type]
        """Ends the SSE streams cleanly as soon as shutdown begins (they never end by themselves)."""

        taskhub_app: Any = None
        cannot_bind = False  # startup failed past the lifespan: the address could not be bound

        async def startup(self, sockets: Any = None) -> None:
            try:
                await super().startup(sockets)  # the app's lifespan has loaded everything it keeps
            except SystemExit:  # uvicorn's way out of a failed startup (its error is logged)
                self.cannot_bind = not self.lifespan.should_exit
                raise
            # What startup made lives as long as the process: out of the GC's sight, a full
            # collection walks only what came later (~50,000 objects took ~25 ms each time). The
            # price: a cycle among them that later turns to garbage (the first version of a task
            # module replaced by a hot reload) is never freed; a one-off of a few kB per task file.
            gc.collect()
            gc.freeze()

        async def shutdown(self, sockets: Any = None) -> None:
            try:
                hub = self.taskhub_app.state["hub"]
            except (AttributeError, KeyError):
                hub = None
            if hub is not None:
                hub.slots.stop_all()
            await super().shutdown(sockets)

    return Server


def run_api(settings: Settings, host: str | None = None, port: int | None = None, **uvicorn_options: Any) -> int:
    """Serve until SIGINT/SIGTERM; returns the process exit code."""
    import uvicorn

    from taskhub.api.app import create_app

    host = host or settings.host
    port = settings.port if port is None else port
    if not is_loopback(host) and not settings.token:
        print(
            f"taskhub api: refusing to listen on {host}: it is not a loopback address and TASKHUB_TOKEN is not set.\n"
            "Anyone who can reach this port could run commands on this machine. Either keep the default\n"
            "(--host 127.0.0.1) or set TASKHUB_TOKEN to a long random secret, e.g.\n"
            "  export TASKHUB_TOKEN=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')\n"
            "and add the name clients use to reach it to TASKHUB_ALLOWED_HOSTS.",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    _configure_logging()
    settings = _allow_bound_host(settings, host)
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": "httptools",
        "lifespan": "on",
        "log_config": None,
        "timeout_graceful_shutdown": SHUTDOWN_GRACE_S,
        "server_header": False,
        "access_log": settings.access_log,
        # Nothing here reads the client address or scheme; uvicorn's X-Forwarded-* rewriting costs a
        # wrapper per request and would let any local process pick the address the access log shows.
        "proxy_headers": False,
        "ws": "none",  # no WebSocket routes: loading a websockets implementation costs ~7 MiB of RSS
    }
    options.update(uvicorn_options)
    gc.set_threshold(GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])
    log.info("api.listen url=http://%s:%d token=%s", host, port, "set" if settings.token else "unset")
    app = create_app(settings)
    server = _server_class(uvicorn.Server)(uvicorn.Config(app, **options))
    server.taskhub_app = app
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    except SystemExit:  # uvicorn's way out of a failed startup, its error logged just before
        if server.cannot_bind:
            print(
                f"taskhub: error: cannot listen on {host}:{port} (the error above says why: usually another"
                " process has the port); choose another with --port or TASKHUB_PORT",
                file=sys.stderr,
            )
            return EXIT_REFUSED
        print("taskhub: error: the API could not start; the error above says why", file=sys.stderr)
        return 1
    return 0 if server.started else 1
