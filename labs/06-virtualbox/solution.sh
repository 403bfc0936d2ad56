#!/usr/bin/env bash
# Reference solution of lab 06-virtualbox: the commands a learner types on Debian 12
# (bookworm), run as root by `virtlab solve 06 --yes`, the learner being $VIRTLAB_USER.
#
# It CANNOT run on the project's test machines: VirtualBox cannot be installed there (no
# module support in their kernel, no access to Oracle's repository). The lab's checks are
# tested instead against a VBoxManage stand-in printing recorded-format outputs
# (tests/fixtures/vbox/), whose good scenario is the state this script leaves.
set -euo pipefail
# (no `grep -q` after a pipe: with pipefail, its early exit would fail the writer)

LEARNER="${VIRTLAB_USER:?VIRTLAB_USER must name the learner}"
as_learner() { runuser -u "$LEARNER" -- "$@"; }   # VirtualBox registers VMs per user

# 1. Oracle's repository with its own keyring and signed-by= (never apt-key).
apt-get update
apt-get install -y wget gpg
wget -qO- https://www.virtualbox.org/download/oracle_vbox_2016.asc \
  | gpg --dearmor --yes -o /usr/share/keyrings/oracle-virtualbox-2016.gpg
gpg --show-keys --with-colons /usr/share/keyrings/oracle-virtualbox-2016.gpg 2>/dev/null \
  | grep '^fpr:.*B9F8D658297AF3EFC18D5CDFA2F683C52980AECF' >/dev/null \
  || { echo "Oracle's key has an unexpected fingerprint: stopping." >&2; exit 1; }
echo "deb [arch=amd64 signed-by=/usr/share/keyrings/oracle-virtualbox-2016.gpg] https://download.virtualbox.org/virtualbox/debian bookworm contrib" \
  > /etc/apt/sources.list.d/virtualbox.list

# 2. VirtualBox 7.0, the headers its module is built with, the group, the module.
apt-get update
apt-get install -y linux-headers-amd64 virtualbox-7.0
usermod -aG vboxusers "$LEARNER"
modprobe vboxdrv
# If a KVM VM runs, VirtualBox VMs fail with VERR_VMX_IN_VMX_ROOT_MODE: stop it, then
# `modprobe -r kvm_intel` (or kvm_amd). Not done here: it would break the libvirt labs.

# 3. VM debian-vbox: Debian 64-bit, 2 GiB, 2 vCPUs (the host keeps 2 GiB; nproc >= 2).
VMDIR="$(as_learner sh -c 'echo "$HOME/VirtualBox VMs/debian-vbox"')"
if ! as_learner VBoxManage showvminfo debian-vbox >/dev/null 2>&1; then
  as_learner VBoxManage createvm --name debian-vbox --ostype Debian_64 --register
fi
as_learner VBoxManage modifyvm debian-vbox --memory 2048 --cpus 2

# 4. A 20 GiB VDI disk on a SATA controller.
if [ ! -e "$VMDIR/debian-vbox.vdi" ]; then
  as_learner VBoxManage createmedium disk --filename "$VMDIR/debian-vbox.vdi" \
    --size 20480 --format VDI
fi
as_learner VBoxManage showvminfo debian-vbox --machinereadable | grep '^storagecontrollername[0-9]*="SATA"$' >/dev/null \
  || as_learner VBoxManage storagectl debian-vbox --name SATA --add sata --controller IntelAhci
as_learner VBoxManage storageattach debian-vbox --storagectl SATA --port 0 --device 0 \
  --type hdd --medium "$VMDIR/debian-vbox.vdi"

# 5. Adapter 1 on NAT, adapter 2 on host-only network vboxnet0.
as_learner VBoxManage list hostonlyifs | grep '^Name: *vboxnet0$' >/dev/null \
  || as_learner VBoxManage hostonlyif create
as_learner VBoxManage modifyvm debian-vbox --nic1 nat
as_learner VBoxManage modifyvm debian-vbox --nic2 hostonly --hostonlyadapter2 vboxnet0

# 6. A snapshot (Debian itself is installed from the ISO by hand; not graded).
as_learner VBoxManage snapshot debian-vbox list >/dev/null 2>&1 \
  || as_learner VBoxManage snapshot debian-vbox take "installation propre" \
       --description "après l'installation"

echo "Done. $LEARNER must log in again for group vboxusers to apply; then: virtlab check 06"
