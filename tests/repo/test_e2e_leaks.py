"""The e2e leak check (tests/e2e/leaks.py) on made-up ARNs: the controller's leftovers count, keys pending deletion do not."""

from tests.e2e.leaks import CONTROLLER_CLUSTER_TAG, is_kms_key, leftovers, tagged

KEY = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
NLB = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/net/k8s-istioing-istioing-0123456789/abc"
ALIAS = "arn:aws:kms:eu-west-1:123456789012:alias/datamesh"


def test_keys_pending_deletion_are_not_leaks_but_live_keys_are():
    states = {KEY: "PendingDeletion"}
    assert leftovers([KEY, NLB], lambda arn: states[arn]) == [NLB]
    assert leftovers([KEY, NLB], lambda arn: "Enabled") == sorted([KEY, NLB])
    assert is_kms_key(KEY) and not is_kms_key(ALIAS) and not is_kms_key(NLB)


class _Pages:
    def __init__(self, by_tag):
        self.by_tag, self.asked = by_tag, []

    def get_paginator(self, name):
        assert name == "get_resources"
        return self

    def paginate(self, TagFilters):  # noqa: N803 (boto3's argument name)
        [f] = TagFilters
        self.asked.append((f["Key"], tuple(f["Values"])))
        return [{"ResourceTagMappingList": [{"ResourceARN": a} for a in self.by_tag.get((f["Key"], f["Values"][0]), [])]}]


def test_the_controller_tag_finds_its_nlb():
    client = _Pages({(CONTROLLER_CLUSTER_TAG, "datamesh-e2e"): [NLB]})
    assert tagged(client, CONTROLLER_CLUSTER_TAG, "datamesh-e2e") == [NLB]
    assert client.asked == [(CONTROLLER_CLUSTER_TAG, ("datamesh-e2e",))]
