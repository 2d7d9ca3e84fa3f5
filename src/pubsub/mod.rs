//! Messaging: pub/sub channels (classic and shard), keyspace
//! notifications, MONITOR feeds and client-side caching's invalidations
//! (see [`tracking`]). Everything here delivers into clients' mailboxes
//! (see [`mailbox`]); nothing here waits, so it may run under a shard lock
//! (expiry and eviction notify from there).
//!
//! Channels are striped by their hash, each stripe behind its own
//! read-write lock: publishers on different channels take different locks,
//! and a publish only reads (subscribing writes). Patterns are one list,
//! read by every publish, as in Redis.

pub mod mailbox;
pub mod tracking;

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;

pub use crate::config::keyspace_events as events;
use crate::store::{KeyListener, KeySignal, KeySignals};
pub use mailbox::{ClientClass, ClientEvictor, ClientMemory, Mailbox, OutputLimit, OutputLimits};
pub use tracking::{Tracking, TrackingMode, TrackingOptions};

/// Stripes of the channel tables.
const STRIPES: usize = 16;

/// Which namespace a channel lives in: classic (SUBSCRIBE/PUBLISH) or
/// shard (SSUBSCRIBE/SPUBLISH). They never see each other's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    Classic,
    Shard,
}

type Subscribers = Vec<Arc<Mailbox>>;

/// Channel name to subscribers, striped.
#[derive(Debug)]
struct ChannelTable {
    stripes: Box<[RwLock<HashMap<Bytes, Subscribers, foldhash::fast::RandomState>>]>,
    hasher: foldhash::fast::FixedState,
    /// Channels with at least one subscriber.
    count: AtomicUsize,
}

impl ChannelTable {
    fn new() -> Self {
        ChannelTable {
            stripes: (0..STRIPES).map(|_| RwLock::default()).collect(),
            hasher: foldhash::fast::FixedState::default(),
            count: AtomicUsize::new(0),
        }
    }

    fn stripe(
        &self,
        channel: &[u8],
    ) -> &RwLock<HashMap<Bytes, Subscribers, foldhash::fast::RandomState>> {
        &self.stripes[self.hasher.hash_one(channel) as usize % STRIPES]
    }

    fn add(&self, channel: &Bytes, mailbox: &Arc<Mailbox>) {
        let mut stripe = self.stripe(channel).write();
        let subscribers = stripe.entry(channel.clone()).or_insert_with(|| {
            self.count.fetch_add(1, Ordering::Relaxed);
            Vec::new()
        });
        subscribers.push(mailbox.clone());
    }

