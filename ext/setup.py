"""Builds fastmesh_ext: every `fastmesh_ext/*.pyx` becomes a C extension module.

maturin builds only the Rust side, so the Cython modules are this separate small
distribution, installed beside fastmesh (`pip install ./ext .`).
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension(f"fastmesh_ext.{name}", [f"fastmesh_ext/{name}.pyx"], extra_compile_args=["-O2"])
    for name in ("routes", "endpoints", "wire")
]

setup(
    ext_modules=cythonize(
        extensions,
        build_dir="build/cython",
        compiler_directives={"language_level": "3"},
    ),
)
