"""The mock runtime's own shortcuts change nothing the program registers or computes."""

from __future__ import annotations

import threading

import pytest
from pulumi.runtime import mocks as pulumi_mocks

from tests.conftest import stack_name
from tools.engine import mockrun, placeholders
from tools.engine.render import render_stack


@pytest.mark.parametrize("stack", ["dev", "prod", "local"])
def test_the_fast_answer_is_the_sdks_answer(stack, monkeypatch):
    """RecordingMonitor answers a registration with the request's own wire object plus the mocks' placeholders;
    the SDK's MockMonitor serialises the mocks' whole state again. Every registration and every stack output must
    come out the same either way (prod adds AWS placeholders, local an existing cluster's)."""
    fast = render_stack(stack_name(stack))
    monkeypatch.setattr(mockrun.RecordingMonitor, "_answer", pulumi_mocks.MockMonitor.RegisterResource)
    monkeypatch.setattr(mockrun.RecordingMonitor, "inline", False)  # the SDK's answers await: worker threads
    sdk = render_stack(stack_name(stack))
    assert len(fast.resources) == len(sdk.resources) > 50
    by_urn = sorted((r.as_json() for r in fast.resources), key=lambda r: r["urn"])
    assert by_urn == sorted((r.as_json() for r in sdk.resources), key=lambda r: r["urn"])
    assert fast.outputs == sdk.outputs and fast.outputs


def test_registrations_and_invokes_are_answered_on_the_event_loops_thread(monkeypatch):
    """The SDK hands every RPC to the loop's default executor; the recording monitor runs it inline."""
    threads: set[int] = set()

    def noting_the_thread(original):
        def call(self, request):
            threads.add(threading.get_ident())
            return original(self, request)
        return call

    for name in ("RegisterResource", "Invoke"):
        monkeypatch.setattr(mockrun.RecordingMonitor, name, noting_the_thread(getattr(mockrun.RecordingMonitor, name)))
    result = render_stack("dev")
    assert result.invokes and threads == {threading.get_ident()}


def test_a_placeholder_that_is_not_json_is_refused(monkeypatch):
    """The monitor copies the request and adds the mocks' placeholders: only JSON values can be added that way."""
    original = placeholders.PlaceholderMocks.placeholders

    def with_an_object(self, typ, name, custom, inputs):
        id_, added = original(self, typ, name, custom, inputs)
        return id_, {**added, "arn": object()} if typ == "aws:iam/role:Role" else added

    monkeypatch.setattr(placeholders.PlaceholderMocks, "placeholders", with_an_object)
    with pytest.raises(TypeError, match=r"aws:iam/role:Role .*placeholders must add only JSON values"):
        render_stack("dev")


def test_json_values_are_told_from_others():
    assert mockrun._is_json({"a": [1, 2.5, "x", None, True, {"b": "c"}]})
    assert not mockrun._is_json({"a": mockrun.rpc.UNKNOWN})
    assert not mockrun._is_json({1: "a"})
    assert not mockrun._is_json(object())


def test_stack_outputs_settle_nested_outputs_secrets_and_unknowns():
    """An export is its value with every Output in it awaited; a secret anywhere masks the whole export, and an
    unknown anywhere marks it unknown (as the engine shows them)."""
    import asyncio

    from pulumi import Output
    from pulumi.runtime.sync_await import _sync_await

    def unknown() -> Output:
        loop = asyncio.get_event_loop()
        value, known, secret = loop.create_future(), loop.create_future(), loop.create_future()
        value.set_result(None), known.set_result(False), secret.set_result(False)
        return Output(set(), value, known, secret)

    async def exports() -> dict:
        return await mockrun._resolve_outputs({
            "plain": {"a": [1, ("b", 2.0)]},
            "nested": Output.from_input("x").apply(lambda x: {"x": x, "deeper": [Output.from_input(x + "y")]}),
            "secretInside": {"a": {"b": Output.secret("s")}},
            "secretOutput": Output.secret({"k": "v"}),
            "secretInsideAnOutput": Output.from_input(1).apply(lambda _: {"s": [Output.secret("z")]}),
            "unknownInsideAnOutput": Output.from_input(1).apply(lambda _: {"u": unknown()}),
            "unknownInside": [unknown()],
        })

    assert _sync_await(exports()) == {
        "plain": {"a": [1, ["b", 2]]},
        "nested": {"x": "x", "deeper": ["xy"]},
        "secretInside": mockrun.SECRET,
        "secretOutput": mockrun.SECRET,
        "secretInsideAnOutput": mockrun.SECRET,
        "unknownInsideAnOutput": mockrun.UNKNOWN,
        "unknownInside": mockrun.UNKNOWN,
    }


def test_a_run_restores_the_collectors_thresholds_even_when_the_program_fails(tmp_path):
    import gc

    before = gc.get_threshold()
    render_stack("dev")
    assert gc.get_threshold() == before
    (tmp_path / "__main__.py").write_text("raise ValueError('the program failed')\n")
    with pytest.raises(Exception, match="the program failed"):
        mockrun.run_program({}, [], stack="dev", program=tmp_path / "__main__.py")
    assert gc.get_threshold() == before
