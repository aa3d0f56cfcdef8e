"""Lifecycle as resource options: the former type tokens a component answers to.

Type tokens follow one scheme, ``datamesh:<layer>:<Component>`` (the layer is the
package under ``components/``). A component whose token changed keeps an alias to
the old one: the engine then matches the resources of a stack deployed under the
old token (the component and, through it, every child) instead of replacing
them. ``tests/platform/test_aliases.py`` renders the old URN set against the code.
"""

from __future__ import annotations

import pulumi


def formerly(old_type: str, opts: pulumi.ResourceOptions | None) -> pulumi.ResourceOptions:
    """``opts`` plus an alias to the component's former type token ``old_type``."""
    return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(aliases=[pulumi.Alias(type_=old_type)]))
