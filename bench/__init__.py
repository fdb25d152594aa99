"""Side-by-side benchmarks: fastmesh-proxy vs Envoy vs HAProxy in front of one nginx.

Run from the repository root: ``python -m bench`` (full) or ``python -m bench --smoke`` (CI).
See bench/README.md for the method, the CPU pinning and what each number means.
"""
