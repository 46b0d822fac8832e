"""The single-page app from `web/dist` (settings.ui_dir), with `index.html` for client-side routes.

Hashed files under `/assets/` are cached for a year (`immutable`); everything else, `index.html`
above all, is revalidated on each load (`no-cache`), so a rebuild shows up at once. Any path under
`/api` that no route matched is a JSON 404, never the app. Without a build, `/` explains how to make
one instead of answering a bare 404.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from litestar import Response, get
from litestar.datastructures import State
from litestar.response import File

from taskhub.api.hub import hub_of
from taskhub.api.logs import contained
from taskhub.errors import NotFound

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
HTML = "text/html"  # Litestar appends "; charset=utf-8" to text/* types itself

NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>TaskHub: UI not built</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; line-height: 1.5">
<h1>TaskHub is running, but its web UI has not been built</h1>
<p>Build it once (Node.js 18+ needed), then reload this page:</p>
<pre style="background:#f4f4f4; padding:1rem">cd web &amp;&amp; npm ci &amp;&amp; npm run build</pre>
<p>The API answers meanwhile: <a href="/api/health">/api/health</a>,
the OpenAPI document at <a href="/schema/openapi.json">/schema/openapi.json</a>.
The command line works too: <code>taskhub --help</code>.</p>
</body></html>
"""


def _static_file(dist: Path, rel: str) -> Path | None:
    parts = PurePosixPath(rel).parts
    if not rel or any(p in ("..", ".") for p in parts) or "\0" in rel:
        return None
    path = dist.joinpath(*parts)
    return path if contained(dist, path) and path.is_file() else None


@get(["/", "/{path:path}"], operation_id="serveApp", include_in_schema=False, sync_to_thread=False)
def serve_app(state: State, path: str = "/") -> Response[bytes] | File:
    if path == "/api" or path.startswith("/api/"):
        raise NotFound(f"no API route {path}")
    dist = hub_of(state).settings.ui_dir
    index = dist / "index.html"
    if not index.is_file():
        return Response(NOT_BUILT.encode(), media_type=HTML, headers={"Cache-Control": "no-store"})
    rel = path.lstrip("/")
    found = _static_file(dist, rel) if rel else None
    if found is not None and found != index:
        cache = IMMUTABLE if rel.startswith("assets/") else REVALIDATE
        return File(
            path=found,
            filename=found.name,
            content_disposition_type="inline",
            headers={"Cache-Control": cache},
        )
    if rel.startswith("assets/"):
        raise NotFound(f"no asset {rel}")
    return Response(index.read_bytes(), media_type=HTML, headers={"Cache-Control": REVALIDATE})


ROUTES = [serve_app]
