//! Geo commands: differential tests against a real redis-server 7.0, byte
//! for byte in RESP2 and RESP3 (scores, coordinates, distances, result
//! orders, errors), plus a seeded random test of a few hundred points and
//! searches, STORE/STOREDIST results and the keyspace events.

mod common;

use common::{Arrival, Differential, Pair, RawClient};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Runs `script` in RESP2, then again from scratch in RESP3.
fn both_protocols(pair: &mut Differential, script: &str) {
    pair.check(&["FLUSHALL"]);
    pair.script(script);
    pair.larder.command(&["HELLO", "3"]);
    pair.redis.command(&["HELLO", "3"]);
    pair.check(&["FLUSHALL"]);
    pair.script(script);
    pair.larder.command(&["HELLO", "2"]);
    pair.redis.command(&["HELLO", "2"]);
}

const SICILY: &str = "GEOADD Sicily 13.361389 38.115556 Palermo 15.087269 37.502669 Catania 12.758489 38.788135 edge1 17.241510 38.788135 edge2";

#[test]
fn geoadd_geopos_geohash_geodist() {
    let mut pair = Differential::start();
    both_protocols(
        &mut pair,
        &format!(
            "
        {SICILY}
        ZRANGE Sicily 0 -1 WITHSCORES
        GEOPOS Sicily Palermo Catania nope edge1
        GEOPOS nokey a b
        GEOHASH Sicily Palermo Catania nope edge2
        GEOHASH nokey a
        GEODIST Sicily Palermo Catania
        GEODIST Sicily Palermo Catania m
        GEODIST Sicily Palermo Catania KM
        GEODIST Sicily Palermo Catania mi
        GEODIST Sicily Palermo Catania ft
        GEODIST Sicily Palermo Catania yards
        GEODIST Sicily Palermo Catania km extra
        GEODIST Sicily Palermo nope
        GEODIST nokey a b
        GEODIST nokey a b furlong
        GEODIST Sicily Palermo Palermo
        # Options: NX, XX, CH, in any order and repeated.
        GEOADD Sicily NX 13 38 Palermo 14 39 new
        GEOADD Sicily XX 13 38 Palermo 14 39 other
        GEOADD Sicily XX CH 13.5 38 Palermo
        GEOADD Sicily CH ch nx 13.5 38 Palermo 1 1 x
        GEOADD Sicily CH 13.5 38 Palermo
        GEOADD Sicily NX XX 1 1 a
        GEOADD Sicily GT 1 1 a
        GEOADD Sicily INCR 1 1 a
        GEOADD Sicily 1 1
        GEOADD Sicily CH CH CH
        GEOADD Sicily 1 1 a 2
        GEOADD Sicily 200 100 a
        GEOADD Sicily 1 1 a 181 0 b
        GEOADD Sicily 1 85.05112879 a
        GEOADD Sicily 1 -85.05112879 a
        GEOADD Sicily -180.0000001 0 a
        GEOADD Sicily abc 1 a
        GEOADD Sicily 1 nan a
        GEOADD Sicily inf 1 a
        GEOADD Sicily 1e400 1 a
        GEOADD Sicily 0x10 0x1p3 hex
        GEOADD Sicily ' 1' 1 a
        ZRANGE Sicily 0 -1 WITHSCORES
        # The limits themselves.
        GEOADD limits 180 85.05112878 ne -180 -85.05112878 sw 180 -85.05112878 se -180 85.05112878 nw 0 0 zero -0 -0 negzero
        ZRANGE limits 0 -1 WITHSCORES
        GEOPOS limits ne sw se nw zero negzero
        GEOHASH limits ne sw se nw zero negzero
        GEODIST limits ne sw km
        GEODIST limits ne nw
        GEODIST limits zero negzero
        # Wrong types.
        SET str x
        GEOADD str 1 1 a
        GEOPOS str a
        GEOHASH str a
        GEODIST str a b
        GEODIST str a b parsec
        GEORADIUS str 1 1 1 km
        GEOSEARCH str FROMLONLAT 1 1 BYRADIUS 1 km
        GEOSEARCHSTORE dst str FROMLONLAT 1 1 BYRADIUS 1 km
        GEOSEARCHSTORE str Sicily FROMLONLAT 15 37 BYRADIUS 200 km
        TYPE str
        "
        ),
    );
}

