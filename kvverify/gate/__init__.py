"""The upgrade gate: baselines and what changed against them.

A baseline is a projection of a check result (:mod:`.baseline`); ``compare`` is a diff of two
projections (:mod:`.diff`). ``kvverify check --baseline``, ``kvverify run --baseline`` and
``kvverify compare`` share the one projection and the one diff (:mod:`.gates`); the first two
turn the findings into checks next to the usual ones, the last reports them by themselves.

This package face imports nothing: the command line names the gate's options
(:class:`.diff.Gate`) without loading the checker.
"""
