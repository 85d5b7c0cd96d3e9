"""Stand-in for tensorrt_llm (see tests/standin/README.md)."""

from __future__ import annotations

import os
import sys

__version__ = os.environ.get("STANDIN_VERSION", "1.2.0rc2")

# Like tensorrt_llm/logger.py: the level is read once, when the package is imported.
LOG_LEVEL = os.environ.get("TLLM_LOG_LEVEL", "error").lower()

from tensorrt_llm.llmapi.llm import LLM  # noqa: E402
from tensorrt_llm.sampling_params import SamplingParams  # noqa: E402

__all__ = ["LLM", "SamplingParams", "__version__"]

print(f"[TensorRT-LLM] TensorRT LLM version: {__version__}")
sys.stdout.flush()
