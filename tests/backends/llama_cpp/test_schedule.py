"""What one decode step feeds the model (the scheduling policy, no model)."""

from __future__ import annotations

from typing import Any

from lmstream.backends.llama_cpp.schedule import plan_step
from lmstream.backends.llama_cpp.sequence import Sequence
from lmstream.backends.llama_cpp.slots import Slot


def seq(slot: int, prompt: int, *, read: int = 0, sampled: bool = False, interactive: bool = True) -> Sequence:
    none: Any = None
    s = Sequence(prompt=list(range(prompt)), limit=100, sampler=none, text=none, interactive=interactive,
                 deliver=lambda items: None, loop=none)  # fmt: skip
    s.slot = Slot(slot, busy=True)
    s.n_past = read
    s.sampled = sampled
    if sampled:  # a generating sequence: one sampled token waits to be fed
        s.tokens.append(7)
        s.n_past = len(s.tokens) - 1
    return s


def shape(decodes: list[list[tuple[Sequence, int]]]) -> list[list[tuple[int, int]]]:
    return [[(s.slot.id if s.slot else -1, n) for s, n in d] for d in decodes]


def test_generating_tokens_share_one_decode_in_slot_order_then_prompt_chunks() -> None:
    active = [seq(2, 5, sampled=True), seq(0, 5, sampled=True), seq(1, 100)]
    assert shape(plan_step(active, 32)) == [[(0, 1), (2, 1)], [(1, 32)]]


def test_prompt_chunks_fill_the_step_budget_first_come_first_served() -> None:
    active = [seq(0, 10, read=1), seq(1, 10, read=1), seq(2, 20, read=1), seq(3, 40, read=1)]
    for fed, s in enumerate(active):
        s.fed_at = fed
    assert shape(plan_step(active, 32)) == [[(0, 9)], [(1, 9)]]  # 19 more would not fit


def test_requests_arriving_together_all_start_in_the_same_step() -> None:
    active = [seq(0, 5, sampled=True), *(seq(n, 48) for n in (1, 2, 3))]
    assert shape(plan_step(active, 64)) == [[(0, 1)], [(1, 48)], [(2, 48)], [(3, 48)]]


def test_a_long_prompt_moves_one_chunk_a_step_from_where_its_cache_ends() -> None:
    long = seq(0, 100, read=37)
    assert shape(plan_step([long], 32)) == [[(0, 32)]]
    long.n_past = 101 - 5
    assert shape(plan_step([long], 32)) == [[(0, 4)]]  # the rest of the prompt


def test_interactive_prompts_go_first() -> None:
    active = [seq(0, 30, interactive=False), seq(1, 30, interactive=False), seq(2, 30)]
    active[2].sampled = True  # it has its first token; its prompt is read again (it stepped aside)
    active[2].n_past = 0
    for s in active:
        s.fed_at = 1
    assert shape(plan_step(active, 32)) == [[(2, 30)]]


def test_background_sits_out_while_an_interactive_sequence_waits_for_its_first_token() -> None:
    active = [seq(0, 5, sampled=True, interactive=False), seq(1, 5, interactive=False), seq(2, 5, sampled=True), seq(3, 64)]
    assert shape(plan_step(active, 32)) == [[(2, 1)], [(3, 32)]]
    active[3].sampled = True  # it has its first token: everyone runs again
    active[3].n_past = len(active[3].tokens) - 1
    assert shape(plan_step(active, 32)) == [[(0, 1), (2, 1), (3, 1)], [(1, 5)]]


def test_a_new_prompt_goes_ahead_of_a_long_one_then_they_take_turns() -> None:
    long, short = seq(0, 200, read=64), seq(1, 100)
    long.fed_at = 3  # the long prompt was fed at step 3; the new one never
    assert shape(plan_step([long, short], 64)) == [[(1, 64)]]
    short.fed_at = 4
    assert shape(plan_step([long, short], 64)) == [[(0, 64)]]
