"""Alerts: rules on searches, evaluated on a schedule, delivered by mail and webhook (issue 24).

rules.py (what a rule says; the built-in mail examples), config.py (the rules file: channels and
rules), book.py (the state: rules added on the page, incidents, history, mute, acknowledge),
evaluate.py (one pass over the store with an injected clock), notify.py (SMTP and webhook),
daemon.py (`logpipe alerts run`: the loop), cli.py (options only).
"""
