"""Fuzz tests of every decoder: Deribit frames, MQTT payloads and JSONL lines, Tardis CSV rows,
the replay feed, the config file and the positions file.

Each decoder gets pure garbage (random bytes and text) and structure-aware mutations of valid
inputs (recorded frames and rows from ``tests/data``, messages of the JSON contract, the configs
of ``config/``): fields deleted, retyped, set to NaN, infinities, huge, negative, empty or
non-ASCII values, nested wrongly or very deeply, keys duplicated, the result cut at a random byte
or spliced with invalid UTF-8 (:mod:`tests.fuzz.strategies`). The properties: only the
documented error escapes (:class:`~engine.errors.FeedDecodeError` with a documented reason,
:class:`~engine.errors.ConfigError` naming a key path or a line), the events that come out are
sane (finite prices where the codec promises them, timestamps in int64 nanoseconds), and the
feeds' counters account for every message (``received`` = handled + dropped by reason).

The default budget (profile ``ci``) keeps the folder well under a minute on two cores. For a
long local run (about an hour), multiply every test's examples by 200; pytest-timeout's limit is
lifted for these tests then (``conftest.py``)::

    HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest -p no:cacheprovider tests/fuzz

Add ``--hypothesis-show-statistics`` to see how deep the inputs got (each test notes what
became of every input: decoded, or dropped and why). Under ``CI=true`` the examples are
derandomized (``tests/conftest.py``), so a red build replays.
"""
