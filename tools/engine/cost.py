"""A monthly list-price estimate of what a render creates, from the price table in prices.yaml.

Priced: the EKS control plane (standard or extended support, by the version's end of
standard support against the table's date) and its control-plane logs; managed node
groups by instance type and capacity type, at the node count the pods' requests need
(tools/engine/capacity.py; the desired size is ignored on an existing stack anyway),
with their root volumes;
NAT gateways, or a NAT instance; Elastic IPs; NLBs (a Service of type LoadBalancer) with their public
IPv4 addresses; KMS keys; ElastiCache replication groups by node type and node count (the
global rate limit's Redis). Everything else the program creates is free or billed by
use the render cannot see. Usage figures (NAT GB, NLCU, log GB) are assumptions the
table states.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from components.documents import Document
from components.inputs import TRUSTED_YAML_LOADER
from components.versions import KUBERNETES_STANDARD_SUPPORT_ENDS
from tools.engine import capacity
from tools.engine.graphs import component_of

PRICES = Path(__file__).with_name("prices.yaml")
ELB_ROLE_TAG = "kubernetes.io/role/elb"


def load_prices(path: Path = PRICES) -> Document:
    return yaml.load(path.read_text(), Loader=TRUSTED_YAML_LOADER)


def _v(entry: Document) -> float:
    return float(entry["value"])


def _item(what: str, quantity: float, unit: str, unit_price: float) -> Document:
    return {"what": what, "quantity": quantity, "unit": unit, "unitPrice": unit_price,
            "monthly": round(quantity * unit_price, 2)}


class _Estimator:
    def __init__(self, resources: list[Document], prices: Document) -> None:
        self.resources = resources
        self.by_urn = {r["urn"]: r for r in resources}
        self.p = prices
        self.hours = float(prices["hoursPerMonth"])
        self.warnings: list[str] = []
        self.capacity_table = capacity.load_table()
        self.capacity: Document = {}

    def cluster(self, r: Document) -> list[Document]:
        inputs = r["inputs"]
        version = str(inputs.get("version", ""))
        ends = KUBERNETES_STANDARD_SUPPORT_ENDS.get(version)
        extended = ends is not None and ends < str(self.p["checked"])
        rate = _v(self.p["eks"]["extendedSupportPerHour" if extended else "controlPlanePerHour"])
        support = "extended" if extended else "standard"
        items = [_item(f"EKS control plane, Kubernetes {version} ({support} support)", self.hours, "hours", rate)]
        logs = self.p["cloudWatchLogs"]
        for log_type in inputs.get("enabledClusterLogTypes") or []:
            gb = _v(logs["assumedGBPerMonth"][log_type])
            items.append(_item(f"CloudWatch Logs ingestion, {log_type} log (assumed {gb:g} GB)", gb, "GB",
                               _v(logs["ingestionPerGB"])))
        return items

    def node_group(self, r: Document) -> tuple[list[Document], tuple[float, float] | None]:
        inputs = r["inputs"]
        types = inputs.get("instanceTypes") or ["t3.medium"]  # the EKS API's default
        table = self.p["ec2OnDemandPerHour"]
        missing = [t for t in types if t not in table]
        if missing:
            self.warnings.append(f"{r['name']}: no price for instance type(s) {', '.join(missing)} in prices.yaml")
        known = [t for t in types if t in table]
        if not known:
            return [], None
        # Several types: the dearest, so the estimate is an upper bound whichever the allocator picks.
        itype = max(known, key=lambda t: _v(table[t]))
        nodes, sizing = self._nodes(r, types)
        on_demand = _v(table[itype])
        items: list[Document]
        span = None
        if inputs.get("capacityType") == "SPOT":
            spot = self.p["spot"]
            rate = on_demand * (1 - _v(spot["discountEstimate"]))
            items = [_item(f"{nodes} x {itype} spot (on-demand ${on_demand}/h less {_v(spot['discountEstimate']):.0%}); {sizing}",
                           nodes * self.hours, "instance-hours", round(rate, 5))]
            span = (nodes * self.hours * on_demand * (1 - _v(spot["discountHigh"])),
                    nodes * self.hours * on_demand * (1 - _v(spot["discountLow"])))
        else:
            items = [_item(f"{nodes} x {itype} on-demand; {sizing}", nodes * self.hours, "instance-hours", on_demand)]
        disk = self._disk_gb(r)
        items.append(_item(f"{nodes} x {disk} GB gp3 root volume", nodes * disk, "GB-months", _v(self.p["ebsGp3PerGBMonth"])))
        self.capacity["monthlyPerNode"] = round(sum(i["monthly"] for i in items) / max(nodes, 1), 2)
        return items, span

    def _nodes(self, r: Document, types: list[str]) -> tuple[int, str]:
        """The node count the pods' requests need, within the group's bounds, and how it was found."""
        scaling = r["inputs"].get("scalingConfig", {})
        low, high = int(scaling.get("minSize", 1)), int(scaling.get("maxSize", 1))
        sized = [t for t in types if t in self.capacity_table["instances"]]
        if not sized:
            self.warnings.append(f"{r['name']}: no size for instance type(s) {', '.join(types)} in capacity.yaml: "
                                 "priced at the group's desired size")
            return int(scaling.get("desiredSize", low)), "desired size (no capacity estimate)"
        # The smallest type: whichever the allocator picks, at least that much room.
        itype = min(sized, key=lambda t: capacity.allocatable(t, self.capacity_table)[:2])
        found = capacity.estimate(self.resources, itype, self.capacity_table)
        self.capacity = {**found.as_json(), "instanceType": itype, "minSize": low, "maxSize": high,
                         "packTo": float(self.capacity_table["packTo"])}
        nodes = min(max(found.needed, low), high)
        self.capacity["nodes"] = nodes
        if found.needed > high:
            self.warnings.append(f"{r['name']}: the pods request {found.needed} x {itype} nodes, more than nodeMaxSize "
                                 f"{high}: some would stay pending; raise nodeMaxSize or use a larger type")
        used = capacity.share(found, nodes)
        return nodes, f"the pods' requests need {found.needed} (bounds {low} to {high}), {used:.0%} of {nodes} nodes' room"

    def _disk_gb(self, node_group: Document) -> int:
        for dep in node_group["dependencies"]:
            lt = self.by_urn.get(dep)
            if lt and lt["type"] == "aws:ec2/launchTemplate:LaunchTemplate":
                for mapping in lt["inputs"].get("blockDeviceMappings", []):
                    if "volumeSize" in mapping.get("ebs", {}):
                        return int(mapping["ebs"]["volumeSize"])
        return int(node_group["inputs"].get("diskSize", 20))  # the EKS API's default

    def nat(self, r: Document) -> list[Document]:
        nat = self.p["natGateway"]
        gb = _v(nat["assumedGBPerMonth"])
        return [_item("NAT gateway hours", self.hours, "hours", _v(nat["perHour"])),
                _item(f"NAT data processed (assumed {gb:g} GB)", gb, "GB", _v(nat["perGBProcessed"]))]

    def eip(self, r: Document) -> list[Document]:
        return [_item("public IPv4 address", self.hours, "hours", _v(self.p["publicIPv4PerHour"]))]

    def load_balancer(self, r: Document) -> list[Document]:
        nlb = self.p["networkLoadBalancer"]
        lcu = _v(nlb["assumedNLCU"])
        items = [_item("NLB hours", self.hours, "hours", _v(nlb["perHour"])),
                 _item(f"NLB capacity (assumed {lcu:g} NLCU)", lcu * self.hours, "NLCU-hours", _v(nlb["perNLCUHour"]))]
        annotations = r["inputs"].get("metadata", {}).get("annotations", {})
        if annotations.get("service.beta.kubernetes.io/aws-load-balancer-scheme") == "internet-facing":
            # One public address per zone the NLB spans: the subnets tagged for internet-facing ELBs.
            zones = sum(1 for s in self.resources if s["type"] == "aws:ec2/subnet:Subnet"
                        and (s["inputs"].get("tags") or {}).get(ELB_ROLE_TAG) == "1")
            items.append(_item(f"{zones} public IPv4 addresses (one per zone)", zones * self.hours, "hours",
                               _v(self.p["publicIPv4PerHour"])))
        return items

    def instance(self, r: Document) -> list[Document]:
        """An EC2 instance of the program's own (the NAT instance): its hours, public address and root volume."""
        inputs = r["inputs"]
        itype = str(inputs.get("instanceType", ""))
        if itype not in self.p["ec2OnDemandPerHour"]:
            self.warnings.append(f"{r['name']}: no price for instance type {itype} in prices.yaml")
            return []
        items = [_item(f"1 x {itype} on-demand", self.hours, "instance-hours", _v(self.p["ec2OnDemandPerHour"][itype]))]
        if inputs.get("associatePublicIpAddress"):
            items.append(_item("public IPv4 address", self.hours, "hours", _v(self.p["publicIPv4PerHour"])))
        gb = int((inputs.get("rootBlockDevice") or {}).get("volumeSize", 8))
        items.append(_item(f"{gb} GB gp3 root volume", gb, "GB-months", _v(self.p["ebsGp3PerGBMonth"])))
        return items

    def kms(self, r: Document) -> list[Document]:
        return [_item("KMS customer-managed key", 1, "key-months", _v(self.p["kmsKeyPerMonth"]))]

    def elasticache(self, r: Document) -> list[Document]:
        inputs = r["inputs"]
        node_type, nodes = str(inputs.get("nodeType", "")), int(inputs.get("numCacheClusters", 1))
        table = self.p["elastiCacheNodePerHour"]
        if node_type not in table:
            self.warnings.append(f"{r['name']}: no price for cache node type {node_type} in prices.yaml")
            return []
        return [_item(f"{nodes} x {node_type} ElastiCache node (Redis)", nodes * self.hours, "node-hours", _v(table[node_type]))]

    def estimate(self, r: Document) -> tuple[list[Document], tuple[float, float] | None]:
        t = r["type"]
        if t == "eks:index:Cluster":
            return self.cluster(r), None
        if t == "aws:eks/nodeGroup:NodeGroup":
            return self.node_group(r)
        if t == "aws:ec2/natGateway:NatGateway":
            return self.nat(r), None
        if t == "aws:ec2/eip:Eip":
            return self.eip(r), None
        if t == "aws:kms/key:Key":
            return self.kms(r), None
        if t == "aws:ec2/instance:Instance":
            return self.instance(r), None
        if t == "aws:elasticache/replicationGroup:ReplicationGroup":
            return self.elasticache(r), None
        if t == "kubernetes:core/v1:Service" and (r["inputs"].get("spec") or {}).get("type") == "LoadBalancer":
            return self.load_balancer(r), None
        return [], None


