"""tensorrt_llm.llmapi: KvCacheConfig, TorchLlmArgs, KvCacheRetentionConfig, LLM."""

from __future__ import annotations

from tensorrt_llm.llmapi.llm import LLM
from tensorrt_llm.llmapi.llm_args import KvCacheConfig, KvCacheRetentionConfig, TorchLlmArgs

__all__ = ["LLM", "KvCacheConfig", "KvCacheRetentionConfig", "TorchLlmArgs"]
