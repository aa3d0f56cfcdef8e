"""The benchmark tool keeps working; it reports figures, this checks none of them."""

import json

import pytest

from components.products.declarations import load_products
from tools import bench


def test_synthetic_products_are_valid_declarations_with_composition(tmp_path):
    names = bench.synthetic_products(tmp_path, 7)
    products = load_products(tmp_path, names, {})
    assert sorted(p.name for p in products) == names
    assert {p.domain for p in products} == {f"domain-{i}" for i in range(7)}
    composed = [p for p in products if p.consumes]
    assert [p.name for p in composed] == ["product-0002", "product-0005"]
    assert len({p.openapi_path for p in products}) == 7  # each its own definition, as in a real mesh


def test_bench_reports_every_size(tmp_path, capsys):
    out = tmp_path / "table.md"
    assert bench.main(["--sizes", "2", "--repeat", "1", "--markdown", str(out)]) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith("| 2 |")]
    assert len(rows) == 1
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert int(cells[1]) > 0 and all(float(c) > 0 for c in cells[2:])


def test_floor_child_registers_the_requested_count():
    assert bench._child("floor", 25)["resources"] == 26  # the stack itself, and 25 bare resources
    assert json.loads(bench._render_inputs(5))[0] is not None


def test_dependency_graph_grows_linearly_with_products(tmp_path):
    # A component in depends_on expands to all its children: one such edge per product
    # made the graph quadratic once (200 products: 10.8 s instead of 8.6 s). Counted, not timed.
    fan_in = {}
    for n in (10, 30):
        result = bench.run_synthetic(tmp_path / f"p{n}", n)
        fan_in[n] = max(len(r.dependencies) for r in result.resources)
        assert sum(len(r.dependencies) for r in result.resources) < 4 * len(result.resources)
    assert fan_in[10] == fan_in[30]


def test_the_gateway_benchmark_stack_file_loads_as_a_stack(tmp_path):
    # The stack loader refuses YAML aliases; a dict shared between tiers would be dumped as one.
    from tools import bench_gateway
    from tools.engine.mockrun import PROJECT_ROOT
    from tools.engine.stackconfig import load_stack_config

    path = bench_gateway.governed_stack_file(tmp_path)
    config = load_stack_config(PROJECT_ROOT, "dev", path).values
    assert "&id" not in path.read_text()
    assert "1000000" in config["datamesh:rateLimitTiers"]


@pytest.mark.parametrize(("argv", "named"), [
    (["--repeat", "0"], "--repeat"),
    (["--duration", "-1"], "--duration"),
    (["--connections", "x"], "--connections"),
    (["--out", "/proc/datamesh/report.md"], "--out"),
])
def test_the_gateway_benchmark_refuses_bad_arguments_before_measuring(argv, named, capsys):
    from tools import bench_gateway

    with pytest.raises(SystemExit) as exited:
        bench_gateway.main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and named in err, err
