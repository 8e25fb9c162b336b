"""What riskd publishes: every payload that leaves the process, as a ``msgspec.Struct``, their
figures and units, their JSON encoding and schema, and the :class:`Sink` seam (docs/redis.md).

Every payload starts with the same :class:`Header`: ``v`` (:data:`SCHEMA_VERSION`), ``ts``
(epoch milliseconds of when the engine built the payload, on the daemon's clock; a payload
re-published after a Redis outage keeps it), ``ts_ns`` (the same in nanoseconds) and
``valuation_ts_ns`` (the time the figures are valued at: times to expiry count from it; it
moves at every full reprice, about once a second; null for a payload of no valuation). Payloads
are frozen; :func:`encode` makes their JSON (a non-finite float is null) and
:func:`payload_schema` their JSON Schema (docs/schema/riskd-payloads.json).

Modules: :mod:`~engine.outputs.figures` (names and units), :mod:`~engine.outputs.header`,
:mod:`~engine.outputs.exposure`, :mod:`~engine.outputs.attribution` (attribution, capital),
:mod:`~engine.outputs.risk` (var, stress, margin, hedge, skew,
strategy, settlement), :mod:`~engine.outputs.alert`, :mod:`~engine.outputs.heartbeat`,
:mod:`~engine.outputs.wire` (the seam, the encoding, the schema), :mod:`~engine.outputs.dashboard`
(the dashboard's WebSocket messages).
"""

from engine.outputs.alert import AlertPayload, AlertScope, AlertState, Direction
from engine.outputs.attribution import (
    AttributionPayload,
    Breakdown,
    CapitalPayload,
    MethodAttribution,
    PartFigures,
)
from engine.outputs.dashboard import (
    PROTOCOL_VERSION,
    DashboardMessage,
    Entry,
    FeedState,
    RedisState,
    ServerState,
    Snapshot,
    Update,
    VarHistory,
    dashboard_schema,
)
from engine.outputs.exposure import (
    BookExposure,
    ExpiryColumns,
    Exposure,
    UnderlyingExposure,
    expiry_rows,
)
from engine.outputs.figures import (
    BOOK_METRICS,
    FAMILIES,
    METRICS,
    RISK_METRICS,
    RISK_UNITS,
    UNITS,
    VAR_METHODS,
    Family,
    Scope,
    Severity,
    VarMethod,
)
from engine.outputs.header import NS_PER_MS, SCHEMA_VERSION, Header, Version
from engine.outputs.heartbeat import EngineStatus, FeedStatus, Heartbeat, PortfolioStatus
from engine.outputs.liquidity import LiquidityPayload, PositionLiquidity, SlippagePayload
from engine.outputs.risk import (
    FutureHedge,
    HedgePayload,
    MarginPayload,
    OptionHedge,
    Payoff,
    PortfolioMargin,
    Residual,
    SettledPosition,
    SettlementPayload,
    SkewPayload,
    SmileButterfly,
    SmilePayload,
    SpanMargin,
    StandardMargin,
    StrategyLeg,
    StrategyPayload,
    StressPayload,
    Svi,
    TermStructurePayload,
    VarPayload,
    Vector,
)
from engine.outputs.wire import (
    PAYLOAD_TYPES,
    Payload,
    Sink,
    decode_alert,
    encode,
    encode_heartbeat,
    payload_schema,
)

__all__ = [
    "BOOK_METRICS",
    "FAMILIES",
    "METRICS",
    "NS_PER_MS",
    "PAYLOAD_TYPES",
    "PROTOCOL_VERSION",
    "RISK_METRICS",
    "RISK_UNITS",
    "SCHEMA_VERSION",
    "UNITS",
    "VAR_METHODS",
    "AlertPayload",
    "AlertScope",
    "AlertState",
    "AttributionPayload",
    "BookExposure",
    "Breakdown",
    "CapitalPayload",
    "DashboardMessage",
    "Direction",
    "EngineStatus",
    "Entry",
    "ExpiryColumns",
    "Exposure",
    "Family",
    "FeedState",
    "FeedStatus",
    "FutureHedge",
    "Header",
    "Heartbeat",
    "HedgePayload",
    "LiquidityPayload",
    "MarginPayload",
    "MethodAttribution",
    "OptionHedge",
    "PartFigures",
    "Payload",
    "Payoff",
    "PortfolioMargin",
    "PortfolioStatus",
    "PositionLiquidity",
    "RedisState",
    "Residual",
    "Scope",
    "ServerState",
    "SettledPosition",
    "SettlementPayload",
    "Severity",
    "Sink",
    "SkewPayload",
    "SlippagePayload",
    "SmileButterfly",
    "SmilePayload",
    "Snapshot",
    "SpanMargin",
    "StandardMargin",
    "StrategyLeg",
    "StrategyPayload",
    "StressPayload",
    "Svi",
    "TermStructurePayload",
    "UnderlyingExposure",
    "Update",
    "VarHistory",
    "VarMethod",
    "VarPayload",
    "Vector",
    "Version",
    "dashboard_schema",
    "decode_alert",
    "encode",
    "encode_heartbeat",
    "expiry_rows",
    "payload_schema",
]
