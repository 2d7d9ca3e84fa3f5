//! SORT and SORT_RO: differential tests against a real redis-server 7.0,
//! in RESP2 and RESP3, including BY/GET patterns inside MULTI and EVAL
//! (which must hold every shard), STORE, and the ACL refusals of patterns.

mod common;

use common::{Differential, Pair};

/// The data every script sorts: lists, sets and sorted sets, weights as
/// strings and hash fields, values to fetch with GET.
const SETUP: &str = "
    FLUSHALL
    RPUSH nums 3 1 20 -5 2.5 1e2 10
    RPUSH words banana Apple cherry apple 10 b
    RPUSH dup 2 1 2 1 3
    SADD snums 5 3 9 -1 0
    SADD swords pear fig kiwi
    ZADD zs 3 c 1 a 2 b 5 e 4 d
    ZADD znum 1 30 2 10 3 20
    RPUSH ids 1 2 3 4
    SET w_1 40
    SET w_2 10
    SET w_3 30
    SET w_4 20
    SET name_1 one
    SET name_2 two
    SET name_4 four
    HSET h_1 score 3 label uno
    HSET h_2 score 1 label dos
    HSET h_3 score 2
    HSET h_4 label cuatro
    SET zw_a 3
    SET zw_b 1
    SET zw_c 2
    SET zw_d 5
    SET zw_e 4
    SET bad_1 3
    SET bad_2 notanumber
    SET aw_1 pear
    SET aw_2 apple
    SET aw_3 fig
    LPUSH notalist x
    SET str value
";

/// Sorts whose replies are deterministic in Redis.
const SORTS: &str = "
    SORT nums
    SORT nums DESC
    SORT nums ASC
    SORT nums LIMIT 0 3
    SORT nums LIMIT 2 3
    SORT nums LIMIT -2 3
    SORT nums LIMIT 5 100
    SORT nums LIMIT 100 2
    SORT nums LIMIT 0 -1
    SORT nums LIMIT 0 0
    SORT nums LIMIT 1 -5
    SORT nums LIMIT 9223372036854775807 9223372036854775807
    SORT nums LIMIT -9223372036854775808 9223372036854775807
    SORT nums DESC LIMIT 1 2
    SORT words
    SORT words ALPHA
    SORT words ALPHA DESC
    SORT words ALPHA LIMIT 1 2
    SORT dup
    SORT dup DESC
    SORT snums
    SORT snums DESC LIMIT 1 3
    SORT swords ALPHA
    SORT swords
    SORT zs ALPHA
    SORT zs ALPHA DESC
    SORT znum
    SORT missing
    SORT missing ALPHA DESC LIMIT 0 5
    SORT_RO nums
    SORT_RO words ALPHA DESC LIMIT 1 3
    SORT_RO zs BY nosort
    # BY with string weights and hash fields
    SORT ids BY w_*
    SORT ids BY w_* DESC
    SORT ids BY w_* LIMIT 1 2
    SORT ids BY w_* DESC LIMIT 1 2
    SORT ids BY h_*->score
    SORT ids BY h_*->score DESC
    SORT ids BY nothere_*
    SORT ids BY nothere_* DESC
    SORT ids BY aw_* ALPHA
    SORT ids BY aw_* ALPHA DESC
    SORT ids BY h_*->label ALPHA
    SORT ids BY h_*->
    SORT ids BY str*
    SORT zs BY zw_*
    SORT zs BY zw_* DESC LIMIT 0 2
    SORT_RO ids BY w_* GET name_*
    # BY nosort: the key's own order
    SORT nums BY nosort
    SORT nums BY nosort DESC
    SORT nums BY nosort LIMIT 1 3
    SORT nums BY nosort DESC LIMIT 1 3
    SORT nums BY nosort LIMIT 10 3
    SORT nums BY nosort LIMIT -1 -1
    SORT zs BY nosort
    SORT zs BY nosort DESC
    SORT zs BY nosort LIMIT 1 2
    SORT zs BY nosort DESC LIMIT 1 2
    SORT zs BY nosort LIMIT 4 10
    SORT zs BY nosort LIMIT 5 10
    SORT zs BY nosort DESC LIMIT 4 10
    SORT zs BY constant ALPHA
    SORT missing BY nosort
    SORT ids BY nosort GET # GET name_*
    # GET
    SORT ids GET #
    SORT ids GET name_*
    SORT ids GET # GET name_* GET h_*->label GET h_*->score
    SORT ids GET name_* DESC LIMIT 0 2
    SORT ids GET nokey
    SORT ids GET h_*->
    SORT ids GET str*->field
    SORT ids BY w_* GET # GET name_*
    SORT zs BY zw_* GET # GET zw_*
    # errors
    SORT ids BY bad_*
    SORT words
    SORT words DESC LIMIT 0 1
    SORT str
    SORT notalist ALPHA
    SORT nums LIMIT
    SORT nums LIMIT 1
    SORT nums LIMIT a 1
    SORT nums LIMIT 1 b
    SORT nums BY
    SORT nums GET
    SORT nums STORE
    SORT nums foo
    SORT nums ALPHA bar
    SORT_RO nums STORE dst
    SORT str BY nosort
    SORT str LIMIT x 1
    SORT_RO
    SORT
    COMMAND GETKEYS SORT k STORE d
    COMMAND GETKEYS SORT k BY store GET store LIMIT 0 1 STORE d1 STORE d2
    COMMAND GETKEYS SORT_RO k BY w_*
    COMMAND GETKEYSANDFLAGS SORT k STORE d
