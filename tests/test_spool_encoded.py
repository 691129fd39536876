"""A batch stored as it was encoded (ClassedBatch) makes the same rows as its Records, byte for byte."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from eventlog._builtin.formats import split_lines
from eventlog._config.config import Settings
from eventlog._engine.delivery import _json_lines_sized
from eventlog._engine.pipeline import Pipeline
from eventlog._records.batch import EncodedBatch
from eventlog._records.context import EMPTY
from eventlog._spool import SQLiteSpool
from eventlog._spool.protocol import ClassedBatch

ROW = "SELECT format, events, records, payloads, destination, shed, checksum FROM batches ORDER BY seq"


def _items(levels: list[int]) -> list[tuple[logging.LogRecord, tuple[str, tuple[object, ...]], object]]:
    log = logging.getLogger("encoded")
    made: list[tuple[logging.LogRecord, tuple[str, tuple[object, ...]], object]] = []
    for number, level in enumerate(levels):
        record = log.makeRecord("encoded", level, __file__, 1, "user %s did %d", ("a\r\nb", number), None)
        made.append((record, ("user %s did %d", ("a\r\nb", number)), EMPTY))
    return made


def _classed(pipeline: Pipeline, levels: list[int]) -> ClassedBatch:
    encoder = pipeline._encoder
    written = encoder.lines(_items(levels))
    assert written is not None
    batch, sources = written
    assert type(batch) is EncodedBatch
    sized = _json_lines_sized(batch, encoder.split_many)
    assert sized is not None
    return ClassedBatch(sized, pipeline._overload.classifier.sheddable_many(sources))


def test_an_encoded_batch_makes_the_rows_its_tagged_records_make(tmp_path: Path) -> None:
    settings = Settings.load({"transport": "tcp", "host": "127.0.0.1", "port": 9}, environ={})
    pipeline = Pipeline(settings)
    # Runs of each class, longer than a row: rows are cut by class, then by row_events.
    levels = [20] * 7 + [40] * 3 + [10] * 2 + [30] * 6
    classed = _classed(pipeline, levels)
    assert classed.sheddable == [level < 30 for level in levels]
    fast = SQLiteSpool(str(tmp_path / "fast.db"), "json", row_events=4, destination="d")
    slow = SQLiteSpool(str(tmp_path / "slow.db"), "json", row_events=4, destination="d")
    fast.add(classed)
    slow.add(list(classed))  # the Records, SheddableRecord for the sheddable ones
    rows = {}
    for name in ("fast", "slow"):
        with sqlite3.connect(tmp_path / f"{name}.db") as conn:
            rows[name] = conn.execute(ROW).fetchall()
    assert rows["fast"] == rows["slow"]
    assert [(events, shed) for _, events, _, _, _, shed, _ in rows["fast"]] == [
        (4, 1),
        (3, 1),
        (3, 0),
        (2, 1),
        (4, 0),
        (2, 0),
    ]
    # Sent back as they were stored: the rows' bodies, in order, and the same Records.
    batch = fast.pending(100)
    assert type(batch) is EncodedBatch
    assert batch.body == classed.batch.body
    assert [tuple(record) for record in batch] == [tuple(record) for record in slow.pending(100)]
    fast.remove(batch)
    assert fast.pending(100) == []
    fast.close()
    slow.close()
    pipeline.shutdown(0.1)


def test_sizes_of_json_lines_are_those_split_lines_gives_and_other_splits_are_left_alone() -> None:
    body = b'{"a":"x\\ny"}\n{"b":1}\n'
    batch = EncodedBatch(body, 2, lambda: (["i", "j"], ["a", "a"], [1, 2]), split_lines)
    sized = _json_lines_sized(batch, split_lines)
    assert sized is not None and sized.sizes == [len(p) for p in split_lines(body)] == [13, 8]
    assert _json_lines_sized(batch, lambda body: [body]) is None
    # Lines that are not one a payload (not what the writer makes): the records are made instead.
    assert (
        _json_lines_sized(EncodedBatch(b'{"a":1}\n{}\n{}\n', 2, batch.heads, split_lines), split_lines)
        is None
    )
