"""vdsm-hook-containers: run a container in place of an oVirt VM.

The hook scripts under hooks/ are thin entry points into this package; see
README.md for the architecture and the module map ("How it works").
"""

# The package's version; the RPM spec's Version says the same
# (tests/rpm_test.py checks it).
__version__ = "0.1.0"
