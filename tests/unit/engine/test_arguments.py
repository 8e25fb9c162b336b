"""Tests for the array API shared by the wrappers (engine.arguments) as seen through engine.greeks:
numpy broadcasting, argument checking that names the culprit, any memory layout in, and the
serial and parallel kernels agreeing to the bit."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from numpy.testing import assert_array_equal

from engine import arguments, greeks, kernels
from engine.greeks import Greeks, InverseGreeks
from engine.status import Status

F64 = npt.NDArray[np.float64]
Pricer = Callable[..., Greeks]

FIELDS = ("price", "delta", "gamma", "vega", "theta", "rho", "vanna", "volga", "charm", "status")
INVERSE_FIELDS = (*FIELDS, "price_coin", "delta_adj")

# Argument names of each wrapper after is_call, and a valid value for each.
MODELS: dict[str, tuple[Pricer, dict[str, float]]] = {
    "bsm": (greeks.bsm, {"S": 100.0, "K": 95.0, "T": 0.5, "r": 0.03, "q": 0.01, "sigma": 0.25}),
    "black76": (greeks.black76, {"F": 100.0, "K": 95.0, "T": 0.5, "r": 0.03, "sigma": 0.25}),
    "inverse": (greeks.inverse, {"F": 100.0, "K": 95.0, "T": 0.5, "r": 0.03, "sigma": 0.25}),
}
MODEL_NAMES = list(MODELS)


def _fields(g: Greeks) -> tuple[str, ...]:
    return INVERSE_FIELDS if isinstance(g, InverseGreeks) else FIELDS


def _assert_same(got: Greeks, want: Greeks) -> None:
    """Every array equal to the bit (NaN in the same places), shapes included."""
    assert type(got) is type(want)
    for name in _fields(want):
        a, b = getattr(got, name), getattr(want, name)
        assert a.shape == b.shape, name
        assert_array_equal(a, b, err_msg=name, strict=True)


def _random_args(model: str, n: int, seed: int) -> dict[str, Any]:
    """n valid rows with some bad ones mixed in (every status), as float64 arrays."""
    rng = np.random.default_rng(seed)
    under = rng.uniform(10.0, 1000.0, n)
    args: dict[str, Any] = {
        "is_call": rng.random(n) < 0.5,
        "K": under * rng.uniform(0.5, 2.0, n),
        "T": rng.uniform(-0.01, 2.0, n),  # ~0.5 % expired
        "r": rng.uniform(-0.02, 0.1, n),
        "sigma": rng.uniform(-0.01, 1.5, n),  # ~0.7 % bad vol
    }
    args["S" if model == "bsm" else "F"] = under
    if model == "bsm":
        args["q"] = rng.uniform(-0.02, 0.1, n)
    args["K"][rng.random(n) < 0.003] = math.nan  # bad input
    return args


# ------------------------------------------------------------------------------- broadcasting


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_scalars_give_0d_arrays(model: str) -> None:
    pricer, good = MODELS[model]
    g = pricer(True, **good)
    for name in _fields(g):
        value = getattr(g, name)
        assert isinstance(value, np.ndarray), name
        assert value.shape == (), name
    assert g.status.dtype == np.int8
    assert g.price.dtype == np.float64
    assert g.status == Status.OK
    assert g.counts() == {}


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_broadcasts_like_numpy(model: str) -> None:
    pricer, good = MODELS[model]
    underlying = "S" if model == "bsm" else "F"
    args: dict[str, Any] = dict(good)
    args[underlying] = np.array([[90.0], [100.0], [110.0]])  # (3, 1)
    args["K"] = np.array([80.0, 95.0, 100.0, 120.0])  # (4,)
    is_call = np.array([[True], [False], [True]])  # (3, 1)
    g = pricer(is_call, **args)
    for name in _fields(g):
        assert getattr(g, name).shape == (3, 4), name
    # Each element is the scalar call on the broadcast elements.
    for i in range(3):
        for j in range(4):
            one = pricer(
                bool(is_call[i, 0]),
                **{**args, underlying: args[underlying][i, 0], "K": args["K"][j]},
            )
            for name in _fields(g):
                assert_array_equal(getattr(g, name)[i, j], getattr(one, name), err_msg=name)


def test_broadcast_returns_flat_contiguous_writable_float64() -> None:
    ro = np.arange(6.0).reshape(2, 3)
    ro.flags.writeable = False
    shape, (flag,), numbers = arguments.broadcast(
        {"is_call": [[True], [False]]}, {"a": ro, "b": 2, "c": np.arange(3, dtype=np.int32)}
    )
    assert shape == (2, 3)
    assert flag.dtype == np.bool_
    assert_array_equal(flag, [True, True, True, False, False, False])
    assert_array_equal(numbers[0], np.arange(6.0))
    assert_array_equal(numbers[1], np.full(6, 2.0))
    assert_array_equal(numbers[2], [0.0, 1.0, 2.0, 0.0, 1.0, 2.0])
    for arr in (flag, *numbers):
        assert arr.ndim == 1
        assert arr.flags.c_contiguous
        assert arr.flags.writeable
    for arr in numbers:
        assert arr.dtype == np.float64


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_empty_arrays(model: str) -> None:
    pricer, good = MODELS[model]
    g = pricer(np.ones((0, 1), dtype=bool), **{**good, "K": np.empty((0, 3))})
    for name in _fields(g):
        assert getattr(g, name).shape == (0, 3), name
    assert g.counts() == {}


# -------------------------------------------------------------------------- argument checking


def _named_in(message: str, names: list[str]) -> list[str]:
    return [name for name in names if re.search(rf"\b{re.escape(name)}\b", message)]


@pytest.mark.parametrize(
    ("model", "name"),
    [(model, name) for model, (_, good) in MODELS.items() for name in good],
)
def test_shape_mismatch_names_the_argument(model: str, name: str) -> None:
    pricer, good = MODELS[model]
    args: dict[str, Any] = {k: np.full(3, v) for k, v in good.items()}
    args[name] = np.full(4, good[name])
    with pytest.raises(ValueError, match="broadcast") as info:
        pricer(np.ones(3, dtype=bool), **args)
    assert _named_in(str(info.value), ["is_call", *good]) == [name]


def test_shape_mismatch_of_is_call_names_the_first_clash() -> None:
    # is_call comes first, so the clash is reported at the first argument that disagrees with it.
    with pytest.raises(ValueError, match=r"^S has shape \(3,\)"):
        greeks.bsm(np.ones(2, dtype=bool), np.ones(3), 1.0, 1.0, 0.0, 0.0, 0.2)


NON_NUMERIC: list[Any] = [
    "100",
    ["1", "2"],
    None,
    np.array([None, None], dtype=object),
    1 + 2j,
    np.array(["2024-01-01"], dtype="datetime64[D]"),
]


@pytest.mark.parametrize(
    ("model", "name"),
    [(model, name) for model, (_, good) in MODELS.items() for name in good],
)
@pytest.mark.parametrize("bad", NON_NUMERIC, ids=repr)
def test_non_numeric_names_the_argument(model: str, name: str, bad: Any) -> None:
    pricer, good = MODELS[model]
    with pytest.raises(ValueError, match=rf"^{name} must be a real number") as info:
        pricer(True, **{**good, name: bad})
    assert _named_in(str(info.value), ["is_call", *good]) == [name]


@pytest.mark.parametrize(
    "flag",
    [True, False, np.True_, 1, 0, np.int64(1), [0, 1, 1], np.array([1, 0], dtype=np.uint8)],
    ids=repr,
)
def test_is_call_accepts_bools_and_zero_one_ints(flag: Any) -> None:
    want = np.asarray(flag).astype(bool)
    _assert_same(
        greeks.bsm(flag, 100.0, 95.0, 0.5, 0.03, 0.01, 0.25),
        greeks.bsm(want, 100.0, 95.0, 0.5, 0.03, 0.01, 0.25),
    )


@pytest.mark.parametrize(
    "flag",
    [2, -1, [0, 2], 1.0, 0.0, np.array([1.0, 0.0]), "call", None, [True, None]],
    ids=repr,
)
@pytest.mark.parametrize("model", MODEL_NAMES)
def test_is_call_rejects_everything_else(model: str, flag: Any) -> None:
    pricer, good = MODELS[model]
    with pytest.raises(ValueError, match=r"^is_call must be a bool"):
        pricer(flag, **good)


def test_integer_inputs_are_converted() -> None:
    _assert_same(
        greeks.bsm(True, np.array([100, 120]), 95, 1, 0, 0, 0.25),
        greeks.bsm(True, np.array([100.0, 120.0]), 95.0, 1.0, 0.0, 0.0, 0.25),
    )


# ------------------------------------------------------------------------------ memory layouts


@pytest.mark.parametrize("model", MODEL_NAMES)
@pytest.mark.parametrize("layout", ["read-only", "strided", "fortran", "reversed"])
def test_any_memory_layout_gives_the_same_numbers(model: str, layout: str) -> None:
    pricer, _ = MODELS[model]
    contiguous = {k: v.reshape(6, 5) for k, v in _random_args(model, 30, seed=3).items()}
    want = pricer(**contiguous)
    args: dict[str, Any] = {}
    for name, arr in contiguous.items():
        if layout == "read-only":
            a = arr.copy()
            a.flags.writeable = False
        elif layout == "strided":
            a = np.repeat(arr, 2, axis=1)[:, ::2]  # every other column of a wider array
            assert not a.flags.c_contiguous
        elif layout == "fortran":
            a = np.asfortranarray(arr)
            assert not a.flags.c_contiguous
        else:
            a = arr[::-1, ::-1].copy()[::-1, ::-1]  # negative strides
        assert_array_equal(a, arr)
        args[name] = a
    before = {name: a.copy() for name, a in args.items()}
    got = pricer(**args)
    _assert_same(got, want)
    for name, a in args.items():  # inputs are only read
        assert_array_equal(a, before[name], err_msg=name)


# ------------------------------------------------------------------------------ parallel kernels


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_parallel_is_bit_identical_to_serial(model: str) -> None:
    pricer, _ = MODELS[model]
    args = _random_args(model, 50_000, seed=11)
    serial = pricer(**args, parallel=False)
    parallel = pricer(**args, parallel=True)
    _assert_same(parallel, serial)
    # Every status occurs, so the branches ran under prange too.
    assert set(serial.counts()) == {Status.EXPIRED, Status.BAD_VOL, Status.BAD_INPUT}


def test_use_parallel() -> None:
    n = arguments.PARALLEL_MIN_ROWS
    assert arguments.use_parallel(None, n) is True
    assert arguments.use_parallel(None, n - 1) is False
    assert arguments.use_parallel(True, 1) is True
    assert arguments.use_parallel(False, 10 * n) is False


@pytest.mark.parametrize(
    ("model", "serial", "parallel"),
    [
        ("bsm", "bsm_kernel", "bsm_parallel_kernel"),
        ("black76", "black76_kernel", "black76_parallel_kernel"),
        ("inverse", "inverse_kernel", "inverse_parallel_kernel"),
    ],
)
def test_default_dispatch_by_size(
    monkeypatch: pytest.MonkeyPatch, model: str, serial: str, parallel: str
) -> None:
    calls: list[tuple[str, int]] = []

    def spy(name: str) -> Callable[..., None]:
        kernel = getattr(kernels, name)

        def record(*args: Any) -> None:
            calls.append((name, len(args[1])))
            kernel(*args)

        return record

    monkeypatch.setattr(kernels, serial, spy(serial))
    monkeypatch.setattr(kernels, parallel, spy(parallel))
    pricer, _ = MODELS[model]
    n = arguments.PARALLEL_MIN_ROWS
    pricer(**_random_args(model, n - 1, seed=1))
    pricer(**_random_args(model, n, seed=1))
    pricer(**_random_args(model, 5, seed=1), parallel=True)
    pricer(**_random_args(model, n, seed=1), parallel=False)
    assert calls == [(serial, n - 1), (parallel, n), (parallel, 5), (serial, n)]
