# Reference solution of lab 04-create-vm: what a learner types, in order.
# Run by `virtlab solve 04 --yes` (bash -eu), as root or through sudo.
#   LIBVIRT_DEFAULT_URI   the libvirt to use (default qemu:///system)
# No ISO is needed: the VM boots from an empty disk (--import), which is enough to learn
# its life cycle; install Debian in it later from an ISO if you wish.
set -eu

# virsh and virt-install read stdin (a prompt, a console): keep them off this script's stdin,
# which is the script itself when it is fed to a shell (bash -s < solution.sh).
virsh() { command virsh "$@" </dev/null; }
virt-install() { command virt-install "$@" </dev/null; }

URI=${LIBVIRT_DEFAULT_URI:-qemu:///system}
export LIBVIRT_DEFAULT_URI=$URI
VM=test-debian-12

# Prerequisites from lab 03: network `default` active, pool `default` on the images folder.
# (virsh 9.0 pads the names of --name listings with spaces: hence ' *$')
virsh net-list --name | grep -q '^default *$' || virsh net-start default
if ! virsh pool-list --name | grep -q '^default *$'; then
  virsh pool-info default >/dev/null 2>&1 \
    || virsh pool-define-as default dir --target /var/lib/libvirt/images
  virsh pool-build default
  virsh pool-start default
  virsh pool-autostart default
fi

# 1. A 10 GiB qcow2 volume, thin: it takes a few hundred KiB until the guest writes.
virsh vol-info --pool default "$VM.qcow2" >/dev/null 2>&1 \
  || virsh vol-create-as default "$VM.qcow2" 10G --format qcow2

# 2. The VM. Without VT-x/AMD-V (lab 01), QEMU emulates the CPU: --virt-type qemu.
#    The osinfo name of a Debian 12 guest: `debian12` on Debian 13 (osinfo-db 2025-06);
#    Debian 12's own osinfo-db (2022-11) predates bookworm's release and has no `debian12`
#    (no backport either): `debiantesting` there (`virt-install --osinfo list | grep debian`).
VIRT_TYPE=kvm
grep -Eq '(vmx|svm)' /proc/cpuinfo || VIRT_TYPE=qemu
debian=$(. /etc/os-release 2>/dev/null && echo "${VERSION_ID:-}") || debian=""  # 13, 12; "" on sid
case "$debian" in
  12|11|10) OS=debiantesting ;;
  *)        OS=debian12 ;;
esac
if ! virsh dominfo "$VM" >/dev/null 2>&1; then
  virt-install --name "$VM" --osinfo "$OS" --virt-type "$VIRT_TYPE" \
    --vcpus 1 --memory 1024 \
    --disk vol=default/$VM.qcow2,bus=virtio \
    --network network=default,model=virtio \
    --graphics vnc,listen=127.0.0.1 \
    --import --noautoconsole
fi

# 3. Running (virt-install --import starts it; `virsh list` shows running VMs only).
virsh list --name | grep -q "^$VM *\$" || virsh start "$VM"

# 4. "Tags et descriptions": a title and a description, in the running VM and its config.
virsh desc "$VM" --config --live --title "Debian 12 de test"
virsh desc "$VM" --config --live "VM d'essai du lab 04 : cycle de vie, ressources, snapshots"

# 5. A first snapshot (internal to the qcow2 file, with the memory state).
[ -n "$(virsh snapshot-list "$VM" --name | tr -d ' \n')" ] \
  || virsh snapshot-create-as "$VM" initial "Etat juste apres la creation"

virsh dominfo "$VM"
virsh snapshot-list "$VM"
