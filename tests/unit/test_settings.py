"""Settings from the environment: paths are fixed when loaded, whatever the process does later."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskhub.errors import ConfigError
from taskhub.settings import load_settings


def test_a_relative_database_path_is_taken_from_where_taskhub_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings({"TASKHUB_HOME": "home", "TASKHUB_DB": "elsewhere/t.db"})
    # The worker changes directory to the home: a relative path would then point somewhere else.
    assert settings.db_path == tmp_path / "elsewhere" / "t.db"
    assert settings.home == tmp_path / "home"


def test_ready_per_slot_is_a_whole_number_and_zero_turns_it_off() -> None:
    assert load_settings({}).ready_per_slot == 1
    assert load_settings({"TASKHUB_READY_PER_SLOT": "0"}).ready_per_slot == 0
    assert load_settings({"TASKHUB_READY_PER_SLOT": "2"}).ready_per_slot == 2
    for bad in ("1.5", "-1", "many"):
        with pytest.raises(ConfigError, match="TASKHUB_READY_PER_SLOT"):
            load_settings({"TASKHUB_READY_PER_SLOT": bad})


def test_the_port_is_a_tcp_port() -> None:
    assert load_settings({}).port == 8000
    assert load_settings({"TASKHUB_PORT": "8765"}).port == 8765
    for bad in ("70000", "0", "-1", "80.5", "http"):
        with pytest.raises(ConfigError, match="TASKHUB_PORT"):
            load_settings({"TASKHUB_PORT": bad})


@pytest.mark.parametrize("name", ["TASKHUB_LEASE_S", "TASKHUB_HEARTBEAT_S", "TASKHUB_READY_PER_SLOT", "TASKHUB_PORT"])
@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "1e999"])
def test_numbers_must_be_finite(name: str, bad: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings({name: bad})
