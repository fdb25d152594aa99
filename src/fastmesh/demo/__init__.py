"""`fastmesh demo`: fastmesh-proxy in front of small demo services, with a walkthrough.

fastmesh demo            # start everything, send traffic, print what to try; Ctrl-C stops
fastmesh demo --smoke    # the same, checked; exit 0 when everything worked (for CI)
"""

from fastmesh.demo._run import main

__all__ = ["main"]