#[test]
fn any_score_decodes_as_in_redis() {
    let mut pair = Differential::start();
    both_protocols(
        &mut pair,
        "
        ZADD odd -1 neg 1e300 huge inf posinf -inf neginf 4503599627370496 top 4503599627370495 below 0.5 half 9.3e18 big 1.8446744073709552e19 u64
        GEOPOS odd neg huge posinf neginf top below half big u64
        GEOHASH odd neg huge posinf neginf top below half big u64
        GEODIST odd neg top
        GEODIST odd half below km
        GEORADIUS odd 0 0 30000 km WITHHASH WITHCOORD WITHDIST
        ",
    );
}

#[test]
fn search_options_and_errors() {
    let mut pair = Differential::start();
    both_protocols(
        &mut pair,
        &format!(
            "
        {SICILY}
        GEORADIUS Sicily 15 37 200 km
        GEORADIUS Sicily 15 37 200 km ASC
        GEORADIUS Sicily 15 37 200 km DESC
        GEORADIUS Sicily 15 37 200 km WITHDIST WITHCOORD WITHHASH
        GEORADIUS Sicily 15 37 200 km withcoord withdist asc
        GEORADIUS Sicily 15 37 200 km COUNT 1
        GEORADIUS Sicily 15 37 200 km COUNT 1 DESC WITHDIST
        GEORADIUS Sicily 15 37 200 km COUNT 2 ANY
        GEORADIUS Sicily 15 37 200 km COUNT 1 ANY ASC WITHDIST
        GEORADIUS Sicily 15 37 200 km COUNT 100
        GEORADIUS Sicily 15 37 200000 m WITHDIST
        GEORADIUS Sicily 15 37 200 mi WITHDIST
        GEORADIUS Sicily 15 37 656168 ft WITHDIST
        GEORADIUS Sicily 15 37 0 km
        GEORADIUS Sicily 15 37 1 km
        GEORADIUS Sicily 15 37 200 km ANY
        GEORADIUS Sicily 15 37 200 km COUNT 0
        GEORADIUS Sicily 15 37 200 km COUNT -3
        GEORADIUS Sicily 15 37 200 km COUNT x
        GEORADIUS Sicily 15 37 200 km COUNT
        GEORADIUS Sicily 15 37 200 km WITHDIST STORE dst
        GEORADIUS Sicily 15 37 200 km BOGUS
        GEORADIUS Sicily 15 37 -1 km
        GEORADIUS Sicily 15 37 abc km
        GEORADIUS Sicily 15 37 200 parsec
        GEORADIUS Sicily 200 37 200 km
        GEORADIUS Sicily 15 x 200 km
        GEORADIUS Sicily 15 37 200 km FROMLONLAT 1 1
        GEORADIUS nokey 15 37 200 km
        GEORADIUS nokey 15 37 200 km COUNT 1 ANY
        GEORADIUS nokey 200 37 200 km
        GEORADIUS_RO Sicily 15 37 200 km WITHDIST
        GEORADIUS_RO Sicily 15 37 200 km STORE dst
        GEORADIUS_RO Sicily 15 37 200 km STOREDIST dst
        GEORADIUSBYMEMBER Sicily Palermo 200 km WITHDIST WITHCOORD
        GEORADIUSBYMEMBER Sicily Palermo 200 km COUNT 2 DESC
        GEORADIUSBYMEMBER Sicily nope 200 km
        GEORADIUSBYMEMBER Sicily nope -1 km
        GEORADIUSBYMEMBER Sicily Palermo -1 km
        GEORADIUSBYMEMBER Sicily Palermo 1 lightyear
        GEORADIUSBYMEMBER nokey Palermo -1 lightyear
        GEORADIUSBYMEMBER nokey Palermo 1 km BOGUS
        GEORADIUSBYMEMBER nokey Palermo 1 km STORE dst
        GEORADIUSBYMEMBER_RO Sicily Palermo 100 km WITHHASH
        GEORADIUSBYMEMBER_RO Sicily Palermo 100 km STORE x
        GEOSEARCH Sicily FROMMEMBER Palermo BYRADIUS 200 km
        GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km ASC WITHCOORD WITHDIST WITHHASH
        GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX 400 400 km ASC WITHDIST
        GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX 400 200 km DESC
        GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX 0 0 km
        GEOSEARCH Sicily FROMMEMBER Palermo BYBOX 1 1 km
        GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km COUNT 2 ANY
        GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km COUNT 3
        GEOSEARCH Sicily BYRADIUS 200 km FROMLONLAT 15 37
        GEOSEARCH Sicily FROMLONLAT 15 37 FROMMEMBER Palermo BYRADIUS 200 km
        GEOSEARCH Sicily FROMMEMBER Palermo FROMLONLAT 15 37 BYRADIUS 200 km
        GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km BYBOX 1 1 km
        GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX 1 1 km BYRADIUS 200 km
        GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km STOREDIST
        GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km STORE x
        GEOSEARCH Sicily FROMLONLAT 15 37 COUNT 3 ASC
        geosearch Sicily FROMLONLAT 15 37 COUNT 3 ASC
        GeoSearch Sicily BYRADIUS 3 km COUNT 3 ASC
        GEOSEARCH Sicily FROMMEMBER nope BYRADIUS 200 km
        GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX -1 1 km
        GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX 1 -1 km
        GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX x 1 km
        GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX 1 y km
        GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX 1 1 au
        GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX 1 1
        GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 1
        GEOSEARCH Sicily FROMLONLAT 15 BYRADIUS 1 km
        GEOSEARCH Sicily FROMMEMBER
        GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km ANY
        GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km COUNT 1 ANY DESC
        GEOSEARCH nokey FROMMEMBER nope BYRADIUS 200 km
        GEOSEARCH nokey FROMMEMBER nope BYBOX 1 1 km WITHDIST
        GEOSEARCH nokey FROMLONLAT 200 37 BYRADIUS 200 km
        GEOSEARCH nokey FROMMEMBER x BYRADIUS -1 km
        # GEORADIUS STORE / STOREDIST and GEOSEARCHSTORE.
        GEORADIUS Sicily 15 37 200 km STORE dst
        ZRANGE dst 0 -1 WITHSCORES
        OBJECT ENCODING dst
        GEORADIUS Sicily 15 37 200 km STOREDIST dst
        ZRANGE dst 0 -1 WITHSCORES
        GEORADIUS Sicily 15 37 200 km STORE a STOREDIST dst2
        ZRANGE dst2 0 -1 WITHSCORES
        EXISTS a
        GEORADIUS Sicily 15 37 200 km COUNT 1 STOREDIST dst3
        ZRANGE dst3 0 -1 WITHSCORES
        GEORADIUS Sicily 15 37 200 km STORE
        GEORADIUS Sicily 15 37 1 km STORE dst
        EXISTS dst
        GEORADIUS nokey 15 37 200 km STORE dst2
        EXISTS dst2
        GEORADIUSBYMEMBER Sicily Catania 500 km STOREDIST bym
        ZRANGE bym 0 -1 WITHSCORES
        GEOSEARCHSTORE out Sicily FROMLONLAT 15 37 BYRADIUS 200 km
        ZRANGE out 0 -1 WITHSCORES
        GEOSEARCHSTORE out Sicily FROMLONLAT 15 37 BYBOX 500 500 km STOREDIST
        ZRANGE out 0 -1 WITHSCORES
        GEOSEARCHSTORE out Sicily FROMLONLAT 15 37 BYRADIUS 200 km COUNT 2 DESC STOREDIST
        ZRANGE out 0 -1 WITHSCORES
        GEOSEARCHSTORE out Sicily FROMLONLAT 15 37 BYRADIUS 200 km WITHDIST
        GEOSEARCHSTORE out Sicily FROMLONLAT 15 37 BYRADIUS 200 km STORE x
        GEOSEARCHSTORE out Sicily FROMLONLAT 0 0 BYRADIUS 1 km
        EXISTS out
        GEOSEARCHSTORE out nokey FROMMEMBER x BYRADIUS 1 km
        GEOSEARCHSTORE Sicily Sicily FROMLONLAT 15 37 BYRADIUS 200 km STOREDIST
        ZRANGE Sicily 0 -1 WITHSCORES
        SET s 1
        EXPIRE s 100
        GEOSEARCHSTORE s Sicily FROMLONLAT 15 37 BYRADIUS 2000 km
        TTL s
        TYPE s
        "
        ),
    );
}

