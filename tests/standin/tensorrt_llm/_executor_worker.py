"""The executor worker: owns the KV cache and prints C++-style lines to file descriptor 1.

A deliberately simple cache, independent of kvverify's reference model: whole blocks of the
prompt's first L-1 tokens are looked up by prefix; stored blocks live on the GPU or in the host
pool; the least recently used GPU block is evicted and, when a host pool exists, offloaded to it;
a block found in the host pool is onboarded. The summary is printed when the manager is
destroyed, at shutdown.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
from collections import OrderedDict
from typing import Any

from kvverify.engines.sim.dialects import DIALECTS, LogWriter

BYTES_PER_TOKEN = 147456  # Qwen3-8B, bf16
WINDOW_FALLBACK = 4096


def write(text: str) -> None:
    data = text.encode()
    while data:
        data = data[os.write(1, data) :]


class Writer(LogWriter):
    """The C++ logger: reads TLLM_LOG_LEVEL when it is built; DEBUG lines only at DEBUG."""

    def line(self, level: str, fmt: str, *args: object) -> None:
        wanted = os.environ.get("TLLM_LOG_LEVEL", "ERROR").upper()
        order = ["TRACE", "DEBUG", "INFO", "WARNING", "ERROR"]
        if order.index(level) >= order.index(wanted if wanted in order else "ERROR"):
            super().line(level, fmt, *args)


class Cache:
    def __init__(self, cfg: dict[str, Any], w: Writer) -> None:
        kv = cfg["kv"]
        self.w = w
        self.tpb = kv["tokens_per_block"]
        self.window = cfg["max_seq_len"] or WINDOW_FALLBACK
        self.primary = math.ceil((kv["max_tokens"] or 65536) / self.tpb)
        self.secondary = int((kv["host_cache_size"] or 0) / BYTES_PER_TOKEN / self.tpb)
        self.reuse = kv["enable_block_reuse"]
        self.gpu: OrderedDict[tuple[int, ...], int] = OrderedDict()  # prefix -> block id
        self.host: OrderedDict[tuple[int, ...], int] = OrderedDict()
        self.next_id = 0
        self.c = dict.fromkeys(
            (
                "allocated_total_blocks",
                "allocated_new_blocks",
                "missed_blocks",
                "reused_blocks",
                "reused_unique_blocks",
                "reused_tokens",
                "input_tokens",
            ),
            0,
        )
        self.offloads = self.onboards = 0
        self.events: list[dict[str, Any]] = []
        self.event_ids = 0
        self.events_on = kv["event_buffer_max_size"] > 0
        w.construct(
            self.window,
            self.primary,
            self.secondary,
            self.tpb,
            reuse=self.reuse,
            max_seq_len=cfg["max_seq_len"] or WINDOW_FALLBACK,
        )

    def _event(self, data: dict[str, Any]) -> None:
        if self.events_on:
            self.events.append(
                {"event_id": self.event_ids, "data": data, "window_size": self.window}
            )
            self.event_ids += 1

    def _free_gpu_block(self, request: int, in_use: int) -> int:
        """A GPU block for a new block: evicts the least recently used stored block when full."""
        self.c["allocated_total_blocks"] += 1
        self.c["allocated_new_blocks"] += 1
        if len(self.gpu) + in_use >= self.primary and self.gpu:
            prefix, victim = self.gpu.popitem(last=False)
            if self.secondary:
                if len(self.host) >= self.secondary:
                    old, _ = self.host.popitem(last=False)
                    self._event({"type": "removed", "block_hashes": [hash(old)]})
                slot = self._new_id()
                self.w.copy(victim, slot, offload=True)
                self.host[prefix] = slot
                self.offloads += 1
                self._event(
                    {
                        "type": "updated",
                        "block_hash": hash(prefix),
                        "cache_level": {"type": "event_diff", "new_value": 1, "old_value": 0},
                    }
                )
            else:
                self._event({"type": "removed", "block_hashes": [hash(prefix)]})
        block = self._new_id()
        self.w.free_block(block, request, self.window)
        return block

    def _new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def request(self, rid: int, tokens: list[int], gen: int) -> dict[str, Any]:
        keys = [
            tuple(tokens[: i + self.tpb])
            for i in range(0, len(tokens) - 1, self.tpb)
            if i + self.tpb <= len(tokens) - 1
        ]
        n_blocks = math.ceil(len(tokens) / self.tpb)
        before = dict(self.c)
        reused = 0
        held = 0
        if self.reuse:
            for key in keys:
                if key in self.gpu:
                    block = self.gpu.pop(key)
                    self.w.lookup("matched", block, rid, self.window)
                elif key in self.host:
                    slot = self.host.pop(key)
                    self.w.lookup("matched", slot, rid, self.window)
                    block = self._free_gpu_block(rid, held)
                    self.w.copy(slot, block, offload=False)
                    self.onboards += 1
                    self._event(
                        {
                            "type": "updated",
                            "block_hash": hash(key),
                            "cache_level": {"type": "event_diff", "new_value": 0, "old_value": 1},
                        }
                    )
                else:
                    break
                reused += 1
                held += 1
        for _ in range(n_blocks - reused):
            block = self._free_gpu_block(rid, held)
            held += 1
            self.w.lookup("missed", block, rid, self.window)
        pre = reused * self.tpb
        self.c["reused_blocks"] += reused
        self.c["reused_unique_blocks"] += reused
        self.c["missed_blocks"] += n_blocks - reused
        self.c["reused_tokens"] += pre
        self.c["input_tokens"] += len(tokens)
        if self.reuse:
            self.w.add_sequence(rid, len(tokens), pre, self.window)
        total = len(tokens) + gen
        for _ in range(math.ceil(total / self.tpb) - n_blocks):
            self._free_gpu_block(rid, held)
            held += 1
        output = [(sum(tokens) + i) % 32000 + 1 for i in range(gen)]
        full = tokens + output
        stored = 0
        if self.reuse:
            for i in range(0, total - 1, self.tpb):
                key = tuple(full[: i + self.tpb])
                if len(key) == i + self.tpb and key not in self.gpu:
                    self.gpu[key] = self._new_id()
                    self._event(
                        {
                            "type": "stored",
                            "parent_hash": None,
                            "blocks": [
                                {
                                    "type": "stored_block",
                                    "block_hash": hash(key),
                                    "tokens": [],
                                    "cache_level": 0,
                                    "priority": 35,
                                }
                            ],
                        }
                    )
                    stored += 1
                elif key in self.gpu:
                    self.gpu.move_to_end(key)
            while len(self.gpu) > self.primary:
                self.gpu.popitem(last=False)
            self.w.release(rid, stored, self.window)
        kv = {
            "total": self.c["allocated_total_blocks"] - before["allocated_total_blocks"],
            "new": self.c["allocated_new_blocks"] - before["allocated_new_blocks"],
            "reused": reused,
            "missed": n_blocks - reused,
        }
        return {"output": output, "kv": kv, "cached_tokens": pre}


def main() -> int:
    requests, replies = (
        os.fdopen(int(fd), mode) for fd, mode in zip(sys.argv[1:3], "rw", strict=False)
    )
    fault, _, at_raw = os.environ.get("STANDIN_FAULT", "").partition(":")
    at = int(at_raw) if at_raw else None
    # How this process takes SIGTERM: "ignore" it (a stuck CUDA call), or "report" (print a
    # few lines, as a shutting-down engine does, then exit).
    term = os.environ.get("STANDIN_TERM")
    if term == "ignore":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    elif term == "report":

        def on_term(_signum: int, _frame: object) -> None:
            for i in range(3):
                write(f"[TensorRT-LLM][ERROR] executor worker stopping on SIGTERM ({i})\n")
            os._exit(143)

        signal.signal(signal.SIGTERM, on_term)
    version = os.environ.get("STANDIN_VERSION", "1.2.0rc2")
    dialect = DIALECTS["2026" if version >= "1.4" else "1.2"]
    w = Writer(dialect, write)
    cache: Cache | None = None
    cfg: dict[str, Any] = {}
    step = 0
    stats: list[dict[str, Any]] = []
    for raw in requests:
        msg = json.loads(raw)
        op = msg["op"]
        reply: dict[str, Any] = {}
        if op == "init":
            cfg = msg["config"]
            write(f"[TensorRT-LLM] TensorRT LLM version: {version}\n")
            cache = Cache(cfg, w)
        elif op == "generate":
            assert cache is not None
            step += 1
            if at == step and fault == "crash":
                os.kill(os.getpid(), signal.SIGSEGV)
            if at == step and fault == "hang":
                while True:
                    time.sleep(3600)
            if at == step and fault == "cuda-error":
                w.error(
                    "CUDA runtime error in cudaMemcpyAsync: an illegal memory access was "
                    "encountered"
                )
                reply = {
                    "error": "Executor worker returned error: CUDA error: an illegal "
                    "memory access was encountered"
                }
            else:
                rid = cfg["max_batch_size"] + step - 1  # executor ids start at max_batch_size
                gen = min(msg["max_tokens"], cfg["max_seq_len"] - len(msg["tokens"]))
                reply = cache.request(rid, msg["tokens"], max(gen, 1))
                c = cache.c
                stat: dict[str, Any] = {
                    "iter": step,
                    "kvCacheStats": {
                        "maxNumBlocks": cache.primary,
                        "tokensPerBlock": cache.tpb,
                        "allocTotalBlocks": c["allocated_total_blocks"],
                        "reusedBlocks": c["reused_blocks"],
                        "missedBlocks": c["missed_blocks"],
                    },
                }
                if version >= "1.4":
                    stat["kvCacheIterationStats"] = {
                        str(cache.window): {
                            "iterOffloadBlocks": cache.offloads,
                            "iterOnboardBlocks": cache.onboards,
                        }
                    }
                    cache.offloads = cache.onboards = 0
                stats.append(stat)
        elif op == "stats":
            reply = {"stats": stats}
            stats = []
        elif op == "events":
            assert cache is not None
            reply = {"events": cache.events}
            cache.events = []
        elif op == "shutdown":
            break
        replies.write(json.dumps(reply) + "\n")
        replies.flush()
    # The manager is destroyed: it prints its summary (unless it never is).
    if fault == "no-summary" or cfg.get("v2"):
        os._exit(0)
    if cache is not None:
        cache.w.summary(cache.window, cache.c)
    return 0


if __name__ == "__main__":
    sys.exit(main())
