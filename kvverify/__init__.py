"""kvverify: verify TensorRT-LLM KV-cache block reuse and host offloading from its logs."""

from __future__ import annotations

__version__ = "0.1.0"
