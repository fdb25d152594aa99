"""fastmesh's Cython speed-ups: compiled twins of measured Python hot loops.

Each module here mirrors a pure-Python module of `fastmesh` and is imported with a
fallback to it, so fastmesh works (slower) without this distribution:

- `fastmesh_ext.routes` <- `fastmesh.config._routes` (route config: vhosts, routes, matchers)
- `fastmesh_ext.endpoints` <- `fastmesh.config._endpoints` (cluster endpoints)

Both are picked by `fastmesh.config._speedups`; `_readers.pxi` holds the C fast paths of
the field readers they share.
"""
