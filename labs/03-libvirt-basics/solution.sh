# Reference solution of lab 03-libvirt-basics: what a learner types, in order.
# Run by `virtlab solve 03 --yes` (bash -eu), as root or through sudo.
#   VIRTLAB_USER          the learner (their ~/.config and ~/virtlab are written as them)
#   LIBVIRT_DEFAULT_URI   the libvirt to set up (default qemu:///system)
set -eu

LEARNER=${VIRTLAB_USER:-${SUDO_USER:-$(id -un)}}
URI=${LIBVIRT_DEFAULT_URI:-qemu:///system}
export LIBVIRT_DEFAULT_URI=$URI
LEARNER_HOME=$(getent passwd "$LEARNER" | cut -d: -f6)
IMAGES=/var/lib/libvirt/images

# virsh read stdin (a prompt, a console): keep them off this script's stdin,
# which is the script itself when it is fed to a shell (bash -s < solution.sh).
virsh() { command virsh "$@" </dev/null; }

# Files of the learner are written as the learner, so they own them.
as_learner() {
  if [ "$(id -un)" = "$LEARNER" ]; then "$@"; else runuser -u "$LEARNER" -- "$@"; fi
}

# 1. Network `default`: Debian 13 and 12 define it but neither start nor autostart it.
virsh net-info default >/dev/null 2>&1 \
  || virsh net-define /usr/share/libvirt/networks/default.xml
# (virsh 9.0 pads the names of --name listings with spaces: hence ' *$')
virsh net-list --name | grep -q '^default *$' || virsh net-start default
virsh net-autostart default

# 2. Pool `default` on /var/lib/libvirt/images (Debian 13 and 12 have none). A pool that
#    virt-install named after the folder (`images`) must go first: libvirt refuses two
#    pools on one folder. Removing a pool leaves its files in place.
if ! virsh pool-info default >/dev/null 2>&1; then
  virsh pool-list --all --name | sed 's/ *$//' | while IFS= read -r p; do
    [ -n "$p" ] || continue
    if virsh pool-dumpxml "$p" | grep -q "<path>$IMAGES/\?</path>"; then
      virsh pool-destroy "$p" >/dev/null 2>&1 || true
      virsh pool-undefine "$p"
    fi
  done
  virsh pool-define-as default dir --target "$IMAGES"
fi
if ! virsh pool-list --name | grep -q '^default *$'; then
  virsh pool-build default      # creates the folder if needed
  virsh pool-start default
fi
virsh pool-autostart default

# 3. The learner's own virsh talks to the system's libvirt by default.
as_learner mkdir -p "$LEARNER_HOME/.config/libvirt"
printf 'uri_default = "%s"\n' "$URI" | as_learner tee "$LEARNER_HOME/.config/libvirt/libvirt.conf" >/dev/null

# 4. Back up the network's XML ("Sauvegarde des configurations importantes").
as_learner mkdir -p "$LEARNER_HOME/virtlab/backup"
virsh net-dumpxml default | as_learner tee "$LEARNER_HOME/virtlab/backup/default-network.xml" >/dev/null

virsh net-list --all
virsh pool-list --all
