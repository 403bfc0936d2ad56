#!/usr/bin/env bash
# Reference solution of lab 06-virtualbox: the commands a learner types on Debian 13
# (trixie) or Debian 12 (bookworm), run as root by `virtlab solve 06 --yes`, the learner
# being $VIRTLAB_USER.
#
# Part 1 (Oracle's repository, VirtualBox 7.2, the group, the module) needs Oracle's
# repository and a kernel that loads vboxdrv: the project's test machines have neither, so
# it CANNOT run on the project's test machines. Part 2 (the VM) runs there for real: the
# tests run it with VIRTLAB_VBOX_STEPS=vm against the real VBoxManage 7.2 (Debian unstable's
# package in a root filesystem of its own, tests/vbox_real.py).
set -euo pipefail
# (no `grep -q` after a pipe: with pipefail, its early exit would fail the writer)

LEARNER="${VIRTLAB_USER:?VIRTLAB_USER must name the learner}"
STEPS="${VIRTLAB_VBOX_STEPS:-all}"   # all | vm
as_learner() { runuser -u "$LEARNER" -- "$@"; }   # VirtualBox registers VMs per user

install_virtualbox() {
  # The release decides the suite: bookworm (Debian 12) or trixie (Debian 13).
  . /etc/os-release
  local suite="${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}"

  # 1. Oracle's key in /etc/apt/keyrings (the system operator's keyrings, sources.list(5)),
  #    used by this repository only (signed-by=); never apt-key, which apt 3.0 removed.
  apt-get update
  apt-get install -y wget gpg
  install -d -m 0755 /etc/apt/keyrings
  wget -qO- https://www.virtualbox.org/download/oracle_vbox_2016.asc \
    | gpg --dearmor --yes -o /etc/apt/keyrings/oracle-virtualbox-2016.gpg
  gpg --show-keys --with-colons /etc/apt/keyrings/oracle-virtualbox-2016.gpg 2>/dev/null \
    | grep '^fpr:.*B9F8D658297AF3EFC18D5CDFA2F683C52980AECF' >/dev/null \
    || { echo "Oracle's key has an unexpected fingerprint: stopping." >&2; exit 1; }
  cat > /etc/apt/sources.list.d/virtualbox.sources <<EOF
Types: deb
URIs: https://download.virtualbox.org/virtualbox/debian
Suites: $suite
Components: contrib
Architectures: amd64
Signed-By: /etc/apt/keyrings/oracle-virtualbox-2016.gpg
EOF

  # 2. VirtualBox 7.2 (7.0 is out of support), the headers its module is built with, the
  #    group, the module.
  apt-get update
  apt-get install -y linux-headers-amd64 virtualbox-7.2
  usermod -aG vboxusers "$LEARNER"
  modprobe vboxdrv
  # With KVM loaded, VirtualBox VMs fail with VERR_VMX_IN_VMX_ROOT_MODE. Kernel 6.1 (Debian
  # 12): stop the KVM VMs, then `modprobe -r kvm_intel` (or kvm_amd). Kernel 6.12 (Debian
  # 13): KVM takes VT-x as soon as it is loaded: `options kvm enable_virt_at_load=0` in
  # /etc/modprobe.d/. Not done here: it would touch the libvirt labs.
}

make_vm() {
  # 3. VM debian-vbox: Debian 64-bit, 2 GiB, 2 vCPUs (the host keeps 2 GiB; nproc >= 2).
  local vmdir
  vmdir="$(as_learner sh -c 'echo "$HOME/VirtualBox VMs/debian-vbox"')"
  if ! as_learner VBoxManage showvminfo debian-vbox >/dev/null 2>&1; then
    as_learner VBoxManage createvm --name debian-vbox --ostype Debian_64 --register
  fi
  as_learner VBoxManage modifyvm debian-vbox --memory 2048 --cpus 2

  # 4. A 20 GiB VDI disk on a SATA controller.
  if [ ! -e "$vmdir/debian-vbox.vdi" ]; then
    as_learner VBoxManage createmedium disk --filename "$vmdir/debian-vbox.vdi" \
      --size 20480 --format VDI
  fi
  as_learner VBoxManage showvminfo debian-vbox --machinereadable \
    | grep '^storagecontrollername[0-9]*="SATA"$' >/dev/null \
    || as_learner VBoxManage storagectl debian-vbox --name SATA --add sata --controller IntelAhci
  as_learner VBoxManage storageattach debian-vbox --storagectl SATA --port 0 --device 0 \
    --type hdd --medium "$vmdir/debian-vbox.vdi"

  # 5. Adapter 1 on NAT; adapter 2 on host-only network vboxnet0 (on a Linux host:
  #    `hostonlyif`, not `hostonlynet`). `hostonlyif create` needs module vboxnetadp
  #    (/dev/vboxnetctl); without it, an internal network is the lab's other private choice.
  as_learner VBoxManage modifyvm debian-vbox --nic1 nat
  if as_learner VBoxManage list hostonlyifs | grep '^Name: *vboxnet0$' >/dev/null \
     || as_learner VBoxManage hostonlyif create; then
    as_learner VBoxManage modifyvm debian-vbox --nic2 hostonly --host-only-adapter2 vboxnet0
  else
    echo "No host-only interface (is vboxnetadp loaded?): adapter 2 goes on internal network labnet." >&2
    as_learner VBoxManage modifyvm debian-vbox --nic2 intnet --intnet2 labnet
  fi

  # 6. A snapshot (Debian itself is installed from the ISO by hand; not graded).
  as_learner VBoxManage snapshot debian-vbox list >/dev/null 2>&1 \
    || as_learner VBoxManage snapshot debian-vbox take "installation propre" \
         --description "après l'installation"
}

case "$STEPS" in
  all) install_virtualbox; make_vm ;;
  vm) make_vm ;;
  *) echo "VIRTLAB_VBOX_STEPS must be all or vm, not $STEPS" >&2; exit 2 ;;
esac

echo "Done. $LEARNER must log in again for group vboxusers to apply; then: virtlab check 06"
