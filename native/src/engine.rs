//! The engine: one single-threaded tokio runtime per worker thread (thread per
//! core: each worker accepts on its own `SO_REUSEPORT` socket and drives its
//! connections and their upstream connections alone), the live listeners and
//! clusters, and `apply`,
//! which validates a whole snapshot (clusters, routes, regexes, binds) before
//! it changes anything, then swaps it in. Connections take the current config
//! per request, so in-flight requests finish on the snapshot they started on.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;

use crate::config::{self, DiscoveryType, ListenerFilter, Snapshot};
use crate::http::server::HttpRt;
use crate::listener::{
    self, ChainDrain, ChainRt, Chains, ListenerHandle, ListenerKind, ListenerRt,
};
use crate::network_rbac::NetworkRbacs;
use crate::stats::{cluster as cs, listener as ls, listener_worker, Registry};
use crate::tcp::TcpRt;
use crate::tls::{expiry, Expiry, SslStats, TlsClient, TlsServer};
use crate::upstream::lb::EndpointHealth;
use crate::upstream::{dns, health_check, outlier, ClusterRt};

/// Why `apply` refused a snapshot. Nothing changed when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("invalid snapshot: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("{0}")]
    Invalid(String),
    #[error("engine is shut down")]
    Shutdown,
}

/// Per-endpoint numbers for the admin `/clusters` page.
#[derive(Debug, Clone)]
pub struct EndpointInfo {
    pub address: SocketAddr,
    pub weight: u32,
    pub active_requests: u64,
    pub requests: u64,
    pub failures: u64,
    pub connect_failures: u64,
    /// Envoy's words: `healthy`, or the failed flags run together
    /// (`/failed_active_hc/failed_outlier_check`).
    pub health_flags: String,
    pub priority: u32,
    /// Last outlier sweep's success rate, percent; -1 when not computed.
    pub success_rate: f64,
    /// Times outlier detection ejected this host.
    pub outlier_ejections: u32,
}

/// The cluster-wide outlier numbers Envoy prints as `<cluster>::outlier::*`.
#[derive(Debug, Clone, Copy)]
pub struct OutlierInfo {
    pub success_rate_average: f64,
    pub success_rate_ejection_threshold: f64,
}

#[derive(Debug, Clone)]
pub struct ClusterInfo {
    pub name: String,
    pub endpoints: Vec<EndpointInfo>,
    /// Present when the cluster has outlier detection.
    pub outlier: Option<OutlierInfo>,
}

type Clusters = HashMap<String, Arc<ClusterRt>>;

/// How long a draining connection may take before it is closed, unless set
/// (Envoy's `--drain-time-s` default).
pub const DEFAULT_DRAIN_TIME: Duration = Duration::from_secs(600);

static WORKER_SLOTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);

