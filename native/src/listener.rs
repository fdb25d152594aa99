//! A bound listener: its accept loop, connection limit, worker balance, drain
//! signals, and the TLS handshake each connection runs in its own task before its
//! filter sees it.
//! The socket lives as long as the listener keeps its name and address; its
//! config (`ListenerRt`) is swapped under it on every apply, which drains the
//! connections of every chain the new config does not have unchanged.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

pub use crate::chains::{ChainDrain, ChainRt, Chains, ListenerKind};
use crate::conn::ConnInfo;
use crate::stats::{listener as ls, listener_worker as lw, StatGroup};
use crate::tls::hello::{self, Peeked};
use crate::tls::server::SNIFF_TIMEOUT;
use crate::tls::Accepted;

/// Permits standing for "no limit".
const UNLIMITED: usize = 1 << 24;

/// What a listener does with a connection, compiled for one snapshot.
#[derive(Debug)]
pub struct ListenerRt {
    pub max_connections: Option<u32>,
    /// Envoy's `exact_balance`: a connection goes to the worker with the fewest.
    pub exact_balance: bool,
    pub chains: Chains,
}

/// A downstream byte stream a listener hands its filter: TCP, or TLS over it.
pub trait DownstreamIo: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> DownstreamIo for T {}

/// A live listener.
#[derive(Debug)]
pub struct ListenerHandle {
    pub name: String,
    /// The configured address (`ip:port`, port may be 0).
    pub address: String,
    /// The address actually bound.
    pub bound: SocketAddr,
    pub rt: ArcSwap<ListenerRt>,
    pub stats: Arc<StatGroup>,
    sem: Arc<Semaphore>,
    permits: Mutex<usize>,
    /// Flips to true to stop accepting (its connections drain by their chains' signals).
    shutdown: watch::Sender<bool>,
    /// How long a draining connection may take before it is closed (`--drain-time-s`).
    drain_time: Duration,
    active_total: Arc<AtomicU64>,
    runtime: tokio::runtime::Handle,
    /// Indexed by worker number.
    workers: Box<[WorkerShare]>,
    /// Held while exact balance picks a worker and counts the connection on it,
    /// so workers accepting at once see each other's picks.
    balance: Mutex<()>,
}

/// One worker's part of a listener: its runtime and Envoy's per-handler stats
/// (`listener.<address>.worker_<N>.*`), whose active count exact balance reads.
#[derive(Debug)]
struct WorkerShare {
    runtime: tokio::runtime::Handle,
    stats: Arc<StatGroup>,
}

fn permits_for(max: Option<u32>) -> usize {
    max.map_or(UNLIMITED, |m| (m as usize).min(UNLIMITED))
}

/// Bind `address` now (blocking), so apply can fail before it changes anything:
/// one socket per worker, sharing the port with `SO_REUSEPORT` when there are
/// several, so the kernel spreads connections and each worker accepts its own.
pub fn bind(address: &str, workers: usize) -> Result<Vec<std::net::TcpListener>, String> {
    let mut addr: SocketAddr = address
        .parse()
        .map_err(|_| format!("bad listener address {address:?}"))?;
    let err = |e: std::io::Error| format!("listener {address}: {e}");
    let mut socks = Vec::with_capacity(workers);
    for _ in 0..workers.max(1) {
        let s = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )
        .map_err(err)?;
        s.set_reuse_address(true).map_err(err)?;
        if workers > 1 {
            s.set_reuse_port(true).map_err(err)?;
        }
        s.set_nonblocking(true).map_err(err)?;
        s.bind(&addr.into())
            .map_err(|e| format!("cannot bind {address}: {e}"))?;
        s.listen(4096)
            .map_err(|e| format!("cannot listen on {address}: {e}"))?;
        let s: std::net::TcpListener = s.into();
        if addr.port() == 0 {
            // The other workers' sockets join the port the first one got.
            addr = s.local_addr().map_err(err)?;
        }
        socks.push(s);
    }
    Ok(socks)
}