#[test]
fn edges_poles_antimeridian_and_huge_radii() {
    let mut pair = Differential::start();
    both_protocols(
        &mut pair,
        "
        GEOADD e 179.9999 0 east1 -179.9999 0 west1 179.5 1 east2 -179.5 -1 west2 180 0 e180 -180 0 w180
        GEOADD e 0 85.05112878 north 90 85 north2 -90 85.0511 north3 0 -85.05112878 south 45 -84.9 south2
        GEOADD e 0 0 origin 0.0000001 0 near 180 0.0000001 far 0 0 same1 0 0 same2 0 0 same3
        GEOSEARCH e FROMLONLAT 180 0 BYRADIUS 100 km ASC WITHDIST WITHCOORD
        GEOSEARCH e FROMLONLAT -180 0 BYRADIUS 100 km DESC WITHDIST
        GEOSEARCH e FROMLONLAT 179.9 0 BYBOX 200 300 km ASC WITHDIST
        GEOSEARCH e FROMLONLAT -179.9 0 BYBOX 200 300 km ASC WITHDIST
        GEOSEARCH e FROMLONLAT 0 85.05112878 BYRADIUS 5000 km ASC WITHDIST
        GEOSEARCH e FROMLONLAT 0 -85.05112878 BYRADIUS 500 km ASC WITHDIST WITHHASH
        GEOSEARCH e FROMLONLAT 0 85 BYBOX 20000 100 km DESC WITHDIST
        GEOSEARCH e FROMLONLAT 0 0 BYRADIUS 0 m ASC WITHDIST
        GEOSEARCH e FROMLONLAT 0 0 BYRADIUS 0 km ASC COUNT 2
        GEOSEARCH e FROMLONLAT 0 0 BYRADIUS 0 km DESC COUNT 2
        GEOSEARCH e FROMLONLAT 0 0 BYBOX 0 0 m WITHDIST
        GEOSEARCH e FROMMEMBER same2 BYRADIUS 1 m WITHDIST
        GEOSEARCH e FROMLONLAT 0 0 BYRADIUS 20000 km ASC WITHDIST
        GEOSEARCH e FROMLONLAT 0 0 BYRADIUS 1e9 m DESC WITHDIST
        GEOSEARCH e FROMLONLAT 0 0 BYRADIUS 1e300 km WITHDIST COUNT 4
        GEOSEARCH e FROMLONLAT 0 0 BYBOX 40000 40000 km ASC WITHDIST
        GEOSEARCH e FROMLONLAT 0 0 BYBOX 1e10 1e10 m COUNT 3 ANY WITHDIST
        GEOSEARCH e FROMLONLAT 0 0 BYRADIUS inf km WITHDIST
        GEOSEARCH e FROMLONLAT 0 0 BYRADIUS 20015.08 km WITHDIST ASC
        GEOSEARCH e FROMLONLAT 180 0 BYRADIUS 20015.08 km WITHDIST DESC
        GEORADIUS e 0 0 5000 km WITHDIST ASC COUNT 3
        GEORADIUS e 0 0 5000 km WITHDIST DESC COUNT 3
        GEODIST e origin far
        GEODIST e e180 w180
        GEODIST e north south km
        GEODIST e same1 same3
        GEOPOS e east1 west1 e180 w180 north south near far
        GEOHASH e east1 west1 e180 w180 north south near far
        # Full-precision distances (STOREDIST keeps them): along a meridian,
        # along a parallel, and across the antimeridian.
        GEOADD col 10 10 a 10 20 b 10 -30 c 10 84 d 40 10 e -170 10 f 170 10 g
        GEOSEARCHSTORE d1 col FROMMEMBER a BYRADIUS 20000 km STOREDIST
        ZRANGE d1 0 -1 WITHSCORES
        GEOSEARCHSTORE d2 col FROMMEMBER g BYBOX 4000 20000 km STOREDIST
        ZRANGE d2 0 -1 WITHSCORES
        GEOSEARCHSTORE d3 col FROMLONLAT 180 10 BYBOX 2300 10 km STOREDIST
        ZRANGE d3 0 -1 WITHSCORES
        GEOSEARCH col FROMLONLAT -180 10 BYBOX 2200 2200 km ASC WITHDIST
        GEODIST col a b
        GEODIST col a c km
        GEODIST col f g
        # Redis rounds distances with llrint(d * 10000), not printf: this
        # one is 14191129.865050001 ft, written .8650.
        ZADD q 2368521195155552 p10
        GEOSEARCH q FROMLONLAT -85.23472 -72.88624 BYRADIUS 41139156.310 ft WITHDIST
        GEORADIUS q -85.23472 -72.88624 41139156.310 ft WITHDIST
        # On one meridian Redis takes the linear distance, one bit away
        # from the haversine here.
        GEOADD v 10 10 a
        GEOSEARCHSTORE vd v FROMLONLAT 10.00000208616256714 -69.51538 BYRADIUS 20000 km STOREDIST
        ZRANGE vd 0 -1 WITHSCORES
        ",
    );
}

