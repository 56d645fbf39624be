"""Read a dataset's rows in order without a memory map, so a run's memory does not grow with the benchmark.

Why: ``datasets`` memory-maps its Arrow files. Every reference a run reads then stays resident in the
process (file-backed pages count in its RSS until the kernel needs them back), so reading a 1043-case
benchmark once would grow a run towards the benchmark's 5 GB. The runner reads cases in increasing
index order; this reader streams the Arrow files batch by batch with plain reads and keeps one batch.
Datasets it cannot stream (in memory, or with an indices mapping) are read through the usual Arrow view.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["RowReader"]


class RowReader:
    """``reader.row(i)``: row ``i`` as a dict (image columns as ``{"bytes", "path"}``), read sequentially."""

    def __init__(self, dataset: Any):
        self.dataset = dataset
        files = [f.get("filename") for f in getattr(dataset, "cache_files", None) or []]
        self._files = files if files and all(files) and getattr(dataset, "_indices", None) is None else None
        self._lock = threading.Lock()
        self._view: Any = None
        self._reset()

    def _reset(self) -> None:
        self._file_index = -1
        self._stream: Any = None
        self._batch: Any = None
        self._start = 0  # index of the current batch's first row
        self._end = 0  # one past its last row

    def release(self) -> None:
        """Drop the batch in hand (tens of MB of images); a later ``row`` reads from the start again."""
        with self._lock:
            self._reset()

    def row(self, index: int) -> dict[str, Any]:
        if self._files is None:
            if self._view is None:
                self._view = self.dataset.with_format("arrow")
            return self._view[index : index + 1].to_pylist()[0]
        with self._lock:
            if index < self._start or self._batch is None and index < self._end:
                self._reset()  # a step back: read again from the start (the runner goes forward)
            while index >= self._end:
                if not self._next_batch():
                    raise IndexError(f"row {index} is past the end of the dataset ({self._end} rows)")
            return self._batch.slice(index - self._start, 1).to_pylist()[0]

    def _next_batch(self) -> bool:
        import pyarrow as pa

        while True:
            if self._stream is not None:
                try:
                    batch = self._stream.read_next_batch()
                except StopIteration:
                    batch = None
                if batch is not None:
                    self._start, self._end, self._batch = self._end, self._end + batch.num_rows, batch
                    return True
                self._stream = None
            self._file_index += 1
            if self._file_index >= len(self._files):
                return False
            self._stream = pa.ipc.open_stream(pa.OSFile(self._files[self._file_index]))
