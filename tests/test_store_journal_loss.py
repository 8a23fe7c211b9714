"""Journal loss is loud: an empty, vanished, replaced or corrupted SQLite journal stops
the runner with a StoreError naming the file (and the run), never a fresh start."""

from __future__ import annotations

import os
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gatekeeper._protocols import Event
from gatekeeper.exceptions import StoreError
from gatekeeper.store.sqlite import SQLiteStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def event(n: int = 0) -> Event:
    return Event(kind="measurement", at=T0, phase="canary", data={"n": n})


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "gates.journal.sqlite3"


def test_an_empty_journal_file_is_refused_not_taken_as_new(journal: Path) -> None:
    """A 0-byte journal (truncated, or emptied by a bad copy) is not a new journal: opening
    it names the file, says it is empty and how to start over, and leaves it untouched."""
    journal.touch()
    with pytest.raises(StoreError) as refused:
        SQLiteStore(journal)
    message = str(refused.value)
    assert str(journal) in message
    assert "is empty" in message
    assert "truncated" in message
    assert "delete it" in message
    assert journal.stat().st_size == 0
    assert sorted(p.name for p in journal.parent.iterdir()) == [journal.name]


def test_an_empty_journal_with_its_write_ahead_log_says_to_keep_both(journal: Path) -> None:
    """A 0-byte journal beside a non-empty ``-wal`` may still be recoverable: the message
    says to copy both away; neither is touched."""
    journal.touch()
    wal = journal.with_name(journal.name + "-wal")
    wal.write_bytes(b"\x37\x7f\x06\x82" + bytes(60))
    with pytest.raises(StoreError, match=f"write-ahead log {wal.name} \\(64 bytes\\)"):
        SQLiteStore(journal)
    assert (journal.stat().st_size, wal.stat().st_size) == (0, 64)


def test_a_new_journal_is_never_seen_empty(journal: Path) -> None:
    """Runners and readers opening a journal that does not exist yet all succeed, and
    nobody ever sees the file at 0 bytes (it appears with its schema)."""
    seen_empty: list[int] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            try:
                if journal.stat().st_size == 0:
                    seen_empty.append(1)
            except FileNotFoundError:
                pass

    def open_one() -> None:
        try:
            SQLiteStore(journal).close()
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    watcher = threading.Thread(target=watch)
    watcher.start()
    openers = [threading.Thread(target=open_one) for _ in range(6)]
    for t in openers:
        t.start()
    for t in openers:
        t.join(timeout=30)
    done.set()
    watcher.join(timeout=10)
    assert errors == []
    assert seen_empty == []
    with SQLiteStore(journal) as store:
        assert store.runs() == ()
    assert [p.name for p in journal.parent.iterdir() if "creating" in p.name] == []


def test_a_journal_deleted_mid_run_stops_the_next_write(journal: Path) -> None:
    """``rm`` of the journal while a run is in progress: the next append, status change
    and lease check raise StoreError naming the file and the run; nothing is recreated."""
    store = SQLiteStore(journal)
    try:
        got = store.claim_run(plan="p", plan_digest="d", started_at=T0)
        run = got.run.run_id
        assert store.append(run, event()) == 1
        journal.unlink()
        for write in (
            lambda: store.append(run, event(1)),
            lambda: store.set_status(run, "advanced"),
            lambda: got.lease.check() if got.lease else None,
        ):
            with pytest.raises(StoreError, match="vanished") as lost:
                write()
            assert str(journal) in str(lost.value)
            assert f"run {run}" in str(lost.value)
        assert not journal.exists()
    finally:
        store.close()


def test_a_journal_replaced_mid_run_stops_the_next_write(journal: Path) -> None:
    """Another file moved over the journal (a restore, a deploy that ships one) is not
    written to as if it were ours: StoreError says it was replaced."""
    other = journal.with_name("other.journal.sqlite3")
    with SQLiteStore(other) as elsewhere:
        elsewhere.create_run(plan="p", plan_digest="d", started_at=T0)
    store = SQLiteStore(journal)
    try:
        run = store.claim_run(plan="p", plan_digest="d", started_at=T0).run.run_id
        assert store.append(run, event()) == 1
        os.replace(other, journal)
        with pytest.raises(StoreError, match=f"replaced while run {run} was in progress"):
            store.append(run, event(1))
    finally:
        store.close()


def test_a_journal_truncated_in_place_mid_run_stops_the_next_write(journal: Path) -> None:
    """The journal emptied under the runner (``: > file``) is loud, not a fresh start."""
    store = SQLiteStore(journal)
    try:
        run = store.claim_run(plan="p", plan_digest="d", started_at=T0).run.run_id
        store.append(run, event())
        with journal.open("r+b") as handle:
            handle.truncate(0)
        with pytest.raises(StoreError, match="empty") as lost:
            store.append(run, event(1))
        assert f"run {run}" in str(lost.value)
    finally:
        store.close()


@pytest.mark.parametrize(
    "data", ['{"n": 1', "not json at all", "[1, 2]", "\udcff"], ids=["cut", "text", "list", "bad"]
)
def test_corrupted_event_data_is_a_clean_store_error(journal: Path, data: str) -> None:
    """An event whose JSON cannot be read gives one StoreError naming the run and the
    seq, with no chained json traceback."""
    with SQLiteStore(journal) as store:
        run = store.create_run(plan="p", plan_digest="d", started_at=T0)
        store.append(run, event())
    raw = sqlite3.connect(journal)
    try:
        raw.execute(
            "INSERT INTO gatekeeper_events (run_id, seq, kind, at, data) VALUES (?, 2, 'verdict',"
            " '2026-03-01T12:00:00+00:00', ?)",
            (run, data.encode("utf-8", "surrogateescape")),
        )
        raw.commit()
    finally:
        raw.close()
    with SQLiteStore(journal) as store, pytest.raises(StoreError) as broken:
        store.events(run)
    message = str(broken.value)
    assert f"run {run}, event 2 (verdict) is corrupted" in message
    assert str(journal) in message
    assert broken.value.__cause__ is None
    assert broken.value.__suppress_context__


def test_a_corrupted_event_time_is_a_clean_store_error(journal: Path) -> None:
    """A stored time that is not a time is reported like corrupted data."""
    with SQLiteStore(journal) as store:
        run = store.create_run(plan="p", plan_digest="d", started_at=T0)
    raw = sqlite3.connect(journal)
    try:
        raw.execute(
            "INSERT INTO gatekeeper_events (run_id, seq, kind, at, data)"
            " VALUES (?, 1, 'verdict', 'yesterday', '{}')",
            (run,),
        )
        raw.commit()
    finally:
        raw.close()
    with SQLiteStore(journal) as store, pytest.raises(StoreError, match=r"event 1 .* corrupted"):
        store.events(run)


def test_a_journal_overwritten_in_place_is_not_taken_for_ours(journal: Path) -> None:
    """Another journal's content at the same file (a copy over it) has another journal
    id: the next write is refused instead of landing in a stranger's journal."""
    store = SQLiteStore(journal)
    try:
        run = store.claim_run(plan="p", plan_digest="d", started_at=T0).run.run_id
        raw = sqlite3.connect(journal)
        try:
            raw.execute("UPDATE gatekeeper_meta SET value = 'another' WHERE key = 'journal_id'")
            raw.commit()
        finally:
            raw.close()
        with pytest.raises(StoreError, match="was overwritten by another journal"):
            store.append(run, event())
    finally:
        store.close()
