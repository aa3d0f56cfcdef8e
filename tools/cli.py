"""What every command-line tool shares: one-line usage errors and checking an output path before any work.

Exit codes, ``Exit`` (docs/reference.md, "Command-line tools"): 0 success; 1 the tool's
own failure verdict (a mandatory policy violation, a failed smoke check); 2 bad
arguments or bad input, one line on stderr, nothing written; 3 the tool could
not finish for a reason outside the input (an unreachable gateway, an internal error).
``tools.render --diff --exit-code`` answers as ``terraform plan -detailed-exitcode``:
0 no change, 2 changes, 1 any error (bad arguments included), so "changed" never
means "bad input" there.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from enum import IntEnum
from pathlib import Path
from typing import NoReturn


class Exit(IntEnum):
    """Every command-line tool's exit codes, in one place."""

    OK = 0
    FAILED = 1
    BAD_INPUT = 2
    CANNOT_FINISH = 3
    # tools.render --diff --exit-code (terraform plan -detailed-exitcode): 1 any error, 2 changes.
    DIFF_ERROR = 1
    CHANGES = 2


# The same codes under the names tools/smoke.py imports.
EXIT_OK = Exit.OK
EXIT_FAILED = Exit.FAILED
EXIT_BAD_INPUT = Exit.BAD_INPUT
EXIT_CANNOT_FINISH = Exit.CANNOT_FINISH


# Pulumi's stack name characters: a stack name is never a path (Pulumi.<stack>.yaml is read from it).
STACK_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")


def is_stack_name(name: str) -> bool:
    return STACK_NAME.fullmatch(name) is not None


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (usage is under --help)."""

    #: What a usage mistake exits with (tools.render --diff --exit-code sets Exit.DIFF_ERROR).
    usage_exit: int = Exit.BAD_INPUT

    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(self.usage_exit)


class OutputPathError(ValueError):
    """``--out`` (or another output path) cannot be written; the message says why."""


def check_output_dir(path: Path) -> None:
    """Refuse, before any work, a folder that is a file, or that cannot be created or written."""
    if path.exists():
        if not path.is_dir():
            raise OutputPathError(f"{path}: exists and is not a folder")
        if not _writable(path):
            raise OutputPathError(f"{path}: is not writable")
        return
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputPathError(f"{path}: {parent} is not a folder")
    if not _writable(parent):
        raise OutputPathError(f"{path}: cannot be created ({parent} is not writable)")


def _writable(folder: Path) -> bool:
    """Try it: os.access says yes to root even on a read-only file system. The probe file is unnamed and gone."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def check_output_file(path: Path) -> None:
    """Refuse, before any work, a file path that is a folder or whose folder cannot be written."""
    if path.is_dir():
        raise OutputPathError(f"{path}: is a folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputPathError(f"{path}: is not writable")
    check_output_dir(path.parent if str(path.parent) else Path("."))
