"""The ADS client's update counters, named and counted as Envoy's: `update_attempt`,
`update_success`, `update_rejected` per subscription.

Envoy has one subscription for CDS (`cluster_manager.cds.`) and one for LDS
(`listener_manager.lds.`), counting each response of their type; EDS has one per cluster
(`cluster.<name>.`), RDS one per route configuration (`http.<stat_prefix>.rds.<name>.`,
the HTTP connection manager's prefix) and SDS one per secret (`sds.<name>.`), counting the
responses that carry (or, delta, remove) their resource. A rejected response counts for
every subscription of its type (Envoy's `onConfigUpdateFailed` on each watch). The
protocol makes no difference: both sessions say which names a response updated
(`Candidate.updated`). As Envoy's, the stats of a subscription are there (at 0) while it
is, and go with it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ._resources import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET

__all__ = ["UpdateStats"]

_PER_RESPONSE = {CLUSTER: "cluster_manager.cds", LISTENER: "listener_manager.lds"}
_NAMES = ("update_attempt", "update_success", "update_rejected")


class UpdateStats:
    def __init__(self) -> None:
        self.counters: dict[str, int] = {
            f"{prefix}.{name}": 0 for prefix in _PER_RESPONSE.values() for name in _NAMES
        }
        #: RDS name -> its HTTP connection manager's `stat_prefix`, from the last snapshot
        #: accepted (`Compiled.rds_stat_prefixes`).
        self.rds_stat_prefixes: Mapping[str, str] = {}
        #: Per EDS / RDS / SDS type: the stat prefixes of its subscriptions.
        self._tracked: dict[str, set[str]] = {}

    def track(self, type_url: str, names: Iterable[str]) -> None:
        """The EDS, RDS or SDS subscriptions are now `names`: new ones start at 0, the stats
        of those gone go."""
        now = set(self._prefixes(type_url, names))
        was = self._tracked.get(type_url, set())
        for prefix in was - now:
            for name in _NAMES:
                self.counters.pop(f"{prefix}.{name}", None)
        for prefix in now - was:
            for name in _NAMES:
                self.counters.setdefault(f"{prefix}.{name}", 0)
        self._tracked[type_url] = now

    def accepted(self, type_url: str, names: Iterable[str]) -> None:
        """A response of `type_url` was ACKed; `names` are the resources it updated."""
        self._count(type_url, names, "update_success")

    def rejected(self, type_url: str, names: Iterable[str]) -> None:
        """A response of `type_url` was NACKed; `names` are all those subscribed."""
        self._count(type_url, names, "update_rejected")

    def _count(self, type_url: str, names: Iterable[str], outcome: str) -> None:
        for prefix in self._prefixes(type_url, names):
            for name in ("update_attempt", outcome):  # Envoy counts the attempt with it
                key = f"{prefix}.{name}"
                self.counters[key] = self.counters.get(key, 0) + 1

    def _prefixes(self, type_url: str, names: Iterable[str]) -> list[str]:
        if type_url in _PER_RESPONSE:
            return [_PER_RESPONSE[type_url]]
        if type_url == ENDPOINT:
            return [f"cluster.{name}" for name in sorted(names)]
        # Envoy writes a `:` in a route configuration's or secret's name as `_` in its stats.
        if type_url == ROUTE:
            return [
                f"http.{self.rds_stat_prefixes[name]}.rds.{name.replace(':', '_')}"
                for name in sorted(names)
                if name in self.rds_stat_prefixes
            ]
        if type_url == SECRET:
            return [f"sds.{name.replace(':', '_')}" for name in sorted(names)]
        return []
