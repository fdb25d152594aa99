"""`python -m fastmesh.demo` is `fastmesh demo`."""

from fastmesh.demo._run import main

raise SystemExit(main())
