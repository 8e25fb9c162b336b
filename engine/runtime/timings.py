"""The engine's cycle time and latency, binned once per cycle for ``/metrics``."""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
from prometheus_client.core import HistogramMetricFamily

__all__ = ["CYCLE_BUCKETS_S", "LATENCY_BUCKETS_S", "CycleHistograms"]

CYCLE_BUCKETS_S: Final = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)
"""Upper bounds of the cycle-time histogram, seconds."""
LATENCY_BUCKETS_S: Final = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
"""Upper bounds of the receipt-to-cycle-end latency histogram, seconds."""


class _Histogram:
    """A cumulative histogram fed whole arrays at a time (numpy: one call per cycle)."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = np.asarray(bounds)
        self.counts = np.zeros(len(bounds) + 1, dtype=np.int64)  # the last: +Inf
        self.total = 0.0

    def observe(self, values: npt.NDArray[np.float64]) -> None:
        if values.size:
            self.counts += np.bincount(
                np.searchsorted(self.bounds, values), minlength=self.counts.size
            )
            self.total += float(values.sum())

    def family(self, name: str, doc: str) -> HistogramMetricFamily:
        cum = np.cumsum(self.counts).tolist()
        buckets = [(repr(b), c) for b, c in zip(self.bounds.tolist(), cum, strict=False)]
        buckets.append(("+Inf", cum[-1]))
        return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=self.total)


class CycleHistograms:
    """Engine cycle time and the latency from an event's receipt to the end of the cycle that
    applied it (its payloads built and handed to the sink), seconds."""

    def __init__(self) -> None:
        self.cycle = _Histogram(CYCLE_BUCKETS_S)
        self.latency = _Histogram(LATENCY_BUCKETS_S)

    def observe(self, cycle_s: float, latencies_ns: list[int]) -> None:
        self.cycle.observe(np.array([cycle_s]))
        if latencies_ns:
            self.latency.observe(np.asarray(latencies_ns, dtype=np.float64) / 1e9)
