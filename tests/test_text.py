from __future__ import annotations

import pytest

from lmstream.text import StopMatcher, Utf8Decoder


def feed_all(matcher: StopMatcher, pieces: list[str]) -> tuple[str, str | None]:
    out = []
    for piece in pieces:
        emit, hit = matcher.feed(piece)
        out.append(emit)
        if hit is not None:
            return "".join(out), hit
    out.append(matcher.flush())
    return "".join(out), None


def test_no_stops_passes_text_through() -> None:
    assert feed_all(StopMatcher(()), ["a", "b"]) == ("ab", None)


def test_stop_split_across_pieces_is_never_emitted() -> None:
    matcher = StopMatcher(["\nUser:"])
    emitted = []
    for piece in ["Paris.", "\n", "Us", "er:", " more"]:
        text, hit = matcher.feed(piece)
        emitted.append(text)
        if hit:
            break
    assert "".join(emitted) == "Paris."
    assert hit == "\nUser:"


def test_held_back_prefix_is_released_when_it_does_not_match() -> None:
    matcher = StopMatcher(["END"])
    assert matcher.feed("the EN") == ("the ", None)
    assert matcher.feed("D") == ("", "END")
    matcher = StopMatcher(["END"])
    assert matcher.feed("the EN") == ("the ", None)
    assert matcher.feed("ough") == ("ENough", None)


def test_earliest_of_several_stops_wins() -> None:
    assert feed_all(StopMatcher(["c", "abc"]), ["xxabc"]) == ("xx", "abc")
    assert feed_all(StopMatcher(["abc", "x"]), ["abx"]) == ("ab", "x")


def test_flush_returns_tail_when_stream_ends() -> None:
    matcher = StopMatcher(["STOP"])
    assert matcher.feed("go ST") == ("go ", None)
    assert matcher.flush() == "ST"


@pytest.mark.parametrize("text", ["héllo", "日本語", "🦙 llama", "\U0001d518\U0001d52b\U0001d526"])
def test_utf8_decoder_joins_characters_split_across_tokens(text: str) -> None:
    decoder = Utf8Decoder()
    out = []
    for byte in text.encode():
        piece = decoder.feed(bytes([byte]))
        assert "\ufffd" not in piece
        out.append(piece)
    out.append(decoder.flush())
    assert "".join(out) == text


def test_a_hidden_stop_prefix_is_never_released_when_the_answer_ends() -> None:
    """Regression: an answer cut by max_tokens ended in "\\nAssistant" (the transcript's own
    stop sequence, half written)."""
    stops = ("\nUser:", "\nAssistant:")
    matcher = StopMatcher(stops, hidden=frozenset(stops))
    assert matcher.feed("The best book is") == ("The best book is", None)
    assert matcher.feed("\nAssistant") == ("", None)
    assert matcher.flush() == ""


def test_a_client_stop_prefix_is_released_when_the_answer_ends() -> None:
    matcher = StopMatcher(("STOP", "\nUser:"), hidden=frozenset({"\nUser:"}))
    assert matcher.feed("go ST") == ("go ", None)
    assert matcher.flush() == "ST"


def test_only_the_hidden_part_of_a_held_tail_is_dropped() -> None:
    matcher = StopMatcher(("ab\nUs", "\nUser:"), hidden=frozenset({"\nUser:"}))
    assert matcher.feed("xab\nU") == ("x", None)
    assert matcher.flush() == "ab"
