#!/usr/bin/env bash
# Reference solution of lab 02-install-kvm on Debian 13 or 12: what a learner types, as root.
# Run by `virtlab solve 02 --yes [--user NAME] [--connect URI]`, which sets VIRTLAB_USER
# (the learner) and, with --connect, LIBVIRT_DEFAULT_URI.
set -eu

# The release, from os-release(5): package names differ between Debian 13 and 12.
debian=$(. /etc/os-release 2>/dev/null && echo "${VERSION_ID:-}") || debian=""  # 13, 12; "" on sid
case "$debian" in
  12|11|10) virt_install=virtinst ;;      # Debian 12: the package is virtinst
  *)        virt_install=virt-install ;;  # Debian 13: virt-install (virtinst is transitional)
esac

# 1. The packages (the course's qemu-kvm is a virtual package provided by qemu-system-x86:
#    we name the real one). apt is only called for what is missing.
packages=(qemu-system-x86 libvirt-daemon-system libvirt-clients bridge-utils "$virt_install"
          virt-manager virt-viewer)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y "${missing[@]}" </dev/null
fi

# 2. The learner joins groups libvirt (manage qemu:///system) and kvm (/dev/kvm).
usermod -aG libvirt,kvm "$VIRTLAB_USER"

# 3. The daemon starts now and at every boot (only where systemd is the init).
if [ -d /run/systemd/system ]; then
  systemctl enable --now libvirtd
fi

# 4. Check as the learner, in a fresh login (runuser reads the new groups), without sudo.
runuser -u "$VIRTLAB_USER" -- virsh -c "${LIBVIRT_DEFAULT_URI:-qemu:///system}" list --all \
  </dev/null
virt-host-validate qemu </dev/null || true   # the hardware line may FAIL without VT-x/AMD-V (lab 01)
