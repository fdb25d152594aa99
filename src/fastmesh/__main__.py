"""`python -m fastmesh` is the `fastmesh` command."""

from fastmesh.cli import main

raise SystemExit(main())
