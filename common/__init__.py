"""What shippers and indexers share: the record format, broker keys, config and errors."""
