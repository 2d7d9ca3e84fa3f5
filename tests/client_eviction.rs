//! Client eviction (`maxmemory-clients`, Redis 7): when the normal and
//! pub/sub clients together use the limit, the ones using the most are
//! closed and counted in INFO's `evicted_clients`; CLIENT NO-EVICT ON exempts
//! a client. Each scenario runs against Larder and a real redis-server.

mod common;

use std::net::SocketAddr;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{encode_command, Arrival, Pair, RawClient, RedisServer, TestServer};

/// Larder and Redis, for scenarios that run alike on both.
fn servers() -> (TestServer, RedisServer) {
    (TestServer::start(), RedisServer::start())
}

fn evicted_clients(client: &mut RawClient) -> u64 {
    let info = String::from_utf8_lossy(&client.command(&["INFO", "stats"])).into_owned();
    info.lines()
        .find_map(|line| line.strip_prefix("evicted_clients:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no evicted_clients in {info}"))
}

/// Whether the client with this id is still connected (CLIENT LIST).
fn connected(client: &mut RawClient, id: &str) -> bool {
    let list = String::from_utf8_lossy(&client.command(&["CLIENT", "LIST"])).into_owned();
    list.lines()
        .any(|line| line.split(' ').any(|field| field == format!("id={id}")))
}

fn client_id(client: &mut RawClient) -> String {
    let reply = client.command(&["CLIENT", "ID"]);
    String::from_utf8_lossy(&reply[1..reply.len() - 2]).into_owned()
}

/// Waits until `check` holds (the server evicts after the command or push
/// that passed the limit, and the connection closes a moment later).
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "never: {what}");
        sleep(Duration::from_millis(20));
    }
}

/// A subscriber that does not read while big messages are published: its
/// pending output passes `maxmemory-clients` and it is evicted; with
/// NO-EVICT it stays.
fn slow_subscriber(addr: SocketAddr, no_evict: bool) {
    let mut publisher = RawClient::connect(addr);
    assert_eq!(
        publisher.command(&["CONFIG", "SET", "maxmemory-clients", "2mb"]),
        b"+OK\r\n"
    );
    let mut subscriber = RawClient::connect(addr);
    let id = client_id(&mut subscriber);
    if no_evict {
        assert_eq!(
            subscriber.command(&["CLIENT", "NO-EVICT", "on"]),
            b"+OK\r\n"
        );
        // The total stays past the limit: the publisher must not be the
        // one evicted instead.
        publisher.command(&["CLIENT", "NO-EVICT", "on"]);
    }
    subscriber.command(&["SUBSCRIBE", "news"]);
    // Client eviction takes effect within a cycle on Larder.
    sleep(Duration::from_millis(200));
    let message = "x".repeat(64 * 1024);
    // Up to 19 MB: past what the sockets buffer, under the pubsub class's
    // 32 MB hard limit (its 8 MB soft limit needs 60 s).
    for _ in 0..300 {
        let reply = publisher.command(&["PUBLISH", "news", &message]);
        if reply == b":0\r\n" {
            break;
        }
    }
    if no_evict {
        assert!(
            connected(&mut publisher, &id),
            "the NO-EVICT subscriber went"
        );
        assert_eq!(evicted_clients(&mut publisher), 0);
        assert_eq!(
            publisher.command(&["PUBLISH", "news", "still there"]),
            b":1\r\n"
        );
    } else {
        eventually("the subscriber is evicted", || {
            !connected(&mut publisher, &id)
        });
        assert_eq!(evicted_clients(&mut publisher), 1);
        assert_eq!(publisher.command(&["PUBLISH", "news", "gone"]), b":0\r\n");
        // The subscriber's connection was closed (after what was sent).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match subscriber.read_within(Duration::from_secs(1)) {
                Arrival::Closed => break,
                Arrival::Reply(_) => {}
                Arrival::Nothing => panic!("the evicted subscriber's connection is open"),
            }
            assert!(Instant::now() < deadline);
        }
    }
    publisher.command(&["CONFIG", "SET", "maxmemory-clients", "0"]);
}

#[test]
fn a_subscriber_that_does_not_read_is_evicted() {
    let (larder, redis) = servers();
    slow_subscriber(redis.addr, false);
    slow_subscriber(larder.addr, false);
}

#[test]
fn a_no_evict_subscriber_is_not_evicted() {
    let (larder, redis) = servers();
    slow_subscriber(redis.addr, true);
    slow_subscriber(larder.addr, true);
}

/// A client that asks for a big reply and does not read it: the reply
/// waiting in its output buffer gets it evicted.
fn big_unread_reply(addr: SocketAddr, no_evict: bool) {
    let mut admin = RawClient::connect(addr);
    admin.command(&["CLIENT", "NO-EVICT", "on"]);
    admin.command(&["SET", "big", &"v".repeat(1 << 20)]);
    admin.command(&["CONFIG", "SET", "maxmemory-clients", "1mb"]);
    let mut reader = RawClient::connect(addr);
    let id = client_id(&mut reader);
    if no_evict {
        reader.command(&["CLIENT", "NO-EVICT", "on"]);
    }
    sleep(Duration::from_millis(200));
    let keys: Vec<&[u8]> = std::iter::once(&b"MGET"[..])
        .chain(std::iter::repeat_n(&b"big"[..], 32))
        .collect();
    reader.send(&encode_command(&keys));
    if no_evict {
        sleep(Duration::from_millis(500));
        assert!(connected(&mut admin, &id));
        assert_eq!(evicted_clients(&mut admin), 0);
        // Its reply is all there.
        let reply = reader.read_reply();
        assert!(reply.starts_with(b"*32\r\n$1048576\r\n"));
        assert!(reply.len() > 32 << 20);
    } else {
        eventually("the reader is evicted", || !connected(&mut admin, &id));
        assert_eq!(evicted_clients(&mut admin), 1);
    }
    admin.command(&["CONFIG", "SET", "maxmemory-clients", "0"]);
}

#[test]
fn a_client_not_reading_a_big_reply_is_evicted() {
    let (larder, redis) = servers();
    big_unread_reply(redis.addr, false);
    big_unread_reply(larder.addr, false);
}

#[test]
fn a_no_evict_client_keeps_its_big_reply() {
    let (larder, redis) = servers();
    big_unread_reply(redis.addr, true);
    big_unread_reply(larder.addr, true);
}

#[test]
fn maxmemory_clients_config_as_redis() {
    let pair = Pair::start();
    let mut c = pair.clients();
    c.script(
        "CONFIG GET maxmemory-clients => *2|$17|maxmemory-clients|$1|0|
         CONFIG SET maxmemory-clients 10% => +OK|
         CONFIG GET maxmemory-clients => *2|$17|maxmemory-clients|$3|10%|
         CONFIG SET maxmemory-clients 1mb => +OK|
         CONFIG GET maxmemory-clients => *2|$17|maxmemory-clients|$7|1048576|
         CONFIG SET maxmemory-clients 101%
         CONFIG SET maxmemory-clients abc
         CONFIG SET maxmemory-clients 0 => +OK|
         CLIENT NO-EVICT maybe
         CLIENT NO-EVICT on => +OK|
         CLIENT NO-EVICT OFF => +OK|",
    );
}
