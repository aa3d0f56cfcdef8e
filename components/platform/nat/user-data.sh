#!/bin/bash
# datamesh NAT instance (datamesh:natGateways: instance): forward and masquerade the private
# subnets' traffic out of this instance's own interface. Amazon Linux 2023, any architecture.
set -euo pipefail
dnf install -y nftables
cat > /etc/sysctl.d/90-datamesh-nat.conf <<'CONF'
net.ipv4.ip_forward = 1
CONF
sysctl --system
iface="$(ip -o -4 route show to default | awk '{print $5; exit}')"
cat > /etc/sysconfig/nftables.conf <<CONF
table ip datamesh_nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "${iface}" masquerade
  }
}
CONF
systemctl enable --now nftables
systemctl restart nftables