#[test]
fn keyspace_events_and_command_info() {
    let pair = Pair::start();
    let mut clients = pair.clients();
    clients.script(
        "
        CONFIG SET notify-keyspace-events KEA
        ",
    );
    let mut ours_sub = pair.larder.raw();
    let mut theirs_sub = pair.redis.raw();
    for sub in [&mut ours_sub, &mut theirs_sub] {
        sub.command(&["PSUBSCRIBE", "__key*__:*"]);
    }
    clients.script(&format!(
        "
        {SICILY}
        GEOADD Sicily XX 13.361389 38.115556 Palermo
        GEOADD Sicily CH 13.361389 38.2 Palermo
        GEORADIUS Sicily 15 37 200 km STORE d1
        GEORADIUS Sicily 15 37 200 km STOREDIST d1
        GEORADIUSBYMEMBER Sicily Palermo 200 km STORE d2
        GEOSEARCHSTORE d3 Sicily FROMLONLAT 15 37 BYRADIUS 200 km
        GEOSEARCHSTORE d3 Sicily FROMLONLAT 0 0 BYRADIUS 1 km
        GEORADIUS Sicily 0 0 1 km STORE d1
        GEOSEARCHSTORE d2 nokey FROMLONLAT 0 0 BYRADIUS 1 km
        GEOPOS nokey a
        GEOSEARCH nokey FROMLONLAT 0 0 BYRADIUS 1 km
        PING
        "
    ));
    // Every event both servers published, until the PING marker cannot
    // be told apart (events are pushed before the command's reply).
    let events = |sub: &mut RawClient| {
        let mut seen = Vec::new();
        while let Arrival::Reply(reply) = sub.read_within(std::time::Duration::from_millis(300)) {
            seen.push(String::from_utf8_lossy(&reply).into_owned());
        }
        seen
    };
    let ours = events(&mut ours_sub);
    let theirs = events(&mut theirs_sub);
    assert!(theirs.iter().any(|e| e.contains("georadiusstore")));
    assert!(theirs.iter().any(|e| e.contains("geosearchstore")));
    assert_eq!(ours, theirs);

    clients.script(
        "
        COMMAND INFO geoadd geodist geohash geopos georadius georadiusbymember georadius_ro georadiusbymember_ro geosearch geosearchstore
        COMMAND DOCS geoadd geodist geohash geopos georadius georadiusbymember georadius_ro georadiusbymember_ro geosearch geosearchstore
        COMMAND GETKEYS GEORADIUS k 1 2 3 km STORE a STOREDIST b
        COMMAND GETKEYS GEORADIUSBYMEMBER k m 3 km STORE a
        COMMAND GETKEYS GEOSEARCHSTORE dst src FROMLONLAT 1 1 BYRADIUS 1 km
        COMMAND GETKEYSANDFLAGS GEORADIUS k 1 2 3 km STOREDIST b
        ",
    );
}

