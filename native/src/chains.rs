//! A listener's filter chains, Envoy's choice among them by the client's SNI
//! (`filter_chain_match.server_names`: the exact name, then the longest
//! `*.suffix` wildcard, then the chain without `server_names`), and the drain
//! signal each chain's connections share across snapshots.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::watch;

use crate::http::server::HttpRt;
use crate::network_rbac::NetworkRbacs;
use crate::tcp::TcpRt;
use crate::tls::TlsServer;

#[derive(Debug)]
pub enum ListenerKind {
    Http(Arc<HttpRt>),
    Tcp(Arc<TcpRt>),
}

/// One filter chain, compiled.
#[derive(Debug)]
pub struct ChainRt {
    pub kind: ListenerKind,
    /// Terminate TLS (Envoy's `DownstreamTlsContext`).
    pub tls: Option<Arc<TlsServer>>,
    /// Envoy's network RBAC filters: judged once per connection, before its filter.
    pub network_rbac: NetworkRbacs,
    /// The drain of the connections this chain accepted (over TLS, when it has TLS).
    pub drain: ChainDrain,
    /// With `tls.allow_plaintext` (Istio's PERMISSIVE, Envoy's plaintext chain of
    /// the pair): the drain of the connections it accepted in plaintext.
    pub plaintext_drain: Option<ChainDrain>,
}

impl ChainRt {
    /// The drain of a connection this chain accepted, over TLS or (`tls: false`) in plaintext.
    pub fn drain_of(&self, tls: bool) -> &ChainDrain {
        match &self.plaintext_drain {
            Some(plain) if !tls => plain,
            _ => &self.drain,
        }
    }

    pub fn drains(&self) -> impl Iterator<Item = &ChainDrain> {
        std::iter::once(&self.drain).chain(&self.plaintext_drain)
    }

    pub fn drains_mut(&mut self) -> impl Iterator<Item = &mut ChainDrain> {
        std::iter::once(&mut self.drain).chain(&mut self.plaintext_drain)
    }
}

/// The signal that drains every connection one filter chain accepted. A chain
/// is known by its identity (`config::Listener::chain_id`): a new snapshot's
/// chain with the identity of a live one takes over its signal, so connections
/// it accepted stay open; the signal of an identity the new snapshot lacks
/// fires (Envoy's filter-chain-only update).
#[derive(Debug, Clone)]
pub struct ChainDrain {
    id: Arc<str>,
    tx: Arc<watch::Sender<bool>>,
}

impl ChainDrain {
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        ChainDrain {
            id: id.into(),
            tx: Arc::new(watch::channel(false).0),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// What a connection watches: it flips to true when the chain drains.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.tx.subscribe()
    }

    /// Drain the chain's connections (those accepted later too, which see it at once).
    pub fn start(&self) {
        self.tx.send_replace(true);
    }

    pub fn started(&self) -> bool {
        *self.tx.borrow()
    }

    /// Carry the signals of `old` chains over to the `new` ones with the same
    /// identity (new chains sharing an identity share a signal), and fire those
    /// of every other old chain.
    pub fn carry_over<'a>(
        old: impl IntoIterator<Item = &'a ChainDrain>,
        new: impl IntoIterator<Item = &'a mut ChainDrain>,
    ) {
        let old: Vec<&ChainDrain> = old.into_iter().collect();
        let mut live: HashMap<&str, &ChainDrain> = HashMap::with_capacity(old.len());
        for d in &old {
            live.entry(d.id()).or_insert(d);
        }
        let mut now: HashMap<Arc<str>, ChainDrain> = HashMap::new();
        for d in new {
            let shared = now
                .entry(d.id.clone())
                .or_insert_with(|| live.get(d.id()).map_or_else(|| d.clone(), |l| (*l).clone()));
            *d = shared.clone();
        }
        for d in old {
            if !now.contains_key(d.id()) {
                d.start();
            }
        }
    }
}

/// Wait until a connection's drain signal fires. A signal whose chain is gone
/// without firing never fires (a connection keeps its chain alive, so it does not
/// happen).
pub async fn drained(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|d| *d).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// A listener's chains: the default one and those chosen by SNI (generic so
/// the choice is testable without compiled filters).
#[derive(Debug)]
pub struct Chains<C = ChainRt> {
    /// The chain without `server_names`; `None`: unmatched connections are closed.
    pub default: Option<C>,
    /// Chains with `server_names` (each has TLS).
    pub named: Vec<C>,
    /// Lower-case name -> index in `named`.
    exact: HashMap<String, usize>,
    /// `.suffix` of a `*.suffix` name -> index in `named`.
    wildcard: HashMap<String, usize>,
}

impl<C> Chains<C> {
    pub fn new(default: Option<C>) -> Self {
        Chains {
            default,
            named: Vec::new(),
            exact: HashMap::new(),
            wildcard: HashMap::new(),
        }
    }

