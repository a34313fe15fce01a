"""The indexer: RQ workers that parse, enrich and store what shippers pushed."""