#[test]
fn store_inside_transactions_and_scripts() {
    let pair = Pair::start();
    let mut clients = pair.clients();
    clients.script(&format!(
        "
        {SICILY}
        MULTI
        GEORADIUS Sicily 15 37 200 km STORE tx1
        GEORADIUSBYMEMBER Sicily Palermo 300 km STOREDIST tx2 COUNT 2
        GEOSEARCHSTORE tx3 Sicily FROMMEMBER Catania BYBOX 300 300 km
        ZRANGE tx1 0 -1 WITHSCORES
        EXEC
        ZRANGE tx2 0 -1 WITHSCORES
        ZRANGE tx3 0 -1 WITHSCORES
        "
    ));
    clients.same(&[
        "EVAL",
        "return redis.call('GEORADIUS', KEYS[1], 15, 37, 200, 'km', 'STORE', KEYS[2])",
        "2",
        "Sicily",
        "lua1",
    ]);
    clients.same(&["ZRANGE", "lua1", "0", "-1", "WITHSCORES"]);
    // ACL key permissions see the STORE destination.
    clients.script(
        "
        ACL SETUSER geo on nopass ~Sicily ~allowed +@all
        AUTH geo x
        GEORADIUS Sicily 15 37 200 km
        GEORADIUS Sicily 15 37 200 km STORE forbidden
        GEORADIUS Sicily 15 37 200 km STOREDIST allowed
        GEORADIUSBYMEMBER Sicily Palermo 200 km STORE forbidden
        GEOSEARCHSTORE forbidden Sicily FROMLONLAT 15 37 BYRADIUS 200 km
        GEOSEARCHSTORE allowed Sicily FROMLONLAT 15 37 BYRADIUS 200 km
        GEOSEARCH forbidden FROMLONLAT 15 37 BYRADIUS 200 km
        ",
    );
    clients.same(&[
        "EVAL",
        "return redis.call('GEOSEARCH', KEYS[1], 'FROMLONLAT', 15, 37, 'BYRADIUS', 200, 'km', 'WITHDIST', 'WITHCOORD')",
        "1",
        "Sicily",
    ]);
}

