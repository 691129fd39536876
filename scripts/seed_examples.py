# ruff: noqa: E402, I001  (the seed's examples verbatim, after the receiver is set up)
"""The seed's two examples, run as a new user would after installing the wheels.

``nox -s package`` runs this with the fresh venv's Python (nothing of the
checkout on its path) against a loopback receiver of the installed package,
configured the seed's way: ``EVENTLOG_HOST`` and ``EVENTLOG_PORT`` set before
``import eventlog``.  Exits non-zero unless both events arrive with the
seed's fields.
"""

from __future__ import annotations

import json
import os
import sys

from eventlog._builtin.receiver import LineReceiver  # the installed package's own receiver

receiver = LineReceiver()
os.environ["EVENTLOG_HOST"] = "127.0.0.1"
os.environ["EVENTLOG_PORT"] = str(receiver.port)
os.environ["EVENTLOG_SITE"] = "local"

# --- the seed's first example, as the README writes it
from eventlog import asyncEventLogger
import logging

logger = logging.getLogger("my-app")
logger.setLevel(logging.INFO)  # not in the seed: without it, logging drops info() below WARNING
logger.addHandler(asyncEventLogger)

logger.info("some message")

# --- the seed's second example
from eventlog import Event, logEvent

event = Event("click", "my-button", "ui")
logEvent(event)

import eventlog

if not eventlog.flush(30) or not receiver.wait_for(2, timeout=30):
    sys.exit(f"the seed's examples: {len(receiver.lines)} of 2 events arrived")
first, second = (json.loads(line) for line in receiver.lines)
want = [
    (first["action"], first["message"], first["site"]),
    (second["action"], second["target"], second["tgType"], second["site"]),
]
if want != [("log.info", "some message", "local"), ("click", "my-button", "ui", "local")]:
    sys.exit(f"the seed's examples: unexpected events {want}")
print("the seed's two examples: both events arrived:", want)
