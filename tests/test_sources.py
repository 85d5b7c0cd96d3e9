"""Reading logs: compression recognised by content, broken and odd inputs."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
from pathlib import Path

import pytest
import zstandard
from logmaker import seed_log

from kvverify.errors import InputError
from kvverify.evidence.sources import LogSource

LOG = seed_log("1.2").encode()

COMPRESSORS = {
    "gzip": gzip.compress,
    "xz": lzma.compress,
    "bzip2": bz2.compress,
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
}


def read(path: Path | str, size: int = 1 << 20) -> tuple[bytes, LogSource]:
    src = LogSource(str(path))
    return b"".join(src.chunks(size)), src


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_compression_is_recognised_by_content_not_name(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "run.log"  # a misleading name: no extension says it is compressed
    path.write_bytes(COMPRESSORS[kind](LOG))
    data, src = read(path, size=100)
    assert data == LOG
    assert src.compression == kind
    assert src.problem is None


def test_plain_log_with_a_compressed_looking_name(tmp_path: Path) -> None:
    path = tmp_path / "run.log.gz"
    path.write_bytes(LOG)
    data, src = read(path)
    assert data == LOG
    assert src.compression is None


def test_concatenated_gzip_members_and_zstd_frames(tmp_path: Path) -> None:
    half = len(LOG) // 2
    (tmp_path / "a").write_bytes(gzip.compress(LOG[:half]) + gzip.compress(LOG[half:]))
    c = zstandard.ZstdCompressor()
    (tmp_path / "b").write_bytes(c.compress(LOG[:half]) + c.compress(LOG[half:]))
    assert read(tmp_path / "a")[0] == LOG
    assert read(tmp_path / "b")[0] == LOG


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_a_truncated_compressed_log_is_read_up_to_the_break(tmp_path: Path, kind: str) -> None:
    # 6 MB of lines that differ (a crashed run's log, cut while it was being compressed)
    big = b"".join(b"%d %s" % (i, line) for i, line in enumerate(LOG.splitlines(True) * 300))
    blob = COMPRESSORS[kind](big)
    path = tmp_path / "cut"
    path.write_bytes(blob[: len(blob) * 2 // 3])
    data, src = read(path, size=1 << 20)
    assert src.problem is not None
    assert kind in src.problem
    assert big.startswith(data)
    # Everything before the cut is kept, but the block being decoded: bzip2 blocks hold up to
    # 900 kB of input, zstd blocks 128 kB.
    assert len(data) > len(big) * 2 // 3 - 1_000_000


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.log"
    path.touch()
    assert read(path)[0] == b""


def test_missing_path_and_directory_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        LogSource(str(tmp_path / "nope.log"))
    with pytest.raises(InputError, match="is a directory") as info:
        LogSource(str(tmp_path))
    assert info.value.hint is not None
    assert "*.log" in info.value.hint


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads everything")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "secret.log"
    path.write_bytes(LOG)
    path.chmod(0)
    with pytest.raises(InputError, match="permission denied"):
        LogSource(str(path))
