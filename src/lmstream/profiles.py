"""Profiles: named modes (``chat``, ``code``, ...) of system prompt, model and sampling.

A native request names a profile (``"profile": "code"``) or gets the default one. A
profile fills in what the request leaves unset: its system prompt when the request
has no system message, its sampling parameters when the request gives none. The
request always wins. With no ``[[profiles]]`` configured, ``BUILTIN_PROFILES`` apply.
"""

from __future__ import annotations

from typing import Any

from lmstream.errors import NotFound
from lmstream.request import ChatRequest, Message
from lmstream.settings import ProfileConfig, Settings

__all__ = ["BUILTIN_PROFILES", "Profiles", "apply_profile", "profile_json"]

BUILTIN_PROFILES: tuple[ProfileConfig, ...] = (
    ProfileConfig(
        name="chat",
        description="General conversation: clear, friendly, concise answers.",
        system_prompt="You are a helpful assistant. Answer clearly and concisely.",
    ),
    ProfileConfig(
        name="code",
        description="Programming help: precise answers with code in fenced blocks.",
        system_prompt=(
            "You are an expert programmer. Answer with correct, idiomatic code in fenced "
            "code blocks and short explanations."
        ),
        temperature=0.2,
    ),
)


class Profiles:
    """The configured profiles by name, and which one is the default."""

    def __init__(self, profiles: list[ProfileConfig] | tuple[ProfileConfig, ...], default: str | None) -> None:
        self._by_name: dict[str, ProfileConfig] = {}
        for profile in profiles or BUILTIN_PROFILES:
            if profile.name in self._by_name:
                raise ValueError(f"profile {profile.name!r} is configured twice")
            self._by_name[profile.name] = profile
        self.default = default or next(iter(self._by_name))
        if self.default not in self._by_name:
            raise ValueError(
                f"default_profile {self.default!r} is not a configured profile; "
                f"configured: {', '.join(self._by_name)}"
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> Profiles:
        return cls(settings.profiles, settings.default_profile)

    def get(self, name: str | None) -> ProfileConfig:
        """The profile called ``name`` (None: the default); ``NotFound`` if there is none."""
        profile = self._by_name.get(name or self.default)
        if profile is None:
            raise NotFound(
                f"profile {name!r} not found; available: {', '.join(self._by_name)}", param="profile"
            )
        return profile

    def all(self) -> list[ProfileConfig]:
        return list(self._by_name.values())


def apply_profile(request: ChatRequest, profile: ProfileConfig) -> ChatRequest:
    """``request`` with the profile's system prompt and sampling where it set none.

    The model is not chosen here: that depends on the conversation too (see
    ``lmstream.conversations``).
    """
    messages = request.messages
    if profile.system_prompt and not any(m.role == "system" for m in messages):
        messages = (Message("system", profile.system_prompt), *messages)
    return request.with_(
        messages=messages,
        profile=profile.name,
        temperature=profile.temperature if request.temperature is None else request.temperature,
        top_p=profile.top_p if request.top_p is None else request.top_p,
        top_k=profile.top_k if request.top_k is None else request.top_k,
        max_tokens=profile.max_tokens if request.max_tokens is None else request.max_tokens,
        stop=request.stop or tuple(profile.stop),
    )


def profile_json(profile: ProfileConfig) -> dict[str, Any]:
    """The wire shape of ``GET /v1/profiles`` items."""
    return profile.model_dump()
