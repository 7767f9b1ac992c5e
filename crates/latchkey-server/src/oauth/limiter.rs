//! Rate limiting of *failed* client authentications, per client id and per source address.
//!
//! A sliding-window log: for each key the limiter keeps the times of the last `limit` failures
//! (never more), so a key is refused while `limit` failures fall inside the window, and the
//! refusal says exactly when the oldest of them leaves it (`Retry-After`).
//!
//! Honest clients are never slowed down:
//! * successful authentications are not counted;
//! * a (client id, source) pair that authenticated successfully within `trust_ttl` is exempt
//!   from both limits, so an attacker hammering a client id with wrong secrets from elsewhere
//!   cannot lock that client out of the addresses it already works from;
//! * per-client counting covers registered clients only (unknown ids count per source), which
//!   also bounds memory.
//!
//! IPv6 sources are grouped by /64 (one host usually owns a whole /64). Each map holds at most
//! [`MAX_KEYS`] keys; when full, stale keys are swept (at most once a second) and, if it is still
//! full, new keys are not tracked (the limiter fails open rather than refuse honest clients).
//! The state is per process: behind a load balancer each node limits on its own.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Most keys tracked per map.
pub const MAX_KEYS: usize = 65_536;

/// Limits; a limit of 0 turns that limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimiterConfig {
    /// Failed authentications allowed per client id within `window`.
    pub per_client: u32,
    /// Failed authentications allowed per source address within `window`.
    pub per_source: u32,
    /// The sliding window.
    pub window: Duration,
    /// How long a successful (client id, source) pair stays exempt.
    pub trust_ttl: Duration,
}

impl Default for LimiterConfig {
    fn default() -> Self {
        LimiterConfig {
            per_client: 10,
            per_source: 30,
            window: Duration::from_secs(60),
            trust_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// Which limit refused the attempt, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// Whole seconds until an attempt would be accepted (at least 1).
    pub retry_after_secs: u64,
    /// True when the per-client limit refused; false for the per-source limit.
    pub per_client: bool,
}

#[derive(Default)]
struct Log(VecDeque<u64>);

impl Log {
    fn prune(&mut self, now: u64, window: u64) {
        while self.0.front().is_some_and(|&t| t + window <= now) {
            self.0.pop_front();
        }
    }

    /// `Some(wait in ms)` when `limit` failures lie inside the window.
    fn blocked(&mut self, now: u64, window: u64, limit: u32) -> Option<u64> {
        self.prune(now, window);
        if limit == 0 || self.0.len() < limit as usize {
            return None;
        }
        self.0.front().map(|&oldest| oldest + window - now)
    }

    fn push(&mut self, now: u64, window: u64, limit: u32) {
        self.prune(now, window);
        while self.0.len() >= limit.max(1) as usize {
            self.0.pop_front();
        }
        self.0.push_back(now);
    }

    fn stale(&self, now: u64, window: u64) -> bool {
        !matches!(self.0.back(), Some(&t) if t + window > now)
    }
}

#[derive(Default)]
struct State {
    clients: HashMap<String, Log>,
    sources: HashMap<IpAddr, Log>,
    trusted: HashMap<u64, u64>,
    last_sweep: Option<u64>,
}

/// The limiter. Cheap to share behind an `Arc`.
pub struct FailureLimiter {
    config: LimiterConfig,
    epoch: Instant,
    pair_hasher: RandomState,
    state: Mutex<State>,
}

/// The key of a source address: IPv4 as is (IPv4-mapped IPv6 too), IPv6 by its /64.
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut seg = v6.segments();
                seg[4..].fill(0);
                IpAddr::V6(seg.into())
            }
        },
    }
}

impl FailureLimiter {
    /// A limiter with these limits.
    pub fn new(config: LimiterConfig) -> Self {
        FailureLimiter {
            config,
            epoch: Instant::now(),
            pair_hasher: RandomState::new(),
            state: Mutex::new(State::default()),
        }
    }

