"""Settings from the environment: paths are fixed when loaded, whatever the process does later."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskhub.settings import load_settings


def test_a_relative_database_path_is_taken_from_where_taskhub_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings({"TASKHUB_HOME": "home", "TASKHUB_DB": "elsewhere/t.db"})
    # The worker changes directory to the home: a relative path would then point somewhere else.
    assert settings.db_path == tmp_path / "elsewhere" / "t.db"
    assert settings.home == tmp_path / "home"