    fn remove(&self, channel: &[u8], id: u64) {
        let mut stripe = self.stripe(channel).write();
        if let Some(subscribers) = stripe.get_mut(channel) {
            subscribers.retain(|m| m.id != id);
            if subscribers.is_empty() {
                stripe.remove(channel);
                self.count.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    fn subscribers(&self, channel: &[u8]) -> usize {
        self.stripe(channel).read().get(channel).map_or(0, Vec::len)
    }

    /// Channels matching `pattern` (all without one).
    fn names(&self, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let mut names = Vec::new();
        for stripe in self.stripes.iter() {
            for name in stripe.read().keys() {
                if pattern.is_none_or(|p| crate::glob::glob_match(p, name, false)) {
                    names.push(name.clone());
                }
            }
        }
        names
    }
}

/// The messaging engine of one server (see the module docs).
#[derive(Debug)]
pub struct PubSub {
    channels: ChannelTable,
    shard_channels: ChannelTable,
    /// Pattern to subscribers, in subscription order.
    patterns: RwLock<indexmap::IndexMap<Bytes, Subscribers, foldhash::fast::RandomState>>,
    monitors: RwLock<Vec<Arc<Mailbox>>>,
    monitor_count: AtomicUsize,
    /// `notify-keyspace-events`.
    keyspace_flags: AtomicU32,
    limits: RwLock<OutputLimits>,
    /// Clients dropped for passing their output limit (INFO
    /// `client_output_buffer_limit_disconnections`).
    limit_disconnections: AtomicU64,
    /// Client-side caching.
    pub tracking: Tracking,
    /// The [`KeySignal`]s the store must send here now.
    wanted: Arc<AtomicU8>,
}

thread_local! {
    /// The client whose command runs on this thread (0: none), so that
    /// NOLOOP clients are not told about their own changes.
    static CURRENT_CLIENT: Cell<u64> = const { Cell::new(0) };
}

/// Runs `f` as client `id`'s command (see [`CURRENT_CLIENT`]).
pub fn as_client<R>(id: u64, f: impl FnOnce() -> R) -> R {
    let previous = CURRENT_CLIENT.with(|c| c.replace(id));
    let result = f();
    CURRENT_CLIENT.with(|c| c.set(previous));
    result
}

fn current_client() -> u64 {
    CURRENT_CLIENT.with(Cell::get)
}

impl Default for PubSub {
    fn default() -> Self {
        PubSub {
            channels: ChannelTable::new(),
            shard_channels: ChannelTable::new(),
            patterns: RwLock::default(),
            monitors: RwLock::default(),
            monitor_count: AtomicUsize::new(0),
            keyspace_flags: AtomicU32::new(0),
            limits: RwLock::new(OutputLimits::default()),
            limit_disconnections: AtomicU64::new(0),
            tracking: Tracking::default(),
            wanted: Arc::new(AtomicU8::new(0)),
        }
    }
}

impl KeyListener for PubSub {
    fn key_signal(&self, db: usize, key: &[u8], signal: KeySignal) {
        match signal {
            KeySignal::Modified => {}
            KeySignal::Added => self.notify(events::NEW, "new", key, db),
            KeySignal::Expired => self.notify(events::EXPIRED, "expired", key, db),
            KeySignal::Evicted => self.notify(events::EVICTED, "evicted", key, db),
            KeySignal::FieldsExpired => self.notify(events::HASH, "hexpired", key, db),
            KeySignal::Emptied => self.notify(events::GENERIC, "del", key, db),
        }
        if signal != KeySignal::Added && self.tracking.is_active() {
            self.tracking.invalidate(key, current_client(), self);
        }
    }
}

impl PubSub {
    /// Takes the settings this engine follows (at start and on CONFIG SET).
    pub fn configure(&self, config: &crate::config::Config) {
        self.keyspace_flags
            .store(config.notify_keyspace_events, Ordering::Relaxed);
        *self.limits.write() = config.client_output_buffer_limit;
        self.tracking.set_max_keys(config.tracking_table_max_keys);
        self.refresh_wanted();
    }

    /// What the store reports to this engine (install with
    /// `Store::listen`).
    pub fn key_signals(self: &Arc<Self>) -> KeySignals {
        KeySignals::new(self.clone(), self.wanted.clone())
    }

    /// Asks the store for the signals needed now: changes only while a
    /// client tracks keys; creations, expiries and evictions while they are
    /// notified (or tracked).
    fn refresh_wanted(&self) {
        let tracking = self.tracking.is_active();
        let mut wanted = 0;
        for (signal, needed) in [
            (KeySignal::Modified, tracking),
            (KeySignal::Added, self.notifies(events::NEW)),
            (
                KeySignal::Expired,
                tracking || self.notifies(events::EXPIRED),
            ),
            (
                KeySignal::Evicted,
                tracking || self.notifies(events::EVICTED),
            ),
            (
                KeySignal::FieldsExpired,
                tracking || self.notifies(events::HASH),
            ),
            (
                KeySignal::Emptied,
                tracking || self.notifies(events::GENERIC),
            ),
        ] {
            if needed {
                wanted |= signal as u8;
            }
        }
        self.wanted.store(wanted, Ordering::Relaxed);
    }

    /// CLIENT TRACKING ON (see [`Tracking::enable`]).
    pub fn enable_tracking(
        &self,
        mailbox: &Arc<Mailbox>,
        options: TrackingOptions,
        target: Arc<Mailbox>,
    ) {
        // Both may receive pushes: invalidations, or the tracker being
        // told that its redirect client went away.
        target.set_listening(true);
        mailbox.set_listening(true);
        self.tracking.enable(mailbox, options, target);
        self.refresh_wanted();
    }

    /// CLIENT TRACKING OFF, RESET, or the client left.
    pub fn disable_tracking(&self, id: u64) {
        self.tracking.disable(id);
        self.refresh_wanted();
    }

    /// A database (or all) was flushed: every tracking client is told to
    /// forget everything (FLUSHDB, FLUSHALL), as Redis does.
    pub fn flushed(&self) {
        if self.tracking.is_active() {
            self.tracking.invalidate_all(self);
        }
    }

    fn table(&self, kind: ChannelKind) -> &ChannelTable {
        match kind {
            ChannelKind::Classic => &self.channels,
            ChannelKind::Shard => &self.shard_channels,
        }
    }

    /// Adds `mailbox` to `channel`'s subscribers (the caller checked that
    /// it is not one already).
    pub fn subscribe(&self, kind: ChannelKind, channel: &Bytes, mailbox: &Arc<Mailbox>) {
        self.table(kind).add(channel, mailbox);
    }

    pub fn unsubscribe(&self, kind: ChannelKind, channel: &[u8], id: u64) {
        self.table(kind).remove(channel, id);
    }

    pub fn psubscribe(&self, pattern: &Bytes, mailbox: &Arc<Mailbox>) {
        self.patterns
            .write()
            .entry(pattern.clone())
            .or_default()
            .push(mailbox.clone());
    }

    pub fn punsubscribe(&self, pattern: &[u8], id: u64) {
        let mut patterns = self.patterns.write();
        if let Some(subscribers) = patterns.get_mut(pattern) {
            subscribers.retain(|m| m.id != id);
            if subscribers.is_empty() {
                patterns.shift_remove(pattern);
            }
        }
    }

    /// The classic channels, shard channels and patterns client `id`
    /// subscribes to: a walk of every table, for the rare ACL change that
    /// must check them.
    pub fn subscriptions_of(&self, id: u64) -> [Vec<Bytes>; 3] {
        let of_table = |table: &ChannelTable| -> Vec<Bytes> {
            table
                .stripes
                .iter()
                .flat_map(|stripe| {
                    stripe
                        .read()
                        .iter()
                        .filter(|(_, subscribers)| subscribers.iter().any(|m| m.id == id))
                        .map(|(channel, _)| channel.clone())
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let patterns = self
            .patterns
            .read()
            .iter()
            .filter(|(_, subscribers)| subscribers.iter().any(|m| m.id == id))
            .map(|(pattern, _)| pattern.clone())
            .collect();
        [
            of_table(&self.channels),
            of_table(&self.shard_channels),
            patterns,
        ]
    }

    /// Sends `message` to `channel`'s subscribers (and, for a classic
    /// channel, to the matching patterns'); returns how many received it.
    pub fn publish(&self, kind: ChannelKind, channel: &[u8], message: &[u8]) -> usize {
        let limits = *self.limits.read();
        let mut frames = Frames::default();
        let mut receivers = 0;
        {
            let stripe = self.table(kind).stripe(channel).read();
            if let Some(subscribers) = stripe.get(channel) {
                let name: &[u8] = match kind {
                    ChannelKind::Classic => b"message",
                    ChannelKind::Shard => b"smessage",
                };
                for mailbox in subscribers {
                    let frame = frames.get(mailbox.is_resp3(), &[name, channel, message]);
                    self.deliver(mailbox, frame, &limits);
                    receivers += 1;
                }
            }
        }
        if kind == ChannelKind::Classic {
            let patterns = self.patterns.read();
            for (pattern, subscribers) in patterns.iter() {
                if !crate::glob::glob_match(pattern, channel, false) {
                    continue;
                }
                let mut frames = Frames::default();
                for mailbox in subscribers {
                    let frame = frames.get(
                        mailbox.is_resp3(),
                        &[b"pmessage", pattern, channel, message],
                    );
                    self.deliver(mailbox, frame, &limits);
                    receivers += 1;
                }
            }
        }
        receivers
    }

    /// Pushes one frame into `mailbox`, counting and logging the client's
    /// drop if that takes it past its output limit.
    fn deliver(&self, mailbox: &Mailbox, frame: &[u8], limits: &OutputLimits) {
        if !mailbox.push(frame, limits.get(mailbox.class())) {
            self.count_limit_disconnection(mailbox.id);
        }
    }

    fn count_limit_disconnection(&self, id: u64) {
        self.limit_disconnections.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            client = id,
            "Client scheduled to be closed ASAP for overcoming of output buffer limits."
        );
    }

    /// Pushes an already encoded frame to one client (invalidations,
    /// tracking-redir-broken). To the client whose command is running, it
    /// goes after that command's reply, as Redis defers it.
    pub fn push_to(&self, mailbox: &Mailbox, frame: &[u8]) {
        let limit = self.limits.read().get(mailbox.class());
        let delivered = if mailbox.id == current_client() {
            mailbox.push_after_reply(frame, limit)
        } else {
            mailbox.push(frame, limit)
        };
        if !delivered {
            self.count_limit_disconnection(mailbox.id);
        }
    }

    /// Channels with subscribers, matching `pattern` if given (PUBSUB
    /// CHANNELS / SHARDCHANNELS).
    pub fn channel_names(&self, kind: ChannelKind, pattern: Option<&[u8]>) -> Vec<Bytes> {
        self.table(kind).names(pattern)
    }

    /// Subscribers of `channel` (PUBSUB NUMSUB / SHARDNUMSUB).
    pub fn subscriber_count(&self, kind: ChannelKind, channel: &[u8]) -> usize {
        self.table(kind).subscribers(channel)
    }

    /// Patterns with subscribers (PUBSUB NUMPAT).
    pub fn pattern_count(&self) -> usize {
        self.patterns.read().len()
    }

    /// Channels with subscribers (INFO `pubsub_channels`).
    pub fn channel_count(&self, kind: ChannelKind) -> usize {
        self.table(kind).count.load(Ordering::Relaxed)
    }

    pub fn limit_disconnections(&self) -> u64 {
        self.limit_disconnections.load(Ordering::Relaxed)
    }

    pub fn reset_stats(&self) {
        self.limit_disconnections.store(0, Ordering::Relaxed);
    }

    /// Whether notifications of `class` (see [`events`]) are published:
    /// callers that must build a key or event name first ask this.
    #[inline]
    pub fn notifies(&self, class: u32) -> bool {
        let flags = self.keyspace_flags.load(Ordering::Relaxed);
        flags & class != 0 && flags & (events::KEYSPACE | events::KEYEVENT) != 0
    }

    /// Publishes the keyspace notification `event` of `class` for `key` in
    /// database `db`, as Redis's notifyKeyspaceEvent: on
    /// `__keyspace@<db>__:<key>` (flag K) and `__keyevent@<db>__:<event>`
    /// (flag E), when `class` is enabled.
    pub fn notify(&self, class: u32, event: &str, key: &[u8], db: usize) {
        if !self.notifies(class) {
            return;
        }
        let flags = self.keyspace_flags.load(Ordering::Relaxed);
        if flags & events::KEYSPACE != 0 {
            let mut channel = format!("__keyspace@{db}__:").into_bytes();
            channel.extend_from_slice(key);
            self.publish(ChannelKind::Classic, &channel, event.as_bytes());
        }
        if flags & events::KEYEVENT != 0 {
            let channel = format!("__keyevent@{db}__:{event}");
            self.publish(ChannelKind::Classic, channel.as_bytes(), key);
        }
    }

    pub fn add_monitor(&self, mailbox: &Arc<Mailbox>) {
        let mut monitors = self.monitors.write();
        if !monitors.iter().any(|m| m.id == mailbox.id) {
            monitors.push(mailbox.clone());
            self.monitor_count.store(monitors.len(), Ordering::Relaxed);
        }
    }

    pub fn remove_monitor(&self, id: u64) {
        let mut monitors = self.monitors.write();
        monitors.retain(|m| m.id != id);
        self.monitor_count.store(monitors.len(), Ordering::Relaxed);
    }

    /// Whether any client runs MONITOR (one load: the per-command check).
    #[inline]
    pub fn has_monitors(&self) -> bool {
        self.monitor_count.load(Ordering::Relaxed) > 0
    }

    /// Sends one MONITOR line (an encoded status reply) to every monitor.
    pub fn feed_monitors(&self, line: &[u8]) {
        let limits = *self.limits.read();
        for mailbox in self.monitors.read().iter() {
            self.deliver(mailbox, line, &limits);
        }
    }
}

/// A message's frame, encoded once per protocol on first use.
#[derive(Default)]
struct Frames {
    resp2: Option<Vec<u8>>,
    resp3: Option<Vec<u8>>,
}

impl Frames {
    fn get(&mut self, resp3: bool, parts: &[&[u8]]) -> &[u8] {
        let slot = if resp3 {
            &mut self.resp3
        } else {
            &mut self.resp2
        };
        slot.get_or_insert_with(|| encode_push(resp3, parts))
    }
}

/// An array of bulk strings: a push (`>`) in RESP3, an array in RESP2.
pub fn encode_push(resp3: bool, parts: &[&[u8]]) -> Vec<u8> {
    let size = parts.iter().map(|p| p.len() + 16).sum::<usize>() + 8;
    let mut frame = Vec::with_capacity(size);
    frame.push(if resp3 { b'>' } else { b'*' });
    frame.extend_from_slice(itoa::Buffer::new().format(parts.len()).as_bytes());
    frame.extend_from_slice(b"\r\n");
    for part in parts {
        push_bulk(&mut frame, part);
    }
    frame
}

/// Appends one bulk string.
pub fn push_bulk(frame: &mut Vec<u8>, data: &[u8]) {
    frame.push(b'$');
    frame.extend_from_slice(itoa::Buffer::new().format(data.len()).as_bytes());
    frame.extend_from_slice(b"\r\n");
    frame.extend_from_slice(data);
    frame.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(id: u64) -> Arc<Mailbox> {
        let mailbox = Arc::new(Mailbox::new(id));
        mailbox.set_listening(true);
        mailbox
    }

    fn drained(mailbox: &Mailbox) -> Vec<u8> {
        let mut out = bytes::BytesMut::new();
        mailbox.drain_into(&mut out);
        out.to_vec()
    }

    #[test]
    fn publish_reaches_channel_and_pattern_subscribers_once_each() {
        let pubsub = PubSub::default();
        let (a, b) = (mailbox(1), mailbox(2));
        b.set_resp3(true);
        let channel = Bytes::from_static(b"news");
        pubsub.subscribe(ChannelKind::Classic, &channel, &a);
        pubsub.psubscribe(&Bytes::from_static(b"n*"), &b);
        assert_eq!(pubsub.publish(ChannelKind::Classic, b"news", b"hi"), 2);
        assert_eq!(
            drained(&a),
            b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n"
        );
        assert_eq!(
            drained(&b),
            b">4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$2\r\nhi\r\n"
        );
        // Shard channels are another namespace, without patterns.
        assert_eq!(pubsub.publish(ChannelKind::Shard, b"news", b"hi"), 0);
        pubsub.unsubscribe(ChannelKind::Classic, b"news", 1);
        assert_eq!(pubsub.channel_count(ChannelKind::Classic), 0);
        assert_eq!(pubsub.publish(ChannelKind::Classic, b"news", b"hi"), 1);
    }

    #[test]
    fn notifications_follow_the_flags() {
        let pubsub = PubSub::default();
        let listener = mailbox(1);
        pubsub.psubscribe(&Bytes::from_static(b"__key*__:*"), &listener);
        pubsub.notify(events::STRING, "set", b"k", 0);
        assert!(drained(&listener).is_empty());
        let config = crate::config::Config {
            notify_keyspace_events: events::parse("KE$").unwrap(),
            ..crate::config::Config::default()
        };
        pubsub.configure(&config);
        pubsub.notify(events::STRING, "set", b"k", 3);
        pubsub.notify(events::LIST, "lpush", b"k", 3);
        let frames = String::from_utf8(drained(&listener)).unwrap();
        assert!(frames.contains("__keyspace@3__:k\r\n$3\r\nset"), "{frames}");
        assert!(frames.contains("__keyevent@3__:set\r\n$1\r\nk"), "{frames}");
        assert!(!frames.contains("lpush"), "{frames}");
    }
}
