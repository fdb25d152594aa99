"""The compiled data path (Rust, `native/`). Thin bindings; see native/src/lib.rs."""

__all__ = ["ConfigError", "Engine", "__version__"]

__version__: str

class ConfigError(ValueError):
    """A snapshot the engine refused (bad JSON, unknown cluster, bad regex, bind failure).

    The engine keeps serving its previous snapshot when this is raised.
    """

class Engine:
    """One proxy data plane: a tokio runtime with `workers` threads (0 = one per core).

    A draining connection (its listener closed or removed, or its filter chain gone from
    the config) gets `drain_time_s` to finish, then is closed (Envoy's `--drain-time-s`).
    Long calls (`apply`, `drain`, `shutdown`) release the GIL.
    """

    def __init__(self, workers: int = 0, drain_time_s: float = 600.0) -> None: ...
    def apply(self, snapshot_json: str) -> None:
        """Validate and atomically swap in a snapshot (JSON of native/src/config.rs `Snapshot`).

        Listeners are bound, kept (same name and address) or closed; in-flight
        requests finish on the snapshot they started on. A kept listener drains the
        connections of each filter chain whose `chain_id` the new snapshot lacks. Raises
        ConfigError and changes nothing when the snapshot is invalid or a listener
        cannot bind.
        """
    def listening(self) -> dict[str, str]:
        """Listener name -> the `ip:port` actually bound (resolves port 0)."""
    def stats(self) -> dict[str, int]:
        """Every counter and gauge, by Envoy-style name (`cluster.<name>.upstream_rq_total`)."""
    def clusters(self) -> list[dict[str, object]]:
        """Per cluster: `name`; `endpoints` as dicts of `address`, `weight`, `priority`,
        `active_requests`, `requests`, `failures`, `connect_failures`, `health_flags`
        (Envoy's words: `healthy`, `/failed_active_hc`, `/failed_outlier_check`, run
        together), `success_rate` (percent over the last outlier sweep, -1 if not
        computed) and `outlier_ejections`; and, with outlier detection, `outlier`: a dict
        of `success_rate_average` and `success_rate_ejection_threshold` (-1 if not
        computed). What the admin `/clusters` page prints."""
    def active_connections(self) -> int:
        """Downstream connections currently open, over all listeners."""
    def drain(self, timeout_s: float) -> bool:
        """Stop accepting, let in-flight requests finish, close idle connections
        (HTTP/2 gets GOAWAY; TCP connections close after the drain time). Returns True if
        everything finished within the timeout."""
    def shutdown(self) -> None:
        """Close every listener and connection now and stop the runtime. Idempotent."""
