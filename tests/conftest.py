"""Shared fixtures.  The package is imported from lib/ of this checkout."""

import os
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
