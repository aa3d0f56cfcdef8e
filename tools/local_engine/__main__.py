"""Build the local control plane (cached), start it, and run the real engine on the local stack.

    python -m tools.local_engine [--out FILE] [--keep DIR]

Writes a JSON report (stdout, and FILE): ``engine`` (the Pulumi version), ``steps`` (``preview``,
``policy_violation_fails_preview``, ``up``, ``noop_up``, ``update_in_place``, ``destroy``,
``automation_api``: each "ok" or its failure in one line), ``build`` (per binary: module, seconds,
cached, error) and ``times`` (seconds per step), ``deleteOrder`` (the engine's against
tools/engine/order.py). Exits 0 only when every step is ok.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from tools.cli import OneLineParser, OutputPathError, check_output_dir, check_output_file
from tools.engine.local_build import BINARIES, GO_ROOT, _module_dir, bin_dir, build_local_engine
from tools.engine.local_cluster import Api, LocalCluster
from tools.engine.local_run import (
    ROOT,
    Project,
    destroy,
    install_istio,
    noop_up,
    preview,
    up,
    update_in_place,
    violation_fails_preview,
)

STEPS = ("preview", "policy_violation_fails_preview", "up", "noop_up", "update_in_place", "destroy", "automation_api")


def istio_crds() -> Path:
    return _module_dir(GO_ROOT.parents[1] / "istiod", "istio.io/istio") / "manifests" / "charts" / "base" / "files" / "crd-all.gen.yaml"


def _run_steps(project: Project, api: Api, report: dict[str, Any]) -> None:
    steps = report["steps"]
    steps["preview"] = preview(project)
    steps["policy_violation_fails_preview"] = violation_fails_preview(project)
    steps["up"], _ = up(project)
    if steps["up"] != "ok":
        for step in ("noop_up", "update_in_place"):
            steps[step] = "not run: up failed"
    else:
        steps["noop_up"] = noop_up(project)
        steps["update_in_place"] = update_in_place(project)
    steps["destroy"], report["deleteOrder"] = destroy(project, api)
    from tools.engine.local_automation import automation_api

    steps["automation_api"] = automation_api(project)


def run(report: dict[str, Any], keep: Path | None) -> None:
    started = time.monotonic()
    build = build_local_engine()
    report["build"] = build.as_json()
    report["times"]["build"] = round(time.monotonic() - started, 1)
    missing = [b.name for b in BINARIES if b.name not in build.paths]
    if missing:
        for step in STEPS:
            report["steps"][step] = f"not run: {missing[0]} did not build ({build.failures.get(missing[0], 'not built')})"
        return
    folder = Path(tempfile.mkdtemp(prefix="datamesh-local-", dir=keep))
    cluster = LocalCluster(folder / "cluster", build.paths)
    (folder / "cluster").mkdir()
    try:
        started = time.monotonic()
        kubeconfig = cluster.start()
        api = Api(cluster.server, folder / "cluster")
        version = yaml.safe_load((ROOT / "Pulumi.local.yaml").read_text())["config"]["datamesh:istioVersion"]
        install_istio(api, istio_crds(), str(version))
        report["times"]["control_plane"] = round(time.monotonic() - started, 1)
        project = Project(folder, bin_dir(build), report["times"])
        ready = project.init(kubeconfig)
        report["engine"] = project.version()
        if ready != "ok":
            for step in STEPS:
                report["steps"][step] = f"not run: {ready}"
            return
        _run_steps(project, api, report)
    finally:
        cluster.stop()
        report["folder"] = str(folder)


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m tools.local_engine", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the JSON report here")
    parser.add_argument("--keep", type=Path, help="make the run's folder (logs, state, event logs) under this one")
    args = parser.parse_args(argv)
    # Before tens of minutes of building and running, not after.
    for flag, path, check in (("--out", args.out, check_output_file), ("--keep", args.keep, check_output_dir)):
        if path is not None:
            try:
                check(path)
            except OutputPathError as exc:
                parser.error(f"{flag}: {exc}")
    report: dict[str, Any] = {"engine": "", "steps": dict.fromkeys(STEPS, "not run"), "build": {}, "times": {}}
    started = time.monotonic()
    try:
        run(report, args.keep)
    except Exception as exc:
        why = (str(exc).strip().splitlines() or [""])[-1][:300]
        for step, value in report["steps"].items():
            if value == "not run":
                report["steps"][step] = f"not run: {type(exc).__name__}: {why}"
    report["times"]["total"] = round(time.monotonic() - started, 1)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if all(v == "ok" for v in report["steps"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
