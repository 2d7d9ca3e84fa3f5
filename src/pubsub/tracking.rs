//! Client-side caching (CLIENT TRACKING), as Redis 7: the table of keys
//! each tracking client has read, and the invalidation messages sent when
//! one of them changes (or expires, is evicted, or the database is
//! flushed).
//!
//! The table maps a key name to the ids of the clients that read it (as in
//! Redis, database numbers are not part of it), striped by the key's hash.
//! A key's entry is dropped when it is invalidated: clients re-register by
//! reading it again. BCAST clients are not in the table: they subscribe to
//! prefixes, and every change of a key under one of them is sent to them.
//!
//! Nothing here costs a client without tracking anything: the store asks
//! [`Tracking::is_active`] (one load) before it reports a change.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use smallvec::SmallVec;

use super::mailbox::Mailbox;
use super::{encode_push, push_bulk};

const STRIPES: usize = 16;

/// The channel RESP2 clients receive invalidations on, when another
/// client redirects its invalidations to them.
pub const INVALIDATE_CHANNEL: &[u8] = b"__redis__:invalidate";

/// How a client tracks keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrackingMode {
    /// Every key it reads.
    #[default]
    Default,
    /// Only keys read by the command after CLIENT CACHING YES.
    OptIn,
    /// Every key, except those read by the command after CLIENT CACHING NO.
    OptOut,
    /// No table: every change under its prefixes.
    Broadcast,
}

/// What CLIENT TRACKING ON asked for.
#[derive(Debug, Clone, Default)]
pub struct TrackingOptions {
    pub mode: TrackingMode,
    /// Invalidations go to this client instead (REDIRECT).
    pub redirect: Option<u64>,
    /// Not told about its own changes (NOLOOP).
    pub noloop: bool,
    /// BCAST prefixes (empty: every key).
    pub prefixes: Vec<Bytes>,
}

/// A client with tracking on.
#[derive(Debug)]
struct Tracker {
    mailbox: Arc<Mailbox>,
    options: TrackingOptions,
    /// Where its invalidations go: itself, or the REDIRECT client.
    target: Arc<Mailbox>,
}

type KeyTable = HashMap<Bytes, SmallVec<[u64; 2]>, foldhash::fast::RandomState>;

/// See the module docs.
#[derive(Debug)]
pub struct Tracking {
    /// Clients with tracking on: the store's one check.
    active: AtomicUsize,
    trackers: RwLock<HashMap<u64, Tracker>>,
    table: Box<[Mutex<KeyTable>]>,
    hasher: foldhash::fast::FixedState,
    keys: AtomicUsize,
    items: AtomicUsize,
    /// BCAST prefixes and their clients ("" for every key).
    prefixes: RwLock<Vec<(Bytes, Vec<u64>)>>,
    /// Keys changed under each BCAST prefix since the last
    /// [`Tracking::flush_broadcasts`], with the client that changed them:
    /// as Redis, BCAST clients get one message per prefix after each
    /// command, its keys sorted.
    pending_broadcasts: Mutex<BTreeMap<Bytes, BTreeMap<Bytes, u64>>>,
    has_pending_broadcasts: AtomicBool,
    max_keys: AtomicU64,
}

impl Default for Tracking {
    fn default() -> Self {
        Tracking {
            active: AtomicUsize::new(0),
            trackers: RwLock::default(),
            table: (0..STRIPES).map(|_| Mutex::default()).collect(),
            hasher: foldhash::fast::FixedState::default(),
            keys: AtomicUsize::new(0),
            items: AtomicUsize::new(0),
            prefixes: RwLock::default(),
            pending_broadcasts: Mutex::default(),
            has_pending_broadcasts: AtomicBool::new(false),
            max_keys: AtomicU64::new(1_000_000),
        }
    }
}

/// Why a tracking change was refused (Redis's texts).
pub fn prefix_overlap_error(new: &[u8], existing: &[u8]) -> String {
    format!(
        "ERR Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
        String::from_utf8_lossy(new),
        String::from_utf8_lossy(existing)
    )
}

