"""Server RSS with the default embedded model loaded, idle and after one answer.

    .venv/bin/python bench/idle_rss.py

Starts ``lmstream serve`` exactly as a user does (the packaged Gemma 3 270M, default
n_ctx 4096), reads VmRSS of the server's process tree from /proc, asks for 16 tokens,
reads it again. Target (issue "The streaming core"): under 600 MB.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.targets import start_lmstream


def main() -> None:
    server = start_lmstream([{"name": "gemma3-270m", "backend": "llama_cpp"}], name="lmstream-idle-rss")
    try:
        idle = server.rss() / 2**20
        body = json.dumps({"model": "gemma3-270m", "max_tokens": 16, "temperature": 0,
                           "messages": [{"role": "user", "content": "What is the capital of France?"}]}).encode()
        request = urllib.request.Request(server.url + "/v1/chat/completions", data=body,
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            response.read()
        after = server.rss() / 2**20
    finally:
        server.stop()
    print(f"server RSS, default model loaded, idle: {idle:.0f} MB; after one answer: {after:.0f} MB (target < 600 MB)")


if __name__ == "__main__":
    main()
