"""KV-cache shapes of well-known models: bytes per token = 2 (K and V) x layers x KV heads x
head_dim x bytes per element (reference §6.6). Values from the models' config.json files
(``num_hidden_layers``, ``num_key_value_heads``, ``head_dim`` or hidden_size /
num_attention_heads); a model not listed needs a local ``config.json`` or ``engine.shape``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from kvverify.errors import EngineError
from kvverify.scenario.schema import EngineSpec


@dataclass(frozen=True)
class Shape:
    num_layers: int
    num_kv_heads: int
    head_dim: int
    dtype_bytes: int = 2
    #: The tokenizer puts a BOS token first (Llama family); counts for prompt lengths.
    adds_bos: bool = False

    @property
    def bytes_per_token(self) -> int:
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * self.dtype_bytes


#: hub id -> shape (bf16 KV cache).
KNOWN: dict[str, Shape] = {
    "Qwen/Qwen3-0.6B": Shape(28, 8, 128),
    "Qwen/Qwen3-1.7B": Shape(28, 8, 128),
    "Qwen/Qwen3-4B": Shape(36, 8, 128),
    "Qwen/Qwen3-8B": Shape(36, 8, 128),
    "Qwen/Qwen3-14B": Shape(40, 8, 128),
    "Qwen/Qwen3-32B": Shape(64, 8, 128),
    "Qwen/Qwen2.5-0.5B-Instruct": Shape(24, 2, 64),
    "Qwen/Qwen2.5-7B-Instruct": Shape(28, 4, 128),
    "meta-llama/Llama-3.1-8B": Shape(32, 8, 128, adds_bos=True),
    "meta-llama/Llama-3.1-8B-Instruct": Shape(32, 8, 128, adds_bos=True),
    "meta-llama/Llama-3.1-70B": Shape(80, 8, 128, adds_bos=True),
    "meta-llama/Llama-3.1-70B-Instruct": Shape(80, 8, 128, adds_bos=True),
    "meta-llama/Llama-3.2-1B": Shape(16, 8, 64, adds_bos=True),
    "meta-llama/Llama-3.2-3B": Shape(28, 8, 128, adds_bos=True),
    "TinyLlama/TinyLlama-1.1B-Chat-v1.0": Shape(22, 4, 64, adds_bos=True),
    "mistralai/Mistral-7B-Instruct-v0.3": Shape(32, 8, 128, adds_bos=True),
    "microsoft/Phi-3-mini-4k-instruct": Shape(32, 32, 96, adds_bos=True),
}

_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "fp8": 1, "float8": 1}


def shape_of(engine: EngineSpec) -> Shape:
    """The KV shape one rank holds: the model's (``engine.shape``, the table, or a local
    config.json), its KV heads split over ``tensor_parallel_size`` ranks (at least one each:
    a head is replicated when there are more ranks than heads)."""
    model = _model_shape(engine)
    tp = engine.tensor_parallel_size or 1
    if tp == 1:
        return model
    return dataclasses.replace(model, num_kv_heads=max(1, model.num_kv_heads // tp))


def _model_shape(engine: EngineSpec) -> Shape:
    if engine.shape is not None:
        s = engine.shape
        return Shape(s.num_layers, s.num_kv_heads, s.head_dim, s.dtype_bytes, s.adds_bos)
    if engine.model in KNOWN:
        return KNOWN[engine.model]
    config = Path(engine.model) / "config.json"
    if config.is_file():
        return _from_config(config)
    raise EngineError(
        f"the reference model does not know the shape of {engine.model!r}",
        where="engine.model",
        hint="give engine.shape: {num_layers: N, num_kv_heads: N, head_dim: N, dtype_bytes: 2}"
        " (from the model's config.json), or a local model directory with a config.json; "
        "known models: " + ", ".join(sorted(KNOWN)),
    )


def _from_config(path: Path) -> Shape:
    try:
        c = json.loads(path.read_text(encoding="utf-8"))
        layers = int(c["num_hidden_layers"])
        heads = int(c["num_attention_heads"])
        kv = int(c.get("num_key_value_heads") or heads)
        head_dim = int(c.get("head_dim") or int(c["hidden_size"]) // heads)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EngineError(
            f"cannot read the model shape: {exc}",
            where=str(path),
            hint="give engine.shape in the scenario",
        ) from None
    dtype = _DTYPE_BYTES.get(str(c.get("torch_dtype", "bfloat16")), 2)
    return Shape(
        layers,
        kv,
        head_dim,
        dtype,
        adds_bos=c.get("bos_token_id") is not None
        and "llama" in str(c.get("model_type", "")).lower(),
    )
