"""The two name shapes every layer validates against, defined once. Standard library only.

``NAME_PATTERN`` is for names the program turns into several Kubernetes
objects and labels (products, domains, consumers, rate-limit tiers): a letter
first, at most 40 characters so derived names stay under Kubernetes' limits.
``DNS_LABEL_PATTERN`` is an RFC 1123 label (namespaces, revisions, Helm
release names): at most 63 characters.

The patterns are also used inside JSON Schemas, so they stay ECMA-262
compatible; the ``is_*`` functions match the whole string, which a ``$``
anchor alone does not do in Python (it accepts a trailing newline).
``PLATFORM_NAMESPACES`` are the namespaces no product may take (the config's
``RESERVED_NAMESPACES``, and the policy pack's default exemption from injection).
"""

from __future__ import annotations

import re

NAME_PATTERN = r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
# The namespaces Kubernetes and the platform own: no product domain may take one, and the
# policy pack does not require them to be labelled for sidecar injection.
PLATFORM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease", "istio-system", "istio-ingress")


def is_name(value: object) -> bool:
    """A product, domain, consumer or tier name."""
    return isinstance(value, str) and re.fullmatch(NAME_PATTERN, value) is not None


def is_dns_label(value: object) -> bool:
    """An RFC 1123 label of at most 63 characters."""
    return isinstance(value, str) and re.fullmatch(DNS_LABEL_PATTERN, value) is not None
