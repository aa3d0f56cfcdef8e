"""A bad policy config, command-line argument or --diff input is one line naming it, with the right exit code, nothing written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.base.bad_inputs import (
    BAD_UTF8,
    Case,
    Project,
    assert_one_line,
    check_bad_input,
    exit_code,
    run_cli,
)
from tests.base.test_bad_config import STACK_CASES
from tests.base.test_bad_declarations import DECLARATION_CASES
from tools import bench, smoke
from tools import render as render_cli


def policy_file(content: str | bytes) -> Callable[[Project], None]:
    def change(p: Project) -> None:
        path = p.root / "policies" / "custom.json"
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return change


POLICY = "custom.json"
POLICY_ARGS = ["--policy-config", "{root}/policies/custom.json"]
POLICY_CASES: list[Case] = [
    ("policy-exemptions-string", policy_file('{"istio-port-naming": {"exemptions": "legacy-*"}}'), POLICY_ARGS, 2,
     "istio-port-naming.exemptions"),
    ("policy-exemptions-numbers", policy_file('{"pinned-images": {"exemptions": [1]}}'), POLICY_ARGS, 2,
     "pinned-images.exemptions"),
    ("policy-a-list", policy_file('["pinned-images"]'), POLICY_ARGS, 2, POLICY),
    ("policy-an-int", policy_file('{"pinned-images": 3}'), POLICY_ARGS, 2, "pinned-images"),
    ("policy-a-number", policy_file("3"), POLICY_ARGS, 2, POLICY),
    ("policy-unknown-rule", policy_file('{"no-such-rule": "mandatory"}'), POLICY_ARGS, 2, "no-such-rule"),
    ("policy-unknown-setting", policy_file('{"pinned-images": {"exemption": ["x"]}}'), POLICY_ARGS, 2, "pinned-images.exemption"),
    ("policy-bad-level", policy_file('{"pinned-images": "loud"}'), POLICY_ARGS, 2, "pinned-images.enforcementLevel"),
    ("policy-bad-level-in-map", policy_file('{"pinned-images": {"enforcementLevel": 1}}'), POLICY_ARGS, 2,
     "pinned-images.enforcementLevel"),
    ("policy-setting-on-all", policy_file('{"all": {"meshNamespaces": ["x"]}}'), POLICY_ARGS, 2, "all.meshNamespaces"),
    ("policy-mesh-namespaces-string", policy_file('{"istio-port-naming": {"meshNamespaces": "sales"}}'), POLICY_ARGS, 2,
     "istio-port-naming.meshNamespaces"),
    ("policy-not-json", policy_file("{"), POLICY_ARGS, 2, "not valid JSON"),
    ("policy-non-utf8", policy_file(BAD_UTF8), POLICY_ARGS, 2, "not UTF-8"),
    ("policy-deep", policy_file("[" * 100_000 + "]" * 100_000), POLICY_ARGS, 2, POLICY),
    ("policy-too-big", policy_file('{"all": "mandatory"}' + " " * (1024 * 1024)), POLICY_ARGS, 2, "byte limit"),
    ("policy-missing", lambda p: None, ["--policy-config", "{root}/policies/none.json"], 2, "none.json"),
    ("policy-a-directory", lambda p: None, ["--policy-config", "{root}/policies"], 2, "policies"),
]

CLI_CASES: list[Case] = [
    ("cli-config-directory", lambda p: None, ["--config", "{root}/products"], 2, "products"),
    ("cli-config-missing", lambda p: None, ["--config", "{root}/nope.yaml"], 2, "nope.yaml"),
    ("cli-config-dev-zero", lambda p: None, ["--config", "/dev/zero"], 2, "/dev/zero"),
    ("cli-config-proc-environ", lambda p: None, ["--config", "/proc/self/environ"], 2, "/proc/self/environ"),
    ("cli-out-is-a-file", lambda p: (p.root / "file").write_text("x"), ["--out", "{root}/file"], 2, "--out"),
    ("cli-out-under-a-file", lambda p: (p.root / "file").write_text("x"), ["--out", "{root}/file/render"], 2, "--out"),
    ("cli-out-unwritable", lambda p: None, ["--out", "/proc/datamesh-render"], 2, "--out"),
    ("cli-stack-path", lambda p: None, ["--stack", "../../etc/passwd"], 2, "--stack"),
    ("cli-stack-unknown", lambda p: None, ["--stack", "nosuchstack", "--config", "{root}/Pulumi.nosuchstack.yaml"], 2,
     "Pulumi.nosuchstack.yaml"),
]

RENDER_CASES = POLICY_CASES + CLI_CASES


@pytest.mark.parametrize(("change", "args", "code", "named"), [c[1:] for c in RENDER_CASES], ids=[c[0] for c in RENDER_CASES])
def test_bad_input_is_one_line_and_writes_nothing(project, monkeypatch, capfd, change, args, code, named):
    check_bad_input(project, monkeypatch, capfd, change, args, code, named)


# --- --diff ----------------------------------------------------------------------

def render_dir(content: str | bytes | None) -> Callable[[Path], Path]:
    def make(base: Path) -> Path:
        folder = base / "bad"
        folder.mkdir()
        if content is not None:
            path = folder / "resources.json"
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return folder
    return make


DIFF_CASES = [
    ("diff-missing", render_dir(None), "resources.json"),
    ("diff-empty", render_dir(""), "resources.json"),
    ("diff-truncated", render_dir('[{"urn": "a", "type": "t", "na'), "resources.json"),
    ("diff-non-utf8", render_dir(BAD_UTF8), "resources.json"),
    ("diff-a-map", render_dir('{"urn": "a"}'), "resources.json"),
    ("diff-list-of-numbers", render_dir("[1, 2]"), "resources.json"),
    ("diff-urn-a-number", render_dir('[{"urn": 1, "type": "t", "name": "n"}]'), "resources.json"),
    ("diff-deep", render_dir("[" * 100_000 + "]" * 100_000), "resources.json"),
    ("diff-binary", render_dir(b"[\x00]"), "resources.json"),
]


@pytest.fixture(scope="module")
def good_render(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("good")
    assert render_cli.main(["--stack", "dev", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize(("make", "named"), [c[1:] for c in DIFF_CASES], ids=[c[0] for c in DIFF_CASES])
def test_bad_diff_input_is_one_line(good_render, tmp_path, capfd, make, named):
    capfd.readouterr()
    bad = make(tmp_path)
    for argv in (["--diff", str(good_render), str(bad)], ["--diff", str(bad), str(good_render)]):
        code, out, err = run_cli(render_cli.main, argv, capfd)
        assert_one_line(code, out, err, 2, named)
        assert out == ""


# --- other command lines ------------------------------------------------------------

ARG_CASES = [
    ("render-no-arguments", render_cli.main, [], 2, "--stack and --out"),
    ("render-unknown-argument", render_cli.main, ["--stak", "dev"], 2, "--stak"),
    ("render-diff-one-folder", render_cli.main, ["--diff", "a"], 2, "--diff"),
    ("bench-size-zero", bench.main, ["--sizes", "0"], 2, "--sizes"),
    ("bench-size-huge", bench.main, ["--sizes", "9" * 5000], 2, "--sizes"),
    ("bench-size-text", bench.main, ["--sizes", "ten"], 2, "--sizes"),
    ("bench-repeat-zero", bench.main, ["--repeat", "0"], 2, "--repeat"),
    ("bench-markdown-directory", bench.main, ["--markdown", "/"], 2, "--markdown"),
    ("bench-markdown-unwritable", bench.main, ["--markdown", "/proc/bench.md"], 2, "--markdown"),
    ("bench-child-bad", bench.main, ["--child", "x", "y"], 2, "--child"),
    ("smoke-no-gateway", smoke.main, [], 2, "--gateway"),
    ("smoke-empty-gateway", smoke.main, ["--gateway", ""], 2, "--gateway"),
    ("smoke-gateway-url", smoke.main, ["--gateway", "http://example.com"], 2, "--gateway"),
    ("smoke-gateway-path", smoke.main, ["--gateway", "example.com/x"], 2, "--gateway"),
    ("smoke-gateway-credentials", smoke.main, ["--gateway", "user:pw@example.com"], 2, "--gateway"),
    ("smoke-gateway-space", smoke.main, ["--gateway", "exa mple.com"], 2, "--gateway"),
    ("smoke-gateway-newline", smoke.main, ["--gateway", "example.com\n"], 2, "--gateway"),
    ("smoke-port-too-big", smoke.main, ["--gateway", "127.0.0.1:99999"], 2, "--gateway"),
    ("smoke-bad-ipv6", smoke.main, ["--gateway", "[zz::1]"], 2, "--gateway"),
    ("smoke-bad-scheme", smoke.main, ["--gateway", "127.0.0.1", "--scheme", "ftp"], 2, "--scheme"),
    ("smoke-timeout-zero", smoke.main, ["--gateway", "127.0.0.1", "--timeout", "0"], 2, "--timeout"),
    ("smoke-timeout-text", smoke.main, ["--gateway", "127.0.0.1", "--timeout", "soon"], 2, "--timeout"),
]


@pytest.mark.parametrize(("main", "argv", "code", "named"), [c[1:] for c in ARG_CASES], ids=[c[0] for c in ARG_CASES])
def test_bad_arguments_are_one_line(monkeypatch, tmp_path, capfd, main, argv, code, named):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SMOKE_KEY", "k" * 30)
    monkeypatch.setenv("SMOKE_OTHER_KEY", "o" * 30)
    capfd.readouterr()
    result = exit_code(main, argv)
    out, err = capfd.readouterr()
    assert_one_line(result, out, err, code, named)
    assert list(tmp_path.iterdir()) == []


def test_the_corpus_is_large_and_ids_are_unique():
    cases = STACK_CASES + DECLARATION_CASES + POLICY_CASES + CLI_CASES
    ids = [c[0] for c in cases] + [c[0] for c in DIFF_CASES] + [c[0] for c in ARG_CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 150
