"""`python -m fastmesh.up` is `fastmesh up`."""

from fastmesh.up._cli import main

raise SystemExit(main())
