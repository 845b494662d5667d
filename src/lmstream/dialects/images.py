"""Images as the dialects send them, to one ``Image`` (media type + base64).

* OpenAI: a content part ``{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}``;
* Anthropic: a block ``{"type": "image", "source": {"type": "base64", "media_type", "data"}}``;
* Ollama: ``"images": ["<base64>", ...]`` beside the text (the type read from the bytes);
* native: ``"images": ["data:image/png;base64,...", ...]`` on a message (or the request).

Only inline images are taken: an image *URL* would make the server fetch whatever a
client names (internal addresses included), so it is refused with a 400 that says to
send the bytes. The base64 must decode and the bytes must be a PNG, JPEG, GIF or WebP
(read from their first bytes; a declared type that disagrees is refused). Count and
size limits are the request bounds' (``http/bounds.py``), once the model is known.
"""

from __future__ import annotations

import base64
import binascii

from lmstream.errors import BadRequest
from lmstream.request import Image

__all__ = ["MEDIA_TYPES", "from_base64", "from_data_url", "sniff"]

MEDIA_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")


def sniff(head: bytes) -> str | None:
    """The media type the first bytes of an image say, if one of ``MEDIA_TYPES``."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def from_base64(data: str, media_type: str | None = None, *, param: str = "images") -> Image:
    """An image from base64 text; its type is read from its bytes (and must agree with
    ``media_type`` when one is declared)."""
    data = "".join(data.split())
    try:
        head = base64.b64decode(data[:64], validate=True)
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"`{param}`: an image is not valid base64", param=param) from None
    found = sniff(head)
    if found is None:
        raise BadRequest(f"`{param}`: an image must be one of {', '.join(MEDIA_TYPES)}", param=param)
    if media_type is not None and media_type.lower() != found:
        raise BadRequest(f"`{param}`: an image declared as {media_type} is {found}", param=param)
    return Image(found, data)


def from_data_url(url: str, *, param: str = "images") -> Image:
    """An image from a ``data:<type>;base64,<data>`` URL."""
    if not url.startswith("data:"):
        raise BadRequest(
            "images must be sent inline as data: URLs (data:image/png;base64,...); "
            "lmstream does not fetch image URLs",
            param=param,
        )
    header, sep, data = url[5:].partition(",")
    if not sep or not header.endswith(";base64"):
        raise BadRequest("an image data: URL must be base64 (data:image/png;base64,...)", param=param)
    return from_base64(data, header.removesuffix(";base64") or None, param=param)