def estimate(resources: list[Document], prices: Document | None = None) -> Document:
    """cost.json: per priced resource its items and monthly figure, the total, and what was assumed."""
    prices = prices or load_prices()
    est = _Estimator(resources, prices)
    regions = sorted({r["inputs"].get("region") for r in resources
                      if r["type"] == "pulumi:providers:aws" and r["inputs"].get("region")})
    est.warnings += [f"the stack is in {region}; the price table is for {prices['region']}: figures are indicative"
                     for region in regions if region != prices["region"]]
    rows = []
    low = high = 0.0
    for r in resources:
        items, span = est.estimate(r)
        if not items:
            continue
        monthly = round(sum(i["monthly"] for i in items), 2)
        row = {"urn": r["urn"], "type": r["type"], "name": r["name"], "label": f"{r['type']} {r['name']}",
               "component": component_of(r, est.by_urn), "monthly": monthly, "items": items}
        rest = monthly - items[0]["monthly"]
        if span is not None:
            row["monthlyRange"] = [round(span[0] + rest, 2), round(span[1] + rest, 2)]
        lo, hi = row.get("monthlyRange", [monthly, monthly])
        low, high = low + lo, high + hi
        rows.append(row)
    return {
        "currency": prices["currency"],
        "region": prices["region"],
        "pricesChecked": prices["checked"],
        "priceTable": "tools/engine/prices.yaml",
        "hoursPerMonth": prices["hoursPerMonth"],
        "basis": "on-demand list prices, no tax, free tier or discounts; node groups at the size the pods' requests "
                 "need (tools/engine/capacity.py), within their bounds",
        "capacity": est.capacity,
        "resources": rows,
        "total": round(sum(r["monthly"] for r in rows), 2),
        "totalRange": [round(low, 2), round(high, 2)],
        "warnings": est.warnings,
    }
