# Reference solution of lab 05-networks: what a learner types, in order.
# Run by `virtlab solve 05 --yes` (bash -eu), as root or through sudo.
#   LIBVIRT_DEFAULT_URI   the libvirt to set up (default qemu:///system)
#   BR0_PORT              the host interface to put into br0 (default: eth0)
#   LEASE_TIMEOUT         seconds to wait for test-debian-12's DHCP lease (default 180)
# It expects test-debian-12 from lab 04 (its NIC, if on `default`, moves to
# mon-reseau-prive, keeping its MAC) and creates web-server-prod if missing.
#
# WARNING: step 3 moves BR0_PORT into br0. Over SSH, when it is the host's only
# interface, read "L'ordre sûr" in the instructions first (scheduled revert).
set -eu

URI=${LIBVIRT_DEFAULT_URI:-qemu:///system}
export LIBVIRT_DEFAULT_URI=$URI
PORT=${BR0_PORT:-eth0}
LEASE_TIMEOUT=${LEASE_TIMEOUT:-180}
IMAGES=/var/lib/libvirt/images
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# virsh and virt-install read stdin (a prompt, a console): keep them off this script's stdin,
# which is the script itself when it is fed to a shell (bash -s < solution.sh).
virsh() { command virsh "$@" </dev/null; }
virt-install() { command virt-install "$@" </dev/null; }

# The release, from os-release(5): Debian 13 has dhcpcd (not dhclient) by default, and an
# osinfo-db that knows debian13; Debian 12's knows neither debian12 nor debian13.
debian=$(. /etc/os-release 2>/dev/null && echo "${VERSION_ID:-}") || debian=""  # 13, 12; "" on sid
case "$debian" in
  12|11|10) DHCP_CLIENT=dhclient; OSINFO=debian11 ;;
  *)        DHCP_CLIENT=dhcpcd;   OSINFO=debian13 ;;
esac

net_running() { virsh net-list --name | sed 's/ *$//' | grep -qx "$1"; }
dom_running() { [ "$(virsh domstate "$1" 2>/dev/null | head -n1)" = "running" ]; }

# 1. The NAT network of the course, from a file.
cat > "$WORK/mon-reseau.xml" <<'EOF'
<network>
  <name>mon-reseau-prive</name>
  <forward mode='nat'/>
  <bridge name='virbr1' stp='on' delay='0'/>
  <ip address='192.168.100.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.100.100' end='192.168.100.200'/>
    </dhcp>
  </ip>
</network>
EOF
virsh net-info mon-reseau-prive >/dev/null 2>&1 || virsh net-define "$WORK/mon-reseau.xml"
net_running mon-reseau-prive || virsh net-start mon-reseau-prive
virsh net-autostart mon-reseau-prive

# 2. An isolated network: no <forward>. With an <ip>, the host talks to the VMs
#    ("host-only"); without one, only the VMs talk to each other ("internal").
cat > "$WORK/reseau-isole.xml" <<'EOF'
<network>
  <name>reseau-isole</name>
  <bridge name='virbr2' stp='on' delay='0'/>
  <ip address='192.168.200.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.200.100' end='192.168.200.200'/>
    </dhcp>
  </ip>
</network>
EOF
virsh net-info reseau-isole >/dev/null 2>&1 || virsh net-define "$WORK/reseau-isole.xml"
net_running reseau-isole || virsh net-start reseau-isole
virsh net-autostart reseau-isole

# 3. The host bridge br0 with PORT in it (the course uses brctl; ip link does the same).
ip link show br0 >/dev/null 2>&1 || ip link add br0 type bridge
ip link set br0 type bridge forward_delay 0     # as bridge_fd 0 below
had_ip=0
ip -4 -o addr show dev "$PORT" | grep -q ' inet ' && had_ip=1
ip link set "$PORT" master br0
ip link set "$PORT" up
ip link set br0 up
if [ "$had_ip" = 1 ]; then
  # The address moves from the port to the bridge (the course's `dhclient br0`; Debian 13
  # installs dhcpcd instead).
  ip addr flush dev "$PORT"
  "$DHCP_CLIENT" br0 </dev/null
fi
brctl show br0

# ...and its persistent declaration for ifupdown (bridge_ports needs bridge-utils, on both).
mkdir -p /etc/network/interfaces.d
grep -qs '^source /etc/network/interfaces.d/\*' /etc/network/interfaces \
  || echo 'source /etc/network/interfaces.d/*' >> /etc/network/interfaces
cat > /etc/network/interfaces.d/br0 <<EOF
# Physical interface: no address of its own, it is a port of br0
auto $PORT
iface $PORT inet manual

# Bridge
auto br0
iface br0 inet dhcp
    bridge_ports $PORT
    bridge_stp off
    bridge_fd 0
    bridge_maxwait 0
EOF

# 4. test-debian-12 on the NAT network, virtio. Its NICs on `default` move (same MAC).
VM=test-debian-12
if ! virsh domiflist "$VM" | awk '$2=="network" && $3=="mon-reseau-prive"' | grep -q .; then
  mac=$(virsh domiflist "$VM" --inactive | awk '$2=="network" && $3=="default" {print $5; exit}')
  if [ -n "$mac" ]; then
    virsh detach-interface "$VM" network --mac "$mac" --config
    virsh attach-interface "$VM" network mon-reseau-prive --model virtio --mac "$mac" --config
  else
    virsh attach-interface "$VM" network mon-reseau-prive --model virtio --config
  fi
  # A new NIC in the config is used at the next cold boot (a reboot is not enough).
  if dom_running "$VM"; then
    virsh shutdown "$VM" || true
    for _ in $(seq 60); do dom_running "$VM" || break; sleep 1; done
    dom_running "$VM" && virsh destroy "$VM"
  fi
fi
dom_running "$VM" || virsh start "$VM"

# 5. web-server-prod on br0 (type bridge), virtio, plus a NIC on the isolated network.
if ! virsh dominfo web-server-prod >/dev/null 2>&1; then
  qemu-img create -f qcow2 "$IMAGES/web-server-prod.qcow2" 10G
  virt-install --name web-server-prod --memory 1024 --vcpus 1 \
    --disk path="$IMAGES/web-server-prod.qcow2",format=qcow2,bus=virtio \
    --network bridge=br0,model=virtio \
    --network network=reseau-isole,model=virtio \
    --osinfo "$OSINFO" --import --graphics none --noautoconsole \
    --print-xml > "$WORK/web-server-prod.xml"
  virsh define "$WORK/web-server-prod.xml"
fi
virsh domiflist web-server-prod | awk '$2=="bridge" && $3=="br0"' | grep -q . \
  || virsh attach-interface web-server-prod bridge br0 --model virtio --config
virsh domiflist web-server-prod | awk '$3=="reseau-isole"' | grep -q . \
  || virsh attach-interface web-server-prod network reseau-isole --model virtio --config

# 6. Wait for test-debian-12's lease (its OS asks for one over DHCP when it boots).
mac=$(virsh domiflist "$VM" | awk '$3=="mon-reseau-prive" {print $5; exit}')
for _ in $(seq "$LEASE_TIMEOUT"); do
  virsh net-dhcp-leases mon-reseau-prive | grep -qi "$mac" && break
  sleep 1
done
virsh net-list --all
virsh net-dhcp-leases mon-reseau-prive
