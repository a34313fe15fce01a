"""The Lucene query language, store-free: parse (:mod:`query.lucene`), the intermediate form
(:mod:`query.tree`), date math (:mod:`query.datemath`), the message analyzer
(:mod:`query.analyzer`). Imports no other logpipe package, so stores and search both build on it.

Kept import-free on purpose: ``common.errors`` re-exports :class:`query.errors.QueryError`, and an
agent that imports that must not pay for luqum.
"""
