"""A shard's gate (engine.runtime.shard_gate): other shards' market data, fills and positions
stop there, counted; its feeds subscribe to its own underlyings only."""

from __future__ import annotations

import logging
from pathlib import Path

import msgspec
import pytest

from engine.errors import ConfigError
from engine.events import Fill, Quote, Tick
from engine.instruments import Instrument, InstrumentRegistry, Kind
from engine.runtime.app import build
from engine.runtime.config import load_config
from engine.runtime.intake import shard_feed
from engine.runtime.positions import load_book
from engine.runtime.shard_gate import ShardGate
from engine.shards import ClusterConfig, Shard
from engine.state import Portfolio
from feeds.deribit import DeribitFeedConfig
from feeds.mqtt import MqttFeedConfig

CALL = "BTC-27DEC30-60000-C"
PUT = "ETH-27DEC30-3000-P"


def btc_gate(registry: InstrumentRegistry | None = None) -> ShardGate:
    """The gate of a shard that owns BTC."""
    shard = Shard.of(ClusterConfig(underlyings=["BTC"]))
    return ShardGate(shard, InstrumentRegistry() if registry is None else registry)


def fill(instrument: str, fid: str = "f") -> Fill:
    return Fill(
        book="main", instrument=instrument, quantity=1.0, fill_id=fid, ts_event=1, ts_recv=1
    )


def test_market_data_of_other_underlyings_is_dropped_and_counted() -> None:
    gate = btc_gate()
    assert gate.market(Tick(instrument="btc_usd", price=1.0, ts_event=1, ts_recv=1))
    assert gate.market(Quote(instrument=CALL, mark=0.1, ts_event=1, ts_recv=1))
    assert not gate.market(Tick(instrument="eth_usd", price=1.0, ts_event=1, ts_recv=1))
    assert not gate.market(Quote(instrument=PUT, mark=0.1, ts_event=1, ts_recv=1))
    assert gate.market(Tick(instrument="NOT-A-NAME", price=1.0, ts_event=1, ts_recv=1))
    assert (gate.foreign_events, gate.foreign_fills) == (2, 0)


