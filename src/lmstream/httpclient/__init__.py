"""lmstream's HTTP/1.1 client for its upstreams: see ``client.py`` for what and why."""

from lmstream.httpclient.client import HTTPClient, default_ssl_context
from lmstream.httpclient.proxy import Proxy, ProxyConfig

__all__ = ["HTTPClient", "Proxy", "ProxyConfig", "default_ssl_context"]
