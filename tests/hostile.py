"""Hypothesis strategies and fixed hostile lines shared by the hostile-input tests."""

from __future__ import annotations

import json

from hypothesis import strategies as st

#: Any text, lone UTF-16 surrogates and control characters included (``st.text()`` leaves surrogates out).
texts = st.text(alphabet=st.characters(blacklist_categories=()) | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
                max_size=20)
scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=10**300, max_value=10**400)
           | st.floats() | texts)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(texts, inner, max_size=4), max_leaves=20)
#: Commands the live tests may send at random: never ``stop`` (that would end the run on purpose).
SAFE_NAMES = ["set_lr", "scale_lr", "set_beta", "set_batch_size", "pause", "resume", "checkpoint", "rewind", "explode"]
command_like = st.fixed_dictionaries({"id": json_values | texts, "cmd": st.sampled_from(SAFE_NAMES) | json_values},
                                     optional={"value": json_values})
#: Whole lines: any JSON text (NaN and Infinity included) or arbitrary bytes (not always ending a line).
lines = (json_values.map(lambda v: json.dumps(v).encode() + b"\n")
         | command_like.map(lambda v: json.dumps(v).encode() + b"\n")
         | st.binary(max_size=60))

DEEP = b'{"id": "deep", "cmd": "set_lr", "value": ' + b"[" * 5000 + b"]" * 5000 + b"}\n"
#: One line for every crash of the issue, as raw bytes.
HOSTILE_LINES = [
    b'{"id": {"a": 1}, "cmd": "pause"}\n',
    b'{"id": ["x"], "cmd": "pause"}\n',
    b'{"id": "cmd-list", "cmd": ["pause"]}\n',
    b'{"id": "huge-lr", "cmd": "set_lr", "value": ' + b"9" * 400 + b"}\n",
    b'{"id": "huge-bs", "cmd": "set_batch_size", "value": ' + b"9" * 400 + b"}\n",
    b'{"id": "nested-nan", "cmd": "set_lr", "value": [NaN, {"x": Infinity}]}\n',
    '{"id": "uni", "cmd": "rewind", "value": "²"}\n'.encode(),
    DEEP,
    b'[' * 100000 + b"\n",
    b'{"id": "", "cmd": "pause"}\n',
    b'{"id": "big", "cmd": "set_lr", "value": "' + b"x" * 1_000_000 + b'"}\n',
    b'{"id": "torn", "cmd": "set_l',  # no newline: the next line lands on it
]
