//! Resource accounting in the style of ElectrumX: every request costs, costs decay with time, and
//! they are kept per session, per IP and per subnet (/24 for IPv4, /48 for IPv6), so opening
//! more connections does not buy more service. Past the soft limit requests are delayed; past
//! the hard limit the session is closed and new connections from the IP refused until it decays.
//!
//! Every client is accounted, loopback ones included: a Tor hidden service or a reverse proxy
//! on the same machine hands the server all its clients from 127.0.0.1, and they must share
//! that one address's limits, not escape them. The exceptions are explicit: the addresses in
//! [`Limits::exempt`], and sessions on a listener the server was told is its host's own
//! (`ServerConfig::own_tcp`), where a node's Lightning wallet and on-chain wallets sync.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Limits of one server.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest request line (or WebSocket message), in bytes.
    pub max_line: usize,
    /// Most calls in one batch.
    pub max_batch: usize,
    /// Most concurrent connections from one IP.
    pub max_connections_per_ip: usize,
    /// Most script-hash subscriptions held by one IP across its sessions.
    pub max_subscriptions_per_ip: usize,
    /// Most sessions in all.
    pub max_sessions: usize,
    /// A session that sends nothing this long is closed.
    pub idle_timeout: Duration,
    /// A request line begun must end within this long, or the session is closed: a slow
    /// writer (slowloris) cannot hold a connection and a growing buffer by trickling bytes.
    pub line_timeout: Duration,
    /// Cost above which requests are delayed.
    pub cost_soft_limit: f64,
    /// Cost at which the session is closed.
    pub cost_hard_limit: f64,
    /// Cost forgiven per second.
    pub cost_decay_per_sec: f64,
    /// Delay of a request at the hard limit (scaled linearly from the soft limit).
    pub max_request_delay: Duration,
    /// Longest history sent without paging.
    pub max_history: usize,
    /// Clients from these addresses are neither limited nor accounted (none by default). Give
    /// only addresses that no stranger's connection can come from: loopback is where a Tor
    /// hidden service or a reverse proxy delivers everyone.
    pub exempt: Vec<IpAddr>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line: 1_000_000,
            max_batch: 2_000,
            max_connections_per_ip: 32,
            max_subscriptions_per_ip: 75_000,
            max_sessions: 20_000,
            idle_timeout: Duration::from_secs(600),
            line_timeout: Duration::from_secs(30),
            cost_soft_limit: 1_000.0,
            cost_hard_limit: 10_000.0,
            cost_decay_per_sec: 1.0,
            max_request_delay: Duration::from_millis(2_500),
            max_history: 125_000,
            exempt: Vec::new(),
        }
    }
}

/// A cost that decays linearly over time.
#[derive(Debug, Clone, Copy)]
pub struct Decaying {
    value: f64,
    at: Instant,
}

impl Decaying {
    pub fn new(now: Instant) -> Decaying {
        Decaying {
            value: 0.0,
            at: now,
        }
    }

    pub fn value(&self, now: Instant, per_sec: f64) -> f64 {
        (self.value - now.saturating_duration_since(self.at).as_secs_f64() * per_sec).max(0.0)
    }

    pub fn add(&mut self, cost: f64, now: Instant, per_sec: f64) {
        self.value = self.value(now, per_sec) + cost;
        self.at = now;
    }
}

/// The subnet an address is accounted under.
pub fn subnet(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            IpAddr::from([o[0], o[1], o[2], 0])
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::from([s[0], s[1], s[2], 0, 0, 0, 0, 0])
        }
    }
}

#[derive(Debug)]
struct Group {
    cost: Decaying,
    connections: usize,
    subscriptions: usize,
}

/// What the accountant says about a request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Go ahead.
    Serve,
    /// Go ahead after this delay.
    Delay(Duration),
    /// Close the session.
    Disconnect,
}

/// Who a session is, for the accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// The address it connected from.
    pub ip: IpAddr,
    /// Neither limited nor accounted.
    pub exempt: bool,
}

/// Per-IP and per-subnet accounting shared by all sessions.
pub struct Accountant {
    limits: Limits,
    groups: Mutex<HashMap<IpAddr, Group>>,
    sessions: std::sync::atomic::AtomicUsize,
}

