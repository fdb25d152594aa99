"""`python -m fastmesh.config FILE`: translate one bootstrap file (see `_compile`)."""

from __future__ import annotations

from fastmesh.config._compile import main

raise SystemExit(main())