    /// Add a chain for `names` (checked: each name at most once per listener,
    /// as Envoy requires).
    pub fn add_named(&mut self, names: &[String], chain: C) -> Result<(), String> {
        let index = self.named.len();
        if names.is_empty() {
            return Err("server_names: empty".into());
        }
        for name in names {
            let name = name.to_ascii_lowercase();
            let (map, key) = match name.strip_prefix('*') {
                Some(suffix) if suffix.starts_with('.') && suffix.len() > 1 => {
                    (&mut self.wildcard, suffix.to_owned())
                }
                _ if name.is_empty() || name.contains('*') => {
                    return Err(format!(
                        "server_names: {name:?}: a wildcard must be a whole left-most label (*.example.com)"
                    ))
                }
                _ => (&mut self.exact, name.clone()),
            };
            if map.insert(key, index).is_some() {
                return Err(format!(
                    "server_names: {name:?} is in more than one filter chain"
                ));
            }
        }
        self.named.push(chain);
        Ok(())
    }

    /// Whether a connection's chain depends on its ClientHello.
    pub fn by_server_name(&self) -> bool {
        !self.named.is_empty()
    }

    /// The chain for a connection whose ClientHello named `sni` (or none).
    pub fn select(&self, sni: Option<&str>) -> Option<&C> {
        if let Some(sni) = sni.filter(|_| self.by_server_name()) {
            let sni = sni.to_ascii_lowercase();
            if let Some(&i) = self.exact.get(&sni) {
                return Some(&self.named[i]);
            }
            // Longest suffix first: for a.b.c, `.b.c` then `.c`.
            for (dot, _) in sni.match_indices('.') {
                if let Some(&i) = self.wildcard.get(&sni[dot..]) {
                    return Some(&self.named[i]);
                }
            }
        }
        self.default.as_ref()
    }

    /// Every chain, for carrying TLS state across snapshots.
    pub fn all_mut(&mut self) -> impl Iterator<Item = &mut C> {
        self.default.iter_mut().chain(self.named.iter_mut())
    }

    pub fn all(&self) -> impl Iterator<Item = &C> {
        self.default.iter().chain(self.named.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn chains(default: Option<&'static str>) -> Chains<&'static str> {
        let mut c = Chains::new(default);
        c.add_named(&names(&["api.example.com"]), "exact").unwrap();
        c.add_named(&names(&["*.example.com", "other.org"]), "wild")
            .unwrap();
        c.add_named(&names(&["*.b.example.com"]), "longer").unwrap();
        c
    }

    #[test]
    fn exact_beats_the_longest_wildcard_which_beats_the_default() {
        let c = chains(Some("default"));
        assert_eq!(c.select(Some("API.example.com")), Some(&"exact"));
        assert_eq!(c.select(Some("x.example.com")), Some(&"wild"));
        assert_eq!(c.select(Some("x.y.example.com")), Some(&"wild"));
        assert_eq!(c.select(Some("x.b.example.com")), Some(&"longer"));
        assert_eq!(c.select(Some("other.org")), Some(&"wild"));
        assert_eq!(c.select(Some("example.com")), Some(&"default"));
        assert_eq!(c.select(None), Some(&"default"));
    }

    #[test]
    fn without_a_default_chain_an_unmatched_name_has_none() {
        let c = chains(None);
        assert_eq!(c.select(Some("example.org")), None);
        assert_eq!(c.select(None), None);
    }

    #[test]
    fn a_chain_kept_by_identity_keeps_its_signal_and_the_others_fire() {
        let old = [
            ChainDrain::new("tls"),
            ChainDrain::new("plaintext"),
            ChainDrain::new("sni"),
        ];
        let conns: Vec<_> = old.iter().map(ChainDrain::subscribe).collect();
        let mut new = [
            ChainDrain::new("sni"),
            ChainDrain::new("tls"),
            ChainDrain::new("fresh"),
            ChainDrain::new("fresh"),
        ];
        ChainDrain::carry_over(&old, &mut new);
        assert_eq!(
            conns.iter().map(|c| *c.borrow()).collect::<Vec<_>>(),
            [false, true, false],
            "only the chain the new snapshot lacks drains"
        );
        // The kept chains hold the old signals: draining them later reaches
        // the connections they accepted before the update.
        new[1].start();
        assert!(*conns[0].borrow());
        assert!(!*conns[2].borrow());
        // New chains of one identity share one signal.
        let fresh = new[2].subscribe();
        new[3].start();
        assert!(*fresh.borrow());
    }

    #[test]
    fn a_name_twice_or_a_partial_wildcard_is_refused() {
        let mut c = chains(None);
        assert!(c.add_named(&names(&["API.example.com"]), "again").is_err());
        assert!(c.add_named(&names(&["w*.example.com"]), "partial").is_err());
        assert!(c.add_named(&names(&["*"]), "bare").is_err());
        assert!(c.add_named(&[], "none").is_err());
    }
}