impl Accountant {
    pub fn new(limits: Limits) -> Accountant {
        Accountant {
            limits,
            groups: Mutex::new(HashMap::new()),
            sessions: Default::default(),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The client a session is accounted as: its address, and whether it goes unlimited
    /// (`own`: it came in on the host's own listener).
    pub fn client(&self, ip: IpAddr, own: bool) -> Client {
        Client {
            ip,
            exempt: own || self.limits.exempt.contains(&ip),
        }
    }

    /// Admits a new connection, or says why not.
    pub fn connect(&self, client: Client) -> Result<(), &'static str> {
        use std::sync::atomic::Ordering;
        if self.sessions.load(Ordering::Relaxed) >= self.limits.max_sessions {
            return Err("too many sessions");
        }
        if !client.exempt {
            let ip = client.ip;
            let now = Instant::now();
            let mut groups = self.groups.lock().expect("accounting lock");
            let group = groups.entry(ip).or_insert_with(|| Group {
                cost: Decaying::new(now),
                connections: 0,
                subscriptions: 0,
            });
            if group.connections >= self.limits.max_connections_per_ip {
                return Err("too many connections from this address");
            }
            if group.cost.value(now, self.limits.cost_decay_per_sec) >= self.limits.cost_hard_limit
            {
                return Err("this address is over its resource limit");
            }
            group.connections += 1;
        }
        self.sessions.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Releases a connection and its subscriptions; its cost stays with the IP and decays.
    pub fn disconnect(&self, client: Client, subscriptions: usize) {
        self.sessions
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        if client.exempt {
            return;
        }
        let mut groups = self.groups.lock().expect("accounting lock");
        if let Some(group) = groups.get_mut(&client.ip) {
            group.connections = group.connections.saturating_sub(1);
            group.subscriptions = group.subscriptions.saturating_sub(subscriptions);
        }
        // Forget groups that owe nothing.
        let now = Instant::now();
        let per_sec = self.limits.cost_decay_per_sec;
        groups.retain(|_, g| g.connections > 0 || g.cost.value(now, per_sec) > 0.0);
    }

    /// Reserves `n` more subscriptions for the IP; false past its limit.
    pub fn subscribe(&self, client: Client, n: usize) -> bool {
        if client.exempt {
            return true;
        }
        let mut groups = self.groups.lock().expect("accounting lock");
        let Some(group) = groups.get_mut(&client.ip) else {
            return false;
        };
        if group.subscriptions + n > self.limits.max_subscriptions_per_ip {
            return false;
        }
        group.subscriptions += n;
        true
    }

    pub fn unsubscribe(&self, client: Client, n: usize) {
        if client.exempt {
            return;
        }
        if let Some(group) = self
            .groups
            .lock()
            .expect("accounting lock")
            .get_mut(&client.ip)
        {
            group.subscriptions = group.subscriptions.saturating_sub(n);
        }
    }

    /// Charges `cost` to the session, its IP and its subnet, and judges the session.
    pub fn charge(&self, client: Client, session: &mut Decaying, cost: f64) -> Verdict {
        if client.exempt {
            return Verdict::Serve;
        }
        let ip = client.ip;
        let now = Instant::now();
        let per_sec = self.limits.cost_decay_per_sec;
        session.add(cost, now, per_sec);
        let mut effective = session.value(now, per_sec);
        {
            let mut groups = self.groups.lock().expect("accounting lock");
            for (key, weight) in [(ip, 1.0), (subnet(ip), 0.5)] {
                let group = groups.entry(key).or_insert_with(|| Group {
                    cost: Decaying::new(now),
                    connections: 0,
                    subscriptions: 0,
                });
                group.cost.add(cost, now, per_sec);
                effective = effective.max(group.cost.value(now, per_sec) * weight);
            }
        }
        let (soft, hard) = (self.limits.cost_soft_limit, self.limits.cost_hard_limit);
        if effective >= hard {
            Verdict::Disconnect
        } else if effective > soft {
            Verdict::Delay(
                self.limits
                    .max_request_delay
                    .mul_f64((effective - soft) / (hard - soft)),
            )
        } else {
            Verdict::Serve
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client on an ordinary listener.
    fn at(acct: &Accountant, ip: &str) -> Client {
        acct.client(ip.parse().expect("ip"), false)
    }

    fn limits() -> Limits {
        Limits {
            max_connections_per_ip: 2,
            cost_soft_limit: 10.0,
            cost_hard_limit: 20.0,
            ..Limits::default()
        }
    }

    #[test]
    fn costs_throttle_then_disconnect() {
        let acct = Accountant::new(limits());
        let ip = at(&acct, "10.0.0.1");
        acct.connect(ip).expect("admitted");
        let mut session = Decaying::new(Instant::now());
        assert_eq!(acct.charge(ip, &mut session, 5.0), Verdict::Serve);
        assert!(
            matches!(acct.charge(ip, &mut session, 10.0), Verdict::Delay(d) if d > Duration::ZERO)
        );
        assert_eq!(acct.charge(ip, &mut session, 10.0), Verdict::Disconnect);
        acct.disconnect(ip, 0);
        assert!(
            acct.connect(ip).is_err(),
            "the IP keeps its cost after disconnecting"
        );
    }

    #[test]
    fn subnets_share_cost_and_ips_share_connections() {
        let acct = Accountant::new(limits());
        let a = at(&acct, "10.0.0.1");
        let b = at(&acct, "10.0.0.2");
        acct.connect(a).expect("1");
        acct.connect(a).expect("2");
        assert!(acct.connect(a).is_err(), "third connection from one IP");
        let mut s = Decaying::new(Instant::now());
        acct.charge(a, &mut s, 19.0);
        // A neighbour in the same /24 inherits half the subnet's cost.
        acct.connect(b).expect("other ip");
        let mut t = Decaying::new(Instant::now());
        assert!(matches!(
            acct.charge(b, &mut t, 1.0),
            Verdict::Serve | Verdict::Delay(_)
        ));
        let mut u = Decaying::new(Instant::now());
        assert_eq!(acct.charge(b, &mut u, 20.0), Verdict::Disconnect);
        assert_eq!(
            subnet("2001:db8:1:2::5".parse().expect("v6")),
            "2001:db8:1::".parse::<IpAddr>().expect("v6")
        );
    }

    #[test]
    fn loopback_is_limited_by_default_and_exemptions_are_explicit() {
        let limits = Limits {
            max_connections_per_ip: 1,
            ..Limits::default()
        };
        assert!(limits.exempt.is_empty(), "nobody is exempt by default");
        let acct = Accountant::new(limits.clone());
        // Loopback is one address like any other: a Tor hidden service or a reverse proxy
        // hands the server all its clients from there, and they share its limits.
        let lo = at(&acct, "127.0.0.1");
        assert!(!lo.exempt);
        acct.connect(lo).expect("the first");
        assert!(
            acct.connect(lo).is_err(),
            "a second connection from 127.0.0.1"
        );
        let mut s = Decaying::new(Instant::now());
        assert_eq!(acct.charge(lo, &mut s, 1e9), Verdict::Disconnect);

        // The host's own listener, and the addresses listed, are not limited.
        let own = acct.client("127.0.0.1".parse().expect("ip"), true);
        assert!(own.exempt);
        for _ in 0..5 {
            acct.connect(own).expect("the node's own service");
        }
        let mut s = Decaying::new(Instant::now());
        assert_eq!(acct.charge(own, &mut s, 1e9), Verdict::Serve);
        let listed = Accountant::new(Limits {
            exempt: vec!["127.0.0.2".parse().expect("ip")],
            ..limits
        });
        let (two, one) = (at(&listed, "127.0.0.2"), at(&listed, "127.0.0.1"));
        assert!(two.exempt && !one.exempt, "only the address listed");
        for _ in 0..5 {
            listed.connect(two).expect("listed");
        }
        let mut s = Decaying::new(Instant::now());
        assert_eq!(listed.charge(two, &mut s, 1e9), Verdict::Serve);
    }

    #[test]
    fn decay_forgives() {
        let t0 = Instant::now();
        let mut d = Decaying::new(t0);
        d.add(10.0, t0, 1.0);
        assert!((d.value(t0 + Duration::from_secs(4), 1.0) - 6.0).abs() < 1e-9);
        assert_eq!(d.value(t0 + Duration::from_secs(40), 1.0), 0.0);
    }
}
