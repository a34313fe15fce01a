"""The one wait-until-ready loop of the service launchers (Valkey, its sentinels, Elasticsearch):
poll a readiness probe until it answers, the process exits, or the deadline passes."""

from __future__ import annotations

import subprocess
import time
from typing import Callable


class ProcessExited(Exception):
    """The process ended before it was ready (its log says why)."""

    def __init__(self, code: int):
        super().__init__(f"exited with status {code} while starting")
        self.code = code


def wait_until_ready(process: subprocess.Popen, ready: Callable[[], bool], deadline: float,
                     every: float) -> bool:
    """Poll ``ready()`` every ``every`` seconds until it is true (True) or ``time.monotonic()``
    reaches ``deadline`` (False). Raises :class:`ProcessExited` as soon as ``process`` ends, so a
    server that cannot start is reported at once, not at the deadline."""
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            raise ProcessExited(code)
        if ready():
            return True
        time.sleep(every)
    return False
