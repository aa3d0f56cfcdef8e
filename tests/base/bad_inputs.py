"""The bad-input corpus's tools: a copy of the project to break one thing in, the changes that break it, and the check.

Each case (``Case``) breaks one thing (the stack file, a declaration, an OpenAPI or
mounted file, the policy config, a command-line argument) in a copy of the
project, runs the command line in-process (output captured at the file
descriptors, so anything the runtime prints is seen) and asserts: the exit
code, exactly one line on stderr naming the key or file, no traceback, and no
output folder. The cases live by what they break: test_bad_config.py (the stack
file), test_bad_declarations.py (declarations, OpenAPI and mounted files),
test_bad_policy_and_cli.py (the policy config, arguments, --diff inputs).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT, fresh_name
from tools import render as render_cli
from tools.engine.render import render_stack

HOST_FILE = "/etc/passwd"  # a host file every Linux CI runner has


class Project:
    """A copy of the program, its dev stack and its products, to break one thing at a time."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.outside = root.parent / "outside"  # a folder next to the project, never inside it
        self.outside.mkdir()
        (self.outside / "secret.txt").write_text("OUTSIDE-CONTENT\n")
        (self.outside / "spec.yaml").write_text((ROOT / "products/openapi/revenue-predictor.yaml").read_text())

    @property
    def products(self) -> Path:
        return self.root / "products"

    def stack(self) -> dict[str, Any]:
        return yaml.safe_load((self.root / "Pulumi.dev.yaml").read_text())

    def set_config(self, **changes: Any) -> None:
        doc = self.stack()
        for key, value in changes.items():
            full = key.replace("__", ":")
            if value is DROP:
                doc["config"].pop(full, None)
            else:
                doc["config"][full] = value
        (self.root / "Pulumi.dev.yaml").write_text(yaml.safe_dump(doc))

    def write_stack_text(self, text: str | bytes) -> None:
        path = self.root / "Pulumi.dev.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())

    def declaration(self, name: str = "revenue-predictor") -> Path:
        return self.products / f"{name}.yaml"

    def set_field(self, product: str = "revenue-predictor", **changes: Any) -> None:
        doc = yaml.safe_load(self.declaration(product).read_text())
        doc.update(changes)
        self.declaration(product).write_text(yaml.safe_dump(doc))

    def append(self, text: str, name: str = "revenue-predictor") -> None:
        with self.declaration(name).open("a") as f:
            f.write(text)


DROP = object()


def run_cli(main: Callable[[list[str]], int], argv: list[str], capfd) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capfd.readouterr()
    return code, out, err


def assert_one_line(code: int, out: str, err: str, expected_code: int, named: str) -> None:
    assert "Traceback" not in out + err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert named in lines[0], err
    assert code == expected_code, err
    assert len(lines[0]) < 600, "a message quotes at most a short excerpt"


# --- the cases -------------------------------------------------------------------
# Each: (id, break the project, extra CLI args, exit code, text the line must hold)

Case = tuple[str, Callable[[Project], Any], list[str], int, str]
STACK = "Pulumi.dev.yaml"


def cfg(**changes: Any) -> Callable[[Project], None]:
    return lambda p: p.set_config(**changes)


def stack_text(text: str | bytes) -> Callable[[Project], None]:
    return lambda p: p.write_stack_text(text)


def field(**changes: Any) -> Callable[[Project], None]:
    return lambda p: p.set_field(**changes)


def files(ref: str, key: str = "server.py", product: str = "customer-features") -> Callable[[Project], None]:
    def change(p: Project) -> None:
        p.set_field(product, files={key: ref})
    return change


def outside_ref(p: Project, name: str, product: str = "customer-features") -> str:
    return os.path.relpath(p.outside / name, p.products)


def symlink_out(target: str, link: str, key: str = "files") -> Callable[[Project], None]:
    def change(p: Project) -> None:
        (p.products / link).symlink_to(target if target.startswith("/") else p.outside / target)
        if key == "files":
            p.set_field("customer-features", files={"server.py": link})
        else:
            p.set_field(openapi=link)
    return change


def write_file(rel: str, data: bytes | str, then: Callable[[Project], None]) -> Callable[[Project], None]:
    def change(p: Project) -> None:
        path = p.products / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
        then(p)
    return change


def both(*changes: Callable[[Project], Any]) -> Callable[[Project], None]:
    def change(p: Project) -> None:
        for c in changes:
            c(p)
    return change


def alias_bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


DEV = (ROOT / STACK).read_text()
# The dev stack without nodeDiskSize, so a case can append its own value of it (a second one is a duplicate key).
DEV_NO_DISK = re.sub(r"(?m)^  datamesh:nodeDiskSize:.*\n", "", DEV)
DEV_PRODUCTS = ["customer-features", "revenue-predictor", "customer-revenue"]
# A product name the repository does not declare (a team may have added churn-scorer already).
UNSELECTED = fresh_name(ROOT / "products", "churn-scorer")
BIG = "x" * (1024 * 1024 + 10)
BAD_UTF8 = b"\xff\xfe\xfa not utf-8 \xc3\x28\n"


def exit_code(main: Callable[[list[str]], int], argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's way out, as the process would see it
        return int(exc.code or 0)


def check_bad_input(project: Project, monkeypatch: Any, capfd: Any, change: Callable[[Project], Any], args: list[str],
                    code: int, named: str) -> None:
    """Break ``project`` with ``change``, render it with ``args``: one line naming ``named``, exit ``code``, nothing written."""
    change(project)
    out = project.root.parent / "render"
    options = {"--stack": "dev", "--config": str(project.root / STACK), "--out": str(out)}
    options.update(zip(args[::2], [a.format(root=project.root) for a in args[1::2]], strict=True))
    argv = [part for pair in options.items() for part in pair]
    monkeypatch.setattr(render_cli, "render_stack", functools.partial(render_stack, project_dir=project.root))
    monkeypatch.chdir(project.root)
    capfd.readouterr()
    code_seen = exit_code(render_cli.main, argv)
    result = (code_seen, *capfd.readouterr())
    assert_one_line(*result, code, named.format(root=project.root))
    assert not out.exists(), "nothing is written for a bad input"
    assert "OUTSIDE-CONTENT" not in result[1] + result[2]
