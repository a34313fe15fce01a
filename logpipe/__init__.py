"""logpipe: one import package for the whole pipeline.

The stages live in the repository's top-level folders (``shipper/``, ``indexer/``, ``common/``,
``query/``, ``store/``, ``search/``, ``services/``); this package names them ``logpipe.shipper``,
``logpipe.indexer``, ... through the symbolic links beside this file, so an installed wheel exposes
one top-level name and never shadows another distribution's ``common`` or ``search``.
"""
