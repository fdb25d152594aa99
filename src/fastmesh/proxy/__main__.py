"""`python -m fastmesh.proxy` is `fastmesh-proxy`."""

from fastmesh.proxy.cli import main

raise SystemExit(main())