thread_local! {
    static WORKER_INDEX: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The most workers any engine in this process runs: per-worker tables size by it.
pub(crate) fn worker_slots() -> usize {
    WORKER_SLOTS.load(Ordering::Relaxed)
}

/// This thread's worker number (0 off the workers).
pub(crate) fn worker_index() -> usize {
    WORKER_INDEX.with(|w| w.get())
}

/// One worker thread running a current-thread runtime until told to stop.
struct Worker {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// One proxy data plane.
pub struct Engine {
    workers: Mutex<Vec<Worker>>,
    handles: Vec<tokio::runtime::Handle>,
    handle: tokio::runtime::Handle,
    stats: Arc<Registry>,
    /// Also the apply lock: one apply at a time.
    listeners: Mutex<BTreeMap<String, Arc<ListenerHandle>>>,
    clusters: ArcSwap<Clusters>,
    /// What the live TLS contexts hold that expires, for the `server.*` gauges.
    expiries: Mutex<Vec<Expiry>>,
    active: Arc<AtomicU64>,
    stopped: AtomicBool,
    /// How long a draining connection may take before it is closed.
    drain_time: Duration,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    /// Start a runtime with `workers` threads (0 = one per core). No listeners yet.
    pub fn new(workers: usize) -> std::io::Result<Self> {
        let workers = if workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            workers
        };
        WORKER_SLOTS.fetch_max(workers, Ordering::Relaxed);
        let mut threads = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for i in 0..workers {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(rt.handle().clone());
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("fastmesh-worker-{i}"))
                .spawn(move || {
                    WORKER_INDEX.with(|w| w.set(i));
                    rt.block_on(async {
                        let _ = stopped.await;
                    });
                    rt.shutdown_background();
                })?;
            threads.push(Worker {
                stop: Some(stop),
                thread: Some(thread),
            });
        }
        Ok(Engine {
            handle: handles[0].clone(),
            handles,
            workers: Mutex::new(threads),
            stats: Arc::new(Registry::default()),
            listeners: Mutex::new(BTreeMap::new()),
            clusters: ArcSwap::from_pointee(HashMap::new()),
            expiries: Mutex::new(Vec::new()),
            active: Arc::new(AtomicU64::new(0)),
            stopped: AtomicBool::new(false),
            drain_time: DEFAULT_DRAIN_TIME,
        })
    }

    /// Give a draining connection (its listener closed, or its filter chain gone
    /// from the config) `drain_time` to finish before it is closed (Envoy's
    /// `--drain-time-s`). Listeners started later take it.
    pub fn with_drain_time(mut self, drain_time: Duration) -> Self {
        self.drain_time = drain_time;
        self
    }

    /// Parse, validate and swap in a snapshot (JSON of `config::Snapshot`).
    pub fn apply(&self, json: &str) -> Result<(), EngineError> {
        let snap: Snapshot = serde_json::from_str(json)?;
        let applied = self.apply_snapshot(&snap);
        drop(snap);
        release_free_memory();
        applied
    }

    pub fn apply_snapshot(&self, snap: &Snapshot) -> Result<(), EngineError> {
        let invalid = EngineError::Invalid;
        let mut listeners = self.listeners.lock().unwrap();
        if self.stopped.load(Ordering::Acquire) {
            return Err(EngineError::Shutdown);
        }

        // Clusters: keep the runtime (pools, counters, DNS) of unchanged ones.
        let old = self.clusters.load_full();
        let mut clusters: Clusters = HashMap::with_capacity(snap.clusters.len());
        let mut fresh = Vec::new();
        for c in &snap.clusters {
            if clusters.contains_key(&c.name) {
                return Err(invalid(format!("cluster {:?} is defined twice", c.name)));
            }
            if let Some(o) = old.get(&c.name) {
                if same_cluster(&o.config, c) {
                    clusters.insert(c.name.clone(), o.clone());
                    continue;
                }
            }
            let addrs = match c.discovery {
                DiscoveryType::Static => dns::static_endpoints(c).map_err(invalid)?,
                DiscoveryType::StrictDns | DiscoveryType::LogicalDns => dns::resolve_blocking(c),
            };
            let tls = c
                .tls
                .as_ref()
                .map(|t| {
                    let stats = SslStats::new(&self.stats, &format!("cluster.{}.ssl", c.name));
                    TlsClient::compile(t, stats)
                })
                .transpose()
                .map_err(|e| invalid(format!("cluster {}: tls: {e}", c.name)))?;
            let rt = Arc::new(
                ClusterRt::new(
                    c.clone(),
                    addrs,
                    self.stats
                        .scoped_group(&format!("cluster.{}", c.name), cs::NAMES),
                )
                .with_tls(tls),
            );
            fresh.push(rt.clone());
            clusters.insert(c.name.clone(), rt);
        }

        // Listeners: bind what is new (its stats are named by the address it
        // got), then compile.
        let mut names = HashSet::new();
        let mut compiled = Vec::with_capacity(snap.listeners.len());
        let mut bound = HashMap::new();
        for l in &snap.listeners {
            if !names.insert(l.name.as_str()) {
                return Err(invalid(format!("listener {:?} is defined twice", l.name)));
            }
            let kept = listeners.get(&l.name).filter(|h| h.address == l.address);
            let at = match kept {
                Some(h) => h.bound,
                None => {
                    // On error the sockets bound so far close as `bound` drops.
                    let sock = listener::bind(&l.address, self.handles.len())
                        .map_err(|e| invalid(format!("listener {}: {e}", l.name)))?;
                    let at = sock[0]
                        .local_addr()
                        .map_err(|e| invalid(format!("listener {}: {e}", l.name)))?;
                    bound.insert(l.name.clone(), sock);
                    at
                }
            };
            // Envoy names listener stats by the bound address, `:` as `_`.
            let prefix = format!("listener.{}", at.to_string().replace(':', "_"));
            let lrt = self
                .compile_listener(l, &clusters, &prefix)
                .map_err(invalid)?;
            compiled.push((l, prefix, lrt));
        }

        // Commit: nothing below fails.
        let servers = compiled.iter().flat_map(|(_, _, lrt)| lrt.chains.all());
        let expiries = (servers.filter_map(|c| c.tls.as_ref()).map(|t| *t.expiry()))
            .chain(
                clusters
                    .values()
                    .filter_map(|c| c.tls.as_ref())
                    .map(|t| *t.expiry()),
            )
            .collect();
        *self.expiries.lock().unwrap() = expiries;
        for c in &fresh {
            if c.is_dns() {
                dns::spawn_refresh(&self.handle, c);
            }
            if !c.config.health_checks.is_empty() {
                health_check::spawn(&self.handle, c);
            }
            if c.outlier.is_some() {
                outlier::spawn(&self.handle, c);
            }
        }
        self.clusters.store(Arc::new(clusters));
        let mut next = BTreeMap::new();
        for (l, prefix, lrt) in compiled {
            match bound.remove(&l.name) {
                None => {
                    let h = listeners.remove(&l.name).expect("kept listener exists");
                    h.update(lrt);
                    next.insert(l.name.clone(), h);
                }
                Some(sock) => {
                    let stats = self.stats.scoped_group(&prefix, ls::NAMES);
                    let per_worker = (0..self.handles.len())
                        .map(|i| {
                            let at = format!("{prefix}.worker_{i}");
                            self.stats.scoped_group(&at, listener_worker::NAMES)
                        })
                        .collect();
                    let h = ListenerHandle::start(
                        l.name.clone(),
                        l.address.clone(),
                        sock,
                        lrt,
                        stats,
                        per_worker,
                        self.active.clone(),
                        self.drain_time,
                        &self.handles,
                    )
                    .map_err(invalid)?;
                    next.insert(l.name.clone(), h);
                }
            }
        }
        for (_, removed) in std::mem::replace(&mut *listeners, next) {
            removed.close();
        }
        Ok(())
    }

    /// `stat_prefix`: `listener.<bound address>`.
    fn compile_listener(
        &self,
        l: &config::Listener,
        clusters: &Clusters,
        stat_prefix: &str,
    ) -> Result<ListenerRt, String> {
        let ctx = |e: String| format!("listener {}: {e}", l.name);
        let default = match &l.filter {
            Some(filter) => {
                let id = l.chain_id.clone().unwrap_or_else(|| {
                    let tls = l.tls.as_ref().map(without_own_certificate);
                    native_chain_id(&(&l.filter, &tls, &l.network_rbac))
                });
                let plaintext = l.tls.as_ref().is_some_and(|t| t.allow_plaintext).then(|| {
                    let own = l.plaintext_chain_id.clone();
                    ChainDrain::new(own.unwrap_or_else(|| format!("{id}/plaintext")))
                });
                let mut chain = self
                    .compile_chain(
                        filter,
                        l.tls.as_ref(),
                        &l.network_rbac,
                        clusters,
                        stat_prefix,
                        &l.name,
                        id,
                    )
                    .map_err(ctx)?;
                chain.plaintext_drain = plaintext;
                Some(chain)
            }
            None if l.tls.is_some() || !l.network_rbac.is_empty() => {
                return Err(ctx(
                    "tls and network_rbac belong to the default chain's filter, which is missing"
                        .into(),
                ))
            }
            None if l.server_name_chains.is_empty() => return Err(ctx("filter: missing".into())),
            None => None,
        };
        // The chain is chosen from the ClientHello's SNI, before any sniffing.
        if !l.server_name_chains.is_empty() && l.tls.as_ref().is_some_and(|t| t.allow_plaintext) {
            return Err(ctx(
                "tls.allow_plaintext: not with server_name_chains".into()
            ));
        }
        let mut chains = Chains::new(default);
        for (i, c) in l.server_name_chains.iter().enumerate() {
            let at = |e: String| ctx(format!("server_name_chains[{i}]: {e}"));
            if c.tls.as_ref().is_some_and(|t| t.allow_plaintext) {
                return Err(at("tls.allow_plaintext: not with server_names".into()));
            }
            let id = c.chain_id.clone().unwrap_or_else(|| {
                let tls = c.tls.as_ref().map(without_own_certificate);
                native_chain_id(&(&c.server_names, &c.filter, &tls, &c.network_rbac))
            });
            let chain = self
                .compile_chain(
                    &c.filter,
                    c.tls.as_ref(),
                    &c.network_rbac,
                    clusters,
                    stat_prefix,
                    &l.name,
                    id,
                )
                .map_err(at)?;
            chains.add_named(&c.server_names, chain).map_err(at)?;
        }
        Ok(ListenerRt {
            max_connections: l.max_connections,
            exact_balance: l.exact_balance,
            chains,
        })
    }

    /// One filter chain of listener `name`, known by `id`; its TLS counts under
    /// `<stat_prefix>.ssl`.
    #[allow(clippy::too_many_arguments)]
    fn compile_chain(
        &self,
        filter: &ListenerFilter,
        tls: Option<&config::DownstreamTls>,
        rbac: &[config::RbacConfig],
        clusters: &Clusters,
        stat_prefix: &str,
        name: &str,
        id: String,
    ) -> Result<ChainRt, String> {
        let kind = match filter {
            ListenerFilter::Http(hcm) => {
                ListenerKind::Http(Arc::new(HttpRt::compile(hcm, clusters, &self.stats)?))
            }
            ListenerFilter::Tcp(t) => {
                ListenerKind::Tcp(Arc::new(TcpRt::compile(t, clusters, &self.stats)?))
            }
        };
        let tls = tls
            .map(|t| {
                let stats = SslStats::new(&self.stats, &format!("{stat_prefix}.ssl"));
                TlsServer::compile(t, stats).map(Arc::new)
            })
            .transpose()
            .map_err(|e| format!("tls: {e}"))?;
        let network_rbac = NetworkRbacs::compile(rbac, &self.stats, &format!("listener {name}"))?;
        Ok(ChainRt {
            kind,
            tls,
            network_rbac,
            drain: ChainDrain::new(id),
            plaintext_drain: None,
        })
    }

    /// Listener name -> the address actually bound.
    pub fn listening(&self) -> BTreeMap<String, SocketAddr> {
        self.listeners
            .lock()
            .unwrap()
            .iter()
            .map(|(n, h)| (n.clone(), h.bound))
            .collect()
    }

    /// Every counter and gauge by Envoy-style name.
    pub fn stats(&self) -> Vec<(String, u64)> {
        let mut s = self.stats.snapshot();
        s.push((
            "server.total_connections".to_owned(),
            self.active_connections(),
        ));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let expiries = self.expiries.lock().unwrap();
        s.extend(
            expiry::server_gauges(expiries.iter(), now)
                .map(|(name, value)| (name.to_owned(), value)),
        );
        s
    }

    pub fn clusters(&self) -> Vec<ClusterInfo> {
        let clusters = self.clusters.load_full();
        let mut out: Vec<_> = clusters
            .values()
            .map(|c| ClusterInfo {
                name: c.name.clone(),
                endpoints: c
                    .lb
                    .set
                    .load()
                    .endpoints
                    .iter()
                    .map(|e| EndpointInfo {
                        address: e.addr,
                        weight: e.weight,
                        active_requests: e.active.load(Ordering::Relaxed),
                        requests: e.rq_total.load(Ordering::Relaxed),
                        failures: e.rq_error.load(Ordering::Relaxed),
                        connect_failures: e.cx_connect_fail.load(Ordering::Relaxed),
                        health_flags: health_flags(&e.health),
                        priority: e.priority,
                        success_rate: e.outlier.success_rate(),
                        outlier_ejections: e.outlier.ejections(),
                    })
                    .collect(),
                outlier: c.outlier.as_ref().map(|od| OutlierInfo {
                    success_rate_average: od.success_rate_average(),
                    success_rate_ejection_threshold: od.success_rate_ejection_threshold(),
                }),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    pub fn active_connections(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }

    /// Stop accepting, drain every connection gracefully, and wait up to
    /// `timeout` for them to close. True if all closed in time. Blocks.
    pub fn drain(&self, timeout: Duration) -> bool {
        let listeners = std::mem::take(&mut *self.listeners.lock().unwrap());
        for h in listeners.values() {
            h.close();
        }
        let deadline = Instant::now() + timeout;
        loop {
            if self.active_connections() == 0 {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(5)));
        }
    }

    /// Close everything now and stop the runtime. Idempotent.
    pub fn shutdown(&self) {
        let listeners = {
            let mut l = self.listeners.lock().unwrap();
            self.stopped.store(true, Ordering::Release);
            std::mem::take(&mut *l)
        };
        for h in listeners.values() {
            h.close();
        }
        self.clusters.store(Arc::new(HashMap::new()));
        let workers = std::mem::take(&mut *self.workers.lock().unwrap());
        for mut w in workers {
            if let Some(stop) = w.stop.take() {
                let _ = stop.send(());
            }
            if let Some(t) = w.thread.take() {
                // Never join ourselves (a drop on a worker thread).
                if t.thread().id() != std::thread::current().id() {
                    let _ = t.join();
                }
            }
        }
        self.active.store(0, Ordering::Relaxed);
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Envoy's `HostUtility::healthFlagsToString`, for the flags fastmesh sets.
fn health_flags(h: &EndpointHealth) -> String {
    let mut flags = String::new();
    if h.failed_active_hc.load(Ordering::Relaxed) {
        flags.push_str("/failed_active_hc");
    }
    if h.ejected.load(Ordering::Relaxed) {
        flags.push_str("/failed_outlier_check");
    }
    if flags.is_empty() {
        flags.push_str("healthy");
    }
    flags
}

/// Hand the parsed snapshot's freed heap back to the OS: a large config's parse
/// tree is several times the running tables, and glibc would otherwise keep it.
/// Apply is rare, so the trim's cost does not matter.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::os::raw::c_int;
        }
        // SAFETY: malloc_trim only releases free memory; it has no preconditions.
        unsafe {
            malloc_trim(0);
        }
    }
}

/// A chain's identity when the snapshot names none (written by hand, not by the
/// translator): a digest of its native config, so any change drains it, except
/// a new certificate of its own (a rotation, as of an SDS secret or a file in Envoy).
fn native_chain_id(chain: &impl serde::Serialize) -> String {
    struct Digest(ring::digest::Context);
    impl std::io::Write for Digest {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.update(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut d = Digest(ring::digest::Context::new(&ring::digest::SHA256));
    // Serializing plain config structs cannot fail.
    let _ = serde_json::to_writer(&mut d, chain);
    let hex: String = d.0.finish().as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("native:{hex}")
}

fn without_own_certificate(tls: &config::DownstreamTls) -> config::DownstreamTls {
    config::DownstreamTls {
        cert_chain_pem: String::new(),
        private_key_pem: String::new(),
        ocsp_staple: None,
        ..tls.clone()
    }
}

fn same_cluster(a: &config::Cluster, b: &config::Cluster) -> bool {
    serde_json::to_string(a).ok() == serde_json::to_string(b).ok()
}
