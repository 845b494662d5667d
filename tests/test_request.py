"""``ChatRequest``'s copies: ``with_`` and ``attach`` (a request is copied on its way to
the model; the original is never changed)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from lmstream.request import ChatRequest, Message, RequestContext


@dataclass(frozen=True)
class First:
    n: int


@dataclass(frozen=True)
class Second:
    n: int


def request() -> ChatRequest:
    return ChatRequest(messages=(Message("user", "hi"),), model="m", max_tokens=5)


def test_attach_replaces_a_value_of_the_same_type_and_keeps_the_others() -> None:
    base = request().attach(First(1), Second(1))
    again = base.attach(First(2))
    assert again.attachment(First) == First(2) and again.attachment(Second) == Second(1)
    assert base.attachment(First) == First(1)  # the original is unchanged


def test_attach_makes_changes_in_the_same_copy() -> None:
    base = request()
    context = RequestContext(principal="alice")
    copy = base.attach(First(1), Second(2), context=context, model="other")
    assert (copy.context, copy.model, copy.attachments) == (context, "other", (First(1), Second(2)))
    assert (copy.messages, copy.max_tokens) == (base.messages, base.max_tokens)
    assert (base.context.principal, base.model, base.attachments) == (None, "m", ())


def test_with_refuses_a_field_the_request_does_not_have() -> None:
    with pytest.raises(TypeError):
        request().with_(no_such_field=1)
    with pytest.raises(TypeError):
        request().attach(First(1), no_such_field=1)
