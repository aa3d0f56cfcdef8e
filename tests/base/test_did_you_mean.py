"""Every "not a ..." error names the closest valid choice when one is close: a typo gets its fix."""

import pytest

from tests.conftest import DEMO, stack_file, write_stack
from tools.render import main as render_main


def _typo(word: str) -> str:
    """``word`` with its last two letters swapped: close enough for a did-you-mean, never equal."""
    return word[:-2] + word[-1] + word[-2]


def _cases() -> list[tuple[str, dict, str, str]]:
    config = stack_file(DEMO)["config"]
    product = config["datamesh:products"][0]
    consumer, spec = next(iter(config["datamesh:consumers"].items()))
    tier = next(iter(config["datamesh:rateLimitTiers"]))
    overrides = config.get("datamesh:productOverrides", {})
    return [
        ("a consumer's product", {"datamesh:consumers": {**config["datamesh:consumers"],
                                                          consumer: {**spec, "products": [_typo(product)]}}},
         f"datamesh:consumers.{consumer}.products", product),
        ("a consumer's tier", {"datamesh:consumers": {**config["datamesh:consumers"], consumer: {**spec, "tier": _typo(tier)}}},
         f"datamesh:consumers.{consumer}.tier", tier),
        ("an override's product", {"datamesh:productOverrides": {**overrides, _typo(product): {"replicas": 2}}},
         f"datamesh:productOverrides.{_typo(product)}", product),
        ("a wildcard allowance", {"datamesh:allowWildcardIamProducts": [_typo(product)]},
         "datamesh:allowWildcardIamProducts", product),
        ("an add-on pin", {"datamesh:eksAddonVersions": {"corends": "v1.11.4-eksbuild.1"}}, "datamesh:eksAddonVersions", "coredns"),
        ("the stable revision", {"datamesh:istioRevisions": {"default": config["datamesh:istioVersion"], "1-30": config[
            "datamesh:istioVersion"]}, "datamesh:istioStableRevision": "1-03"}, "datamesh:istioStableRevision", "1-30"),
    ]


@pytest.mark.parametrize(("what", "overrides", "key", "meant"), _cases(), ids=[c[0] for c in _cases()])
def test_a_typo_gets_did_you_mean(tmp_path, capsys, what, overrides, key, meant):
    drop = ("datamesh:istioVersion",) if "datamesh:istioRevisions" in overrides else ()
    stack = write_stack(tmp_path, overrides, base=DEMO, drop=drop)
    code = render_main(["--stack", "dev", "--config", str(stack), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith(f"error: {key}") and f"(did you mean {meant!r}?)" in err, err
