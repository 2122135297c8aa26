"""The search's record lives in its study, and what only inspects a run folder never writes to it (issue 32)."""

import hashlib
import re
from pathlib import Path

import optuna
import pytest

from search.config import SearchConfig
from search.errors import SearchError
from search.state import (CONFIG, FINISHED, INTERRUPTED, STARTED, WALL_SECONDS, any_trial_started, inspect_study,
                          read_record, record_end, record_start)
from search.study import RAY_TRIAL_ID, create_study, open_storage

ROOT = Path(__file__).resolve().parents[1]


def fingerprint(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def test_no_module_of_the_search_opens_sqlite_itself():
    """Optuna's storage is the study's only door: no SQL on its private schema, no connection of our own."""
    for path in sorted((ROOT / "search").rglob("*.py")):
        text = path.read_text()
        assert not re.search(r"sqlite3\.connect|\bSELECT\b|\.execute\(", text), path
        assert "optuna.trial.Trial(" not in text, path


@pytest.mark.parametrize("content", [b"", b"not a database at all" * 100], ids=["empty", "garbage"])
def test_inspecting_a_study_that_is_not_one_leaves_the_file_as_it_was(tmp_path, content):
    db = tmp_path / "study.db"
    db.write_bytes(content)
    before = fingerprint(db)
    if content:
        with pytest.raises(SearchError, match="is not an Optuna study"):
            inspect_study(tmp_path)
    else:  # Optuna died creating it: no study, and a read-only open creates no tables in it
        assert inspect_study(tmp_path) is None and not any_trial_started(tmp_path)
    assert fingerprint(db) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.db"]  # no journal either


def test_the_record_is_read_from_the_study_alone_without_writing_to_it(tmp_path):
    config = SearchConfig(space="smoke", num_samples=5, max_epochs=2, out=str(tmp_path))
    study = create_study(open_storage(tmp_path), "smoke")
    assert record_start(study, config.to_dict(), {"fingerprint": "abc"}, resume=False) == 0.0
    trial = study.ask()
    assert not any_trial_started(tmp_path)  # asked of the study, not yet handed to Tune
    trial.set_user_attr(RAY_TRIAL_ID, "t0")
    record_end(study, 12.5, interrupted=True, time_budget_hit=False)
    db = tmp_path / "study.db"
    before = fingerprint(db)

    assert any_trial_started(tmp_path)
    record = read_record(tmp_path)
    assert record[CONFIG] == config.to_dict() and record["data"] == {"fingerprint": "abc"}
    assert record[INTERRUPTED] is True and record[WALL_SECONDS] == 12.5 and record[FINISHED] and record[STARTED]
    assert SearchConfig.from_run(tmp_path) == config
    assert not (tmp_path / "search.json").exists()
    assert fingerprint(db) == before

    # A resumed run keeps the first start and adds its wall time to the earlier runs'.
    assert record_start(study, config.to_dict(), {}, resume=True) == 12.5
    assert read_record(tmp_path)[STARTED] == record[STARTED] and read_record(tmp_path)[FINISHED] is None


def test_a_folder_without_a_study_holds_no_search(tmp_path):
    assert inspect_study(tmp_path) is None and read_record(tmp_path) is None
    with pytest.raises(SearchError, match="holds no search"):
        SearchConfig.from_run(tmp_path)
    optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}", study_name="x")  # someone else's study
    with pytest.raises(SearchError, match="holds no search"):
        SearchConfig.from_run(tmp_path)
