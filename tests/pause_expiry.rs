//! CLIENT PAUSE holds active expiry and eviction, as Redis 7.0 does: while
//! clients are paused (WRITE or ALL) keys past their TTL stay (DBSIZE counts
//! them, reads answer as if they were gone), nothing is evicted, and both
//! resume after CLIENT UNPAUSE or the timeout. Compared with a real
//! redis-server where the result is observable over a socket.

mod common;

use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{Arrival, Pair, TestServer};

#[test]
fn expired_keys_stay_while_writes_are_paused_and_go_after_unpause() {
    let pair = Pair::start();
    let mut c = pair.clients();
    c.script(
        "SET k v PX 50 => +OK|
         SET k2 v => +OK|
         CLIENT PAUSE 2000 WRITE => +OK|",
    );
    // Several active expiry cycles pass.
    sleep(Duration::from_millis(400));
    c.script(
        "DBSIZE => :2|
         GET k => $-1|
         EXISTS k => :0|
         TTL k => :-2|
         KEYS * => *1|$2|k2|
         DBSIZE => :2|
         CLIENT UNPAUSE => +OK|",
    );
    sleep(Duration::from_millis(400));
    c.script("DBSIZE => :1|");
    let ours = String::from_utf8_lossy(&c.ours.command(&["INFO", "stats"])).into_owned();
    assert!(ours.contains("expired_keys:1\r\n"), "{ours}");
}

#[test]
fn expiry_resumes_when_the_pause_times_out() {
    let pair = Pair::start();
    let mut c = pair.clients();
    c.script(
        "SET k v PX 20 => +OK|
         CLIENT PAUSE 500 WRITE => +OK|",
    );
    sleep(Duration::from_millis(250));
    c.script("DBSIZE => :1|");
    sleep(Duration::from_millis(750));
    c.script("DBSIZE => :0|");
}

#[test]
fn pause_all_holds_expiry_too() {
    let server = TestServer::start();
    let mut client = server.raw();
    client.command(&["SET", "k", "v", "PX", "20"]);
    client.command(&["CLIENT", "PAUSE", "600", "ALL"]);
    sleep(Duration::from_millis(300));
    // Every client is paused: look at the store directly.
    assert_eq!(server.shared.store.dbsize(0).unwrap(), 1);
    // DBSIZE waits for the end of the pause, then expiry resumes.
    let started = Instant::now();
    client.command(&["DBSIZE"]);
    assert!(started.elapsed() >= Duration::from_millis(200));
    let deadline = Instant::now() + Duration::from_secs(2);
    while server.shared.store.dbsize(0).unwrap() != 0 {
        assert!(Instant::now() < deadline, "the key never expired");
        sleep(Duration::from_millis(20));
    }
}

#[test]
fn no_eviction_while_paused() {
    let pair = Pair::start();
    let mut c = pair.clients();
    for i in 0..200 {
        let key = format!("key:{i}");
        c.same(&["SET", &key, "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"]);
    }
    c.script(
        "CONFIG SET maxmemory-policy allkeys-lru => +OK|
         CLIENT PAUSE 2000 WRITE => +OK|
         CONFIG SET maxmemory 1 => +OK|
         DBSIZE => :200|
         GET key:1 => $36|vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv|
         DBSIZE => :200|",
    );
    let ours = String::from_utf8_lossy(&c.ours.command(&["INFO", "stats"])).into_owned();
    assert!(ours.contains("evicted_keys:0\r\n"), "{ours}");
    c.script("CLIENT UNPAUSE => +OK|");
    // The next commands evict again (Redis empties its keyspace at once;
    // Larder evicts for a bounded time per command).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let size = c.ours.command(&["DBSIZE"]);
        if size == b":0\r\n" {
            break;
        }
        assert!(Instant::now() < deadline, "still {size:?} keys");
        sleep(Duration::from_millis(10));
    }
    c.theirs.command(&["DBSIZE"]);
    c.script("DBSIZE => :0|");
    c.same(&["CONFIG", "SET", "maxmemory", "0"]);
}

/// A read of an expired key during the pause does not announce its expiry
/// (it is not reclaimed); the reclaiming after the pause does, once.
#[test]
fn expired_event_waits_for_the_end_of_the_pause() {
    let server = TestServer::start();
    let mut writer = server.raw();
    let mut subscriber = server.raw();
    writer.command(&["CONFIG", "SET", "notify-keyspace-events", "Ex"]);
    subscriber.command(&["SUBSCRIBE", "__keyevent@0__:expired"]);
    writer.command(&["SET", "k", "v", "PX", "30"]);
    writer.command(&["CLIENT", "PAUSE", "2000", "WRITE"]);
    sleep(Duration::from_millis(100));
    assert_eq!(writer.command(&["GET", "k"]), b"$-1\r\n");
    assert_eq!(
        subscriber.read_within(Duration::from_millis(300)),
        Arrival::Nothing
    );
    writer.command(&["CLIENT", "UNPAUSE"]);
    let expected = b"*3\r\n$7\r\nmessage\r\n$22\r\n__keyevent@0__:expired\r\n$1\r\nk\r\n".to_vec();
    assert_eq!(
        subscriber.read_within(Duration::from_secs(2)),
        Arrival::Reply(expected)
    );
    assert_eq!(
        subscriber.read_within(Duration::from_millis(300)),
        Arrival::Nothing
    );
}