impl Tracking {
    /// Whether any client tracks keys (the store reports changes only
    /// then).
    #[inline]
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed) > 0
    }

    pub fn set_max_keys(&self, max: u64) {
        self.max_keys.store(max, Ordering::Relaxed);
    }

    /// Turns tracking on for `mailbox`'s client (or changes its prefixes,
    /// for a BCAST client turning it on again), its invalidations going to
    /// `target`. The caller checked the options (see
    /// [`Tracking::check_prefixes`]).
    pub fn enable(&self, mailbox: &Arc<Mailbox>, options: TrackingOptions, target: Arc<Mailbox>) {
        let id = mailbox.id;
        let mut trackers = self.trackers.write();
        let mut options = options;
        // BCAST without PREFIX: every key (the empty prefix), added to any
        // prefixes it has, unchecked, as Redis.
        if options.mode == TrackingMode::Broadcast && options.prefixes.is_empty() {
            options.prefixes.push(Bytes::new());
        }
        if let Some(existing) = trackers.get(&id) {
            // As Redis: prefixes add up while tracking stays on.
            let mut prefixes = existing.options.prefixes.clone();
            for prefix in options.prefixes.drain(..) {
                if !prefixes.contains(&prefix) {
                    prefixes.push(prefix);
                }
            }
            options.prefixes = prefixes;
        } else {
            self.active.fetch_add(1, Ordering::Relaxed);
        }
        if options.mode == TrackingMode::Broadcast {
            let mut table = self.prefixes.write();
            for prefix in &options.prefixes {
                match table.iter_mut().find(|(p, _)| p == prefix) {
                    Some((_, clients)) => {
                        if !clients.contains(&id) {
                            clients.push(id);
                        }
                    }
                    None => table.push((prefix.clone(), vec![id])),
                }
            }
            table.sort_by(|a, b| a.0.cmp(&b.0));
        }
        trackers.insert(
            id,
            Tracker {
                mailbox: mailbox.clone(),
                options,
                target,
            },
        );
    }

    /// The error Redis gives when a client's BCAST prefixes would overlap
    /// (one is a prefix of the other, or they are equal), with those it has
    /// or among the new ones.
    pub fn check_prefixes(&self, id: u64, new: &[Bytes]) -> Result<(), String> {
        let overlap = |a: &[u8], b: &[u8]| a.starts_with(b) || b.starts_with(a);
        let trackers = self.trackers.read();
        let mut existing: Vec<Bytes> = trackers
            .get(&id)
            .map_or_else(Vec::new, |tracker| tracker.options.prefixes.clone());
        existing.sort();
        for (i, prefix) in new.iter().enumerate() {
            if let Some(other) = existing.iter().find(|other| overlap(other, prefix)) {
                return Err(prefix_overlap_error(prefix, other));
            }
            if let Some(other) = new[i + 1..].iter().find(|other| overlap(other, prefix)) {
                return Err(format!(
                    "ERR Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.",
                    String::from_utf8_lossy(prefix),
                    String::from_utf8_lossy(other)
                ));
            }
        }
        Ok(())
    }

    /// Turns tracking off for client `id` (its keys stay in the table until
    /// they are invalidated, as in Redis: the id is then skipped).
    pub fn disable(&self, id: u64) {
        let Some(tracker) = self.trackers.write().remove(&id) else {
            return;
        };
        self.active.fetch_sub(1, Ordering::Relaxed);
        if tracker.options.mode == TrackingMode::Broadcast {
            let mut table = self.prefixes.write();
            for (_, clients) in table.iter_mut() {
                clients.retain(|&c| c != id);
            }
            table.retain(|(_, clients)| !clients.is_empty());
        }
    }

    /// The options of client `id`, if it tracks.
    pub fn options(&self, id: u64) -> Option<TrackingOptions> {
        self.trackers.read().get(&id).map(|t| t.options.clone())
    }

    /// Whether the redirect client of `id` has gone (CLIENT TRACKINGINFO's
    /// `broken_redirect`).
    pub fn redirect_broken(&self, id: u64) -> bool {
        self.trackers
            .read()
            .get(&id)
            .is_some_and(|t| t.options.redirect.is_some() && t.target.is_closed())
    }

    /// Clients with tracking on (INFO `tracking_clients`).
    pub fn client_count(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// INFO `tracking_total_keys`, `tracking_total_items`,
    /// `tracking_total_prefixes`.
    pub fn totals(&self) -> (usize, usize, usize) {
        (
            self.keys.load(Ordering::Relaxed),
            self.items.load(Ordering::Relaxed),
            self.prefixes.read().len(),
        )
    }

    fn stripe(&self, key: &[u8]) -> &Mutex<KeyTable> {
        &self.table[self.hasher.hash_one(key) as usize % STRIPES]
    }

    /// Remembers that client `id` read `keys` (called before the read
    /// runs: a change that lands between the read and this would
    /// otherwise be missed).
    pub fn remember(&self, id: u64, keys: &[&[u8]], pubsub: &super::PubSub) {
        for key in keys {
            let mut stripe = self.stripe(key).lock();
            let clients = match stripe.get_mut(*key) {
                Some(clients) => clients,
                None => {
                    self.keys.fetch_add(1, Ordering::Relaxed);
                    stripe.entry(Bytes::copy_from_slice(key)).or_default()
                }
            };
            if !clients.contains(&id) {
                clients.push(id);
                self.items.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.limit_table(pubsub);
    }

    /// `tracking-table-max-keys`: past it, keys are dropped from the table
    /// and their clients told to forget them, as Redis's
    /// trackingLimitUsedSlots.
    fn limit_table(&self, pubsub: &super::PubSub) {
        let max = self.max_keys.load(Ordering::Relaxed) as usize;
        if max == 0 {
            return;
        }
        let mut stripe_index = 0;
        while self.keys.load(Ordering::Relaxed) > max && stripe_index < STRIPES {
            let victim = {
                let mut stripe = self.table[stripe_index].lock();
                let key = stripe.keys().next().cloned();
                key.and_then(|key| stripe.remove(&key).map(|clients| (key, clients)))
            };
            match victim {
                Some((key, clients)) => {
                    self.keys.fetch_sub(1, Ordering::Relaxed);
                    self.items.fetch_sub(clients.len(), Ordering::Relaxed);
                    self.send_to_clients(&key, &clients, 0, pubsub);
                }
                None => stripe_index += 1,
            }
        }
    }

    /// `key` changed (by client `by`, 0 for the server itself): its
    /// tracking clients and the BCAST clients of its prefixes are told.
    pub fn invalidate(&self, key: &[u8], by: u64, pubsub: &super::PubSub) {
        let clients = {
            let mut stripe = self.stripe(key).lock();
            stripe.remove(key)
        };
        if let Some(clients) = clients {
            self.keys.fetch_sub(1, Ordering::Relaxed);
            self.items.fetch_sub(clients.len(), Ordering::Relaxed);
            self.send_to_clients(key, &clients, by, pubsub);
        }
        let prefixes = self.prefixes.read();
        if prefixes.is_empty() {
            return;
        }
        let mut pending = self.pending_broadcasts.lock();
        for (prefix, _) in prefixes.iter() {
            if key.starts_with(prefix) {
                pending
                    .entry(prefix.clone())
                    .or_default()
                    .insert(Bytes::copy_from_slice(key), by);
                self.has_pending_broadcasts.store(true, Ordering::Release);
            }
        }
        drop(pending);
        drop(prefixes);
        // Changes no command made (expiry, eviction) go out at once.
        if by == 0 {
            self.flush_broadcasts(pubsub);
        }
    }

    /// Whether BCAST messages wait to be sent (one load per command).
    #[inline]
    pub fn has_pending_broadcasts(&self) -> bool {
        self.has_pending_broadcasts.load(Ordering::Acquire)
    }

    /// Sends the BCAST messages of the keys changed since the last call:
    /// per prefix, in prefix order, the sorted keys, leaving out for a
    /// NOLOOP client the keys it changed itself (Redis's
    /// trackingBroadcastInvalidationMessages).
    pub fn flush_broadcasts(&self, pubsub: &super::PubSub) {
        let pending = {
            let mut pending = self.pending_broadcasts.lock();
            self.has_pending_broadcasts.store(false, Ordering::Release);
            std::mem::take(&mut *pending)
        };
        if pending.is_empty() {
            return;
        }
        let prefixes = self.prefixes.read();
        let trackers = self.trackers.read();
        for (prefix, keys) in &pending {
            let Some((_, clients)) = prefixes.iter().find(|(p, _)| p == prefix) else {
                continue;
            };
            for id in clients {
                let Some(tracker) = trackers.get(id) else {
                    continue;
                };
                let sent: Vec<&Bytes> = keys
                    .iter()
                    .filter(|(_, by)| !(tracker.options.noloop && *by == id))
                    .map(|(key, _)| key)
                    .collect();
                if sent.is_empty() {
                    continue;
                }
                let mut value = format!("*{}\r\n", sent.len()).into_bytes();
                for key in sent {
                    push_bulk(&mut value, key);
                }
                self.send(tracker, &value, pubsub);
            }
        }
    }

    fn send_to_clients(&self, key: &[u8], clients: &[u64], by: u64, pubsub: &super::PubSub) {
        let trackers = self.trackers.read();
        for id in clients {
            let Some(tracker) = trackers.get(id) else {
                continue;
            };
            if tracker.options.noloop && *id == by {
                continue;
            }
            let mut keys = b"*1\r\n".to_vec();
            push_bulk(&mut keys, key);
            self.send(tracker, &keys, pubsub);
        }
    }

    /// Tells every tracking client to forget everything (FLUSHDB,
    /// FLUSHALL), and empties the table, as Redis's
    /// trackingInvalidateKeysOnFlush.
    pub fn invalidate_all(&self, pubsub: &super::PubSub) {
        for stripe in self.table.iter() {
            let dropped = std::mem::take(&mut *stripe.lock());
            self.keys.fetch_sub(dropped.len(), Ordering::Relaxed);
            self.items.fetch_sub(
                dropped.values().map(SmallVec::len).sum::<usize>(),
                Ordering::Relaxed,
            );
        }
        let trackers = self.trackers.read();
        for tracker in trackers.values() {
            let null: &[u8] = if tracker.mailbox.is_resp3() {
                b"_\r\n"
            } else {
                b"$-1\r\n"
            };
            self.send(tracker, null, pubsub);
        }
    }

    /// Sends an invalidation whose value (keys, or null) is `value` to
    /// `tracker`'s target, as Redis's sendTrackingMessage.
    fn send(&self, tracker: &Tracker, value: &[u8], pubsub: &super::PubSub) {
        let target = &tracker.target;
        if tracker.options.redirect.is_some() && target.is_closed() {
            if tracker.mailbox.is_resp3() {
                let mut frame = b">2\r\n".to_vec();
                push_bulk(&mut frame, b"tracking-redir-broken");
                frame.extend_from_slice(b":");
                frame.extend_from_slice(
                    itoa::Buffer::new()
                        .format(tracker.options.redirect.unwrap_or(0))
                        .as_bytes(),
                );
                frame.extend_from_slice(b"\r\n");
                pubsub.push_to(&tracker.mailbox, &frame);
            }
            return;
        }
        let mut frame = if target.is_resp3() {
            let mut frame = b">2\r\n".to_vec();
            push_bulk(&mut frame, b"invalidate");
            frame
        } else if tracker.options.redirect.is_some() && target.class() == super::ClientClass::PubSub
        {
            let mut frame = encode_push(false, &[b"message", INVALIDATE_CHANNEL]);
            frame[1] = b'3';
            frame
        } else {
            // RESP2 without a subscribed redirect: nowhere to send it.
            return;
        };
        frame.extend_from_slice(value);
        pubsub.push_to(target, &frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pubsub::PubSub;

    fn drained(mailbox: &Mailbox) -> String {
        let mut out = bytes::BytesMut::new();
        mailbox.drain_into(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    fn client(id: u64, resp3: bool) -> Arc<Mailbox> {
        let mailbox = Arc::new(Mailbox::new(id));
        mailbox.set_resp3(resp3);
        mailbox.set_listening(true);
        mailbox
    }

    #[test]
    fn a_read_key_is_invalidated_once_and_forgotten() {
        let pubsub = PubSub::default();
        let tracking = &pubsub.tracking;
        let a = client(1, true);
        tracking.enable(&a, TrackingOptions::default(), a.clone());
        tracking.remember(1, &[b"k"], &pubsub);
        tracking.remember(1, &[b"k"], &pubsub);
        assert_eq!(tracking.totals(), (1, 1, 0));
        tracking.invalidate(b"k", 2, &pubsub);
        assert_eq!(drained(&a), ">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n");
        tracking.invalidate(b"k", 2, &pubsub);
        assert_eq!(drained(&a), "");
        assert_eq!(tracking.totals(), (0, 0, 0));
    }

    #[test]
    fn noloop_bcast_and_overlaps() {
        let pubsub = PubSub::default();
        let tracking = &pubsub.tracking;
        let a = client(1, true);
        let options = TrackingOptions {
            mode: TrackingMode::Broadcast,
            noloop: true,
            prefixes: vec![Bytes::from_static(b"user:")],
            ..TrackingOptions::default()
        };
        tracking.enable(&a, options, a.clone());
        tracking.invalidate(b"user:1", 1, &pubsub);
        tracking.flush_broadcasts(&pubsub);
        assert_eq!(drained(&a), "");
        // One message per prefix, keys sorted.
        tracking.invalidate(b"user:2", 2, &pubsub);
        tracking.invalidate(b"user:1", 2, &pubsub);
        tracking.invalidate(b"other", 2, &pubsub);
        tracking.flush_broadcasts(&pubsub);
        assert_eq!(
            drained(&a),
            ">2\r\n$10\r\ninvalidate\r\n*2\r\n$6\r\nuser:1\r\n$6\r\nuser:2\r\n"
        );
        assert_eq!(
            tracking.check_prefixes(1, &[Bytes::from_static(b"user")]),
            Err(prefix_overlap_error(b"user", b"user:"))
        );
        tracking.disable(1);
        assert!(!tracking.is_active());
        assert_eq!(tracking.totals().2, 0);
    }

    #[test]
    fn resp2_redirect_goes_to_a_subscribed_client_as_a_message() {
        let pubsub = PubSub::default();
        let tracking = &pubsub.tracking;
        let reader = client(1, false);
        let listener = client(2, false);
        listener.set_class(crate::pubsub::ClientClass::PubSub);
        let options = TrackingOptions {
            redirect: Some(2),
            ..TrackingOptions::default()
        };
        tracking.enable(&reader, options, listener.clone());
        tracking.remember(1, &[b"k"], &pubsub);
        tracking.invalidate(b"k", 3, &pubsub);
        assert_eq!(
            drained(&listener),
            "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$1\r\nk\r\n"
        );
    }

    #[test]
    fn the_table_limit_invalidates_what_it_drops() {
        let pubsub = PubSub::default();
        let tracking = &pubsub.tracking;
        tracking.set_max_keys(5);
        let a = client(1, true);
        tracking.enable(&a, TrackingOptions::default(), a.clone());
        let keys: Vec<Vec<u8>> = (0..20).map(|i| format!("k{i}").into_bytes()).collect();
        let keys: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        tracking.remember(1, &keys, &pubsub);
        assert!(tracking.totals().0 <= 5);
        assert_eq!(drained(&a).matches("invalidate").count(), 15);
    }
}
