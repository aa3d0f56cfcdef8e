"""Verify a render's governance with Istio's own translation, in real Envoy, offline.

    python -m tools.verify --render DIR [--keys FILE] [--out FILE] [--stack-file FILE] [--samples N] [--no-sidecars]
                           [--gateway-replicas N] [--cases GROUP[,GROUP...]]

Builds (once, cached) Istio's translation and istioctl from the Istio module pinned in
tools/istiod/go.mod, runs ``istioctl analyze`` over the render, turns the render into
the configuration istiod pushes to the ingress gateway, serves that to real Envoys on
127.0.0.1 with a stub backend per workload, and runs every case the stack declares
(``tools/engine/verify.py``): each consumer against each product, no key and a wrong
key, every limit, canary weights and mirrors, composite paths. Prints a table; with
--out, writes the JSON report (generator, analyze, removedFilters, cases).

The stack is the one the render was made from (its URNs name it); its file is
Pulumi.<stack>.yaml in this repository unless --stack-file names the one the render
used (tools.render --config). An offline render never decrypts keys, and its gateway
accepts none of the placeholders it sees instead: verify checks exactly that. To prove
allowed access, limits and canaries, render with ``tools.render --test-keys FILE`` and
pass ``--keys FILE``.

A render in global mode (``datamesh:rateLimits: global``) runs with the real rate-limit service
(built from the module pinned in tools/ratelimit/go.mod) and Debian's redis-server on 127.0.0.1,
and adds its cases on --gateway-replicas gateway Envoys (default 2): exact counts for every tier
and product limit under concurrent load, and the failure policy with Redis stopped.

Run as root with ``ip`` and ``iptables`` (Debian: iproute2, iptables), it enters a
network namespace of its own (tools/engine/netns.py) and runs every workload's sidecar as
istiod configures it, with Istio's interception done by iptables there, so composite
paths are proven too; otherwise (or with --no-sidecars) only the gateway runs, and
composite cases are listed as not provable. The namespace goes when its last process does.

--cases runs only the named groups of cases (access, canary, hostile, hygiene, composite, limits,
composite-limits, global, errors; default: all), in that order: to re-run what failed while fixing
a render. A report of some groups proves only those.

Exit 0 when every case holds and analyze reports no error; 1 otherwise; 2 for bad
arguments or a render or stack file it cannot read (one line); 3 when the
translation cannot be built or run (one line naming the module or step).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import pulumi
import yaml

from components.inputs import InputError, read_text
from components.problems import did_you_mean
from tools.cli import EXIT_BAD_INPUT, EXIT_CANNOT_FINISH, EXIT_FAILED, EXIT_OK, OneLineParser, OutputPathError, check_output_file
from tools.engine import istio_xds
from tools.engine.envoy_proc import EnvoyRejectedError
from tools.engine.mesh_harness import MeshHarness
from tools.engine.netns import own_network_namespace
from tools.engine.ratelimit_build import pinned_ratelimit
from tools.engine.ratelimit_proc import SUBSTITUTIONS, RateLimitBackendError
from tools.engine.stackconfig import StackConfigError
from tools.engine.verify import DEFAULT_SAMPLES, GROUPS, intent, run_cases, table

ROOT = Path(__file__).resolve().parent.parent


class _BadRenderError(ValueError):
    pass


def _read_render(path: Path) -> istio_xds.Render:
    if not path.is_dir():
        raise _BadRenderError(f"--render {path}: is not a folder")
    if not (path / "resources.json").is_file() or not (path / "manifests").is_dir():
        raise _BadRenderError(f"--render {path}: not a render (no resources.json and manifests/; see tools.render)")
    try:
        render = istio_xds.load_render(path)
        render.stack  # noqa: B018 (reads the URNs: a render with none is refused here)
    except (OSError, ValueError, yaml.YAMLError, KeyError, IndexError, TypeError, istio_xds.TranslationError) as exc:
        raise _BadRenderError(f"--render {path}: cannot be read ({type(exc).__name__})") from exc
    return render


def _read_keys(path: Path) -> dict[str, list[str]]:
    try:
        keys = json.loads(read_text(path))
    except (InputError, json.JSONDecodeError) as exc:
        raise _BadRenderError(f"--keys {path}: cannot be read ({type(exc).__name__})") from None
    if not isinstance(keys, dict) or not all(isinstance(v, list) and all(isinstance(k, str) for k in v) for v in keys.values()):
        raise _BadRenderError(f"--keys {path}: must be a map of consumer to a list of keys (tools.render --test-keys)")
    return keys


def _groups(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",")]
    for name in names:
        if name not in GROUPS:
            raise argparse.ArgumentTypeError(f"{name!r} is not a group of cases{did_you_mean(name, GROUPS)}; "
                                             f"the groups: {', '.join(GROUPS)}")
    return names


def _can_run_sidecars() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None and shutil.which("iptables") is not None


def _mode(is_global: bool, replicas: int) -> dict[str, object]:
    """The report's lines on the rate-limit mode: in global mode, the replicas and the service that ran."""
    if not is_global:
        return {"substitutions": istio_xds.LOOPBACK_SUBSTITUTIONS}
    return {"rateLimits": "global", "gatewayReplicas": replicas, "rateLimitService": pinned_ratelimit(),
            "substitutions": {**istio_xds.LOOPBACK_SUBSTITUTIONS, **SUBSTITUTIONS}}


