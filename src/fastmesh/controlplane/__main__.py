"""`python -m fastmesh.controlplane` is `fastmesh controlplane`."""

from fastmesh.controlplane.cli import main

raise SystemExit(main())
