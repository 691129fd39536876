"""The loss ledger: numbered events, ledger events, and ``eventlog ledger check``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

import eventlog
from eventlog._builtin.receiver import LineReceiver
from eventlog._engine.ledger import LEDGER_ACTION, SEQ_FIELD
from eventlog._records.context import current
from eventlog.cli import main


def _outage_with_ledger(receiver: LineReceiver) -> eventlog.Pipeline:
    """2,000 DEBUG lines and 20 errors into a queue of 200 while the collector is down."""
    receiver.stop()
    pipeline = eventlog.configure(
        transport="tcp",
        host="127.0.0.1",
        port=receiver.port,
        queue_size=200,
        retry_backoff_max=0.2,
        ledger_interval=0.05,
    )
    logger = logging.getLogger("ledger.app")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = eventlog.EventHandler()
    logger.addHandler(handler)
    try:
        for number in range(2_000):
            logger.debug("noise %s", number)
            if number % 100 == 99:
                logger.error("failure %s", number // 100)
        receiver.restart()
        assert eventlog.flush(60)
        sent_before = pipeline.stats.sent
        assert eventlog.shutdown(30)  # the final ledger event goes out too
        assert pipeline.stats.sent > sent_before
    finally:
        logger.removeHandler(handler)
    assert receiver.wait_for(pipeline.stats.sent, timeout=30)
    return pipeline


def test_the_ledger_accounts_for_every_shed_event(
    receiver: LineReceiver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline = _outage_with_ledger(receiver)
    events = [json.loads(line) for line in receiver.lines]
    numbers = [event["fields"][SEQ_FIELD] for event in events]
    assert len(numbers) == len(set(numbers)) == len(events)  # every event numbered, once
    ledgers = [event for event in events if event["action"] == LEDGER_ACTION]
    assert len(ledgers) >= 2  # periodic ones, and the final one
    (final,) = [event["fields"] for event in ledgers if event["fields"]["ledger_final"]]
    shed = sum(pipeline._overload.shed.values())
    assert shed > 1_000
    # Every number up to the last ledger's arrived, but for the shed events.
    assert final["ledger_seq_last"] < final[SEQ_FIELD]  # it covers what came before it
    assert max(numbers) - len(numbers) == shed
    assert sum(v for k, v in final.items() if k.startswith("ledger_dropped_")) == shed
    path = tmp_path / "arrived.jsonl"
    path.write_bytes(b"\n".join(receiver.lines) + b"\n")
    assert main(["ledger", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{len(numbers)} numbered events arrived, {shed} missing: the ledger accounts for them" in out


def test_a_loss_the_ledger_does_not_count_is_reported(
    receiver: LineReceiver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _outage_with_ledger(receiver)
    lines = list(receiver.lines)
    # Lost on the way, unseen by the pipeline: the ledger cannot account for more than it counted.
    (final,) = [
        fields for fields in (json.loads(line)["fields"] for line in lines) if fields.get("ledger_final")
    ]
    shed_total = sum(v for k, v in final.items() if k.startswith("ledger_dropped_"))
    kept = [line for line in lines if json.loads(line)["action"] != "log.error"]
    assert len(kept) == len(lines) - 20
    path = tmp_path / "arrived.jsonl"
    path.write_bytes(b"\n".join(kept) + b"\n")
    assert main(["ledger", "check", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"NOT accounted for: the ledger counts only {shed_total} dropped or shed" in out


def test_ledger_check_says_what_it_cannot_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "not.jsonl"
    path.write_text("not json\n")
    assert main(["ledger", "check", str(path)]) == 2
    assert "is not JSON lines" in capsys.readouterr().err
    assert main(["ledger", "check", str(tmp_path / "missing.jsonl")]) == 2


def test_ledger_check_reads_hostile_lines_as_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What arrived is not trusted: a huge number costs nothing, odd shapes are passed over."""
    lines = [
        {"action": "a", "host": "h", "pid": 1, "fields": {SEQ_FIELD: 1}},
        {"action": "a", "host": "h", "pid": 1, "fields": {SEQ_FIELD: 4}},
        {"action": "a", "host": "h", "pid": 1, "fields": {SEQ_FIELD: 10**12}},
        {"action": LEDGER_ACTION, "host": "h", "pid": 1, "fields": {"ledger_seq_last": 10**15 + 5}},
        {"action": LEDGER_ACTION, "host": "h", "pid": 2, "fields": {"ledger_seq_last": "many"}},
        [1],
        "text",
        {"action": "a", "host": "h", "pid": 3, "fields": [SEQ_FIELD]},
    ]
    path = tmp_path / "arrived.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert main(["ledger", "check", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"host h pid 1: 3 numbered events arrived, {10**15 + 5 - 3} missing: "
        "NOT accounted for: the ledger counts only 0 dropped or shed",
        f"  missing: 2-3, 5-{10**12 - 1}, {10**12 + 1}-{10**15 + 5}",
        "host h pid 2: 0 numbered events arrived, 0 missing: complete",
    ]


def test_the_ledger_accounts_for_sampled_and_rate_limited_events(
    receiver: LineReceiver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline = eventlog.configure(
        transport="tcp",
        host="127.0.0.1",
        port=receiver.port,
        ledger_interval=60,
        sample_sheddable=2,
        rate_limit_sheddable=1e-3,  # a burst of one a template, then nothing in this test
    )
    pipeline.worker._start = lambda: None  # type: ignore[method-assign]  # no worker yet
    for number in range(6):
        pipeline.submit(
            (
                logging.LogRecord("noisy", logging.DEBUG, __file__, 1, "noise %s", (number,), None),
                "x",
                current(),
            )
        )
        pipeline.submit(
            (
                logging.LogRecord("noisy", logging.DEBUG, __file__, 1, "other %s", (number,), None),
                "y",
                current(),
            )
        )
    del pipeline.worker._start
    assert eventlog.shutdown(30)
    assert receiver.wait_for(pipeline.stats.sent, timeout=30)
    events = [json.loads(line) for line in receiver.lines]
    assert [event["message"] for event in events[:2]] == ["x", "y"]  # the first of each template
    assert pipeline.stats.dropped == {"sampled": 6, "rate_limited": 4}
    final = events[-1]["fields"]
    assert final["ledger_dropped_sampled"] == 6 and final["ledger_dropped_rate_limited"] == 4
    # The ten never queued left a gap before the first batch.
    assert [event["fields"][SEQ_FIELD] for event in events] == [11, 12, 13]
    path = tmp_path / "arrived.jsonl"
    path.write_bytes(b"\n".join(receiver.lines) + b"\n")
    assert main(["ledger", "check", str(path)]) == 0
    assert "3 numbered events arrived, 10 missing: the ledger accounts for them" in capsys.readouterr().out
