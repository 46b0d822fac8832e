"""Loading the task registry: every `tasks/*.py` not starting with `_` is imported for its `task`.

One bad file never stops the others: its error is reported beside the tasks that did load. Each file
is executed from the very bytes that were hashed, so a task's `version` always names the code that
built its command. Outcomes are cached by content hash, so reloading an unchanged directory only
reads and hashes the files. Duplicate task_ids: the first file in name order wins and every later
file defining the same id gets an error naming both.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import threading
import traceback
import types
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from taskhub.errors import UnknownTask
from taskhub.registry import TaskSpec, params_schema

log = logging.getLogger(__name__)

VERSION_HEX = 16  # digits of the sha256 kept as a task's version
MODULE_PREFIX = "_taskhub_task_"


class LoadError(msgspec.Struct, frozen=True):
    """A task file that did not load, and why (shown by the API, CLI and UI)."""

    file: str
    error: str


@dataclass(frozen=True)
class LoadedTask:
    spec: TaskSpec
    file: str  # as shown to users, e.g. "tasks/hello.py"
    path: Path
    version: str  # sha256 of the module file's bytes, first VERSION_HEX hex digits


@dataclass(frozen=True)
class Registry:
    """One consistent snapshot of the tasks directory; replaced whole on reload, never mutated."""

    tasks: dict[str, LoadedTask] = field(default_factory=dict)
    errors: list[LoadError] = field(default_factory=list)

    def get(self, task_id: str) -> LoadedTask:
        try:
            return self.tasks[task_id]
        except KeyError:
            raise UnknownTask(f"No such task: {task_id!r}") from None

    def fingerprint(self) -> tuple[object, ...]:
        """Equal for two snapshots of the same files; tells a watcher whether anything changed."""
        tasks = tuple(sorted((t.spec.task_id, t.file, t.version) for t in self.tasks.values()))
        return tasks, tuple((e.file, e.error) for e in self.errors)


# (absolute path, full sha256) -> the spec the file defines, or the error it gave.
_cache: dict[tuple[str, str], TaskSpec | str] = {}
_cache_lock = threading.Lock()


def task_files(tasks_dir: Path) -> list[Path]:
    """The files that define tasks, in the order that decides duplicate task_ids."""
    try:
        entries = sorted(tasks_dir.iterdir(), key=lambda p: p.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [p for p in entries if p.suffix == ".py" and p.name[0] not in "_." and p.is_file()]


def load_tasks(tasks_dir: Path | str, *, fresh: bool = False) -> Registry:
    """Import every task file in `tasks_dir`; `fresh` re-imports files whose bytes are unchanged."""
    tasks_dir = Path(tasks_dir).resolve()
    _make_helpers_importable(tasks_dir)
    tasks: dict[str, LoadedTask] = {}
    errors: list[LoadError] = []
    for path in task_files(tasks_dir):
        shown = _shown(path, tasks_dir)
        try:
            source = path.read_bytes()
        except OSError as exc:  # removed or unreadable since listing
            if path.exists():
                errors.append(LoadError(shown, f"{type(exc).__name__}: {exc}"))
            continue
        digest = hashlib.sha256(source).hexdigest()
        outcome = _load_file(path, source, digest, tasks_dir, fresh)
        if isinstance(outcome, str):
            errors.append(LoadError(shown, outcome))
        elif outcome.task_id in tasks:
            first = tasks[outcome.task_id].file
            errors.append(LoadError(shown, f"duplicate task_id {outcome.task_id!r}: already defined in {first}"))
        else:
            tasks[outcome.task_id] = LoadedTask(outcome, shown, path, digest[:VERSION_HEX])
    return Registry(tasks=tasks, errors=errors)


def _load_file(path: Path, source: bytes, digest: str, tasks_dir: Path, fresh: bool) -> TaskSpec | str:
    key = (str(path), digest)
    with _cache_lock:
        if not fresh and key in _cache:
            return _cache[key]
    outcome = _import(path, source, digest, tasks_dir)
    with _cache_lock:
        _cache[key] = outcome
    if isinstance(outcome, str):
        log.warning("registry.load_failed file=%s error=%s", path, outcome)
    return outcome


def _import(path: Path, source: bytes, digest: str, tasks_dir: Path) -> TaskSpec | str:
    # A unique module name per content, registered in sys.modules while it runs: dataclasses,
    # pydantic and msgspec resolve postponed annotations through it. Old versions stay registered
    # (edits are rare and small) so specs still held by in-flight runs keep resolving.
    name = f"{MODULE_PREFIX}{path.stem}_{digest[:VERSION_HEX]}"
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module
    try:
        exec(compile(source, str(path), "exec", dont_inherit=True), module.__dict__)
    except (Exception, SystemExit) as exc:  # a task file calling sys.exit() must not stop TaskHub
        del sys.modules[name]
        return _describe(exc, tasks_dir)
    task = getattr(module, "task", None)
    if task is None:
        return "no `task` defined: the module must set `task = TaskSpec(...)`"
    if not isinstance(task, TaskSpec):
        return f"`task` is a {type(task).__name__}, not a TaskSpec"
    try:
        params_schema(task)  # a model msgspec or pydantic cannot describe is a load error, not a 500 later
    except Exception as exc:
        return f"params_model has no usable JSON Schema: {type(exc).__name__}: {exc}"
    return task


def _describe(exc: BaseException, tasks_dir: Path) -> str:
    """`Type: message (file, line N: code)`, locating the deepest frame outside importlib."""
    text = f"{type(exc).__name__}: {exc}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<")]
    if frames and not isinstance(exc, SyntaxError):  # a SyntaxError's message already says where
        last = frames[-1]
        code = f": {last.line}" if last.line else ""
        text += f" ({_shown(Path(last.filename), tasks_dir)}, line {last.lineno}{code})"
    return text


def _shown(path: Path, tasks_dir: Path) -> str:
    try:
        return str(path.relative_to(tasks_dir.parent))
    except ValueError:
        return str(path)


def _make_helpers_importable(tasks_dir: Path) -> None:
    # Task files may `import _shared` from a helper next to them. Appended, never prepended, so a
    # task file named like a stdlib module cannot shadow it. Helpers are not hot-reloaded.
    entry = str(tasks_dir)
    if entry not in sys.path:
        sys.path.append(entry)
