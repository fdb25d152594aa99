"""`fastmesh up`: a demo mesh on loopback: control plane, CA, four apps with sidecars.

fastmesh up                      # start it, send traffic, print what to try; Ctrl-C stops
fastmesh up --smoke              # the same, checked: exit 0 when every request and version worked
fastmesh up shift v2=50,v3=50    # the running mesh: reviews' canary weights
fastmesh up fault ratings --abort 503 --percent 50 | --delay 2s | --off
fastmesh up traffic [-n 40]      # send requests, show which reviews versions answered
"""

from fastmesh.up._cli import main

__all__ = ["main"]
