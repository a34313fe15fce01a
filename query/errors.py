"""The one error of the query language (kept here so the package imports no other)."""


class QueryError(Exception):
    """A search query is not valid Lucene syntax; the message shows the position."""

    def __init__(self, message: str, query: str | None = None, position: int | None = None):
        text = message
        if query is not None and position is not None:
            text += f"\n  {query}\n  {' ' * position}^"
        super().__init__(text)
        self.query = query
        self.position = position
