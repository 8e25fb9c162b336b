"""The payload types of engine.outputs: the header, the JSON encoding (NaN and inf as null, numpy
values converted), the heartbeat's two parts as one object, reading back a predecessor's alert,
and the JSON Schema (the checked-in file is the generated one; every payload type, built with
neutral values, validates). What the daemon really writes is checked against the schema in
tests/integration/test_schema.py."""

from __future__ import annotations

import json
import math
from typing import Any

import jsonschema
import msgspec
import numpy as np
import pytest

from engine.outputs import (
    FAMILIES,
    PAYLOAD_TYPES,
    SCHEMA_VERSION,
    AlertPayload,
    BookExposure,
    EngineStatus,
    ExpiryColumns,
    FeedStatus,
    Heartbeat,
    UnderlyingExposure,
    decode_alert,
    encode,
    encode_heartbeat,
    expiry_rows,
    payload_schema,
)
from engine.runtime.cli import SCHEMA_FILE, main
from tests.factories import T0_NS, alert, payload


def test_the_checked_in_schema_is_the_generated_one(capsys: pytest.CaptureFixture[str]) -> None:
    """docs/schema/riskd-payloads.json is what ``riskd schema`` prints now: regenerate it with
    ``scripts/riskd schema -o docs/schema/riskd-payloads.json`` after changing a payload."""
    checked_in = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert checked_in == payload_schema()
    assert main(["schema"]) == 0
    assert capsys.readouterr().out == SCHEMA_FILE.read_text(encoding="utf-8")
    jsonschema.Draft202012Validator.check_schema(checked_in)
    assert checked_in["title"].endswith(f"version {SCHEMA_VERSION}")
    assert set(checked_in["$defs"]) >= {*FAMILIES, "alert", "heartbeat"}


def test_every_field_is_required_but_the_optional_ones_of_an_alert() -> None:
    defs = payload_schema()["$defs"]
    for name, node in defs.items():
        if "properties" in node:
            optional = set(node["properties"]) - set(node["required"])
            assert optional == ({"feed", "reason"} if name == "AlertPayload" else set()), name


@pytest.mark.parametrize(
    "cls", [t for family, types in PAYLOAD_TYPES.items() for t in types], ids=lambda t: t.__name__
)
def test_a_payload_of_neutral_values_validates(cls: Any) -> None:
    """Every field present, NaN figures as null (allowed wherever a number is)."""
    family = next(f for f, types in PAYLOAD_TYPES.items() if cls in types)
    schema = payload_schema()
    validator = jsonschema.Draft202012Validator(
        {"$defs": schema["$defs"], "$ref": f"#/$defs/{family}"}
    )
    data = msgspec.json.decode(encode(payload(cls)))
    assert not [e.message for e in validator.iter_errors(data)]
    assert data["v"] == SCHEMA_VERSION


def test_the_header_derives_ts_from_ts_ns() -> None:
    p = payload(BookExposure, ts_ns=1_700_000_000_123_456_789, valuation_ts_ns=5)
    assert (p.v, p.ts, p.ts_ns, p.valuation_ts_ns) == (
        SCHEMA_VERSION,
        1_700_000_000_123,
        p.ts_ns,
        5,
    )
    again = msgspec.structs.replace(p, ts_ns=2_000_000_000_000_000_000)
    assert again.ts == 2_000_000_000_000
    head = list(msgspec.json.decode(encode(p)))[:4]
    assert head == ["v", "ts", "ts_ns", "valuation_ts_ns"]


def test_non_finite_figures_go_out_as_null_and_numpy_values_as_numbers() -> None:
    p = payload(
        BookExposure,
        delta_usd=math.inf,
        vega=np.float64(2.5),
        pnl=-math.inf,
        n_positions=np.int64(3),
    )
    data = msgspec.json.decode(encode(p))
    assert (data["delta_usd"], data["vega"], data["pnl"], data["n_positions"]) == (
        None,
        2.5,
        None,
        3,
    )
    assert data["market_value"] is None  # NaN
    with pytest.raises(TypeError, match="cannot encode"):
        encode(payload(BookExposure, pnl=object()))


def test_the_heartbeat_is_one_object_engine_counters_first() -> None:
    engine = payload(
        EngineStatus, lots=3, feeds={"sim": FeedStatus(connected=True, received=9, dropped=0)}
    )
    beat = payload(Heartbeat, published=7, ts_ns=T0_NS)
    data = msgspec.json.decode(encode_heartbeat(beat, engine))
    assert next(iter(data)) == "instruments"
    assert (data["lots"], data["published"], data["v"]) == (3, 7, SCHEMA_VERSION)
    assert data["feeds"] == {"sim": {"connected": True, "received": 9, "dropped": 0}}
    assert msgspec.json.decode(encode_heartbeat(beat, None)) == msgspec.to_builtins(beat)


def test_a_stale_feed_alert_has_a_feed_a_rule_alert_has_none() -> None:
    rule = msgspec.json.decode(encode(alert("r:main")))
    assert "feed" not in rule
    assert "reason" not in rule
    stale = msgspec.json.decode(encode(alert("stale_feed:sim", feed="sim", scope="feed")))
    assert stale["feed"] == "sim"


def test_an_alert_of_an_earlier_version_is_read_back_as_this_one() -> None:
    mine = alert("r:main", value=4.0, valuation_ts_ns=9)
    assert decode_alert(encode(mine), "r:main") == mine
    v2 = {k: v for k, v in msgspec.json.decode(encode(mine)).items() if k != "valuation_ts_ns"}
    old = decode_alert(json.dumps(v2 | {"v": 2}).encode(), "r:main")
    assert isinstance(old, AlertPayload)
    assert (old.v, old.valuation_ts_ns, old.value) == (SCHEMA_VERSION, None, 4.0)
    assert decode_alert(encode(mine), "other:id") is None  # not the field's alert
    assert decode_alert(b"not json", "r:main") is None
    assert decode_alert(b'{"id": "r:main", "state": "maybe"}', "r:main") is None


def test_expiry_rows() -> None:
    cols = payload(ExpiryColumns, expiry=["a", "b"], delta=[1.0, 2.0], n_positions=[1, 0])
    cols = msgspec.structs.replace(
        cols,
        **{
            f: [0.0, 0.0]
            for f in cols.__struct_fields__
            if f not in ("expiry", "delta", "n_positions")
        },
    )
    rows = expiry_rows(cols)
    assert [(r["expiry"], r["delta"], r["n_positions"]) for r in rows] == [
        ("a", 1.0, 1),
        ("b", 2.0, 0),
    ]
    assert isinstance(payload(UnderlyingExposure, expiries=cols).expiries, ExpiryColumns)
