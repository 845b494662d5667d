"""Proxies from the environment, as curl, httpx and requests read them.

``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``ALL_PROXY`` (or lower case) name an ``http://``
proxy per target scheme; ``NO_PROXY`` lists hosts, domains (``.example.com`` or
``example.com``, with their subdomains), ``host:port`` and ``*`` that are reached
directly (no CIDR ranges, as with curl before 7.86). The standard library reads the
variables (``urllib.request.getproxies_environment``); this module decides per origin
and builds what the proxy needs: plain-HTTP targets are sent to the
proxy in absolute form, HTTPS targets through a ``CONNECT`` tunnel (TLS end to end).
Credentials in the proxy URL become ``Proxy-Authorization: Basic``. Proxies reached
over TLS (``https://`` proxy URLs) and SOCKS are refused with a clear error.
"""

from __future__ import annotations

import base64
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

__all__ = ["Proxy", "ProxyConfig"]


@dataclass(frozen=True, slots=True)
class Proxy:
    host: str
    port: int
    authorization: str | None  # the Proxy-Authorization value

    @classmethod
    def parse(cls, url: str) -> Proxy:
        if "://" not in url:
            url = "http://" + url
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"unsupported proxy {url!r}: only http:// proxies are supported")
        authorization = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            authorization = "Basic " + base64.b64encode(pair.encode()).decode()
        return cls(parts.hostname, parts.port or 80, authorization)


class ProxyConfig:
    """Which proxy (if any) serves an origin; decided once per origin."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        if environ is None:
            self._proxies = urllib.request.getproxies_environment()
        else:  # tests: an environment of their own
            self._proxies = {
                k.lower()[: -len("_proxy")]: v for k, v in environ.items() if k.lower().endswith("_proxy") and v
            }
        self._cache: dict[tuple[str, str, int], Proxy | None] = {}

    def for_origin(self, scheme: str, host: str, port: int) -> Proxy | None:
        key = (scheme, host, port)
        if key not in self._cache:
            self._cache[key] = self._decide(scheme, host, port)
        return self._cache[key]

    def _decide(self, scheme: str, host: str, port: int) -> Proxy | None:
        url = self._proxies.get(scheme) or self._proxies.get("all")
        if not url:
            return None
        if self._bypass(host, port):
            return None
        return Proxy.parse(url)

    def _bypass(self, host: str, port: int) -> bool:
        host = host.lower().strip("[]")
        for entry in self._proxies.get("no", "").lower().split(","):
            entry = entry.strip()
            if entry == "*":
                return True
            name, _, entry_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
            if entry_port and entry_port != str(port):
                continue
            name = name.strip("[]").lstrip(".")
            if name and (host == name or host.endswith("." + name)):
                return True
        return False
