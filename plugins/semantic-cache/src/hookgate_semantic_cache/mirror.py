"""An in-memory copy of an embedded store's vectors and metadata, for fast lookups.

A store opened from a folder has exactly one process (the folder lock): every write goes
through it, so a copy it keeps in memory is never stale. Looking up there is one matrix
product and a few comparisons, microseconds for the usual few thousand entries, where a
Chroma query costs milliseconds whatever the size. Chroma stays the store of record: it
is written first, the copy is loaded from it at start, and payloads are only read from it.

A Chroma server (``chroma_url``) is shared with other instances, so its stores keep no copy.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

__all__ = ["MAX_MIRRORED", "Mirror"]

MAX_MIRRORED = 20_000
"""Past this many entries (30 MB of vectors) the store answers from Chroma: its index scales,
a scan does not."""


class Mirror:
    """Unit vectors (float32) and metadata of every entry, by id; thread-safe."""

    def __init__(self, dimensions: int, capacity: int = 1024) -> None:
        self.dimensions = dimensions
        self._vectors = np.zeros((capacity, dimensions), dtype=np.float32)
        self._ids: list[str] = []
        self._metadata: list[dict[str, Any]] = []
        self._rows: dict[str, int] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, entry_id: str) -> bool:
        return entry_id in self._rows

    def upsert(
        self, ids: list[str], vectors: Any, metadatas: Iterable[dict[str, Any]]
    ) -> None:
        rows = _unit(np.asarray(vectors, dtype=np.float32).reshape(len(ids), -1))
        with self._lock:
            for entry_id, row, metadata in zip(ids, rows, metadatas, strict=True):
                at = self._rows.get(entry_id)
                if at is None:
                    at = len(self._ids)
                    if at == len(self._vectors):
                        grown = np.zeros((at * 2, self.dimensions), dtype=np.float32)
                        grown[:at] = self._vectors
                        self._vectors = grown
                    self._ids.append(entry_id)
                    self._metadata.append(dict(metadata))
                    self._rows[entry_id] = at
                else:
                    self._metadata[at] = dict(metadata)
                self._vectors[at] = row

    def delete(self, ids: Iterable[str]) -> None:
        with self._lock:
            for entry_id in ids:
                at = self._rows.pop(entry_id, None)
                if at is None:
                    continue
                last = len(self._ids) - 1
                if at != last:  # the last row takes the freed one's place
                    moved = self._ids[last]
                    self._ids[at], self._metadata[at] = moved, self._metadata[last]
                    self._vectors[at] = self._vectors[last]
                    self._rows[moved] = at
                self._ids.pop()
                self._metadata.pop()

    def expired(self, now: float) -> list[str]:
        with self._lock:
            return [
                entry_id
                for entry_id, metadata in zip(self._ids, self._metadata, strict=True)
                if float(metadata.get("expires", 0.0)) <= now
            ]

    def nearest(
        self,
        vectors: list[Any],
        k: int,
        floor: float,
        keep: Sequence[Callable[[dict[str, Any]], bool]],
    ) -> list[tuple[float | None, list[tuple[str, float, dict[str, Any]]]]]:
        """For each vector: the best similarity over every entry, and up to ``k`` entries
        at least ``floor``-similar that ``keep`` accepts, best first."""
        queries = _unit(np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1))
        with self._lock:
            count = len(self._ids)
            if count == 0:
                return [(None, []) for _ in vectors]
            similarities = queries @ self._vectors[:count].T
            answers: list[tuple[float | None, list[tuple[str, float, dict[str, Any]]]]] = []
            for row, accept in zip(similarities, keep, strict=True):
                above = np.flatnonzero(row >= floor)
                chosen: list[tuple[str, float, dict[str, Any]]] = []
                for at in above[np.argsort(-row[above], kind="stable")]:
                    metadata = self._metadata[at]
                    if accept(metadata):
                        chosen.append((self._ids[at], float(row[at]), dict(metadata)))
                        if len(chosen) == k:
                            break
                answers.append((float(row.max()), chosen))
            return answers


def _unit(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.maximum(norms, 1e-12)
