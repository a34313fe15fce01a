"""Inputs: where lines come from (files, stdin, syslog)."""
