//! Which charge points are connected, and how to reach their actor: the admin API uses it to read
//! live state, and a new connection uses it to replace an old one with the same id.
//!
//! It is generic over the session actor (`ChargePointActor` in practice), so that it knows
//! nothing of that actor: the actor, which unregisters itself when it stops, depends on the
//! registry and not the other way round.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use actix::{Actor, Addr};

use crate::id::ChargePointId;

/// One live session of a charge point, served by an actor `A`.
pub struct Connection<A: Actor> {
    /// Distinguishes this session from an earlier or later one of the same charge point.
    pub session: u64,
    /// The session's actor.
    pub actor: Addr<A>,
}

// By hand: derive would ask `A: Clone`, which an actor is not (its address is).
impl<A: Actor> Clone for Connection<A> {
    fn clone(&self) -> Self {
        Connection {
            session: self.session,
            actor: self.actor.clone(),
        }
    }
}

/// Shared map of connected charge points, each served by an actor `A`. A plain mutex is
/// enough: it is touched on connect, disconnect and API reads, never per message.
pub struct Registry<A: Actor> {
    /// Connected charge points by id.
    connections: Arc<Mutex<HashMap<ChargePointId, Connection<A>>>>,
    /// Source of session numbers.
    next_session: Arc<AtomicU64>,
}

// By hand: derive would ask `A: Clone` and `A: Default`, which the map of addresses does not
// need.
impl<A: Actor> Clone for Registry<A> {
    fn clone(&self) -> Self {
        Registry {
            connections: self.connections.clone(),
            next_session: self.next_session.clone(),
        }
    }
}

impl<A: Actor> Default for Registry<A> {
    fn default() -> Self {
        Registry {
            connections: Arc::default(),
            next_session: Arc::default(),
        }
    }
}

impl<A: Actor> Registry<A> {
    /// A fresh session number for a new connection.
    pub fn new_session(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ChargePointId, Connection<A>>> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts and
        // removes), so a poisoned lock is still safe to use.
        self.connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a new session; returns the one it replaces, which the caller must close.
    pub fn register(&self, id: ChargePointId, connection: Connection<A>) -> Option<Connection<A>> {
        self.lock().insert(id, connection)
    }

    /// Forgets a session, unless a newer session of the same charge point has replaced it.
    pub fn unregister(&self, id: &ChargePointId, session: u64) {
        let mut map = self.lock();
        if map.get(id).is_some_and(|c| c.session == session) {
            map.remove(id);
        }
    }

    /// The live session of a charge point, if connected.
    pub fn get(&self, id: &ChargePointId) -> Option<Connection<A>> {
        self.lock().get(id).cloned()
    }

    /// Every connected charge point.
    pub fn all(&self) -> Vec<(ChargePointId, Connection<A>)> {
        self.lock()
            .iter()
            .map(|(id, c)| (id.clone(), c.clone()))
            .collect()
    }

    /// How many are connected.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is connected.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}