impl ListenerHandle {
    /// Start accepting on `socks` (already bound), one accept loop per worker runtime.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        name: String,
        address: String,
        socks: Vec<std::net::TcpListener>,
        mut lrt: ListenerRt,
        stats: Arc<StatGroup>,
        worker_stats: Vec<Arc<StatGroup>>,
        active_total: Arc<AtomicU64>,
        drain_time: Duration,
        workers: &[tokio::runtime::Handle],
    ) -> Result<Arc<Self>, String> {
        ChainDrain::carry_over(
            std::iter::empty(),
            lrt.chains.all_mut().flat_map(ChainRt::drains_mut),
        );
        let rt = &workers[0];
        let bound = socks[0].local_addr().map_err(|e| e.to_string())?;
        let permits = permits_for(lrt.max_connections);
        let (shutdown, _) = watch::channel(false);
        let h = Arc::new(ListenerHandle {
            name,
            address,
            bound,
            rt: ArcSwap::from_pointee(lrt),
            stats,
            sem: Arc::new(Semaphore::new(permits)),
            permits: Mutex::new(permits),
            shutdown,
            drain_time,
            active_total,
            runtime: rt.clone(),
            workers: workers
                .iter()
                .zip(worker_stats)
                .map(|(runtime, stats)| WorkerShare {
                    runtime: runtime.clone(),
                    stats,
                })
                .collect(),
            balance: Mutex::new(()),
        });
        for (me, (sock, worker)) in socks.into_iter().zip(workers.iter().cycle()).enumerate() {
            let listener = {
                let _g = worker.enter();
                TcpListener::from_std(sock).map_err(|e| e.to_string())?
            };
            worker.spawn(accept_loop(h.clone(), listener, me % workers.len()));
        }
        Ok(h)
    }

    /// Swap in a new snapshot's config for this listener, and drain the
    /// connections of every chain it does not have unchanged.
    pub fn update(&self, mut lrt: ListenerRt) {
        let old = self.rt.load();
        ChainDrain::carry_over(
            old.chains.all().flat_map(ChainRt::drains),
            lrt.chains.all_mut().flat_map(ChainRt::drains_mut),
        );
        // An unchanged TLS context keeps its session cache and ticket keys, so
        // clients resume across applies.
        for chain in lrt.chains.all_mut() {
            let Some(new) = &mut chain.tls else { continue };
            let same = old.chains.all().filter_map(|c| c.tls.as_ref());
            if let Some(kept) = same.into_iter().find(|o| o.config == new.config) {
                *new = kept.clone();
            }
        }
        let want = permits_for(lrt.max_connections);
        let mut have = self.permits.lock().unwrap();
        if want > *have {
            self.sem.add_permits(want - *have);
        } else if want < *have {
            // Permits held by open connections are taken back as they close.
            let mut missing = *have - want;
            missing -= self.sem.forget_permits(missing);
            if missing > 0 {
                let sem = self.sem.clone();
                self.runtime.spawn(async move {
                    if let Ok(p) = sem.acquire_many(missing as u32).await {
                        p.forget();
                    }
                });
            }
        }
        *have = want;
        self.rt.store(Arc::new(lrt));
    }

    /// Stop accepting and drain every connection of this listener. (Every chain
    /// an earlier update dropped drained then.)
    pub fn close(&self) {
        self.shutdown.send_replace(true);
        for chain in self.rt.load().chains.all() {
            chain.drains().for_each(ChainDrain::start);
        }
    }

    /// How long a draining connection may take before it is closed.
    pub fn drain_time(&self) -> Duration {
        self.drain_time
    }
}

/// Accept on worker `me`'s socket; run each connection on `me`, or with exact
/// balance on whichever worker has the fewest of this listener's connections.
async fn accept_loop(h: Arc<ListenerHandle>, listener: TcpListener, me: usize) {
    let mut stop = h.shutdown.subscribe();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(_) => {
                // EMFILE and friends: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        // Over the connection limit the accepted connection waits, unserved, and
        // this worker accepts no more. (Waiting before accept would strand
        // connections queued on another worker's `SO_REUSEPORT` socket.)
        let permit = match h.sem.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                h.stats.inc(ls::CX_OVERFLOW);
                tokio::select! {
                    p = h.sem.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        h.stats.inc(ls::CX_TOTAL);
        let lrt = h.rt.load_full();
        let active = Active::on(&h, me, lrt.exact_balance);
        if active.worker == me {
            tokio::spawn(run(stream, peer, lrt, permit, active));
            continue;
        }
        // The other worker's runtime must own the socket's registration.
        let Ok(stream) = stream.into_std() else {
            continue;
        };
        h.workers[active.worker].runtime.spawn(async move {
            if let Ok(stream) = TcpStream::from_std(stream) {
                run(stream, peer, lrt, permit, active).await;
            }
        });
    }
}

async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    lrt: Arc<ListenerRt>,
    _permit: OwnedSemaphorePermit,
    active: Active,
) {
    let local = stream.local_addr().unwrap_or(peer);
    serve(stream, ConnInfo::plain(peer, local), &lrt, &active.listener).await;
}

