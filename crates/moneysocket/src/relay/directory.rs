//! The rendezvous directory: which connections wait on, or are paired under, which id.
//!
//! A pure state machine with no I/O, so the pairing rules are tested on their own: the
//! connection tasks lock it, apply one transition and act on the outcome outside the lock.
//! Rules (py-moneysocket `layer/rendezvous/directory.py` and `nexus/rendezvous/incoming.py`):
//! the first connection on an id waits, the second pairs with it, any further one is
//! refused while the pair lasts, and when either side leaves the id is freed entirely so
//! both ends can reconnect and meet again.

use std::collections::HashMap;

use crate::seed::RendezvousId;

/// Identifies a connection for the lifetime of the relay.
pub(crate) type ConnId = u64;

/// Outcome of a connection asking to rendezvous.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Join<P> {
    /// Nobody else is here yet: the connection now waits on the id.
    Waiting,
    /// The connection is paired with this waiting one.
    Paired(P),
    /// Two connections are already paired under the id.
    Full,
}

/// Outcome of a connection leaving.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Left<P> {
    /// The connection was not (or no longer) in the directory, e.g. its partner left first.
    Absent,
    /// It was waiting alone; the id is free again.
    WasWaiting,
    /// It was paired; the partner must be told and closed. The id is free again.
    WasPaired(P),
}

enum Slot<P> {
    Waiting(ConnId, P),
    Paired((ConnId, P), (ConnId, P)),
}

/// Connections by rendezvous id; `P` is whatever a connection needs to reach its partner.
pub(crate) struct Directory<P> {
    slots: HashMap<RendezvousId, Slot<P>>,
}

impl<P: Clone> Directory<P> {
    pub(crate) fn new() -> Self {
        Directory {
            slots: HashMap::new(),
        }
    }

    /// Connection `id`, reachable through `peer`, asks to meet under `rid`.
    pub(crate) fn join(&mut self, rid: RendezvousId, id: ConnId, peer: P) -> Join<P> {
        match self.slots.remove(&rid) {
            None => {
                self.slots.insert(rid, Slot::Waiting(id, peer));
                Join::Waiting
            }
            Some(Slot::Waiting(waiter_id, waiter)) => {
                let partner = waiter.clone();
                self.slots
                    .insert(rid, Slot::Paired((waiter_id, waiter), (id, peer)));
                Join::Paired(partner)
            }
            Some(full @ Slot::Paired(..)) => {
                self.slots.insert(rid, full);
                Join::Full
            }
        }
    }

    /// Connection `id`, which joined under `rid`, goes away.
    pub(crate) fn leave(&mut self, rid: &RendezvousId, id: ConnId) -> Left<P> {
        match self.slots.get(rid) {
            Some(Slot::Waiting(waiter, _)) if *waiter == id => {
                self.slots.remove(rid);
                Left::WasWaiting
            }
            Some(Slot::Paired((a, _), (b, _))) if *a == id || *b == id => {
                let a_left = *a == id;
                match self.slots.remove(rid) {
                    Some(Slot::Paired((_, pa), (_, pb))) => {
                        Left::WasPaired(if a_left { pb } else { pa })
                    }
                    _ => Left::Absent,
                }
            }
            _ => Left::Absent,
        }
    }

    /// Ids with someone waiting or paired.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rid(n: u8) -> RendezvousId {
        RendezvousId::from_bytes([n; 32])
    }

    #[test]
    fn pairs_two_and_refuses_a_third() {
        let mut dir = Directory::new();
        assert_eq!(dir.join(rid(1), 1, "a"), Join::Waiting);
        assert_eq!(dir.join(rid(1), 2, "b"), Join::Paired("a"));
        assert_eq!(dir.join(rid(1), 3, "c"), Join::Full);
        // The refused one never entered, so it leaves nothing behind.
        assert_eq!(dir.leave(&rid(1), 3), Left::Absent);
        assert_eq!(dir.leave(&rid(1), 1), Left::WasPaired("b"));
        // The partner's own leave then finds nothing: the id was freed at once.
        assert_eq!(dir.leave(&rid(1), 2), Left::Absent);
        assert_eq!(dir.len(), 0);
        // Both can meet again.
        assert_eq!(dir.join(rid(1), 4, "a2"), Join::Waiting);
        assert_eq!(dir.join(rid(1), 5, "b2"), Join::Paired("a2"));
        assert_eq!(dir.leave(&rid(1), 5), Left::WasPaired("a2"));
    }

    #[test]
    fn ids_are_independent() {
        let mut dir = Directory::new();
        assert_eq!(dir.join(rid(1), 1, "a"), Join::Waiting);
        assert_eq!(dir.join(rid(2), 2, "b"), Join::Waiting);
        assert_eq!(dir.leave(&rid(1), 2), Left::Absent);
        assert_eq!(dir.leave(&rid(1), 1), Left::WasWaiting);
        assert_eq!(dir.join(rid(2), 3, "c"), Join::Paired("b"));
        assert_eq!(dir.len(), 1);
    }
}
