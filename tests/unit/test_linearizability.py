"""Tests of the linearizability checker: Jepsen etcd histories, hand-made histories,
and a property over histories produced by a real sequential register."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster_actors.testing.linearizability import (
    UNKNOWN,
    CheckResult,
    KVModel,
    Model,
    Operation,
    RegisterModel,
    Verdict,
    check_operations,
    parse_jepsen_log,
)
from tests.conftest import PROJECT_ROOT

_SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data" / "jepsen-etcd"
DATA_DIR = _SHARED_DATA if _SHARED_DATA.is_dir() else PROJECT_ROOT / "tests" / "data" / "jepsen-etcd"
_VERDICTS = {"linearizable": Verdict.LINEARIZABLE, "not-linearizable": Verdict.NOT_LINEARIZABLE}
EXPECTED = {row["file"]: _VERDICTS[row["expected"]]
            for row in csv.DictReader((DATA_DIR / "expected.tsv").open(), delimiter="\t")}
# A hang guard only: the 5 s target of the slowest history is a figure measured
# by benchmarks/check_jepsen.py (about 0.4 s on an idle machine), not a timed assertion.
HANG_GUARD_SECONDS = 60.0

REGISTER = RegisterModel()
KV = KVModel()


def op(client: int, input: tuple, call: float, ret: float | None, output: object = UNKNOWN,
       ) -> Operation:
    return Operation(client, input, call, ret, output)


def check(ops: list[Operation], model: Model = REGISTER) -> CheckResult:
    return check_operations(model, ops)


# --- the 102 Jepsen etcd histories ---------------------------------------------------

def test_data_set_is_complete() -> None:
    assert len(EXPECTED) == 102
    assert sum(v is Verdict.LINEARIZABLE for v in EXPECTED.values()) == 23


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_jepsen_etcd_history(name: str) -> None:
    ops = parse_jepsen_log(DATA_DIR / name)
    started = time.monotonic()
    result = check_operations(REGISTER, ops)
    elapsed = time.monotonic() - started
    assert result.verdict is EXPECTED[name], result.explain(REGISTER)
    assert elapsed < HANG_GUARD_SECONDS  # hang guard only
    if result.verdict is Verdict.NOT_LINEARIZABLE:
        assert result.blocked is not None
        assert result.blocked in result.pending
        assert len(result.linearized) < len(ops)


def test_failure_report_prefix_replays_on_the_model() -> None:
    result = check_operations(REGISTER, parse_jepsen_log(DATA_DIR / "etcd_000.log"))
    assert result.verdict is Verdict.NOT_LINEARIZABLE
    state = REGISTER.init()
    for operation in result.linearized:
        ok, state = REGISTER.step(state, operation.input, operation.output)
        assert ok
    assert state == result.state
    assert "NOT linearizable" in result.explain(REGISTER)


# --- the Jepsen log parser ---------------------------------------------------------

def test_parse_jepsen_log_covers_every_line_kind(tmp_path: Path) -> None:
    log = tmp_path / "h.log"
    log.write_text("\n".join([
        "INFO  jepsen.util - 0\t:invoke\t:read\tnil",         # 0
        "INFO  jepsen.util - 1\t:invoke\t:write\t4",          # 1
        "INFO  jepsen.core - some other line",                # 2
        "INFO  jepsen.util - 0\t:ok\t:read\tnil",             # 3
        "INFO  jepsen.util - 1\t:ok\t:write\t4",              # 4
        "INFO  jepsen.util - 2\t:invoke\t:cas\t[4 1]",        # 5
        "INFO  jepsen.util - 3\t:invoke\t:cas\t[0 2]",        # 6
        "INFO  jepsen.util - 2\t:ok\t:cas\t[4 1]",            # 7
        "INFO  jepsen.util - 3\t:fail\t:cas\t[0 2]",          # 8
        "INFO  jepsen.util - 0\t:invoke\t:read\tnil",         # 9
        "INFO  jepsen.util - 0\t:fail\t:read\t:timed-out",    # 10
        "INFO  jepsen.util - 1\t:invoke\t:write\t3",          # 11
        "INFO  jepsen.util - 1\t:info\t:write\t:timed-out",   # 12
        "INFO  jepsen.util - 4\t:invoke\t:read\tnil",         # 13
        "INFO  jepsen.util - 4\t:ok\t:read\t1",               # 14
    ]) + "\n")
    assert parse_jepsen_log(log) == [
        Operation(0, ("read",), 0, 3, None),
        Operation(1, ("write", 4), 1, 4, None),
        Operation(2, ("cas", 4, 1), 5, 7, True),
        Operation(3, ("cas", 0, 2), 6, 8, False),
        Operation(0, ("read",), 9, 10, UNKNOWN),
        Operation(1, ("write", 3), 11, None, UNKNOWN),
        Operation(4, ("read",), 13, 14, 1),
    ]


@pytest.mark.parametrize("lines", [
    ["INFO  jepsen.util - 0\t:ok\t:read\tnil"],
    ["INFO  jepsen.util - 0\t:invoke\t:read\tnil", "INFO  jepsen.util - 0\t:invoke\t:read\tnil"],
    ["INFO  jepsen.util - 0\t:invoke\t:frobnicate\t1"],
    ["INFO  jepsen.util - garbage"],
])
def test_parse_jepsen_log_rejects_malformed_logs(tmp_path: Path, lines: list[str]) -> None:
    log = tmp_path / "bad.log"
    log.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"bad\.log:"):
        parse_jepsen_log(log)


# --- hand-made register histories -------------------------------------------------

def test_empty_history_is_linearizable() -> None:
    assert check([]).verdict is Verdict.LINEARIZABLE


def test_sequential_history_is_linearizable() -> None:
    ops = [op(0, ("read",), 0, 1, None), op(0, ("write", 1), 2, 3, None),
           op(1, ("read",), 4, 5, 1), op(1, ("cas", 1, 2), 6, 7, True),
           op(0, ("cas", 1, 3), 8, 9, False), op(2, ("read",), 10, 11, 2)]
    result = check(ops)
    assert result.ok and result.verdict is Verdict.LINEARIZABLE
    assert result.partitions == 1


def test_stale_read_is_not_linearizable_and_is_reported() -> None:
    stale = op(2, ("read",), 4, 5, 1)
    ops = [op(0, ("write", 1), 0, 1, None), op(1, ("write", 2), 2, 3, None), stale]
    result = check(ops)
    assert result.verdict is Verdict.NOT_LINEARIZABLE
    assert result.blocked == stale
    assert result.pending == (stale,)
    assert result.linearized == tuple(ops[:2])
    assert result.state == 2
    text = result.explain(REGISTER)
    assert "read() -> 1" in text and "write(2)" in text


def test_wrong_cas_outcome_is_not_linearizable() -> None:
    ops = [op(0, ("write", 1), 0, 1, None), op(1, ("cas", 1, 2), 2, 3, False)]
    assert check(ops).verdict is Verdict.NOT_LINEARIZABLE


def test_concurrent_writes_order_fixed_by_reads() -> None:
    w1, w2 = op(0, ("write", 1), 0, 10, None), op(1, ("write", 2), 0, 10, None)
    # Only w1 then w2 explains a final read of 2, and only w2 then w1 one of 1.
    assert check([w1, w2, op(2, ("read",), 11, 12, 2)]).ok
    assert check([w1, w2, op(2, ("read",), 11, 12, 1)]).ok
    # Reads during the writes fix w1 before w2: a later read of 1 is impossible.
    during = [op(2, ("read",), 1, 2, 1), op(2, ("read",), 3, 4, 2)]
    assert check([w1, w2, *during, op(2, ("read",), 11, 12, 2)]).ok
    assert check([w1, w2, *during, op(2, ("read",), 11, 12, 1)]).verdict \
        is Verdict.NOT_LINEARIZABLE
    # Two readers that disagree on the order after both writes finished.
    assert check([w1, w2, op(2, ("read",), 11, 12, 1), op(3, ("read",), 13, 14, 2)]).verdict \
        is Verdict.NOT_LINEARIZABLE


def test_calls_first_on_ties_makes_touching_operations_concurrent() -> None:
    # The write returns at 5, the read is called at 5: they overlap.
    ops = [op(0, ("write", 1), 0, 5, None), op(1, ("read",), 5, 6, None)]
    assert check(ops).ok


def test_unknown_write_may_or_may_not_take_effect() -> None:
    base = [op(0, ("write", 1), 0, 1, None), op(1, ("write", 2), 2, None)]  # client 1 crashed
    assert base[1].outcome_unknown
    never_seen = [op(2, ("read",), 3, 4, 1), op(2, ("read",), 5, 6, 1)]
    took_effect = [op(2, ("read",), 3, 4, 2), op(2, ("read",), 5, 6, 2)]
    late = [op(2, ("read",), 3, 4, 1), op(2, ("read",), 5, 6, 2)]
    undone = [op(2, ("read",), 3, 4, 2), op(2, ("read",), 5, 6, 1)]
    assert check(base + never_seen).ok
    assert check(base + took_effect).ok
    assert check(base + late).ok
    assert check(base + undone).verdict is Verdict.NOT_LINEARIZABLE


def test_unknown_cas_is_considered_both_ways() -> None:
    base = [op(0, ("write", 1), 0, 1, None), op(1, ("cas", 1, 3), 2, None)]
    assert check([*base, op(2, ("read",), 3, 4, 1)]).ok
    assert check([*base, op(2, ("read",), 3, 4, 3)]).ok
    assert check([*base, op(2, ("read",), 3, 4, 7)]).verdict is Verdict.NOT_LINEARIZABLE


def test_timed_out_read_accepts_any_value_but_only_within_its_interval() -> None:
    ops = [op(0, ("write", 1), 0, 1, None), op(1, ("read",), 2, 3, UNKNOWN),
           op(2, ("read",), 4, 5, 1)]
    assert check(ops).ok


def test_operation_returning_before_its_call_is_rejected() -> None:
    with pytest.raises(ValueError, match="before its call"):
        Operation(0, ("read",), 5, 4, None)


def test_unknown_register_operation_is_rejected() -> None:
    with pytest.raises(ValueError, match="read, write or cas"):
        check([op(0, ("increment", 1), 0, 1, None)])


# --- the key-value model -----------------------------------------------------------

def test_kv_model_partitions_by_key() -> None:
    ops = [op(0, ("put", "a", 1), 0, 1, None), op(1, ("put", "b", 1), 0, 1, None),
           op(0, ("get", "a"), 2, 3, 1), op(1, ("get", "b"), 2, 3, 1),
           op(2, ("get", "c"), 2, 3, None)]
    assert KV.partition_key(("cas", "a", 1, 2)) == "a"
    assert sorted(len(p) for p in KV.partition(ops)) == [1, 2, 2]
    result = check(ops, KV)
    assert result.ok and result.partitions == 3


def test_kv_failure_names_the_key_and_its_operations() -> None:
    ops = [op(0, ("put", "a", 1), 0, 1, None), op(1, ("put", "b", 1), 0, 1, None),
           op(1, ("put", "b", 2), 2, 3, None),
           op(0, ("get", "a"), 4, 5, 1), op(2, ("get", "b"), 4, 5, 1)]
    result = check(ops, KV)
    assert result.verdict is Verdict.NOT_LINEARIZABLE
    assert result.partition_key == "b"
    assert result.blocked == ops[4]
    assert all(o.input[1] == "b" for o in result.linearized + result.pending)
    assert "{'b': 2}" in result.explain(KV)


def test_kv_semantics_cas_delete_and_structured_values() -> None:
    ops = [op(0, ("get", "k"), 0, 1, None),
           op(0, ("cas", "k", None, [1, 2]), 2, 3, True),        # create if absent
           op(0, ("cas", "k", None, [9]), 4, 5, False),
           op(0, ("get", "k"), 6, 7, [1, 2]),
           op(0, ("cas", "k", [1, 2], {"x": 1}), 8, 9, True),
           op(0, ("get", "k"), 10, 11, {"x": 1}),
           op(0, ("delete", "k"), 12, 13, True),
           op(0, ("delete", "k"), 14, 15, False),
           op(0, ("delete", "k"), 16, 17, None),
           op(0, ("get", "k"), 18, 19, None)]
    assert check(ops, KV).ok
    wrong_delete = [op(0, ("delete", "k"), 0, 1, True)]  # nothing to delete
    assert check(wrong_delete, KV).verdict is Verdict.NOT_LINEARIZABLE
    wrong_get = [op(0, ("put", "k", [1]), 0, 1, None), op(0, ("get", "k"), 2, 3, [2])]
    assert check(wrong_get, KV).verdict is Verdict.NOT_LINEARIZABLE


def test_kv_unknown_put_is_considered_both_ways() -> None:
    base = [op(0, ("put", "k", 1), 0, 1, None), op(1, ("put", "k", 2), 2, None)]
    assert check([*base, op(2, ("get", "k"), 3, 4, 1), op(2, ("get", "k"), 5, 6, 2)], KV).ok
    assert check([*base, op(2, ("get", "k"), 3, 4, 2), op(2, ("get", "k"), 5, 6, 1)],
                 KV).verdict is Verdict.NOT_LINEARIZABLE


# --- deadlines ---------------------------------------------------------------------

def test_deadline_check_true_at_once_gives_unknown() -> None:
    ops = parse_jepsen_log(DATA_DIR / "etcd_002.log")
    calls = []

    def expired() -> bool:
        calls.append(None)
        return True

    result = check_operations(REGISTER, ops, deadline_check=expired)
    assert result.verdict is Verdict.UNKNOWN
    assert not result.ok
    assert len(calls) == 1
    assert "deadline" in result.explain(REGISTER)


def test_deadline_is_polled_during_the_search() -> None:
    ops = parse_jepsen_log(DATA_DIR / "etcd_002.log")  # a long search
    calls = []

    def expired() -> bool:
        calls.append(None)
        return len(calls) >= 3

    result = check_operations(REGISTER, ops, deadline_check=expired)
    assert result.verdict is Verdict.UNKNOWN
    assert len(calls) == 3
    assert result.steps > 0


def test_timeout_in_seconds() -> None:
    ops = parse_jepsen_log(DATA_DIR / "etcd_002.log")
    assert check_operations(REGISTER, ops, timeout=0.0).verdict is Verdict.UNKNOWN
    assert check_operations(REGISTER, ops, timeout=600.0).verdict is Verdict.LINEARIZABLE


# --- property: histories of a real register are linearizable ------------------------

_VALUES = st.integers(min_value=0, max_value=3)
_INPUTS = st.one_of(st.tuples(st.just("read")), st.tuples(st.just("write"), _VALUES),
                    st.tuples(st.just("cas"), _VALUES, _VALUES))
_NEVER_WRITTEN = 99


@st.composite
def register_histories(draw: st.DrawFn) -> list[Operation]:
    """Run a sequential register in some order; give each operation a random interval
    around its linearization point (10·i); some outcomes are lost; then shuffle."""
    inputs = draw(st.lists(_INPUTS, min_size=1, max_size=10))
    inputs.append(("read",))  # at least one read to corrupt
    state, ops = None, []
    for i, input in enumerate(inputs):
        output: object
        if input[0] == "read":
            output = state
        elif input[0] == "write":
            output, state = None, input[1]
        else:
            output = state == input[1]
            state = input[2] if output else state
        point = 10 * i
        call = point - draw(st.integers(min_value=0, max_value=35))
        lost = i < len(inputs) - 1 and draw(st.integers(min_value=0, max_value=5)) == 0
        ret = None if lost else point + draw(st.integers(min_value=0, max_value=35))
        ops.append(Operation(i, input, call, ret, UNKNOWN if lost else output))
    return draw(st.permutations(ops))


@settings(max_examples=300)
@given(register_histories(), st.data())
def test_histories_of_a_real_register_are_linearizable(history: list[Operation],
                                                       data: st.DataObject) -> None:
    assert check_operations(REGISTER, history).verdict is Verdict.LINEARIZABLE
    reads = [i for i, o in enumerate(history) if o.input[0] == "read" and not o.outcome_unknown]
    target = data.draw(st.sampled_from(reads))
    corrupted = list(history)
    o = corrupted[target]
    corrupted[target] = Operation(o.client_id, o.input, o.call_time, o.return_time,
                                  _NEVER_WRITTEN)
    result = check_operations(REGISTER, corrupted)
    assert result.verdict is Verdict.NOT_LINEARIZABLE