";

#[test]
fn sorts_like_redis_in_resp2_and_resp3() {
    let mut d = Differential::start();
    d.script(SETUP);
    d.script(SORTS);
    // (The test client cannot decode this reply in RESP3.)
    d.check(&["COMMAND", "INFO", "sort", "sort_ro"]);
    // HELLO's reply differs (version, id): switch both without comparing.
    for client in [&mut d.larder, &mut d.redis] {
        let reply = client.command(&["HELLO", "3"]);
        assert!(
            reply.starts_with(b"%"),
            "{}",
            String::from_utf8_lossy(&reply)
        );
    }
    d.script(SORTS);
}

#[test]
fn weights_as_redis_reads_them() {
    let mut d = Differential::start();
    d.script(
        "
        RPUSH l 3 inf -inf 1.5e3 0x10 +7 -0 .5
        SORT l
        SORT l DESC
        RPUSH ws a b c d
        SET v_a 3
        SORT ws BY v_*
        SORT ws BY v_* ALPHA
        RPUSH bad1 abc
        SORT bad1
        SORT bad1 ALPHA
        SORT bad1 BY nosort
        ",
    );
    // Values with spaces and empty strings need exact arguments.
    d.check(&["SET", "v_b", ""]);
    d.check(&["SORT", "ws", "BY", "v_*"]);
    d.check(&["SET", "v_b", " 2"]);
    d.check(&["SORT", "ws", "BY", "v_*"]);
    d.check(&["SET", "v_b", "2 "]);
    d.check(&["SORT", "ws", "BY", "v_*"]);
    d.check(&["SET", "v_b", "  "]);
    d.check(&["SORT", "ws", "BY", "v_*"]);
    d.check(&["RPUSH", "sp2", " 5", "3"]);
    d.check(&["SORT", "sp2"]);
    // Out of range and NaN last: Redis reads a stale `errno` after one.
    d.script(
        "
        SET v_b nan
        SORT ws BY v_*
        SET v_b {notanumber}
        SORT ws BY v_*
        SET v_b 1e400
        SORT ws BY v_*
        SET v_b 1e-400
        SORT ws BY v_*
        SET v_b 1e-310
        SORT ws BY v_*
        ",
    );
}

#[test]
fn store_writes_a_list_or_deletes() {
    let mut d = Differential::start();
    d.script(SETUP);
    d.script(
        "
        SORT nums STORE dst
        TYPE dst
        LRANGE dst 0 -1
        SORT ids BY w_* GET # GET name_* STORE dst
        LRANGE dst 0 -1
        SET dst old EX 100
        SORT words ALPHA DESC LIMIT 1 2 STORE dst
        TTL dst
        LRANGE dst 0 -1
        SORT missing STORE dst
        EXISTS dst
        SORT missing STORE dst
        SET dst x
        SORT nums LIMIT 100 1 STORE dst
        EXISTS dst
        SORT nums STORE a STORE b
        EXISTS a
        LRANGE b 0 -1
        SORT swords BY nosort STORE dst
        LRANGE dst 0 -1
        SORT snums BY nosort STORE dst
        LRANGE dst 0 -1
        SORT zs BY nosort DESC STORE dst
        LRANGE dst 0 -1
        SORT ids GET nokey STORE dst
        LRANGE dst 0 -1
        SORT str STORE dst
        SORT ids BY bad_* STORE dst
        LRANGE dst 0 -1
        SORT nums STORE nums
        LRANGE nums 0 -1
        ",
    );
}

