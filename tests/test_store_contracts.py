"""Both backends implement the store contracts of store.base exactly: every method of Writer,
Maintenance, Reader and MessageRecords, with the protocol's parameters (names, kinds, defaults),
so a caller annotated with a protocol can be handed either store."""

import inspect

import pytest

from logpipe.store.base import CONTRACTS, Store
from logpipe.store.elasticsearch import ElasticsearchStore
from logpipe.store.sqlite import SqliteStore


def _methods(protocol) -> list[str]:
    return sorted(name for name, value in vars(protocol).items()
                  if callable(value) and not name.startswith("_"))


def _parameters(function) -> list[tuple[str, object, object]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


@pytest.mark.parametrize("backend", [SqliteStore, ElasticsearchStore], ids=["sqlite", "elasticsearch"])
@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.__name__)
def test_the_backends_match_the_contracts_exactly(backend, contract):
    names = _methods(contract)
    assert names, f"{contract.__name__} names no method"
    for name in names:
        assert _parameters(getattr(backend, name)) == _parameters(getattr(contract, name)), \
            f"{backend.__name__}.{name} departs from {contract.__name__}.{name}"


def test_a_store_is_every_contract():
    assert set(Store.__mro__) >= set(CONTRACTS)
    assert sum(len(_methods(c)) for c in CONTRACTS) >= 20
