"""components.inputs: the one way untrusted files are read and YAML is parsed."""

from __future__ import annotations

import os

import pytest

from components.inputs import MAX_DEPTH, MAX_FILE_BYTES, MAX_INT_DIGITS, InputError, load_yaml, read_text


def test_reads_a_small_utf8_file_inside_its_root(tmp_path):
    (tmp_path / "a.txt").write_text("héllo\n")
    assert read_text(tmp_path / "a.txt", tmp_path) == "héllo\n"


def test_the_size_limit_is_exact(tmp_path):
    (tmp_path / "max").write_bytes(b"a" * MAX_FILE_BYTES)
    (tmp_path / "over").write_bytes(b"a" * (MAX_FILE_BYTES + 1))
    assert len(read_text(tmp_path / "max")) == MAX_FILE_BYTES
    with pytest.raises(InputError, match="byte limit"):
        read_text(tmp_path / "over")


@pytest.mark.parametrize(("make", "problem"), [
    (lambda d: d / "missing", "no such file"),
    (lambda d: d, "is a directory"),
    (lambda d: (os.mkfifo(d / "fifo"), d / "fifo")[1], "not a regular file"),  # would block a plain open()
    (lambda d: ((d / "loop").symlink_to(d / "loop"), d / "loop")[1], "cannot be resolved"),
    (lambda d: ((d / "bad").write_bytes(b"\xff\xfe"), d / "bad")[1], "not UTF-8"),
    (lambda d: ((d / "nul").write_bytes(b"a\x00b"), d / "nul")[1], "binary"),
])
def test_refuses_what_is_not_a_small_text_file(tmp_path, make, problem):
    with pytest.raises(InputError, match=problem):
        read_text(make(tmp_path))


def test_containment_follows_symlinks_and_comes_before_existence(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "outside.txt").write_text("x")
    (root / "link").symlink_to(tmp_path / "outside.txt")
    for path in (root / "link", root / ".." / "outside.txt", root / ".." / "does-not-exist"):
        with pytest.raises(InputError, match="is outside root/"):
            read_text(path, root)


def test_yaml_stays_plain_data():
    assert load_yaml("a: 2001-12-14\nb: [1, {c: true}]\n") == {"a": "2001-12-14", "b": [1, {"c": True}]}


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(("text", "problem"), [
    ("a: &x [1]\nb: *x\n", "aliases"),
    ("a: 1\nb: 2\na: 3\n", "duplicate key"),
    ("? [a]\n: 1\n", "plain value"),
    (f"n: {'9' * (MAX_INT_DIGITS + 1)}\n", "integer longer"),
    (nested(MAX_DEPTH + 1), "nesting deeper"),
    (nested(200_000), "nesting deeper"),  # libyaml's own composer crashes the interpreter on this
    ("!!python/object/apply:os.system ['true']\n", "not valid YAML"),
    ("a: 'unclosed\n", "not valid YAML"),
])
def test_yaml_refusals_name_the_problem_and_never_the_content(text, problem):
    with pytest.raises(InputError, match=problem) as caught:
        load_yaml(text)
    assert "os.system" not in str(caught.value) and "unclosed" not in str(caught.value)


def test_the_bounds_themselves_pass():
    assert load_yaml(nested(MAX_DEPTH)) is not None
    assert load_yaml(f"n: {'9' * MAX_INT_DIGITS}\n") == {"n": int("9" * MAX_INT_DIGITS)}
