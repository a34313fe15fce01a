"""``logpipe ui``: the web page over the stores, the dead-letter queue and the stats."""
