"""Nothing leaks: recognisable markers planted everywhere a secret could come from never reach any output.

Markers sit in the environment (as the pull-request workflow's passphrase would),
in a file outside the project (reached by ../, an absolute path and a symlink,
as a mounted file and as an OpenAPI document), in secure: ciphertexts and as
plaintext API keys. Each scenario runs the command line; everything it printed
and every file it wrote is searched for each marker and for its base64 at every
alignment (standard and URL-safe alphabets), as Kubernetes Secret data and
ConfigMap binaryData would carry it.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.base.bad_inputs import STACK, Project, exit_code
from tools import render as render_cli
from tools.engine.render import render_stack

ENV_MARKER = "envleakmarkerQ7Z3xK9w"
OUTSIDE_MARKER = "outsideleakmarkerR4T8vB2n"
CIPHER_MARKER = "cipherleakmarkerM5N1pL6s"
PLAIN_MARKER = "plainleakmarkerH2J9kD4f0123"  # a well-formed API key: 24 to 256 of [A-Za-z0-9._~-]
MARKERS = (ENV_MARKER, OUTSIDE_MARKER, CIPHER_MARKER, PLAIN_MARKER)


def encodings(marker: str) -> set[str]:
    """The marker, and the part of its base64 that is the same whatever bytes precede it (offsets 0, 1, 2)."""
    found = {marker}
    raw = marker.encode()
    for offset in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(b"\0" * offset + raw).decode()
            first_group = -(-offset // 3)  # groups wholly inside the marker are fixed by it alone
            last_group = (offset + len(raw)) // 3
            found.add(encoded[first_group * 4 : last_group * 4])
    return found


def test_the_encodings_find_a_marker_embedded_at_any_offset():
    for prefix in (b"", b"a", b"ab", b"abc", b"xyzw"):
        blob = base64.b64encode(prefix + CIPHER_MARKER.encode() + b"tail").decode()
        assert any(e in blob for e in encodings(CIPHER_MARKER) if e != CIPHER_MARKER)


def cipher(n: int) -> dict[str, str]:
    return {"secure": f"v1:{CIPHER_MARKER}:{n}"}


def plant_outside(p: Project) -> None:
    (p.outside / "secret.txt").write_text(f"{OUTSIDE_MARKER}\n")
    spec = (p.products / "openapi" / "revenue-predictor.yaml").read_text()
    (p.outside / "spec.yaml").write_text(spec.replace("title:", f"title: {OUTSIDE_MARKER}", 1))


def outside(p: Project, name: str) -> str:
    import os

    return os.path.relpath(p.outside / name, p.products)


def with_cipher_keys(p: Project) -> None:
    p.set_config(datamesh__apiKeys={"analytics": [cipher(1), cipher(2)], "partner-portal": [cipher(3)]})


def link(p: Project, target: Path | str, rel: str) -> str:
    (p.products / rel).symlink_to(target)
    return rel


SCENARIOS: dict[str, tuple[Callable[[Project], Any], int]] = {
    "accepted-render-with-secure-keys": (with_cipher_keys, 0),
    "files-proc-environ": (lambda p: p.set_field("customer-features", files={"server.py": "/proc/self/environ"}), 2),
    "files-outside-relative": (lambda p: p.set_field("customer-features", files={"server.py": outside(p, "secret.txt")}), 2),
    "files-outside-absolute": (lambda p: p.set_field("customer-features", files={"server.py": str(p.outside / "secret.txt")}), 2),
    "files-symlink-out": (lambda p: p.set_field("customer-features", files={
        "server.py": link(p, p.outside / "secret.txt", "demo/link.py")}), 2),
    "files-symlink-environ": (lambda p: p.set_field("customer-features", files={
        "server.py": link(p, "/proc/self/environ", "demo/env.py")}), 2),
    "openapi-outside": (lambda p: p.set_field(openapi=outside(p, "spec.yaml")), 2),
    "openapi-symlink-out": (lambda p: p.set_field(openapi=link(p, p.outside / "spec.yaml", "openapi/link.yaml")), 2),
    "secure-cluster-name": (lambda p: p.set_config(datamesh__clusterName=cipher(9)), 2),
    "secure-tag": (lambda p: p.set_config(datamesh__tags={"team": cipher(9)}), 2),
    "secure-with-extra-key": (lambda p: p.set_config(datamesh__clusterName={"secure": f"v1:{CIPHER_MARKER}", "x": 1}), 2),
    "secure-not-a-string": (lambda p: p.set_config(datamesh__clusterName={"secure": [CIPHER_MARKER]}), 2),
    "apikeys-mixed": (lambda p: p.set_config(datamesh__apiKeys={"analytics": [cipher(1), PLAIN_MARKER],
                                                                "partner-portal": [cipher(2)]}), 2),
    "apikeys-plaintext": (lambda p: p.set_config(datamesh__apiKeys={"analytics": [PLAIN_MARKER],
                                                                    "partner-portal": [PLAIN_MARKER + "x"]}), 2),
    "apikeys-plaintext-bad-shape": (lambda p: p.set_config(datamesh__apiKeys={"analytics": PLAIN_MARKER}), 2),
    "anypoint-secret-plaintext": (lambda p: p.set_config(datamesh__anypointClientSecret=PLAIN_MARKER), 2),
    "policy-config-outside": (lambda p: (p.root / "policies" / "custom.json").symlink_to(p.outside / "secret.txt"), 2),
}


@pytest.fixture
def copy(pristine, tmp_path) -> Project:  # pristine: the fixture in tests/base/conftest.py
    import shutil

    root = tmp_path / "work" / "project"
    shutil.copytree(pristine, root)
    return Project(root)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_no_marker_in_anything_printed_or_written(copy, monkeypatch, capfd, tmp_path, scenario):
    project = copy
    monkeypatch.setenv("DATAMESH_LEAK_MARKER", ENV_MARKER)
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", ENV_MARKER)
    plant_outside(project)
    change, expected = SCENARIOS[scenario]
    change(project)
    out = tmp_path / "render"
    argv = ["--stack", "dev", "--config", str(project.root / STACK), "--out", str(out)]
    if scenario.startswith("policy-config"):
        argv += ["--policy-config", str(project.root / "policies" / "custom.json")]
    monkeypatch.setattr(render_cli, "render_stack", functools.partial(render_stack, project_dir=project.root))
    capfd.readouterr()
    code = exit_code(render_cli.main, argv)
    printed_out, printed_err = capfd.readouterr()
    assert code == expected, printed_err
    written = {str(f): f.read_bytes().decode("utf-8", "replace") for f in out.rglob("*") if f.is_file()} if out.exists() else {}
    if expected == 0:
        assert "resources.json" in " ".join(written)  # the accepted case did write a render to search
    haystacks = {"stdout": printed_out, "stderr": printed_err, **written}
    for marker in MARKERS:
        for form in encodings(marker):
            hits = [where for where, text in haystacks.items() if form in text]
            assert not hits, f"{marker} (as {form!r}) found in {hits}"
