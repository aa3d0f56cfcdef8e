"""The sections a render diff leads with, before the per-resource detail: access, AWS access,
secrets and env, exposure (``tools.engine.review_access``, ``tools.engine.review_identity``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from components.documents import Document
from tools.engine.review_access import Resources, access_grants, access_lines, exposure, set_lines
from tools.engine.review_identity import aws_access, env_by_name, env_lines

# (title, RenderDiff field): the order they are printed in.
SECTIONS = (("access", "access"), ("AWS access", "aws"), ("secrets and env", "env"), ("exposure", "exposure"))


@dataclass
class Headlines:
    """What changed in who may call what, what AWS allows, which secrets and env the workloads get, what is exposed."""

    access: list[str] = field(default_factory=list)
    aws: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    exposure: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.access or self.aws or self.env or self.exposure)

    def sections(self) -> list[tuple[str, list[str]]]:
        """(title, lines) of each section with something in it, in order."""
        return [(title, getattr(self, name)) for title, name in SECTIONS if getattr(self, name)]


def headlines(old: Resources, new: Resources, old_outputs: Document, new_outputs: Document) -> Headlines:
    """The headline changes between two renders' resources (and outputs, for the catalog's route prefixes)."""
    return Headlines(
        access=access_lines(access_grants(old, old_outputs), access_grants(new, new_outputs)),
        aws=set_lines(aws_access(old), aws_access(new)),
        env=env_lines(env_by_name(old), env_by_name(new)),
        exposure=set_lines(exposure(old), exposure(new)),
    )


def headline_text(found: Headlines) -> list[str]:
    """``== title`` and the indented lines of each section."""
    return [line for title, lines in found.sections() for line in (f"== {title}", *(f"    {x}" for x in lines))]


def headline_markdown(found: Headlines) -> list[str]:
    """Access as a list of sentences, the other sections as ``diff`` blocks."""
    out: list[str] = []
    for title, lines in found.sections():
        out += [f"**{title[0].upper()}{title[1:]}**", ""]
        out += [f"- {line}" for line in lines] if lines is found.access else ["```diff", *lines, "```"]
        out.append("")
    return out