    /// The limits.
    pub fn config(&self) -> LimiterConfig {
        self.config
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn window(&self) -> u64 {
        u64::try_from(self.config.window.as_millis()).unwrap_or(u64::MAX / 4)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps inconsistent in a harmful way.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pair(&self, client_id: &str, source: IpAddr) -> u64 {
        self.pair_hasher.hash_one((client_id, source))
    }

    /// Whether an authentication attempt may proceed; call before checking the secret.
    pub fn check(&self, client_id: Option<&str>, source: Option<IpAddr>) -> Result<(), Limited> {
        self.check_at(client_id, source, self.now())
    }

    fn check_at(
        &self,
        client_id: Option<&str>,
        source: Option<IpAddr>,
        now: u64,
    ) -> Result<(), Limited> {
        let window = self.window();
        let source = source.map(source_key);
        let mut state = self.lock();
        if let (Some(id), Some(ip)) = (client_id, source) {
            let ttl = u64::try_from(self.config.trust_ttl.as_millis()).unwrap_or(u64::MAX / 4);
            let key = self.pair(id, ip);
            if state.trusted.get(&key).is_some_and(|&t| t + ttl > now) {
                return Ok(());
            }
        }
        let refuse = |wait_ms: u64, per_client: bool| Limited {
            retry_after_secs: wait_ms.div_ceil(1000).max(1),
            per_client,
        };
        if let Some(ip) = source {
            if let Some(wait) = state
                .sources
                .get_mut(&ip)
                .and_then(|log| log.blocked(now, window, self.config.per_source))
            {
                return Err(refuse(wait, false));
            }
        }
        if let Some(id) = client_id {
            if let Some(wait) = state
                .clients
                .get_mut(id)
                .and_then(|log| log.blocked(now, window, self.config.per_client))
            {
                return Err(refuse(wait, true));
            }
        }
        Ok(())
    }

    /// Counts a failed authentication. Pass `client_id` only for a registered client.
    pub fn record_failure(&self, client_id: Option<&str>, source: Option<IpAddr>) {
        self.record_failure_at(client_id, source, self.now());
    }

    fn record_failure_at(&self, client_id: Option<&str>, source: Option<IpAddr>, now: u64) {
        let window = self.window();
        let mut state = self.lock();
        if let Some(ip) = source.map(source_key) {
            if self.config.per_source > 0 && self.room(&mut state, now, |s| s.sources.len()) {
                state
                    .sources
                    .entry(ip)
                    .or_default()
                    .push(now, window, self.config.per_source);
            }
        }
        if let Some(id) = client_id {
            if self.config.per_client > 0 {
                if let Some(log) = state.clients.get_mut(id) {
                    log.push(now, window, self.config.per_client);
                } else if self.room(&mut state, now, |s| s.clients.len()) {
                    state.clients.entry(id.to_string()).or_default().push(
                        now,
                        window,
                        self.config.per_client,
                    );
                }
            }
        }
    }

    /// Remembers that `client_id` authenticated from `source`.
    pub fn record_success(&self, client_id: &str, source: Option<IpAddr>) {
        self.record_success_at(client_id, source, self.now());
    }

    fn record_success_at(&self, client_id: &str, source: Option<IpAddr>, now: u64) {
        let Some(ip) = source.map(source_key) else {
            return;
        };
        let key = self.pair(client_id, ip);
        let mut state = self.lock();
        if let Some(t) = state.trusted.get_mut(&key) {
            *t = now;
        } else if self.room(&mut state, now, |s| s.trusted.len()) {
            state.trusted.insert(key, now);
        }
    }

    /// True when one more key fits in the map `len` measures, sweeping stale keys if needed.
    fn room(&self, state: &mut State, now: u64, len: impl Fn(&State) -> usize) -> bool {
        if len(state) < MAX_KEYS {
            return true;
        }
        if !matches!(state.last_sweep, Some(t) if now < t + 1000) {
            let window = self.window();
            let ttl = u64::try_from(self.config.trust_ttl.as_millis()).unwrap_or(u64::MAX / 4);
            state.clients.retain(|_, log| !log.stale(now, window));
            state.sources.retain(|_, log| !log.stale(now, window));
            state.trusted.retain(|_, &mut t| t + ttl > now);
            state.last_sweep = Some(now);
        }
        let fits = len(state) < MAX_KEYS;
        if !fits {
            tracing::warn!(
                max_keys = MAX_KEYS,
                "failed-authentication limiter is full; not tracking new keys"
            );
        }
        fits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn limiter(per_client: u32, per_source: u32) -> FailureLimiter {
        FailureLimiter::new(LimiterConfig {
            per_client,
            per_source,
            window: Duration::from_secs(10),
            trust_ttl: Duration::from_secs(100),
        })
    }

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn per_client_limit_refuses_until_the_oldest_failure_leaves_the_window() {
        let l = limiter(3, 100);
        for t in [0, 1_000, 2_000] {
            assert!(l.check_at(Some("c"), Some(A), t).is_ok());
            l.record_failure_at(Some("c"), Some(A), t);
        }
        let refused = l.check_at(Some("c"), Some(B), 2_500).expect_err("limited");
        assert!(refused.per_client);
        assert_eq!(refused.retry_after_secs, 8); // 0 + 10 s - 2.5 s, rounded up
        assert!(l.check_at(Some("other"), Some(B), 2_500).is_ok());
        assert!(l.check_at(Some("c"), Some(B), 10_000).is_ok());
    }

    #[test]
    fn per_source_limit_covers_every_client_id_and_unknown_ones() {
        let l = limiter(100, 2);
        l.record_failure_at(None, Some(A), 0);
        l.record_failure_at(Some("x"), Some(A), 1);
        let refused = l.check_at(Some("y"), Some(A), 2).expect_err("limited");
        assert!(!refused.per_client);
        assert!(l.check_at(None, Some(A), 2).is_err());
        assert!(l.check_at(None, Some(B), 2).is_ok());
        assert!(l.check_at(None, None, 2).is_ok());
    }

    #[test]
    fn a_pair_that_succeeded_is_exempt_and_successes_do_not_count() {
        let l = limiter(2, 2);
        for t in 0..50 {
            l.record_success_at("c", Some(A), t);
            assert!(l.check_at(Some("c"), Some(A), t).is_ok());
        }
        l.record_failure_at(Some("c"), Some(B), 60);
        l.record_failure_at(Some("c"), Some(B), 61);
        assert!(l.check_at(Some("c"), Some(B), 62).is_err());
        assert!(
            l.check_at(Some("c"), Some(A), 62).is_ok(),
            "the known source is not locked out"
        );
        assert!(
            l.check_at(Some("c"), Some(A), 200_000).is_ok(),
            "windows expire as well"
        );
    }

    #[test]
    fn zero_turns_a_limit_off_and_memory_per_key_is_bounded() {
        let l = limiter(0, 0);
        for t in 0..100 {
            l.record_failure_at(Some("c"), Some(A), t);
        }
        assert!(l.check_at(Some("c"), Some(A), 100).is_ok());
        let l = limiter(3, 3);
        for t in 0..100 {
            l.record_failure_at(Some("c"), Some(A), t);
        }
        assert_eq!(l.lock().clients.get("c").map(|g| g.0.len()), Some(3));
    }

    #[test]
    fn ipv6_sources_are_grouped_by_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1"
            .parse::<Ipv6Addr>()
            .expect("ip")
            .into();
        let b: IpAddr = "2001:db8:1:2:bbbb::2"
            .parse::<Ipv6Addr>()
            .expect("ip")
            .into();
        let c: IpAddr = "2001:db8:1:3::1".parse::<Ipv6Addr>().expect("ip").into();
        assert_eq!(source_key(a), source_key(b));
        assert_ne!(source_key(a), source_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse::<Ipv6Addr>().expect("ip").into();
        assert_eq!(source_key(mapped), A);
    }
}
