"""The expectation grammar: what parses, what it means, and the message for what does not."""

from __future__ import annotations

import math

import pytest

from kvverify.errors import ExpressionError
from kvverify.expect import PRESETS, Scope, parse


@pytest.mark.parametrize(
    ("text", "scopes", "metric", "op", "value"),
    [
        ("reused_blocks > 0", (), "reused_blocks", ">", 0.0),
        ("cache_hit_rate>=0.5", (), "cache_hit_rate", ">=", 0.5),
        ("  reused_tokens   ==   1e3 ", (), "reused_tokens", "==", 1000.0),
        ("step[3].reused_tokens > 0", (Scope("step", 3),), "reused_tokens", ">", 0.0),
        (
            "request[18446744073709551615].input_length != -1",
            (Scope("request", 18446744073709551615),),
            "input_length",
            "!=",
            -1.0,
        ),
        (
            "rank[1].window[4096].reused_blocks <= 7",
            (Scope("rank", 1), Scope("window", 4096)),
            "reused_blocks",
            "<=",
            7.0,
        ),
        ("segment[0].missed_blocks < .5", (Scope("segment", 0),), "missed_blocks", "<", 0.5),
    ],
)
def test_parses(text: str, scopes: tuple[Scope, ...], metric: str, op: str, value: float) -> None:
    (exp,) = parse(text)
    assert (exp.scopes, exp.metric, exp.op, exp.value) == (scopes, metric, op, value)


def test_presets_expand() -> None:
    assert [e.text for e in parse("no-reuse")] == list(PRESETS["no-reuse"])
    assert [e.text for e in parse(" reuse ")] == ["reused_blocks > 0", "cache_hit_rate > 0"]


def test_comparisons_and_nan() -> None:
    (gt,) = parse("reused_blocks > 0")
    assert gt.holds(1)
    assert not gt.holds(0)
    (ne,) = parse("reused_tokens_percent != 0")
    assert not ne.holds(math.nan)  # nan is not a number: it satisfies nothing


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("reused_blocks >> 0", "expected a number, found '>'"),
        ("reused_blocks = 0", "'=' is not a comparison (did you mean '=='?)"),
        ("reused_blcoks > 0", "unknown metric 'reused_blcoks' (did you mean 'reused_blocks'?)"),
        ("stepp[3].reused_tokens > 0", "unknown scope 'stepp' (did you mean 'step'?)"),
        ("step[3].primary_blocks > 0", "unknown per-request metric 'primary_blocks'"),
        ("input_length > 0", "it is a per-request metric: scope it, e.g. step[1].input_length"),
        ("step[1.5].reused_tokens > 0", "index must be a whole number"),
        ("step[1].request[2].reused_tokens > 0", "cannot be combined"),
        ("reused_blocks > 0 and more", "unexpected 'and' after the number"),
        ("reused_blocks >", "expected a number at the end"),
        ("reused_blocks > 0 ;", "unexpected ';'"),
        ("", "empty expectation"),
    ],
)
def test_errors_say_where_what_and_how(text: str, message: str) -> None:
    with pytest.raises(ExpressionError) as info:
        parse(text)
    rendered = info.value.render()
    assert message in rendered
    if text:
        assert f"expectation {text.strip()!r}" in rendered
        assert "hint: write METRIC OP NUMBER" in rendered


def test_error_column_points_at_the_problem() -> None:
    with pytest.raises(ExpressionError) as info:
        parse("cache_hit_rate => 1")
    assert info.value.where == "expectation 'cache_hit_rate => 1', column 16"
