"""Admission to a one-at-a-time model: people first, background work after them.

Background requests (``RequestContext.purpose`` other than ``"chat"``: conversation
titles, follow-ups) wait in a lane of their own. The policy, in full:

* a waiting person always gets the model before any waiting background request
  (``popleft`` takes from the people's lane first);
* only people count towards the queue limit people see: background requests never
  take a person's place in the line nor make a person get 503 (``users``);
* the background lane has its own limit; beyond it a background request is refused
  (the title generator then falls back to the first words of the question);
* a background request that already holds the model finishes (a title is a few
  tokens); it is not pre-empted.

``WaitLine`` is the data structure; the backend decides with ``users`` and
``background`` and raises ``Overloaded``. A batching backend (several sequences at
once) keeps the same rules for who gets the next free slot.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Generic, TypeVar

__all__ = ["WaitLine"]

J = TypeVar("J")


class WaitLine(Generic[J]):
    """Jobs waiting for the model, in two FIFO lanes: interactive, then background."""

    def __init__(self) -> None:
        self._people: deque[J] = deque()
        self._background: deque[J] = deque()

    @property
    def users(self) -> int:
        """Interactive jobs waiting."""
        return len(self._people)

    @property
    def background(self) -> int:
        return len(self._background)

    def append(self, job: J, *, interactive: bool) -> None:
        (self._people if interactive else self._background).append(job)

    def popleft(self) -> J:
        """The next job to get the model: the first person, else the first background job."""
        return self._people.popleft() if self._people else self._background.popleft()

    def remove(self, job: J) -> None:
        if job in self._people:
            self._people.remove(job)
        else:
            self._background.remove(job)

    def index(self, job: J) -> int:
        """Its place in the line (0 = next): background jobs come after every person."""
        if job in self._people:
            return self._people.index(job)
        return len(self._people) + self._background.index(job)

    def clear(self) -> None:
        self._people.clear()
        self._background.clear()

    def __contains__(self, job: object) -> bool:
        return job in self._people or job in self._background

    def __len__(self) -> int:
        return len(self._people) + len(self._background)

    def __bool__(self) -> bool:
        return bool(self._people or self._background)

    def __iter__(self) -> Iterator[J]:
        yield from self._people
        yield from self._background
