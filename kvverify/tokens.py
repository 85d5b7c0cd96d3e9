"""Prompt tokens for the reference model.

Token-id prompts (``tokens``, ``synthetic``) are exact. Text prompts use the model's own
tokenizer when one is available locally (the optional ``kvverify[tokenizer]`` extra and a
``tokenizer.json`` in a local model directory or the Hugging Face cache); otherwise a documented
deterministic approximation, and every report says so.

The approximation: split like GPT-2's pre-tokenizer (a word with its leading space, runs of
digits, punctuation), split words again at underscores and case changes, then one token per
eight characters of each piece; ids are a stable hash. Sub-word tokenizers of current models
give counts within roughly ±20% on English prose; block arithmetic on text prompts is therefore
approximate, which is why scenarios that need exact blocks use token ids.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_PRE = re.compile(r" ?[A-Za-z]+| ?\d{1,3}| ?[^\sA-Za-z\d]+|\s+(?!\S)|\s+")
_SUB = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+|[^A-Za-z\d]+")
_CHARS_PER_TOKEN = 8
_VOCAB = 150_000


@dataclass(frozen=True)
class Tokens:
    ids: tuple[int, ...]
    exact: bool
    how: str


def approximate(text: str, *, bos: bool = False) -> list[int]:
    """The deterministic approximation described in the module docstring."""
    ids: list[int] = [1] if bos else []
    for piece in _PRE.findall(text):
        # the leading space belongs to the word (as in byte-level BPE)
        for sub in _SUB.findall(piece.lstrip(" ")) or [piece]:
            n = max(1, -(-len(sub.strip() or sub) // _CHARS_PER_TOKEN))
            digest = hashlib.blake2b(sub.encode(), digest_size=8).digest()
            base = int.from_bytes(digest, "big")
            ids.extend(2 + (base + i) % _VOCAB for i in range(n))
    return ids


def _local_tokenizer(model: str) -> Any | None:
    try:
        from tokenizers import Tokenizer  # optional extra
    except ImportError:
        return None
    candidates = [Path(model) / "tokenizer.json"]
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model, "tokenizer.json")
        if isinstance(cached, str):
            candidates.append(Path(cached))
    except ImportError:
        pass
    for path in candidates:
        if path.is_file():
            try:
                return Tokenizer.from_file(os.fspath(path))
            except Exception:
                return None
    return None


def encode(model: str, text: str, *, bos: bool = False) -> Tokens:
    """Token ids of a text prompt as the model would see them, exact if possible."""
    tok = _local_tokenizer(model)
    if tok is not None:
        return Tokens(
            tuple(tok.encode(text, add_special_tokens=True).ids), True, f"the {model} tokenizer"
        )
    return Tokens(
        tuple(approximate(text, bos=bos)), False, "kvverify's approximation (no local tokenizer)"
    )
