"""Container image references: well formed, and pinned? One answer for the program and the policy pack.

Standard library only: the policy pack imports this module in its own
virtualenv (``policies/venv``), where only ``pulumi`` and ``pulumi-policy``
are installed. ``tests/repo/test_layout.py`` keeps it so.

The grammar is the distribution reference grammar (``distribution/reference``
``regexp.go``, the one Docker, containerd and Kubernetes' image pullers use):

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [ domain "/" ] path-component [ "/" path-component ]*   (255 characters at most)
    domain     := host [ ":" port ]          host: domain-name | "[" IPv6 "]"
    path-comp  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
    tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest     := algorithm ":" hex{32,}
"""

from __future__ import annotations

import re

_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_HOST = rf"(?:{_DOMAIN_NAME}|\[(?:[a-fA-F0-9:]+)\])"
_PATH_COMPONENT = rf"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*"
_NAME = rf"(?:{_HOST}(?::[0-9]+)?/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST_PATTERN = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
REFERENCE = re.compile(rf"({_NAME})(?::({_TAG}))?(?:@({_DIGEST_PATTERN}))?")
NAME_MAX = 255
_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")


def image_reference_problem(image: object) -> str | None:
    """What keeps ``image`` from being an image reference; None when it is one."""
    if not isinstance(image, str):
        return "is not a string"
    match = REFERENCE.fullmatch(image)  # fullmatch: a "$" anchor would let a trailing newline through
    if match is None:
        return "is not an image reference (registry/name[:tag][@digest], name in lowercase)"
    if len(match.group(1)) > NAME_MAX:
        return f"has a name longer than {NAME_MAX} characters"
    return None


def image_pin_problem(image: object) -> str | None:
    """What keeps ``image`` from being a reference pinned to a version tag or a sha256 digest; None when it is."""
    if isinstance(image, str) and "@sha256:" in image and not _SHA256.fullmatch(image.rsplit("@", 1)[1]):
        return "has a malformed sha256 digest"
    problem = image_reference_problem(image)
    if problem:
        return problem
    assert isinstance(image, str)
    match = REFERENCE.fullmatch(image)
    assert match is not None
    tag, digest = match.group(2), match.group(3)
    if digest is not None:
        return None if _SHA256.fullmatch(digest) else "has a malformed sha256 digest"
    if tag is None:
        return "has no tag; pin a version tag or a sha256 digest"
    if tag == "latest":
        return "uses a moving tag; pin a version tag or a sha256 digest"
    return None
