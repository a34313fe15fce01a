"""Search: Lucene query parsing and rendering for every store."""
