"""Helpers shared by tests: realistic records and the logpipe command in a subprocess."""