def test_fills_of_other_underlyings_are_counted_and_logged_rate_limited(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gate = btc_gate()
    caplog.set_level(logging.WARNING, "engine.runtime.shard_gate")
    assert gate.fill(fill(CALL))
    assert gate.fill(fill("vertical:BTC-27DEC30-60000-C/70000"))  # a strategy: its legs'
    assert gate.fill(fill("MY-OWN-SWAP"))  # unknown: kept by the engine as before
    for k in range(50):
        assert not gate.fill(fill(PUT, f"e{k}"))
    assert not gate.fill(fill("vertical:ETH-27DEC30-3000-P/3500"))
    assert gate.foreign_fills == 51
    lines = [r for r in caplog.records if "another shard" in r.getMessage()]
    assert len(lines) == 1  # 51 fills within the interval: one line
    assert lines[0].__dict__["underlying"] == "ETH"


def test_positions_of_other_underlyings_are_skipped_at_load(tmp_path: Path) -> None:
    path = tmp_path / "positions.csv"
    path.write_text(
        "book,instrument,quantity,avg_price\n"
        f"other,{PUT},10,0.03\n"
        f"main,{CALL},5,0.05\n"
        "other,ETH-PERPETUAL,100,3000\n"
        "main,BTC-PERPETUAL,-1000,96000\n"
        f"main,{PUT},-2,\n"
    )
    portfolio = Portfolio(InstrumentRegistry())
    gate = btc_gate(portfolio.registry)
    load_book(path, portfolio, portfolio.registry, gate)
    assert gate.foreign_positions == 3
    assert sorted(portfolio.instruments()) == sorted(["BTC-PERPETUAL", CALL])
    whole = Portfolio(InstrumentRegistry())
    load_book(path, whole, whole.registry)
    assert len(whole.instruments()) == 4


def test_a_bad_row_of_the_shards_own_is_still_named_by_its_line(tmp_path: Path) -> None:
    path = tmp_path / "positions.csv"
    path.write_text(
        f"book,instrument,quantity\nother,{PUT},10\nmain,{CALL},5\nmain,NO-SUCH-THING,1\n"
    )
    portfolio = Portfolio(InstrumentRegistry())
    gate = btc_gate(portfolio.registry)
    with pytest.raises(ConfigError, match="line 4"):
        load_book(path, portfolio, portfolio.registry, gate)


def test_a_deribit_feed_subscribes_to_its_shards_channels() -> None:
    config = DeribitFeedConfig(
        instruments=[CALL, PUT, "ETH-PERPETUAL"],
        indices=["btc_usd", "eth_usd"],
        instrument_currencies=["BTC", "ETH", "USDC"],
        summary_currencies=["ETH", "BTC"],
    )
    narrowed = shard_feed(config, btc_gate(), [])
    assert isinstance(narrowed, DeribitFeedConfig)
    assert (narrowed.instruments, narrowed.indices) == ([CALL], ["btc_usd"])
    assert narrowed.instrument_currencies == ["BTC", "USDC"]
    assert narrowed.summary_currencies == ["BTC"]


def test_an_mqtt_feed_subscribes_to_its_shards_topics() -> None:
    registry = InstrumentRegistry()
    gate = ShardGate(Shard.of(ClusterConfig(shard_id=1, shard_count=2)), registry, frozenset())
    default = msgspec.convert({"kind": "mqtt"}, MqttFeedConfig)
    narrowed = shard_feed(default, gate, [CALL, PUT, "SPY"])  # BTC: 0, ETH and SPX: 1
    assert isinstance(narrowed, MqttFeedConfig)
    old = ["md/tick/+", "md/quote/+", "md/book/+", "fills/+"]
    assert narrowed.topics == [
        *old,
        "md/tick/ETH/+",
        "md/quote/ETH/+",
        "md/book/ETH/+",
        "fills/ETH/+",
    ]
    gate = ShardGate(gate.shard, registry, frozenset({"SPX"}))  # named by the configuration
    assert "md/quote/SPX/+" in shard_feed(default, gate, [PUT]).topics  # type: ignore[union-attr]
    custom = msgspec.structs.replace(default, topics=["mine/#"])
    assert shard_feed(custom, gate, [PUT]) == custom  # topics of one's own: as given


def test_a_listed_underlying_nothing_names_is_refused(tmp_path: Path) -> None:
    (tmp_path / "positions.csv").write_text(f"book,instrument,quantity\nmain,{CALL},5\n")
    path = tmp_path / "riskd.toml"
    base = '[portfolio]\npositions = "positions.csv"\n[redis]\nurl = "redis://127.0.0.1:1/0"\n'
    path.write_text(f'{base}[cluster]\nunderlyings = ["BTC", "BTCC"]\n')
    with pytest.raises(
        ConfigError, match=r"unknown underlying 'BTCC'.*\$\.cluster\.underlyings\[1\]"
    ):
        build(load_config(path), path)
    path.write_text(
        '[redis]\nurl = "redis://127.0.0.1:1/0"\n[portfolio]\npositions = "positions.csv"\n'
        '[portfolio.underlyings.BTCC]\nrate = 0.0\n[cluster]\nunderlyings = ["BTC", "BTCC"]\n'
    )
    daemon = build(load_config(path), path)  # named by [portfolio.underlyings]: known
    assert daemon.inbox.gate is not None
    assert daemon.sink.base == "{risk:BTC-BTCC}"


def test_a_kept_fill_found_to_be_another_shards_is_counted_not_applied(tmp_path: Path) -> None:
    """A fill of an instrument the shard cannot name is kept (its shard unknown); once the
    instrument is known, it is applied if it is the shard's, counted if it is another's."""
    path = tmp_path / "riskd.toml"
    path.write_text(
        '[redis]\nurl = "redis://127.0.0.1:1/0"\n[portfolio.underlyings.BTC]\n'
        '[cluster]\nunderlyings = ["BTC"]\n'
    )
    daemon = build(load_config(path), path)
    gate, engine = daemon.inbox.gate, daemon.engine
    assert gate is not None
    for name in ("MY-BTC-SWAP", "MY-ETH-SWAP"):
        engine.apply_fill(fill(name, name))
    assert len(daemon.portfolio.unresolved_fills) == 2
    engine.retry_unresolved()  # still unknown: still kept
    assert (len(daemon.portfolio.unresolved_fills), gate.foreign_fills) == (2, 0)
    for name, underlying in (("MY-BTC-SWAP", "BTC"), ("MY-ETH-SWAP", "ETH")):
        daemon.registry.add(
            Instrument(name=name, kind=Kind.SPOT, underlying=underlying, index=name, venue="otc")
        )
    engine.retry_unresolved()
    assert daemon.portfolio.unresolved_fills == []
    assert gate.foreign_fills == 1
    assert daemon.portfolio.instruments() == ["MY-BTC-SWAP"]