def _parser() -> OneLineParser:
    parser = OneLineParser(prog="python -m tools.verify", description=__doc__.split("\n\n")[0])
    parser.add_argument("--render", type=Path, required=True, help="a folder written by tools.render")
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    parser.add_argument("--keys", type=Path, help="the test keys the render was made with (tools.render --test-keys)")
    parser.add_argument("--stack-file", type=Path, help="the stack file the render was made from (tools.render --config)")
    parser.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, help="requests per canary measurement")
    parser.add_argument("--no-sidecars", action="store_true", help="run the gateway only (no root or iptables needed)")
    parser.add_argument("--gateway-replicas", type=int, default=2, help="gateways for global mode's cases (1 to 8)")
    parser.add_argument("--cases", type=_groups, help=f"only these groups of cases, comma-separated: {', '.join(GROUPS)}")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    for flag, value, low, high in (("--samples", args.samples, 20, 10_000), ("--gateway-replicas", args.gateway_replicas, 1, 8)):
        if not low <= value <= high:
            parser.error(f"{flag} must be from {low} to {high}")
    try:
        if args.out is not None:
            check_output_file(args.out)
        render = _read_render(args.render)
        keys = _read_keys(args.keys) if args.keys is not None else None
        want = intent(ROOT, render.stack, args.stack_file, keys)
    except (OutputPathError, _BadRenderError, StackConfigError, InputError, pulumi.RunError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    rendered = {v["metadata"]["name"] for v in render.kind("VirtualService")}
    missing = sorted(p.name for p in want.products if p.name not in rendered)
    if missing:
        print(f"error: --render {args.render}: no VirtualService for {', '.join(missing)}, which the stack file selects "
              "(render and stack file differ; see --stack-file)", file=sys.stderr)
        return EXIT_BAD_INPUT
    sidecars = not args.no_sidecars and _can_run_sidecars()
    started = time.monotonic()
    try:
        tools = istio_xds.build_istio_tools()
        built = time.monotonic()
        analysis = istio_xds.analyze(tools, render)
        with own_network_namespace() if sidecars else nullcontext(), MeshHarness(render, tools, sidecars=sidecars) as harness:
            cases = run_cases(harness, want, args.samples, args.gateway_replicas, args.cases)
            generator = harness.translation.generator
            removed = harness.removed
    except (istio_xds.IstioBuildError, istio_xds.TranslationError, EnvoyRejectedError, RateLimitBackendError, OSError) as exc:
        print(f"error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", file=sys.stderr)
        return EXIT_CANNOT_FINISH
    failed = [c for c in cases if c.ok is False]
    print(table(cases))
    print(f"\n{len(cases)} cases: {sum(c.ok is True for c in cases)} hold, {len(failed)} fail, "
          f"{sum(c.ok is None for c in cases)} not provable here; istioctl analyze: {analysis['errors']} error(s), "
          f"{analysis['warnings']} warning(s); generator {generator['module']}@{generator['version']}")
    for message in analysis["messages"]:
        print(f"  analyze {message['level']} {message['code']} {message['origin']}: {message['message']}")
    if args.out is not None:
        report = {"generator": f"{generator['module']}@{generator['version']}", "stack": want.stack,
                  "sidecars": sidecars,
                  **_mode(want.rate_limits.is_global, args.gateway_replicas),
                  "analyze": analysis, "removedFilters": {name: {"count": n, "why": istio_xds.REMOVED_FILTERS[name]}
                                                          for name, n in sorted(removed.items())},
                  "groups": list(args.cases or GROUPS), "cases": [c.report() for c in cases],
                  "seconds": {"build": round(built - started, 2), "total": round(time.monotonic() - started, 2)}}
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return EXIT_FAILED if failed or analysis["errors"] else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
