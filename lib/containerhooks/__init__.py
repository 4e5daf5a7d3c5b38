"""vdsm-hook-containers: run a container in place of an oVirt VM.

The hook scripts under hooks/ are thin entry points into this package; see
README.md for the architecture and docs/ for the module map.
"""
