"""Benchmark: render synthetic meshes of N data products and compare with the mock runtime's floor.

    python -m tools.bench [--sizes 10 50 200] [--repeat 3] [--markdown FILE]

For each size, in fresh processes (so peak memory is that run's own):
- render: the real program for the dev stack with N synthetic products
  (ten domains, every third product composing the two before it);
- bare floor: a program that registers the same number of bare resources,
  with the same mock runtime and recording monitor (the issue's floor);
- same-inputs floor: as many resources carrying the render's own inputs,
  registered flat: what moving that much data through the SDK costs alone.
Reports wall time (best of --repeat; the second run in its process, so imports
are excluded; from the start of the program to the last registration settling),
peak RSS, resources registered, time per resource, and render/floor ratio.
Targets (issue): linear growth; per-resource cost at most 1.5x the floor;
200 products under 10 s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from tools.cli import OneLineParser, OutputPathError, check_output_file
from tools.engine.mockrun import PROJECT_ROOT, RunResult, run_program
from tools.engine.stackconfig import StackConfig, load_stack_config

FLOOR_PROGRAM = '''
import json
import os
import pulumi

class Bare(pulumi.CustomResource):
    def __init__(self, name, props):
        super().__init__("datamesh:bench:Bare", name, props, None)

inputs = json.loads(os.environ.get("BENCH_INPUTS", "null"))
for i in range(int(os.environ["BENCH_RESOURCES"])):
    Bare(f"bare-{i}", inputs[i] if inputs else {})
'''


def synthetic_products(folder: Path, count: int) -> list[str]:
    """``count`` declarations modelled on customer-features, some composing others, each with its own OpenAPI file."""
    source = PROJECT_ROOT / "products"
    shutil.copytree(source / "demo", folder / "demo")
    (folder / "openapi").mkdir()
    template = yaml.safe_load((source / "customer-features.yaml").read_text())
    spec = yaml.safe_load((source / "openapi" / "customer-features.yaml").read_text())
    names = [f"product-{i:04d}" for i in range(count)]
    for i, name in enumerate(names):
        (folder / "openapi" / f"{name}.yaml").write_text(yaml.safe_dump({
            **spec, "info": {**spec["info"], "title": f"Synthetic product {i}"},
            "paths": {p.replace("customer-features", name): v for p, v in spec["paths"].items()},
        }))
        doc = {**template, "name": name, "domain": f"domain-{i % 10}", "routePrefix": f"/public/api/v1/{name}/",
               "openapi": f"openapi/{name}.yaml"}
        if i % 3 == 2:
            doc["consumes"] = names[i - 2 : i]
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(doc))
    return names


def synthetic_config(dev: dict[str, str], names: list[str]) -> dict[str, str]:
    """Dev's platform with the synthetic products, two consumers calling all of them, each with a key."""
    config = {k: v for k, v in dev.items() if k != "datamesh:productOverrides"}
    config["datamesh:products"] = json.dumps(names)
    config["datamesh:consumers"] = json.dumps({
        "analytics": {"products": names, "tier": "standard"},
        "partner-portal": {"products": names[::2], "tier": "trial"},
    })
    config["datamesh:apiKeys"] = json.dumps({"analytics": ["bench-key-" + "a" * 24], "partner-portal": ["bench-key-" + "b" * 24]})
    return config


def synthetic_project(folder: Path, count: int, dev: StackConfig) -> tuple[Path, dict[str, str]]:
    """The program with ``count`` synthetic products in ``folder``: its path and dev-based config.

    Only the program and its products move; ``components`` is imported from the checkout.
    """
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROJECT_ROOT / "__main__.py", folder / "__main__.py")
    names = synthetic_products(folder / "products", count)
    return folder / "__main__.py", synthetic_config(dev.values, names)


def run_synthetic(folder: Path, count: int) -> RunResult:
    """One mock run of the program with ``count`` synthetic products."""
    dev = load_stack_config(PROJECT_ROOT, "dev")
    program, config = synthetic_project(folder, count, dev)
    return run_program(config, dev.secret_keys, stack="dev", project=dev.project, program=program)


