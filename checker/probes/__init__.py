"""Probes: read-only facts about a host (testinfra) and about libvirt (libvirt-python).

Probes state facts ("which interfaces has this domain?"); checks in ``labs/*/checks``
judge them ("has it a virtio interface?").
"""