/// A random decimal in [lo, hi] with up to 6 decimals.
fn coordinate(rng: &mut StdRng, lo: f64, hi: f64) -> String {
    let value = rng.gen_range(lo..=hi);
    format!("{value:.6}")
}

#[test]
fn random_points_and_searches_match_redis() {
    let mut pair = Differential::start();
    // GEO_SEED=<n> explores other data sets locally.
    let seed = std::env::var("GEO_SEED").map_or(0x6e0, |s| s.parse().expect("GEO_SEED"));
    let mut rng = StdRng::seed_from_u64(seed);
    for protocol in ["2", "3"] {
        pair.larder.command(&["HELLO", protocol]);
        pair.redis.command(&["HELLO", protocol]);
        pair.check(&["FLUSHALL"]);
        // Clusters around a few centers (with repeated positions, so that
        // distances tie), plus points anywhere.
        let centers: Vec<(f64, f64)> = (0..6)
            .map(|_| (rng.gen_range(-179.0..179.0), rng.gen_range(-80.0..80.0)))
            .chain([(179.8, 0.5), (-179.8, -0.5), (0.0, 84.9)])
            .collect();
        let mut args: Vec<String> = vec!["GEOADD".into(), "pts".into()];
        for i in 0..400 {
            let (lon, lat) = if i % 4 == 3 {
                (
                    coordinate(&mut rng, -180.0, 180.0),
                    coordinate(&mut rng, -85.05, 85.05),
                )
            } else {
                let (clon, clat) = centers[i % centers.len()];
                let spread = [0.0, 0.001, 0.1, 2.0][rng.gen_range(0..4)];
                let lon: f64 = (clon + rng.gen_range(-spread..=spread)).clamp(-180.0, 180.0);
                let lat: f64 = (clat + rng.gen_range(-spread..=spread)).clamp(-85.0, 85.0);
                (format!("{lon:.6}"), format!("{lat:.6}"))
            };
            args.extend([lon, lat, format!("p{i}")]);
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        pair.check(&refs);
        pair.check(&["ZRANGE", "pts", "0", "-1", "WITHSCORES"]);

        for round in 0..250 {
            let mut cmd: Vec<String> = Vec::new();
            // Mostly near a cluster; sometimes anywhere (poles, antimeridian).
            let (clon, clat) = if rng.gen_bool(0.2) {
                (rng.gen_range(-181.0..181.0), rng.gen_range(-86.0..86.0))
            } else {
                centers[rng.gen_range(0..centers.len())]
            };
            let near = |rng: &mut StdRng, c: f64, lim: f64| {
                format!("{:.5}", (c + rng.gen_range(-1.0..1.0)).clamp(-lim, lim))
            };
            let unit = ["m", "km", "mi", "ft"][rng.gen_range(0..4)];
            let scale = match unit {
                "m" => 1000.0,
                "ft" => 3280.0,
                _ => 1.0,
            };
            let size = |rng: &mut StdRng| {
                let km = [0.0, 0.5, 5.0, 50.0, 300.0, 3000.0, 12000.0][rng.gen_range(0..7)];
                format!("{:.3}", km * scale * rng.gen_range(0.5..1.5))
            };
            let store = round % 5 == 4;
            let by_member = rng.gen_bool(0.3);
            let member = format!("p{}", rng.gen_range(0..420));
            match rng.gen_range(0..3) {
                0 => {
                    let name = if store { "GEOSEARCHSTORE" } else { "GEOSEARCH" };
                    cmd.push(name.into());
                    if store {
                        cmd.push("dst".into());
                    }
                    cmd.push("pts".into());
                    if by_member {
                        cmd.extend(["FROMMEMBER".into(), member]);
                    } else {
                        cmd.extend([
                            "FROMLONLAT".into(),
                            near(&mut rng, clon, 180.0),
                            near(&mut rng, clat, 85.0),
                        ]);
                    }
                    if rng.gen_bool(0.5) {
                        cmd.extend(["BYRADIUS".into(), size(&mut rng), unit.into()]);
                    } else {
                        cmd.extend(["BYBOX".into(), size(&mut rng), size(&mut rng), unit.into()]);
                    }
                }
                1 => {
                    let name = if !store && rng.gen_bool(0.3) {
                        "GEORADIUS_RO"
                    } else {
                        "GEORADIUS"
                    };
                    cmd.extend([
                        name.into(),
                        "pts".into(),
                        near(&mut rng, clon, 180.0),
                        near(&mut rng, clat, 85.0),
                        size(&mut rng),
                        unit.into(),
                    ]);
                }
                _ => {
                    let name = if !store && rng.gen_bool(0.3) {
                        "GEORADIUSBYMEMBER_RO"
                    } else {
                        "GEORADIUSBYMEMBER"
                    };
                    cmd.extend([
                        name.into(),
                        "pts".into(),
                        member,
                        size(&mut rng),
                        unit.into(),
                    ]);
                }
            }
            match rng.gen_range(0..4) {
                0 => cmd.push("ASC".into()),
                1 => cmd.push("DESC".into()),
                _ => {}
            }
            if rng.gen_bool(0.5) {
                cmd.extend(["COUNT".into(), rng.gen_range(1..30).to_string()]);
                if rng.gen_bool(0.3) {
                    cmd.push("ANY".into());
                }
            }
            let is_search_store = cmd[0] == "GEOSEARCHSTORE";
            if is_search_store {
                if rng.gen_bool(0.5) {
                    cmd.push("STOREDIST".into());
                }
            } else if store {
                cmd.extend([
                    if rng.gen_bool(0.5) {
                        "STORE"
                    } else {
                        "STOREDIST"
                    }
                    .into(),
                    "dst".into(),
                ]);
            } else {
                for option in ["WITHDIST", "WITHCOORD", "WITHHASH"] {
                    if rng.gen_bool(0.5) {
                        cmd.push(option.into());
                    }
                }
            }
            // The whole result first (no COUNT), then the command itself.
            if let Some(at) = cmd.iter().position(|a| a == "COUNT") {
                let mut whole = cmd.clone();
                whole.drain(at..at + 2);
                whole.retain(|a| a != "ANY" && a != "STORE" && a != "STOREDIST");
                if whole[0] == "GEOSEARCHSTORE" {
                    whole.remove(1);
                    whole[0] = "GEOSEARCH".into();
                }
                if whole[0].starts_with("GEORADIUS") {
                    whole.retain(|a| a != "dst");
                }
                let refs: Vec<&str> = whole.iter().map(String::as_str).collect();
                pair.check(&refs);
            }
            let refs: Vec<&str> = cmd.iter().map(String::as_str).collect();
            pair.check(&refs);
            if store {
                pair.check(&["ZRANGE", "dst", "0", "-1", "WITHSCORES"]);
            }
        }
        for i in (0..400).step_by(37) {
            let (a, b) = (format!("p{i}"), format!("p{}", (i * 7 + 3) % 400));
            pair.check(&["GEODIST", "pts", &a, &b, "km"]);
            pair.check(&["GEOPOS", "pts", &a, &b]);
            pair.check(&["GEOHASH", "pts", &a, &b]);
        }
    }
}

/// Read lookups count as `lookupKeyRead` counts them: a key of the wrong
/// type is a hit.
#[test]
fn keyspace_hits_and_misses_count_as_in_redis() {
    let pair = Pair::start();
    let mut clients = pair.clients();
    clients.script(&format!(
        "
        {SICILY}
        SET str x
        CONFIG RESETSTAT
        GEOPOS str a
        GEOPOS nokey a
        GEOHASH Sicily Palermo
        GEODIST nokey a b
        GEODIST str a b
        GEORADIUS str 1 1 1 km
        GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km
        GEOSEARCHSTORE dst nokey FROMLONLAT 15 37 BYRADIUS 200 km
        GEORADIUSBYMEMBER Sicily Palermo 10 km STORE dst
        "
    ));
    let counters = |client: &mut RawClient| {
        let info = String::from_utf8_lossy(&client.command(&["INFO", "stats"])).into_owned();
        info.lines()
            .filter(|l| l.starts_with("keyspace_hits") || l.starts_with("keyspace_misses"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let ours = counters(&mut clients.ours);
    let theirs = counters(&mut clients.theirs);
    assert_eq!(theirs.len(), 2);
    assert_eq!(ours, theirs);
}

/// A client blocked on the destination is served by the stored result.
#[test]
fn stores_wake_blocked_clients() {
    let pair = Pair::start();
    let mut clients = pair.clients();
    clients.script(SICILY);
    for (command, key) in [("GEOSEARCHSTORE", "woken1"), ("GEORADIUS", "woken2")] {
        let mut ours_blocked = pair.larder.raw();
        let mut theirs_blocked = pair.redis.raw();
        for blocked in [&mut ours_blocked, &mut theirs_blocked] {
            blocked.send(&common::encode_command(&[
                b"BZPOPMIN",
                key.as_bytes(),
                b"5",
            ]));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        if command == "GEOSEARCHSTORE" {
            clients.same(&[
                command,
                key,
                "Sicily",
                "FROMLONLAT",
                "15",
                "37",
                "BYRADIUS",
                "200",
                "km",
                "STOREDIST",
            ]);
        } else {
            clients.same(&[command, "Sicily", "15", "37", "200", "km", "STOREDIST", key]);
        }
        let ours = ours_blocked.read_reply();
        let theirs = theirs_blocked.read_reply();
        assert!(theirs.starts_with(b"*3"));
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs)
        );
    }
}
