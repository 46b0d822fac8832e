"""A run's artifacts: list and download files inside `data/runs/<run_id>/artifacts/` only.

A name from a request never escapes that folder: absolute names, `..` parts (also when
percent-encoded, since the router decodes them first), NUL bytes and symlinks resolving elsewhere
all answer 404; containment is checked on the real path.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from litestar import get
from litestar.datastructures import State
from litestar.response import File

from taskhub.api.error_docs import errors
from taskhub.api.hub import hub_of
from taskhub.api.logs import contained
from taskhub.api.models import ArtifactList, ArtifactOut
from taskhub.api.runs import find_run
from taskhub.errors import NotFound
from taskhub.events.clock import iso

MAX_LISTED = 10_000


def artifacts_dir(run_dir: Path) -> Path:
    return run_dir / "artifacts"


def resolve_artifact(base: Path, name: str) -> Path:
    """The file `name` names inside `base`, or NotFound."""
    missing = NotFound(f"no artifact {name!r}")
    if not name or "\0" in name or "\\" in name:
        raise missing
    rel = PurePosixPath(name)
    if rel.is_absolute() or any(part in ("..", ".") for part in rel.parts):
        raise missing
    path = base.joinpath(*rel.parts)
    if not contained(base, path) or not path.is_file():
        raise missing
    return path


def list_files(base: Path, descriptions: dict[str, str | None]) -> list[ArtifactOut]:
    out: list[ArtifactOut] = []
    if not base.is_dir() or not contained(base.parent, base):
        return out
    for root, dirs, files in os.walk(base):  # does not descend into symlinked folders
        dirs.sort()
        for filename in sorted(files):
            path = Path(root, filename)
            if not contained(base, path) or not path.is_file():
                continue
            name = path.relative_to(base).as_posix()
            st = path.stat()
            modified = iso(st.st_mtime)
            out.append(ArtifactOut(name=name, size=st.st_size, modified=modified, description=descriptions.get(name)))
            if len(out) >= MAX_LISTED:
                return out
    return out


@get(
    "/api/runs/{run_id:str}/artifacts",
    operation_id="listRunArtifacts",
    responses=errors(404),
    summary="The files a run left as artifacts",
)
async def list_artifacts(state: State, run_id: str) -> ArtifactList:
    hub = hub_of(state)
    view = await find_run(hub, run_id)
    descriptions = {a.name: a.description for a in view.artifacts}
    return ArtifactList(items=list_files(artifacts_dir(hub.settings.run_dir(run_id)), descriptions))


@get(
    "/api/runs/{run_id:str}/artifacts/{name:path}",
    operation_id="getRunArtifact",
    responses=errors(404),
    summary="Download one artifact (names may contain `/` for files in subfolders)",
    media_type="application/octet-stream",
)
async def get_artifact(state: State, run_id: str, name: str) -> File:
    hub = hub_of(state)
    await find_run(hub, run_id)
    path = resolve_artifact(artifacts_dir(hub.settings.run_dir(run_id)), name.removeprefix("/"))
    return File(path=path, filename=path.name, content_disposition_type="attachment")


ROUTES = [list_artifacts, get_artifact]
