"""Elasticsearch's error reasons as text a person can act on: one place for the two shapes
they come in (a bulk item's ``error`` object, a failed request's exception)."""

from __future__ import annotations


def item_reason(result: dict) -> str:
    error = result.get("error") or {}
    if isinstance(error, dict):
        text = f"{error.get('type', 'error')}: {error.get('reason', '')}"
        cause = error.get("caused_by")
        if isinstance(cause, dict):
            text += f" (caused by {cause.get('type')}: {cause.get('reason')})"
        return text
    return str(error)


def exception_reason(exc) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            causes = err.get("root_cause") or []
            for cause in causes + [err]:
                if isinstance(cause, dict) and cause.get("reason"):
                    caused = err.get("caused_by", {})
                    extra = caused.get("reason") if isinstance(caused, dict) else None
                    return cause["reason"] + (f" ({extra})" if extra and extra not in
                                              cause["reason"] else "")
        if isinstance(err, str):
            return err
    return str(getattr(exc, "message", exc))
