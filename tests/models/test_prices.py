"""The price table's defaults by model name: a dated name takes its family's price, and the
lookups a table remembers (names come from agent documents and model answers) are bounded."""

from __future__ import annotations

from astromesh.models.catalog import DEFAULT_PRICES, PRICE_LOOKUPS_KEPT, PriceTable


def test_a_dated_name_costs_what_its_family_costs_every_time() -> None:
    table = PriceTable()
    for _ in range(3):
        assert table.price("openai", "openai", "gpt-4o-2024-08-06") == DEFAULT_PRICES["gpt-4o"]
        assert table.price("openai", "openai", "no-such-model") is None


def test_a_table_remembers_a_bounded_number_of_names() -> None:
    table = PriceTable()
    for n in range(PRICE_LOOKUPS_KEPT * 3):
        table.price("openai", "openai", f"gpt-4o-hostile-{n}")
    assert len(table._found) <= PRICE_LOOKUPS_KEPT
    assert table.price("openai", "openai", "gpt-4o-hostile-1") == DEFAULT_PRICES["gpt-4o"]
