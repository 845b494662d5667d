"""No request body, however malformed, gets a 500: every endpoint answers 4xx in its shape."""

from __future__ import annotations

import asyncio
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lmstream.settings import Settings
from tests.support import app_client, scripted

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)
fields = st.fixed_dictionaries(
    {},
    optional={
        "model": json_values | st.just("s"),
        "messages": json_values | st.just([{"role": "user", "content": "hi"}]),
        "prompt": json_values,
        "max_tokens": json_values,
        "temperature": json_values,
        "stream": json_values,
        "stop": json_values,
    },
)
bodies = st.one_of(
    st.binary(max_size=64),
    json_values.map(lambda v: json.dumps(v).encode()),
    fields.map(lambda v: json.dumps(v).encode()),
)
PATHS = ["/v1/chat/completions", "/v1/streams"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies, path=st.sampled_from(PATHS))
def test_malformed_bodies_never_get_a_500(body: bytes, path: str) -> None:
    async def run() -> None:
        async with app_client(Settings(models=[scripted("s", text="ok")])) as client:
            r = await client.post(path, content=body, headers={"content-type": "application/json"})
            assert r.status_code < 500, (r.status_code, r.text)
            if r.status_code >= 400:
                assert r.json()["error"]["message"]

    asyncio.run(run())
