"""The argument models, as llm_args.py defines them (1.2-era fields)."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class StrictBaseModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


_NEW = os.environ.get("STANDIN_VERSION", "1.2.0rc2") >= "1.4"


class KvCacheConfig(StrictBaseModel):
    enable_block_reuse: bool = True
    max_tokens: int | None = None
    max_attention_window: list[int] | None = None
    sink_token_length: int | None = None
    free_gpu_memory_fraction: float | None = Field(default=0.9, ge=0, le=1)
    host_cache_size: int | None = None
    onboard_blocks: bool = True
    cross_kv_cache_fraction: float | None = None
    secondary_offload_min_priority: int | None = None
    event_buffer_max_size: int = 0
    enable_partial_reuse: bool = True
    copy_on_partial_reuse: bool = True
    use_uvm: bool = False
    dtype: str = "auto"
    tokens_per_block: int = 32
    if _NEW:
        use_kv_cache_manager_v2: bool | Literal["auto"] = "auto"


class TorchLlmArgs(StrictBaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    model: str
    tokenizer: Any = None
    tensor_parallel_size: int = 1
    dtype: str = "auto"
    max_batch_size: int | None = 2048
    max_num_tokens: int | None = 8192
    max_seq_len: int | None = None
    max_beam_width: int | None = 1
    kv_cache_config: KvCacheConfig = Field(default_factory=KvCacheConfig)
    enable_chunked_prefill: bool = False
    return_perf_metrics: bool = False
    enable_iter_perf_stats: bool = False
    enable_iter_req_stats: bool = False
    backend: str | None = "pytorch"


class KvCacheRetentionConfig:
    """The C++ binding class, with TokenRangeRetentionConfig nested in it."""

    class TokenRangeRetentionConfig:
        def __init__(
            self,
            token_start: int,
            token_end: int | None,
            priority: int,
            duration_ms: timedelta | None = None,
        ) -> None:
            self.token_start = token_start
            self.token_end = token_end
            self.priority = priority
            self.duration_ms = duration_ms

    def __init__(
        self,
        token_range_retention_configs: list[TokenRangeRetentionConfig],
        decode_retention_priority: int = 35,
        decode_duration_ms: timedelta | None = None,
    ) -> None:
        self.token_range_retention_configs = token_range_retention_configs
        self.decode_retention_priority = decode_retention_priority
        self.decode_duration_ms = decode_duration_ms