#[test]
fn patterns_inside_multi_and_scripts_reach_every_shard() {
    let mut d = Differential::start();
    d.script(SETUP);
    // Many keys, so the weights and names sit on other shards than `ids`.
    for i in 1..=40 {
        let (n, w, name) = (i.to_string(), ((i * 7) % 41).to_string(), format!("n{i}"));
        d.check(&["RPUSH", "many", &n]);
        d.check(&["SET", &format!("mw_{i}"), &w]);
        d.check(&["HSET", &format!("mh_{i}"), "f", &name]);
    }
    d.script(
        "
        MULTI
        SORT many BY mw_* GET # GET mh_*->f
        SORT_RO many BY mw_* DESC LIMIT 3 5 GET mh_*->f
        SORT many BY mw_* GET mh_*->f STORE out
        LRANGE out 0 -1
        EXEC
        ",
    );
    d.check(&[
        "EVAL",
        "return redis.call('SORT', KEYS[1], 'BY', 'mw_*', 'GET', '#', 'GET', 'mh_*->f')",
        "1",
        "many",
    ]);
    d.check(&[
        "EVAL",
        "return redis.call('SORT_RO', KEYS[1], 'BY', 'mw_*', 'DESC', 'LIMIT', '0', '4')",
        "1",
        "many",
    ]);
    d.check(&[
        "EVAL",
        "redis.call('SET', 'mw_1', '1000'); return redis.call('SORT', KEYS[1], 'BY', 'mw_*', 'LIMIT', '35', '10', 'STORE', KEYS[2])",
        "2",
        "many",
        "out2",
    ]);
    d.check(&["LRANGE", "out2", "0", "-1"]);
    d.check(&[
        "EVAL",
        "return redis.call('SORT', KEYS[1], 'GET', 'name_*', 'GET', '#')",
        "1",
        "ids",
    ]);
    // In a script a set sorted BY nosort comes back sorted.
    d.check(&[
        "EVAL",
        "return redis.call('SORT', KEYS[1], 'BY', 'nosort')",
        "1",
        "swords",
    ]);
    d.check(&[
        "EVAL",
        "return redis.call('SORT', KEYS[1], 'BY', 'nosort', 'DESC')",
        "1",
        "snums",
    ]);
}

#[test]
fn acl_refuses_patterns_without_full_key_access() {
    let pair = Pair::start();
    let mut admin = pair.clients();
    admin.script(
        "
        RPUSH ids 2 1 3
        SET w_1 3
        ACL SETUSER limited on nopass ~ids ~w_* +@all
        ACL SETUSER readall on nopass %R~* +@all
        ACL SETUSER writeall on nopass %W~* ~ids +@all
        ACL SETUSER sel on nopass ~ids +@all (~* +sort_ro)
        ",
    );
    let mut c = pair.clients();
    c.script(
        "
        AUTH limited x
        SORT ids
        SORT ids BY nosort
        SORT ids BY w_*
        SORT ids GET #
        SORT ids LIMIT 0 1 GET w_*
        SORT_RO ids BY w_*
        AUTH readall x
        SORT_RO ids BY w_* GET #
        AUTH writeall x
        SORT ids BY w_*
        AUTH sel x
        SORT ids BY w_*
        SORT_RO ids BY w_* GET #
        ",
    );
}

#[test]
fn sortstore_is_announced() {
    let pair = Pair::start();
    let mut admin = pair.clients();
    admin.script(
        "
        CONFIG SET notify-keyspace-events KEA
        RPUSH src 2 1
        SET dst x
        ",
    );
    let mut sub = pair.clients();
    sub.same(&["PSUBSCRIBE", "__key*__:*"]);
    admin.script(
        "
        SORT src STORE dst
        SORT nothing STORE dst
        SORT nothing STORE dst
        PING
        ",
    );
    for _ in 0..4 {
        let ours = sub.ours.read_reply();
        let theirs = sub.theirs.read_reply();
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs)
        );
    }
}

#[test]
fn store_touches_watched_keys_and_lookups_count_as_reads() {
    let pair = Pair::start();
    let mut a = pair.clients();
    let mut b = pair.clients();
    a.script(
        "
        RPUSH ids 2 1 3
        SET w_1 3
        SET w_2 1
        SET name_2 two
        SET dst x
        WATCH dst
        ",
    );
    b.same(&["SORT", "ids", "BY", "w_*"]);
    a.script(
        "
        MULTI
        PING
        EXEC
        WATCH dst
        ",
    );
    b.same(&["SORT", "ids", "STORE", "dst"]);
    a.script(
        "
        MULTI
        PING
        EXEC
        CONFIG RESETSTAT
        SORT ids BY w_* GET # GET name_* GET h_*->f
        SORT_RO ids BY nosort GET nokey
        ",
    );
    for field in ["keyspace_hits", "keyspace_misses"] {
        let ours = info_field(&mut a.ours, field);
        let theirs = info_field(&mut a.theirs, field);
        assert_eq!(ours, theirs, "{field}");
    }
}

fn info_field(client: &mut common::RawClient, field: &str) -> String {
    let reply = String::from_utf8_lossy(&client.command(&["INFO", "stats"])).into_owned();
    reply
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {reply}"))
        .to_string()
}
