"""Measurement: running one untrusted command and reading its number.

``runner`` is the one process runner (spawn, wait, timeout, group kill, capped logs,
leftovers), with ``processes`` finding what a command left running; ``parse`` reads the metric
from its output; ``containment`` is the policy a command runs under, built from ``sandbox``,
``limits`` and ``environment``; ``hardware`` is the fingerprint every result carries.
"""
