"""The embedded backend's admission: slots, the line, 503, interactive first (no model)."""

from __future__ import annotations

import pytest

from lmstream.backends.llama_cpp.admission import Admission, Ticket
from lmstream.errors import Overloaded


def admission(slots: int = 2, queue_size: int = 3) -> tuple[Admission, list[Ticket]]:
    asked: list[Ticket] = []
    return Admission(slots, queue_size, asked.append), asked


def test_free_slots_are_granted_then_requests_line_up_then_503() -> None:
    line, _ = admission(slots=2, queue_size=1)
    first, second, third = Ticket(True), Ticket(True), Ticket(True)
    for ticket in (first, second, third):
        line.enter(ticket, "model 'm'")
    assert first.granted and second.granted and not third.granted
    assert line.position(third) == 1
    with pytest.raises(Overloaded, match="model 'm' is busy: 1 requests already wait") as refused:
        line.enter(Ticket(True), "model 'm'")
    assert refused.value.retry_after >= 1

    line.enter(Ticket(False), "model 'm'")  # a background request has a lane of its own
    with pytest.raises(Overloaded, match="1 requests already wait"):
        line.enter(Ticket(False), "model 'm'")

    line.leave(first)
    assert third.granted and line.holders == [second, third] and line.waiting.users == 0


def test_interactive_requests_go_ahead_of_background_ones_fifo_within_each() -> None:
    line, _ = admission(slots=1, queue_size=5)
    holder = Ticket(True)
    line.enter(holder, "m")
    bg1, bg2, ia1, ia2 = Ticket(False), Ticket(False), Ticket(True), Ticket(True)
    for ticket in (bg1, bg2, ia1, ia2):
        line.enter(ticket, "m")
    assert list(line.waiting) == [ia1, ia2, bg1, bg2]
    assert line.position(bg1) == 3

    line.leave(holder)
    assert ia1.granted and list(line.waiting) == [ia2, bg1, bg2]


def test_a_waiting_interactive_request_asks_the_latest_background_holder_to_step_aside() -> None:
    line, asked = admission(slots=2, queue_size=5)
    bg_old, bg_new = Ticket(False), Ticket(False)
    line.enter(bg_old, "m")
    line.enter(bg_new, "m")
    interactive = Ticket(True)
    line.enter(interactive, "m")
    assert asked == [bg_new] and bg_new.stepping_aside
    line.enter(Ticket(True), "m")  # a second interactive waiter: the other one is asked too
    assert asked == [bg_new, bg_old]

    line.requeue(bg_new)  # it stepped aside: the interactive request gets its slot
    assert interactive.granted and not bg_new.granted and not bg_new.stepping_aside
    assert list(line.waiting)[-1] is bg_new  # behind the interactive waiter, at the head of background


def test_interactive_holders_are_never_asked_to_step_aside() -> None:
    line, asked = admission(slots=1, queue_size=2)
    line.enter(Ticket(True), "m")
    line.enter(Ticket(True), "m")
    assert asked == []


def test_a_stepped_aside_ticket_goes_back_ahead_of_newer_background_requests() -> None:
    line, _ = admission(slots=1, queue_size=5)
    running = Ticket(False)
    line.enter(running, "m")
    later = Ticket(False)
    line.enter(later, "m")
    line.enter(interactive := Ticket(True), "m")
    line.requeue(running)
    assert line.holders == [interactive] and list(line.waiting) == [running, later]


def test_leaving_is_idempotent_and_frees_a_waiting_place() -> None:
    line, _ = admission(slots=1, queue_size=2)
    holder, waiter = Ticket(True), Ticket(True)
    line.enter(holder, "m")
    line.enter(waiter, "m")
    line.leave(waiter)
    line.leave(waiter)
    assert list(line.waiting) == [] and line.holders == [holder]
    line.leave(holder)
    line.leave(holder)
    assert line.holders == []