/// Choose the connection's filter chain (by its ClientHello's SNI when the
/// listener has `server_names` chains), run its TLS handshake, then its filter.
async fn serve(stream: TcpStream, plain: ConnInfo, lrt: &ListenerRt, h: &Arc<ListenerHandle>) {
    let chain = if lrt.chains.by_server_name() {
        // Envoy's TLS inspector: no SNI (no ClientHello) picks the default chain;
        // a client silent past the listener filters' timeout is closed.
        let sni = match hello::peek(&stream, Instant::now() + SNIFF_TIMEOUT).await {
            Peeked::Hello { sni, .. } => sni,
            Peeked::Other => None,
            Peeked::Nothing => return,
        };
        let Some(chain) = lrt.chains.select(sni.as_deref()) else {
            h.stats.inc(ls::NO_FILTER_CHAIN_MATCH);
            return;
        };
        chain
    } else {
        let Some(chain) = &lrt.chains.default else {
            return;
        };
        chain
    };
    // A chain without TLS takes the bytes as they come: plaintext, or a
    // ClientHello it passes through (`tcp_proxy` to a server that terminates it).
    let Some(tls) = &chain.tls else {
        return dispatch(stream, plain, None, chain, h).await;
    };
    match tls.accept(stream).await {
        Some(Accepted::Tls(stream, info)) => {
            let conn = ConnInfo {
                tls: Some(info),
                ..plain
            };
            let by = Some(tls.local_uri_sans().clone());
            dispatch(stream, conn, by, chain, h).await
        }
        Some(Accepted::Plain(stream)) => dispatch(stream, plain, None, chain, h).await,
        None => {}
    }
}

/// Hand an established connection to the listener's filter. `local_uri_sans`:
/// the URI SANs of the certificate its TLS handshake presented.
async fn dispatch<S: DownstreamIo>(
    stream: S,
    conn: ConnInfo,
    local_uri_sans: Option<Arc<[String]>>,
    chain: &ChainRt,
    h: &Arc<ListenerHandle>,
) {
    // Envoy decides on the first byte; with every input known at accept, the
    // verdict is the same, and a denied connection never reaches its filter.
    if !chain.network_rbac.allow(&conn) {
        return;
    }
    // Subscribed after the chain was chosen: a chain drained meanwhile drains
    // this connection at once.
    let drain = chain.drain_of(conn.tls.is_some()).subscribe();
    match &chain.kind {
        ListenerKind::Http(http) => {
            crate::http::server::serve(stream, conn, local_uri_sans, h.clone(), http, drain).await
        }
        ListenerKind::Tcp(tcp) => crate::tcp::proxy(stream, tcp, drain, h.drain_time).await,
    }
}

/// An open connection, counted on its listener and its worker while it lives.
struct Active {
    listener: Arc<ListenerHandle>,
    worker: usize,
}

impl Active {
    /// Count a connection accepted by worker `me` on `me`, or with `balance` on
    /// the worker with the fewest of the listener's connections (`me` on a tie).
    fn on(h: &Arc<ListenerHandle>, me: usize, balance: bool) -> Self {
        let _pick = balance.then(|| h.balance.lock().unwrap());
        let load = |w: usize| (h.workers[w].stats.get(lw::CX_ACTIVE), w != me);
        let worker = if balance {
            (0..h.workers.len()).min_by_key(|&w| load(w)).unwrap_or(me)
        } else {
            me
        };
        let share = &h.workers[worker].stats;
        share.inc(lw::CX_TOTAL);
        share.inc(lw::CX_ACTIVE);
        h.stats.inc(ls::CX_ACTIVE);
        h.active_total.fetch_add(1, Ordering::Relaxed);
        Active {
            listener: h.clone(),
            worker,
        }
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        let h = &self.listener;
        h.workers[self.worker].stats.dec(lw::CX_ACTIVE);
        h.stats.dec(ls::CX_ACTIVE);
        h.active_total.fetch_sub(1, Ordering::Relaxed);
    }
}
