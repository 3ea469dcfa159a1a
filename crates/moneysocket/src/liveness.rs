//! WebSocket keepalive: a ping every so often, and a deadline for hearing back.
//!
//! A peer that stops answering without closing (a phone that lost its network, a process
//! frozen by the OS) leaves a TCP connection open for as long as the kernel cares to keep it,
//! often hours. On a relay such a peer keeps its rendezvous id taken — the other holder of
//! the seed is refused as a third party — and on a client it leaves the app believing it is
//! connected. The reference relay (autobahn, `autoPingInterval=30`) and the reference
//! outgoing socket (`autoPingTimeout`) ping on a timer and drop a peer that does not answer;
//! [`Heartbeat`] is the same schedule, shared by the relay's connections and
//! [`crate::client::OutgoingSocket`].
//!
//! Any frame heard from the peer counts as an answer, not only a pong: a peer busy sending
//! is alive, and the only peer this must catch is one that sends nothing at all.

use std::time::Duration;

use tokio::time::Instant;

/// How often to ping and how long to wait for an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    /// Time between pings. The reference relay pings every 30 s.
    pub ping_interval: Duration,
    /// How long after a ping the peer has to be heard from before it is dropped.
    pub pong_timeout: Duration,
}

impl Default for Liveness {
    /// 30 s between pings, as the reference relay; 20 s to answer, long enough for a phone on
    /// a slow link to wake its radio (the reference outgoing socket allows 5 s on TLS, which
    /// drops mobile apps needlessly).
    fn default() -> Self {
        Liveness {
            ping_interval: Duration::from_secs(30),
            pong_timeout: Duration::from_secs(20),
        }
    }
}

/// What the heartbeat wants done when its timer fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Beat {
    /// Send a ping now.
    Ping,
    /// The peer was not heard from in time after a ping: drop it.
    Dead,
    /// Nothing due yet (woken early).
    Idle,
}

/// One connection's ping schedule.
#[derive(Debug)]
pub(crate) struct Heartbeat {
    liveness: Liveness,
    next_ping: Instant,
    /// When an unanswered ping's time runs out.
    answer_by: Option<Instant>,
}

impl Heartbeat {
    pub(crate) fn new(liveness: Liveness, now: Instant) -> Heartbeat {
        Heartbeat {
            liveness,
            next_ping: now + liveness.ping_interval,
            answer_by: None,
        }
    }

    /// The peer sent something: it is alive.
    pub(crate) fn heard(&mut self) {
        self.answer_by = None;
    }

    /// When [`Heartbeat::beat`] has something to do next.
    pub(crate) fn wake_at(&self) -> Instant {
        match self.answer_by {
            Some(by) => by.min(self.next_ping),
            None => self.next_ping,
        }
    }

    /// What is due at `now`.
    pub(crate) fn beat(&mut self, now: Instant) -> Beat {
        if self.answer_by.is_some_and(|by| now >= by) {
            return Beat::Dead;
        }
        if now >= self.next_ping {
            self.next_ping = now + self.liveness.ping_interval;
            // A ping already unanswered keeps its earlier deadline.
            self.answer_by
                .get_or_insert(now + self.liveness.pong_timeout);
            return Beat::Ping;
        }
        Beat::Idle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn pings_on_schedule_and_declares_a_silent_peer_dead() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(
            Liveness {
                ping_interval: ms(100),
                pong_timeout: ms(50),
            },
            t0,
        );
        assert_eq!(hb.wake_at(), t0 + ms(100));
        assert_eq!(hb.beat(t0 + ms(10)), Beat::Idle);
        assert_eq!(hb.beat(t0 + ms(100)), Beat::Ping);
        assert_eq!(hb.wake_at(), t0 + ms(150));
        assert_eq!(hb.beat(t0 + ms(150)), Beat::Dead);
    }

    #[test]
    fn an_answer_clears_the_deadline() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(
            Liveness {
                ping_interval: ms(100),
                pong_timeout: ms(50),
            },
            t0,
        );
        assert_eq!(hb.beat(t0 + ms(100)), Beat::Ping);
        hb.heard();
        assert_eq!(hb.wake_at(), t0 + ms(200));
        assert_eq!(hb.beat(t0 + ms(160)), Beat::Idle);
        assert_eq!(hb.beat(t0 + ms(200)), Beat::Ping);
    }

    #[test]
    fn a_timeout_longer_than_the_interval_keeps_the_first_deadline() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(
            Liveness {
                ping_interval: ms(10),
                pong_timeout: ms(25),
            },
            t0,
        );
        assert_eq!(hb.beat(t0 + ms(10)), Beat::Ping);
        assert_eq!(hb.beat(t0 + ms(20)), Beat::Ping);
        assert_eq!(hb.beat(t0 + ms(30)), Beat::Ping);
        assert_eq!(hb.beat(t0 + ms(35)), Beat::Dead);
    }
}
