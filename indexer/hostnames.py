"""Host names as one value however they were written: ``mx.example.net.`` (the fully
qualified form sendmail logs for a relay) and ``mx.example.net`` are the same host, so top
values, filters and traces count them as one.

Applied to each event once, at index time (:meth:`Pipeline.process` calls
:func:`normalise_hostnames` after the type's field edits, before its filters); the name as
logged is kept beside it as ``<field>_raw`` when it differed. A small function of its own so
the pipeline's shape can change around it.
"""

from __future__ import annotations

# the event's own host (syslog header), the shipper's, and the hosts mail lines name
HOST_FIELDS = ("host", "logsource", "relay", "timeoutHost", "src_host")


def normal_hostname(value: str) -> str:
    """``value`` without the root's trailing dot (``mx.example.net.`` -> ``mx.example.net``);
    a lone ``.`` and anything that is not a dotted name stay as they are."""
    if len(value) > 1 and value.endswith(".") and not value.endswith("..") and "." in value[:-1]:
        return value[:-1]
    return value


def normalise_hostnames(doc: dict) -> None:
    """The host-name fields of ``doc`` normalised in place, the raw form kept as
    ``<field>_raw`` (only where it changed, and never over a field already there)."""
    for name in HOST_FIELDS:
        value = doc.get(name)
        if isinstance(value, str) and value.endswith("."):
            normal = normal_hostname(value)
            if normal != value:
                doc[name] = normal
                doc.setdefault(f"{name}_raw", value)


__all__ = ["HOST_FIELDS", "normal_hostname", "normalise_hostnames"]