def _render_inputs(count: int) -> str:
    """The inputs of the first ``count`` resources of a synthetic render, as JSON (secrets already masked)."""
    with tempfile.TemporaryDirectory() as tmp:
        result = run_synthetic(Path(tmp), int(count / 10) + 1)
    inputs = [r.inputs for r in result.resources]
    return json.dumps((inputs * (count // len(inputs) + 1))[:count])


def _child(kind: str, count: int) -> dict[str, float]:
    """Run once in this process and report; called in a fresh interpreter."""
    base = load_stack_config(PROJECT_ROOT, "dev")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if kind == "render":
            program, config = synthetic_project(work / "project", count, base)
        else:
            # "floor": bare resources, no inputs. "inputs": as many resources carrying the
            # render's own inputs, flat: what registering that much data costs by itself.
            program = work / "floor.py"
            program.write_text(FLOOR_PROGRAM)
            os.environ["BENCH_RESOURCES"] = str(count)
            if kind == "inputs":
                os.environ["BENCH_INPUTS"] = _render_inputs(count)
            config = base.values
        # Warm up with one untimed run: module imports (the SDKs load lazily) are a
        # one-off cost of the process, not of the mesh's size.
        run_program(config, base.secret_keys, stack="dev", project=base.project, program=program)
        start = time.perf_counter()
        result = run_program(config, base.secret_keys, stack="dev", project=base.project, program=program)
        elapsed = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": elapsed, "peak_mib": peak_kib / 1024, "resources": len(result.resources)}


def measure(kind: str, count: int, repeat: int) -> dict[str, float]:
    runs = []
    for _ in range(repeat):
        proc = subprocess.run(
            [sys.executable, "-m", "tools.bench", "--child", kind, str(count)],
            cwd=PROJECT_ROOT, capture_output=True, text=True, check=True,
        )
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    best = min(runs, key=lambda r: r["seconds"])
    return {**best, "peak_mib": max(r["peak_mib"] for r in runs)}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, {platform.system()} {platform.release()}"


MAX_SIZE = 2000


def _bounded(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not (text.isdigit() and len(text) <= 6) or not low <= int(text) <= high:
            raise argparse.ArgumentTypeError(f"must be a whole number from {low} to {high}")
        return int(text)
    return parse


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m tools.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=_bounded(1, MAX_SIZE), nargs="+", default=[10, 50, 200],
                        help=f"mesh sizes in products (1 to {MAX_SIZE})")
    parser.add_argument("--repeat", type=_bounded(1, 20), default=3, help="runs per cell, best kept (1 to 20)")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        if args.child[0] not in ("render", "floor", "inputs") or not args.child[1].isdigit():
            parser.error("--child: KIND is render, floor or inputs; COUNT a number")
        print(json.dumps(_child(args.child[0], int(args.child[1]))))
        return 0
    if args.markdown is not None:
        try:
            check_output_file(args.markdown)  # before minutes of measuring, not after
        except OutputPathError as exc:
            parser.error(f"--markdown: {exc}")

    rows = []
    for size in args.sizes:
        render = measure("render", size, args.repeat)
        n = int(render["resources"])
        bare, same = measure("floor", n, args.repeat), measure("inputs", n, args.repeat)
        rows.append((size, render, bare, same))
        print(f"{size} products: {n} resources, render {render['seconds']:.2f} s, bare floor {bare['seconds']:.2f} s, "
              f"same-inputs floor {same['seconds']:.2f} s", file=sys.stderr)

    lines = [
        f"Machine: {machine()}. Best of {args.repeat} runs per cell; wall time of the program run, imports excluded.",
        "",
        "| products | resources | render s | ms/resource | peak MiB | bare floor s | ms/resource | peak MiB "
        "| render/bare | same-inputs floor s | render/same-inputs |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for size, r, b, f in rows:
        count = r["resources"]
        lines.append(
            f"| {size} | {count:.0f} | {r['seconds']:.2f} | {1000 * r['seconds'] / count:.2f} | {r['peak_mib']:.0f} "
            f"| {b['seconds']:.2f} | {1000 * b['seconds'] / count:.2f} | {b['peak_mib']:.0f} | {r['seconds'] / b['seconds']:.2f} "
            f"| {f['seconds']:.2f} | {r['seconds'] / f['seconds']:.2f} |"
        )
    table = "\n".join(lines) + "\n"
    print(table)
    if args.markdown:
        try:
            args.markdown.write_text(table)
        except OSError as exc:
            print(f"error: --markdown: {args.markdown}: cannot be written ({exc.strerror})", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
