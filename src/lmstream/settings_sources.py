"""Where lmstream's settings come from: flags > ``LMSTREAM_*`` environment > TOML file.

``settings_sources`` is the precedence (``Settings.settings_customise_sources`` returns
it); ``find_config_file`` finds the TOML file (``--config`` or ``LMSTREAM_CONFIG``). List
settings read from one environment variable or flag take either a JSON list or
comma-separated items (``split_list``, ``checked_keys`` for API keys, where an empty
item is an error rather than "no key").
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, TomlConfigSettingsSource

__all__ = ["checked_keys", "find_config_file", "settings_sources", "split_list"]


def settings_sources(
    settings_cls: type[BaseSettings],
    init_settings: PydanticBaseSettingsSource,
    env_settings: PydanticBaseSettingsSource,
    toml_file: Path | None,
) -> tuple[PydanticBaseSettingsSource, ...]:
    """Flags (the init values), then the environment, then the TOML file if any; no
    ``.env`` file and no secrets directory."""
    sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
    if toml_file is not None:
        sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
    return tuple(sources)


def find_config_file(given: Path | str | None) -> Path | None:
    """The TOML file named by ``--config`` (``given``) or ``LMSTREAM_CONFIG``; it must exist."""
    path = given or os.environ.get("LMSTREAM_CONFIG")
    toml = Path(path) if path else None
    if toml is not None and not toml.is_file():
        raise FileNotFoundError(f"config file not found: {toml}")
    return toml


def split_list(value: Any) -> Any:
    """``"a,b"`` or ``'["a", "b"]'`` as a list (blank items dropped); anything else as is."""
    if isinstance(value, str):  # LMSTREAM_CORS_ORIGINS="https://a.example,https://b.example"
        if value.lstrip().startswith("["):
            return json.loads(value)
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def checked_keys(value: Any, source: str) -> Any:
    """Keys as given, each stripped; an empty one is an error, never "no key".

    ``--api-key "$UNSET"`` or ``LMSTREAM_API_KEYS=""`` would otherwise turn auth off (and
    let a non-loopback bind through) while the operator believes a key is required.
    """
    if isinstance(value, str):  # LMSTREAM_API_KEYS="k1,k2" (or a JSON list)
        if value.lstrip().startswith("["):
            value = json.loads(value)
        else:
            value = value.split(",")
    if not isinstance(value, list):
        return value
    keys = []
    for key in value:
        if isinstance(key, str):
            key = key.strip()
            if not key:
                raise ValueError(
                    f"{source} contains an empty key (an unset variable?): give a real key or none at all"
                )
        keys.append(key)
    return keys
