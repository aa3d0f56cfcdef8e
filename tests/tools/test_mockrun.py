"""The mock runtime's own shortcuts change nothing the program registers or computes."""

from __future__ import annotations

import pytest
from pulumi.runtime import mocks as pulumi_mocks

from tests.conftest import stack_name
from tools.engine import mockrun
from tools.engine.render import render_stack


@pytest.mark.parametrize("stack", ["dev", "prod", "local"])
def test_the_fast_answer_is_the_sdks_answer(stack, monkeypatch):
    """RecordingMonitor answers a registration with the request's own wire object plus the mocks' placeholders;
    the SDK's MockMonitor serialises the mocks' whole state again. Every registration and every stack output must
    come out the same either way (prod adds AWS placeholders, local an existing cluster's)."""
    fast = render_stack(stack_name(stack))
    monkeypatch.setattr(mockrun.RecordingMonitor, "_answer", pulumi_mocks.MockMonitor.RegisterResource)
    sdk = render_stack(stack_name(stack))
    assert len(fast.resources) == len(sdk.resources) > 50
    by_urn = sorted((r.as_json() for r in fast.resources), key=lambda r: r["urn"])
    assert by_urn == sorted((r.as_json() for r in sdk.resources), key=lambda r: r["urn"])
    assert fast.outputs == sdk.outputs and fast.outputs


def test_a_state_the_answer_cannot_copy_goes_to_the_sdk():
    assert mockrun._is_json({"a": [1, 2.5, "x", None, True, {"b": "c"}]})
    assert not mockrun._is_json({"a": mockrun.rpc.UNKNOWN})
    assert not mockrun._is_json({1: "a"})
    assert not mockrun._is_json(object())
