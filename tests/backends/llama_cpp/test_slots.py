"""Which KV slot a new sequence takes, and what it keeps of the slot's cache (no model)."""

from __future__ import annotations

from lmstream.backends.llama_cpp.slots import SlotTable, common_prefix


def test_common_prefix() -> None:
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix([], [1]) == 0
    assert common_prefix([1, 2], [1, 2, 3]) == 2


def test_a_conversation_turn_takes_back_the_slot_holding_its_history() -> None:
    table = SlotTable(3)
    first, _ = table.take([1, 10, 11, 12])
    table.release(first, [1, 10, 11, 12, 13, 14])
    other, _ = table.take([1, 20, 21])
    table.release(other, [1, 20, 21, 22])
    slot, shared = table.take([1, 10, 11, 12, 13, 14, 15, 16])
    assert slot is first and shared == 6


def test_an_unrelated_prompt_takes_a_slot_next_to_the_busy_ones_least_recently_used_first() -> None:
    table = SlotTable(4)
    slots = [table.take([1, n])[0] for n in range(4)]
    for slot in slots:  # released in order: slot 0 is the least recently used
        table.release(slot, [1, slot.id + 100])
    busy, _ = table.take([1, 102])  # slot 2 by its prefix (2 of 2 tokens)
    assert busy.id == 2
    slot, shared = table.take([7, 8, 9])  # no shared prefix: next to slot 2, older first
    assert slot.id == 1 and shared == 0


def test_a_short_shared_prefix_does_not_steal_a_cache() -> None:
    table = SlotTable(2)
    a, _ = table.take([1, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14])
    table.release(a, [1, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14])
    slot, _ = table.take([1, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59])  # 1 of 11 shared: no
    assert slot is not a


def test_cached_cells_count_idle_slots_only() -> None:
    table = SlotTable(2)
    a, _ = table.take([1, 2, 3])
    table.release(a, [1, 2, 3])
    b, _ = table.take([9])
    assert table.cached_cells() == 3 and table.busy == 1
    table.release(b, [9, 8])
    assert table.cached_cells() == 5 and table.busy == 0
