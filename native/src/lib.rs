//! fastmesh's data path. The engine is plain Rust (`engine`, `listener`, `http`,
//! `upstream`, `tcp`, `rbac`, `stats`); this file adds only the thin PyO3 module
//! `fastmesh._native`, built when maturin turns on `pyo3/extension-module`.

pub mod chains;
pub mod config;
pub mod conn;
pub mod engine;
pub mod http;
pub mod listener;
pub mod network_rbac;
pub mod rbac;
pub mod stats;
pub mod tcp;
pub mod tls;
pub mod upstream;

pub use engine::{Engine, EngineError};

#[cfg(feature = "pyo3")]
mod python {
    use std::time::Duration;

    use pyo3::create_exception;
    use pyo3::exceptions::{PyRuntimeError, PyValueError};
    use pyo3::prelude::*;
    use pyo3::types::PyDict;

    use crate::engine::{Engine, EngineError};

    create_exception!(
        _native,
        ConfigError,
        PyValueError,
        "A snapshot the engine refused; the previous one keeps serving."
    );

    /// The one place engine errors become Python exceptions.
    fn to_py(e: EngineError) -> PyErr {
        match e {
            EngineError::Shutdown => PyRuntimeError::new_err(e.to_string()),
            _ => ConfigError::new_err(e.to_string()),
        }
    }

    #[pyclass(name = "Engine", module = "fastmesh._native", frozen)]
    struct PyEngine {
        inner: Engine,
    }

    #[pymethods]
    impl PyEngine {
        #[new]
        #[pyo3(signature = (workers = 0, drain_time_s = 600.0))]
        fn new(workers: usize, drain_time_s: f64) -> PyResult<Self> {
            let drain_time = Duration::try_from_secs_f64(drain_time_s).map_err(|_| {
                PyValueError::new_err(format!("drain_time_s: {drain_time_s} is not a duration"))
            })?;
            let inner = Engine::new(workers)
                .map_err(|e| PyRuntimeError::new_err(format!("cannot start runtime: {e}")))?
                .with_drain_time(drain_time);
            Ok(PyEngine { inner })
        }

        fn apply(&self, py: Python<'_>, snapshot_json: &str) -> PyResult<()> {
            py.allow_threads(|| self.inner.apply(snapshot_json))
                .map_err(to_py)
        }

        fn listening(&self) -> std::collections::BTreeMap<String, String> {
            self.inner
                .listening()
                .into_iter()
                .map(|(n, a)| (n, a.to_string()))
                .collect()
        }

        fn stats(&self) -> std::collections::BTreeMap<String, u64> {
            self.inner.stats().into_iter().collect()
        }

        fn clusters<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
            self.inner
                .clusters()
                .into_iter()
                .map(|c| {
                    let d = PyDict::new(py);
                    d.set_item("name", c.name)?;
                    let eps = c
                        .endpoints
                        .into_iter()
                        .map(|e| {
                            let ed = PyDict::new(py);
                            ed.set_item("address", e.address.to_string())?;
                            ed.set_item("weight", e.weight)?;
                            ed.set_item("active_requests", e.active_requests)?;
                            ed.set_item("requests", e.requests)?;
                            ed.set_item("failures", e.failures)?;
                            ed.set_item("connect_failures", e.connect_failures)?;
                            ed.set_item("health_flags", e.health_flags)?;
                            ed.set_item("priority", e.priority)?;
                            ed.set_item("success_rate", e.success_rate)?;
                            ed.set_item("outlier_ejections", e.outlier_ejections)?;
                            Ok(ed)
                        })
                        .collect::<PyResult<Vec<_>>>()?;
                    d.set_item("endpoints", eps)?;
                    if let Some(o) = c.outlier {
                        let od = PyDict::new(py);
                        od.set_item("success_rate_average", o.success_rate_average)?;
                        od.set_item(
                            "success_rate_ejection_threshold",
                            o.success_rate_ejection_threshold,
                        )?;
                        d.set_item("outlier", od)?;
                    }
                    Ok(d)
                })
                .collect()
        }

        fn active_connections(&self) -> u64 {
            self.inner.active_connections()
        }

        fn drain(&self, py: Python<'_>, timeout_s: f64) -> bool {
            let t = Duration::from_secs_f64(timeout_s.max(0.0));
            py.allow_threads(|| self.inner.drain(t))
        }

        fn shutdown(&self, py: Python<'_>) {
            py.allow_threads(|| self.inner.shutdown())
        }
    }

    #[pymodule]
    #[pyo3(name = "_native")]
    fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        m.add_class::<PyEngine>()?;
        m.add("ConfigError", m.py().get_type::<ConfigError>())?;
        Ok(())
    }
}
