#!/usr/bin/env bash
# Reference solution of lab 07-troubleshooting: the commands a learner types, in the order of
# the method (observe, compare, change one thing, check again). Run after
# `virtlab start 07-troubleshooting`; `virtlab solve 07 --yes` runs it with
# LIBVIRT_DEFAULT_URI set. Safe to run twice.
set -euo pipefail

WEB=lab07-web
DB=lab07-db

# virsh and virt-xml read stdin (a prompt, a console): keep them off this script's stdin,
# which is the script itself when it is fed to a shell (bash -s < solution.sh).
virsh() { command virsh "$@" </dev/null; }
virt-xml() { command virt-xml "$@" </dev/null; }

# 1. The network: start it now, and at every boot of the host.
virsh net-list --all
virsh net-list --name | grep -x lab07-net >/dev/null || virsh net-start lab07-net
virsh net-autostart lab07-net

# 2. lab07-web's card: plug the cable back (link up), in its definition (--config) so that
#    it lasts; the MAC comes from `virsh domiflist lab07-web`.
virsh domiflist "$WEB"
mac=$(virsh domiflist "$WEB" | awk '$5 ~ /:/ { print $5; exit }')
virsh domif-setlink "$WEB" "$mac" up --config

# 3. and 6. Model virtio and the clean-traffic filter, in one edit of the definition
#    (virt-xml comes with virt-install, virtinst on Debian 12; `virsh edit lab07-web` does
#    the same by hand).
virt-xml "$WEB" --edit --network model=virtio,filterref=clean-traffic

# 4. Old snapshots: keep the current one only.
virsh snapshot-list "$WEB"
keep=$(virsh snapshot-current "$WEB" --name 2>/dev/null || true)
for snap in $(virsh snapshot-list "$WEB" --name); do
  [ "$snap" = "$keep" ] || virsh snapshot-delete "$WEB" "$snap"
done

# 5. lab07-db: move it to an isolated network (no <forward>), named lab07-* so that
#    `virtlab finish` removes it too.
if ! virsh net-info lab07-isolated >/dev/null 2>&1; then
  xml=$(mktemp)
  cat > "$xml" <<'EOF'
<network>
  <name>lab07-isolated</name>
  <bridge name='virbr-lab07i' stp='on' delay='0'/>
  <ip address='192.168.207.1' netmask='255.255.255.0'/>
</network>
EOF
  virsh net-define "$xml"
  rm -f "$xml"
fi
virsh net-list --name | grep -x lab07-isolated >/dev/null || virsh net-start lab07-isolated
virsh net-autostart lab07-isolated
virt-xml "$DB" --edit --network network=lab07-isolated

# 7. Start lab07-web (its network is active now); it sits in the BIOS, which is enough.
virsh list --name | grep -x "$WEB" >/dev/null || virsh start "$WEB"

# Check again.
virsh domiflist "$WEB"
virsh domif-getlink "$WEB" "$mac"
virsh domiflist "$DB"
