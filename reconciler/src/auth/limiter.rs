//! Login failures, counted per user name and per source address in a sliding window: past
//! the limit, further attempts are refused (429 with `Retry-After`) without checking the
//! password, so guessing costs time whichever name or address it comes from.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Limits of the login rate limiter.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub window: Duration,
    /// Failures per user name within the window.
    pub per_user: usize,
    /// Failures per source address within the window.
    pub per_address: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            window: Duration::from_secs(15 * 60),
            per_user: 5,
            per_address: 20,
        }
    }
}

/// Keys tracked at most; beyond, the oldest windows are dropped first (memory stays bounded
/// under a spray of names).
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Address(IpAddr),
}

/// The failure counts.
#[derive(Debug)]
pub struct Limiter {
    limits: Limits,
    failures: HashMap<Key, VecDeque<Instant>>,
}

impl Limiter {
    pub fn new(limits: Limits) -> Limiter {
        Limiter {
            limits,
            failures: HashMap::new(),
        }
    }

    /// `Some(wait)` when `user` or `address` is over its limit at `now`.
    pub fn check(&mut self, user: &str, address: Option<IpAddr>, now: Instant) -> Option<Duration> {
        let user_wait = self.wait(&Key::User(user.to_owned()), self.limits.per_user, now);
        let address_wait =
            address.and_then(|a| self.wait(&Key::Address(a), self.limits.per_address, now));
        match (user_wait, address_wait) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// Counts a failed attempt.
    pub fn failed(&mut self, user: &str, address: Option<IpAddr>, now: Instant) {
        if self.failures.len() >= MAX_KEYS {
            self.prune(now);
        }
        if self.failures.len() >= MAX_KEYS {
            // Still full of live windows: drop the one whose newest failure is oldest.
            if let Some(key) = self
                .failures
                .iter()
                .min_by_key(|(_, times)| times.back().copied())
                .map(|(k, _)| k.clone())
            {
                self.failures.remove(&key);
            }
        }
        self.failures
            .entry(Key::User(user.to_owned()))
            .or_default()
            .push_back(now);
        if let Some(address) = address {
            self.failures
                .entry(Key::Address(address))
                .or_default()
                .push_back(now);
        }
    }

    /// A successful sign-in clears the user's failures (not the address's).
    pub fn succeeded(&mut self, user: &str) {
        self.failures.remove(&Key::User(user.to_owned()));
    }

    fn wait(&mut self, key: &Key, limit: usize, now: Instant) -> Option<Duration> {
        let window = self.limits.window;
        let times = self.failures.get_mut(key)?;
        while times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            times.pop_front();
        }
        if times.len() < limit {
            return None;
        }
        let oldest = *times.front()?;
        Some(window.saturating_sub(now.saturating_duration_since(oldest)))
    }

    fn prune(&mut self, now: Instant) {
        let window = self.limits.window;
        self.failures.retain(|_, times| {
            times
                .back()
                .is_some_and(|t| now.saturating_duration_since(*t) < window)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_user_and_per_address_in_a_sliding_window() {
        let limits = Limits {
            window: Duration::from_secs(60),
            per_user: 3,
            per_address: 5,
        };
        let mut l = Limiter::new(limits);
        let t0 = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        for i in 0..3 {
            assert_eq!(l.check("alice", Some(a), t0), None, "attempt {i}");
            l.failed("alice", Some(a), t0);
        }
        // The user is limited from any address...
        let wait = l.check("alice", Some(b), t0 + Duration::from_secs(10));
        assert_eq!(wait, Some(Duration::from_secs(50)));
        // ...and the window slides.
        assert_eq!(
            l.check("alice", Some(b), t0 + Duration::from_secs(60)),
            None
        );
        // The address is limited for any user after 5 failures.
        l.failed("bob", Some(a), t0);
        l.failed("carol", Some(a), t0);
        assert!(l.check("dave", Some(a), t0).is_some());
        assert_eq!(l.check("dave", Some(b), t0), None);
        // Success clears the user's count.
        l.succeeded("alice");
        assert_eq!(l.check("alice", Some(b), t0), None);
    }
}
