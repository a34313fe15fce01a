"""Listening sockets: loopback unless told otherwise, and a warning when an endpoint without
authentication is reachable from other machines (metrics, syslog over UDP/TCP, the web page)."""

from __future__ import annotations

import ipaddress
from typing import Callable

LOOPBACK = "127.0.0.1"


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, what: str, risk: str) -> str | None:
    """The warning for an unauthenticated ``what`` bound to ``host``, or None on loopback."""
    if is_loopback(host):
        return None
    return (f"{what} listens on {host}, reachable from other machines, and has no "
            f"authentication: {risk}. Bind 127.0.0.1 unless this is intended, and restrict the "
            f"port with a firewall")


def warn_if_exposed(host: str, what: str, authenticated: bool, emit: Callable[[str], None],
                    risk: str = "anyone who can reach the port can inject log records") -> None:
    if authenticated:
        return
    message = exposure_warning(host, what, risk)
    if message:
        emit(message)
