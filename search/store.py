"""Resumable search state in one SQLite file (stdlib ``sqlite3``, WAL journal).

One row per candidate, keyed by the canonical JSON of its architecture (sorted keys, no
spaces), holding its parameter count, inference cost, error, W, status and timestamps.
Every write is its own committed transaction, so a killed process loses at most the
candidate it was training. A metadata row records the search settings; reopening the file
with different settings raises :class:`SearchError` instead of mixing two searches.

Statuses: ``scored`` (p and i known), ``running`` (training started, not finished),
``done`` (error known), ``failed`` (training raised; retried on the next run).

With a hyperparameter set Θ, every (candidate, θ) training is a row of its own in ``runs``
(status ``running``/``done``/``failed``), so a killed search keeps the θ runs it finished.
"""
from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

from .errors import SearchError

FORMAT = "bortkit-search-state/1"
STATUSES = ("scored", "running", "done", "failed")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS candidates (
    arch_key       TEXT PRIMARY KEY,
    params         INTEGER,
    inference_cost REAL,
    error          REAL,
    w              REAL,
    status         TEXT NOT NULL CHECK (status IN ({", ".join(repr(s) for s in STATUSES)})),
    message        TEXT,
    train_seconds  REAL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    arch_key       TEXT NOT NULL,
    theta_key      TEXT NOT NULL,
    error          REAL,
    status         TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
    message        TEXT,
    train_seconds  REAL,
    updated_at     TEXT NOT NULL,
    PRIMARY KEY (arch_key, theta_key)
);
"""


def arch_key(arch: Mapping[str, Any]) -> str:
    """The canonical JSON of an architecture: equal dicts give equal keys, whatever the order."""
    try:
        return json.dumps(dict(arch), sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as err:
        raise SearchError(f"architecture {arch!r} is not plain JSON data ({err})") from None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class StoredCandidate:
    """One row of the state file."""

    arch: dict
    params: Optional[int]
    inference_cost: Optional[float]
    error: Optional[float]
    w: Optional[float]
    status: str
    message: Optional[str]
    train_seconds: Optional[float]
    created_at: str
    updated_at: str


class SearchStore:
    """A search's state file. Use as a context manager, or call :meth:`close`."""

    def __init__(self, path: os.PathLike | str):
        self.path = Path(path)
        if self.path.is_dir():
            raise SearchError("search state must be a file, not a directory", path=self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._create_schema()
        except sqlite3.DatabaseError as err:
            self._conn.close()
            raise SearchError(f"not a search state file ({err})", path=self.path) from None

    # ------------------------------------------------------------------ lifecycle
    def _create_schema(self) -> None:
        tables = {row[0] for row in self._conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and not {"meta", "candidates"} <= tables:
            raise SearchError(f"SQLite file with other tables ({', '.join(sorted(tables))}) "
                              f"is not a search state file", path=self.path)
        with self._conn:
            self._conn.executescript(_SCHEMA)
            self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('format', ?)", (FORMAT,))
            self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('created_at', ?)", (_now(),))
        found = self._meta("format")
        if found != FORMAT:
            raise SearchError(f"search state format {found!r} is not {FORMAT!r}", path=self.path)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "SearchStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ settings
    def _meta(self, key: str) -> Optional[str]:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    @property
    def settings(self) -> Optional[dict]:
        """The settings this state was created with (None before the first search)."""
        text = self._meta("settings")
        return None if text is None else json.loads(text)

    def bind(self, settings: Mapping[str, Any]) -> None:
        """Record ``settings`` on first use; refuse to resume a search made with others."""
        text = json.dumps(dict(settings), sort_keys=True, allow_nan=False)
        stored = self._meta("settings")
        if stored is None:
            with self._conn:
                self._conn.execute("INSERT INTO meta VALUES ('settings', ?)", (text,))
            return
        if stored == text:
            return
        old, new = json.loads(stored), json.loads(text)
        differences = [f"{key}: {json.dumps(old.get(key))} stored, {json.dumps(new.get(key))} now"
                       for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]
        raise SearchError("cannot resume: this search state was made with different settings ("
                          + "; ".join(differences)
                          + "); rerun with the stored settings or use a new state file",
                          path=self.path)

    # ------------------------------------------------------------------ rows
    def get(self, arch: Mapping[str, Any]) -> Optional[StoredCandidate]:
        row = self._conn.execute("SELECT * FROM candidates WHERE arch_key = ?",
                                 (arch_key(arch),)).fetchone()
        return None if row is None else _row(row)

    def __iter__(self) -> Iterator[StoredCandidate]:
        for row in self._conn.execute("SELECT * FROM candidates ORDER BY created_at, arch_key"):
            yield _row(row)

    def __len__(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM candidates").fetchone()[0]

    def record_costs(self, arch: Mapping[str, Any], params: int, inference_cost: float) -> None:
        """Store p and i: a new row has status ``scored``; an existing row keeps its status."""
        now = _now()
        with self._conn:
            self._conn.execute(
                "INSERT INTO candidates (arch_key, params, inference_cost, status, created_at,"
                " updated_at) VALUES (?, ?, ?, 'scored', ?, ?) ON CONFLICT(arch_key) DO UPDATE"
                " SET params = excluded.params, inference_cost = excluded.inference_cost,"
                " updated_at = excluded.updated_at",
                (arch_key(arch), int(params), float(inference_cost), now, now))

    def start_training(self, arch: Mapping[str, Any]) -> None:
        self._set_status(arch, "running", message=None)

    def record_error(self, arch: Mapping[str, Any], error: float, w: float,
                     train_seconds: Optional[float] = None) -> None:
        """The candidate's error is known: status ``done``, committed at once."""
        with self._conn:
            updated = self._conn.execute(
                "UPDATE candidates SET error = ?, w = ?, train_seconds = ?, status = 'done',"
                " message = NULL, updated_at = ? WHERE arch_key = ?",
                (float(error), float(w), train_seconds, _now(), arch_key(arch))).rowcount
        self._require(updated, arch)

    def record_failure(self, arch: Mapping[str, Any], message: str) -> None:
        self._set_status(arch, "failed", message=" ".join(str(message).split())[:500])

    # ------------------------------------------------------------------ runs (one per θ)
    def get_run(self, arch: Mapping[str, Any], theta: Mapping[str, Any]) -> Optional[StoredRun]:
        row = self._conn.execute(
            "SELECT arch_key, theta_key, error, status, message, train_seconds, updated_at"
            " FROM runs WHERE arch_key = ? AND theta_key = ?",
            (arch_key(arch), arch_key(theta))).fetchone()
        if row is None:
            return None
        key, theta_text, error, status, message, seconds, updated = row
        return StoredRun(arch=json.loads(key), theta=json.loads(theta_text), error=error,
                         status=status, message=message, train_seconds=seconds,
                         updated_at=updated)

    def runs(self) -> list:
        """Every (candidate, θ) run, oldest first."""
        keys = self._conn.execute("SELECT arch_key, theta_key FROM runs ORDER BY updated_at")
        return [self.get_run(json.loads(a), json.loads(t)) for a, t in keys.fetchall()]

    def start_run(self, arch: Mapping[str, Any], theta: Mapping[str, Any]) -> None:
        self._put_run(arch, theta, None, "running", None, None)

    def record_run(self, arch: Mapping[str, Any], theta: Mapping[str, Any], error: float,
                   train_seconds: Optional[float] = None) -> None:
        self._put_run(arch, theta, float(error), "done", None, train_seconds)

    def record_run_failure(self, arch: Mapping[str, Any], theta: Mapping[str, Any],
                           message: str) -> None:
        self._put_run(arch, theta, None, "failed", " ".join(str(message).split())[:500], None)

    def _put_run(self, arch, theta, error, status, message, seconds) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(arch_key, theta_key)"
                " DO UPDATE SET error = excluded.error, status = excluded.status,"
                " message = excluded.message, train_seconds = excluded.train_seconds,"
                " updated_at = excluded.updated_at",
                (arch_key(arch), arch_key(theta), error, status, message, seconds, _now()))

    def _set_status(self, arch: Mapping[str, Any], status: str, message: Optional[str]) -> None:
        with self._conn:
            updated = self._conn.execute(
                "UPDATE candidates SET status = ?, message = ?, updated_at = ?"
                " WHERE arch_key = ?", (status, message, _now(), arch_key(arch))).rowcount
        self._require(updated, arch)

    def _require(self, updated: int, arch: Mapping[str, Any]) -> None:
        if not updated:
            raise KeyError(f"candidate not in the search state (record_costs first): {arch!r}")


@dataclass(frozen=True)
class StoredRun:
    """One (candidate, θ) training of the state file."""

    arch: dict
    theta: dict
    error: Optional[float]
    status: str
    message: Optional[str]
    train_seconds: Optional[float]
    updated_at: str


def _row(row: tuple) -> StoredCandidate:
    key, params, cost, error, w, status, message, seconds, created, updated = row
    return StoredCandidate(arch=json.loads(key), params=params, inference_cost=cost,
                           error=error, w=w, status=status, message=message,
                           train_seconds=seconds, created_at=created, updated_at=updated)
