//! Geo commands, following Redis 7.0's `geo.c`: positions are sorted set
//! members scored with their 52-bit geohash (see `crate::geohash`).
//!
//! A search visits the geohash box of its center and up to 8 neighbours,
//! each one a score range of the sorted set walked through the skiplist
//! (O(log n + m) per box), keeps the members inside the shape, and sorts
//! them by distance with the same algorithms Redis uses (glibc's merge
//! sort for a full sort, Redis's `pqsort` when COUNT cuts the result), so
//! that equal distances come out in Redis's order.
//!
//! The reference is redis-server 7.0.15 as it answers, which differs from
//! the 7.0.0 sources in two backported details: distances along a meridian
//! take the linear formula (`geohash::distance`), and distances are written
//! with `fixedpoint_d2string` rather than `%.4f` (`format_distance`).
//! A WRONGTYPE key counts as a keyspace hit, as `lookupKeyRead` counts it.

use super::flags::*;
use super::parse::int_arg;
use super::reads;
use super::zset::{parse_score, zadd};
use super::{CommandSpec, Ctx, KeySpec, FIRST_KEY};
use crate::error::{Error, Result};
use crate::geohash::{self, Shape, ShapeKind};
use crate::protocol::ReplyBuf;
use crate::pubsub::events;
use crate::shared::blocking::WaitKind;
use crate::shared::Shared;
use crate::store::types::ThinBytes;
use crate::store::types::ZSetValue;
use crate::store::{Db, Value, ValueRef};

const GEO: &[&str] = &["geo"];
const GROUP: &str = "geo";
const RADIUS_COMPLEXITY: &str = "O(N+log(M)) where N is the number of elements inside the bounding box of the circular area delimited by center and radius and M is the number of items inside the index.";
const SEARCH_COMPLEXITY: &str = "O(N+log(M)) where N is the number of elements in the grid-aligned bounding box area around the shape provided as the filter and M is the number of items inside the shape";
/// GEOSEARCHSTORE: the destination at 1, the source at 2.
const TWO_KEYS: KeySpec = KeySpec::Range {
    first: 1,
    last: 2,
    step: 1,
};

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("geoadd", -5, WRITE | DENYOOM, FIRST_KEY, geoadd)
        .acl(GEO)
        .doc(GROUP, "3.2.0", "Add one or more geospatial items in the geospatial index represented using a sorted set", "O(log(N)) for each item added, where N is the number of elements in the sorted set."),
    CommandSpec::new("geodist", -4, READONLY, FIRST_KEY, geodist)
        .acl(GEO)
        .doc(GROUP, "3.2.0", "Returns the distance between two members of a geospatial index", "O(log(N))"),
    CommandSpec::new("geohash", -2, READONLY, FIRST_KEY, geohash)
        .acl(GEO)
        .doc(GROUP, "3.2.0", "Returns members of a geospatial index as standard geohash strings", "O(log(N)) for each member requested, where N is the number of elements in the sorted set."),
    CommandSpec::new("geopos", -2, READONLY, FIRST_KEY, geopos)
        .acl(GEO)
        .doc(GROUP, "3.2.0", "Returns longitude and latitude of members of a geospatial index", "O(N) where N is the number of members requested."),
    CommandSpec::new("georadius", -6, WRITE | DENYOOM, KeySpec::StoreOption, georadius)
        .acl(GEO)
        .doc(GROUP, "3.2.0", "Query a sorted set representing a geospatial index to fetch members matching a given maximum distance from a point", RADIUS_COMPLEXITY),
    CommandSpec::new("georadiusbymember", -5, WRITE | DENYOOM, KeySpec::StoreOption, georadiusbymember)
        .acl(GEO)
        .doc(GROUP, "3.2.0", "Query a sorted set representing a geospatial index to fetch members matching a given maximum distance from a member", "O(N+log(M)) where N is the number of elements inside the bounding box of the circular area delimited by center and radius and M is the number of items inside the index."),
    CommandSpec::new("georadius_ro", -6, READONLY, FIRST_KEY, georadius_ro)
        .acl(GEO)
        .doc(GROUP, "3.2.10", "A read-only variant for GEORADIUS", RADIUS_COMPLEXITY),
    CommandSpec::new("georadiusbymember_ro", -5, READONLY, FIRST_KEY, georadiusbymember_ro)
        .acl(GEO)
        .doc(GROUP, "3.2.10", "A read-only variant for GEORADIUSBYMEMBER", "O(N+log(M)) where N is the number of elements inside the bounding box of the circular area delimited by center and radius and M is the number of items inside the index."),
    CommandSpec::new("geosearch", -7, READONLY, FIRST_KEY, geosearch)
        .acl(GEO)
        .doc(GROUP, "6.2.0", "Query a sorted set representing a geospatial index to fetch members inside an area of a box or a circle.", SEARCH_COMPLEXITY),
    CommandSpec::new("geosearchstore", -8, WRITE | DENYOOM, TWO_KEYS, geosearchstore)
        .acl(GEO)
        .key_spec_flags(&["OW", "update"])
        .doc(GROUP, "6.2.0", "Query a sorted set representing a geospatial index to fetch members inside an area of a box or a circle, and store the result in another key.", SEARCH_COMPLEXITY),
];

// ---------------------------------------------------------------------------
// Arguments.
// ---------------------------------------------------------------------------

/// The argument as C's string functions see it: up to the first NUL.
fn c_str(arg: &[u8]) -> &[u8] {
    arg.iter()
        .position(|&b| b == 0)
        .map_or(arg, |nul| &arg[..nul])
}

/// Redis's `strcasecmp(arg, keyword)`.
fn is_option(arg: &[u8], keyword: &str) -> bool {
    c_str(arg).eq_ignore_ascii_case(keyword.as_bytes())
}

/// `getDoubleFromObjectOrReply` with an optional custom message.
fn double_arg(arg: &[u8], message: Option<&str>) -> Result<f64> {
    parse_score(arg).ok_or_else(|| match message {
        Some(message) => Error::err(message),
        None => Error::not_float(),
    })
}

/// `extractLongLatOrReply`: a longitude and a latitude within the
/// Mercator limits.
fn long_lat_args(lon: &[u8], lat: &[u8]) -> Result<[f64; 2]> {
    let xy = [double_arg(lon, None)?, double_arg(lat, None)?];
    if xy[0] < geohash::LONG_MIN
        || xy[0] > geohash::LONG_MAX
        || xy[1] < geohash::LAT_MIN
        || xy[1] > geohash::LAT_MAX
    {
        return Err(Error::err(format!(
            "invalid longitude,latitude pair {:.6},{:.6}",
            xy[0], xy[1]
        )));
    }
    Ok(xy)
}

/// `extractUnitOrReply`: meters per unit.
fn unit_arg(arg: &[u8]) -> Result<f64> {
    let unit = c_str(arg);
    for (name, meters) in [("m", 1.0), ("km", 1000.0), ("ft", 0.3048), ("mi", 1609.34)] {
        if unit.eq_ignore_ascii_case(name.as_bytes()) {
            return Ok(meters);
        }
    }
    Err(Error::err(
        "unsupported unit provided. please use M, KM, FT, MI",
    ))
}

/// `extractDistanceOrReply`: (radius, meters per unit).
fn radius_args(radius: &[u8], unit: &[u8]) -> Result<(f64, f64)> {
    let radius = double_arg(radius, Some("need numeric radius"))?;
    if radius < 0.0 {
        return Err(Error::err("radius cannot be negative"));
    }
    Ok((radius, unit_arg(unit)?))
}

/// `extractBoxOrReply`: (width, height, meters per unit).
fn box_args(width: &[u8], height: &[u8], unit: &[u8]) -> Result<(f64, f64, f64)> {
    let width = double_arg(width, Some("need numeric width"))?;
    let height = double_arg(height, Some("need numeric height"))?;
    if height < 0.0 || width < 0.0 {
        return Err(Error::err("height or width cannot be negative"));
    }
    Ok((width, height, unit_arg(unit)?))
}

/// Where GEORADIUS and GEORADIUSBYMEMBER store (`georadiusGetKeys`): after
/// the last STORE or STOREDIST option followed by an argument.
pub(super) fn store_key_position(argv: &[&[u8]]) -> Option<usize> {
    let mut stored = None;
    let mut i = 5;
    while i < argv.len() {
        let arg = c_str(argv[i]);
        if (arg.eq_ignore_ascii_case(b"store") || arg.eq_ignore_ascii_case(b"storedist"))
            && i + 1 < argv.len()
        {
            stored = Some(i + 1);
            i += 1;
        }
        i += 1;
    }
    stored
}

// ---------------------------------------------------------------------------
// Keyspace.
// ---------------------------------------------------------------------------

/// `lookupKeyRead` + `checkType` for a sorted set.
fn read_zset<'a>(
    shared: &Shared,
    db: &'a mut Db,
    dbi: usize,
    key: &[u8],
    now: u64,
) -> Result<Option<&'a ZSetValue>> {
    let found = match db.get(key, now) {
        None => None,
        Some(entry) => match entry.value() {
            ValueRef::ZSet(z) => Some(z),
            _ => {
                reads::hit(shared);
                return Err(Error::wrong_type());
            }
        },
    };
    reads::looked_up(shared, dbi, key, found.is_some());
    Ok(found)
}

/// Redis's `addReplyHumanLongDouble` of a coordinate: `%.17Lf` with the
/// trailing zeros (and dot) removed; a double reply in RESP3.
fn reply_coordinate(out: &mut ReplyBuf, value: f64) {
    let mut text = format!("{value:.17}");
    if text.contains('.') {
        let trimmed = text.trim_end_matches('0').trim_end_matches('.').len();
        text.truncate(trimmed);
    }
    if text == "-0" {
        text = "0".into();
    }
    if out.is_resp3() {
        out.raw(format!(",{text}\r\n").as_bytes());
    } else {
        out.bulk(text.as_bytes());
    }
}

/// `addReplyDoubleDistance`: four decimals, always a bulk string.
fn reply_distance(out: &mut ReplyBuf, distance: f64) {
    out.bulk(format_distance(distance).as_bytes());
}

/// Redis's `fixedpoint_d2string(.., 4)` (what redis-server 7.0.15 uses
/// instead of `%.4f`): `llrint(d * 10000)` written with four decimals. The
/// product is rounded to a double first, so a value just above a half
/// (14191129.865050001) can round down where printf would round up.
fn format_distance(distance: f64) -> String {
    if distance == 0.0 {
        return "0.0000".into();
    }
    let scaled = c_llrint(distance * 10000.0);
    let digits = scaled.unsigned_abs().to_string();
    let sign = if scaled < 0 { "-" } else { "" };
    if digits.len() <= 4 {
        format!("{sign}0.{digits:0>4}")
    } else {
        let (integer, fraction) = digits.split_at(digits.len() - 4);
        format!("{sign}{integer}.{fraction}")
    }
}

/// C's `llrint` on x86-64: ties to even; NaN and out-of-range values give
/// the "integer indefinite" `LLONG_MIN`.
fn c_llrint(value: f64) -> i64 {
    const TWO_63: f64 = 9223372036854775808.0;
    let rounded = value.round_ties_even();
    if rounded.is_nan() || !(-TWO_63..TWO_63).contains(&rounded) {
        i64::MIN
    } else {
        rounded as i64
    }
}

// ---------------------------------------------------------------------------
// GEOADD, GEOPOS, GEOHASH, GEODIST.
// ---------------------------------------------------------------------------

/// GEOADD key [NX|XX] [CH] lon lat member ...: ZADD with the positions'
/// geohashes as scores, as Redis rewrites it.
fn geoadd(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let (mut nx, mut xx) = (false, false);
    let mut first = 2;
    while first < argv.len() {
        let option = argv[first];
        if is_option(option, "nx") {
            nx = true;
        } else if is_option(option, "xx") {
            xx = true;
        } else if !is_option(option, "ch") {
            break;
        }
        first += 1;
    }
    if !(argv.len() - first).is_multiple_of(3) || (xx && nx) {
        return Err(Error::syntax());
    }
    let mut scores = Vec::with_capacity((argv.len() - first) / 3);
    for triple in argv[first..].chunks_exact(3) {
        let [lon, lat] = long_lat_args(triple[0], triple[1])?;
        let score = geohash::encode_score(lon, lat).unwrap_or(0);
        scores.push(score.to_string().into_bytes());
    }
    let mut zadd_argv: Vec<&[u8]> = Vec::with_capacity(first + scores.len() * 2);
    zadd_argv.push(b"zadd");
    zadd_argv.extend_from_slice(&argv[1..first]);
    for (score, triple) in scores.iter().zip(argv[first..].chunks_exact(3)) {
        zadd_argv.push(score);
        zadd_argv.push(triple[2]);
    }
    zadd(ctx, &zadd_argv)
}

/// GEOPOS key member ...
fn geopos(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let now = ctx.now_ms;
    let dbi = ctx.session.db;
    let mut locked = ctx.locks.key(key)?;
    let z = read_zset(ctx.shared, locked.db(dbi, key)?, dbi, key, now)?;
    ctx.out.array(argv.len() - 2);
    for member in &argv[2..] {
        match z.and_then(|z| z.score(member)) {
            None => ctx.out.null_array(),
            Some(score) => {
                let [lon, lat] = geohash::decode_score(score);
                ctx.out.array(2);
                reply_coordinate(ctx.out, lon);
                reply_coordinate(ctx.out, lat);
            }
        }
    }
    Ok(())
}

/// GEOHASH key member ...
fn geohash(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let now = ctx.now_ms;
    let dbi = ctx.session.db;
    let mut locked = ctx.locks.key(key)?;
    let z = read_zset(ctx.shared, locked.db(dbi, key)?, dbi, key, now)?;
    ctx.out.array(argv.len() - 2);
    for member in &argv[2..] {
        match z.and_then(|z| z.score(member)) {
            None => ctx.out.null(),
            Some(score) => ctx.out.bulk(&geohash::geohash_string(score)),
        }
    }
    Ok(())
}

/// GEODIST key member1 member2 [unit]
fn geodist(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let to_meters = match argv.len() {
        5 => unit_arg(argv[4])?,
        4 => 1.0,
        _ => return Err(Error::syntax()),
    };
    let key = argv[1];
    let now = ctx.now_ms;
    let dbi = ctx.session.db;
    let mut locked = ctx.locks.key(key)?;
    let z = read_zset(ctx.shared, locked.db(dbi, key)?, dbi, key, now)?;
    let scores = z.and_then(|z| Some((z.score(argv[2])?, z.score(argv[3])?)));
    match scores {
        None => ctx.out.null(),
        Some((a, b)) => {
            let [lon1, lat1] = geohash::decode_score(a);
            let [lon2, lat2] = geohash::decode_score(b);
            reply_distance(
                ctx.out,
                geohash::distance(lon1, lat1, lon2, lat2) / to_meters,
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// GEORADIUS, GEORADIUSBYMEMBER, their _RO forms, GEOSEARCH, GEOSEARCHSTORE.
// ---------------------------------------------------------------------------

/// How the command names its center and shape (`georadiusGeneric` flags).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    /// GEORADIUS key lon lat radius unit ...
    Coords,
    /// GEORADIUSBYMEMBER key member radius unit ...
    Member,
    /// GEOSEARCH key FROMMEMBER|FROMLONLAT BYRADIUS|BYBOX ...
    Search,
}

fn georadius(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    radius_generic(ctx, argv, Form::Coords, false, false)
}

fn georadiusbymember(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    radius_generic(ctx, argv, Form::Member, false, false)
}

fn georadius_ro(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    radius_generic(ctx, argv, Form::Coords, true, false)
}

fn georadiusbymember_ro(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    radius_generic(ctx, argv, Form::Member, true, false)
}

fn geosearch(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    radius_generic(ctx, argv, Form::Search, true, false)
}

fn geosearchstore(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    radius_generic(ctx, argv, Form::Search, false, true)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sort {
    None,
    Asc,
    Desc,
}

/// One member inside the searched shape (`geoPoint`).
#[derive(Clone, Copy)]
struct Found<'a> {
    longitude: f64,
    latitude: f64,
    /// Meters until the reply converts it to the unit.
    dist: f64,
    score: f64,
    member: &'a [u8],
}

/// `sort_gp_asc`, a C comparator: a NaN distance compares as "less".
fn compare_asc(a: &Found, b: &Found) -> i32 {
    if a.dist > b.dist {
        1
    } else if a.dist == b.dist {
        0
    } else {
        -1
    }
}

fn compare_desc(a: &Found, b: &Found) -> i32 {
    -compare_asc(a, b)
}

type Compare = fn(&Found, &Found) -> i32;

/// glibc's `qsort` (its merge sort, `msort_with_tmp`): stable, and with
/// the same comparisons, so equal and NaN distances end up where Redis
/// puts them.
fn glibc_msort<T: Copy>(items: &mut [T], tmp: &mut Vec<T>, cmp: fn(&T, &T) -> i32) {
    let n = items.len();
    if n <= 1 {
        return;
    }
    let n1 = n / 2;
    glibc_msort(&mut items[..n1], tmp, cmp);
    glibc_msort(&mut items[n1..], tmp, cmp);
    tmp.clear();
    let (mut i, mut j) = (0, n1);
    while i < n1 && j < n {
        if cmp(&items[i], &items[j]) <= 0 {
            tmp.push(items[i]);
            i += 1;
        } else {
            tmp.push(items[j]);
            j += 1;
        }
    }
    tmp.extend_from_slice(&items[i..n1]);
    let merged = tmp.len();
    items[..merged].copy_from_slice(tmp);
}

/// Redis's `pqsort` (NetBSD's qsort that only sorts the partitions
/// overlapping ranks `lrange..=rrange`), step for step as redis-server
/// 7.0.15 runs it: without NetBSD's switch to an insertion sort after a
/// partition that swapped nothing (checked against it on random inputs
/// with ties).
fn pqsort<T>(items: &mut [T], cmp: fn(&T, &T) -> i32, lrange: usize, rrange: usize) {
    pqsort_range(items, 0, items.len(), cmp, lrange as isize, rrange as isize);
}

fn med3<T>(v: &[T], a: usize, b: usize, c: usize, cmp: fn(&T, &T) -> i32) -> usize {
    if cmp(&v[a], &v[b]) < 0 {
        if cmp(&v[b], &v[c]) < 0 {
            b
        } else if cmp(&v[a], &v[c]) < 0 {
            c
        } else {
            a
        }
    } else if cmp(&v[b], &v[c]) > 0 {
        b
    } else if cmp(&v[a], &v[c]) < 0 {
        a
    } else {
        c
    }
}

fn vecswap<T>(v: &mut [T], a: usize, b: usize, n: usize) {
    for k in 0..n {
        v.swap(a + k, b + k);
    }
}

fn insertion_sort<T>(v: &mut [T], a: usize, n: usize, cmp: fn(&T, &T) -> i32) {
    for pm in a + 1..a + n {
        let mut pl = pm;
        while pl > a && cmp(&v[pl - 1], &v[pl]) > 0 {
            v.swap(pl, pl - 1);
            pl -= 1;
        }
    }
}

/// `_pqsort` on `v[a..a + n]`, with `lrange`/`rrange` as element indexes.
fn pqsort_range<T>(
    v: &mut [T],
    mut a: usize,
    mut n: usize,
    cmp: fn(&T, &T) -> i32,
    lrange: isize,
    rrange: isize,
) {
    // A partition [s, s + c) is skipped when the wanted ranks are all on
    // one side of it.
    let outside = |s: usize, c: usize| {
        let (s, e) = (s as isize, (s + c) as isize);
        (lrange < s && rrange < s) || (lrange >= e && rrange >= e)
    };
    loop {
        if n < 7 {
            insertion_sort(v, a, n, cmp);
            return;
        }
        let mut pm = a + n / 2;
        if n > 7 {
            let mut pl = a;
            let mut pn = a + n - 1;
            if n > 40 {
                let d = n / 8;
                pl = med3(v, pl, pl + d, pl + 2 * d, cmp);
                pm = med3(v, pm - d, pm, pm + d, cmp);
                pn = med3(v, pn - 2 * d, pn - d, pn, cmp);
            }
            pm = med3(v, pl, pm, pn, cmp);
        }
        v.swap(a, pm);
        let mut pa = a + 1;
        let mut pb = a + 1;
        // pc may step just below pb (to a at the lowest), so keep it signed.
        let mut pc = (a + n - 1) as isize;
        let mut pd = (a + n - 1) as isize;
        loop {
            while pb as isize <= pc {
                let r = cmp(&v[pb], &v[a]);
                if r > 0 {
                    break;
                }
                if r == 0 {
                    v.swap(pa, pb);
                    pa += 1;
                }
                pb += 1;
            }
            while pb as isize <= pc {
                let r = cmp(&v[pc as usize], &v[a]);
                if r < 0 {
                    break;
                }
                if r == 0 {
                    v.swap(pc as usize, pd as usize);
                    pd -= 1;
                }
                pc -= 1;
            }
            if pb as isize > pc {
                break;
            }
            v.swap(pb, pc as usize);
            pb += 1;
            pc -= 1;
        }
        let pn = a + n;
        let r = (pa - a).min(pb - pa);
        vecswap(v, a, pb - r, r);
        let r = ((pd - pc) as usize).min(pn - pd as usize - 1);
        vecswap(v, pb, pn - r, r);
        let r = pb - pa;
        if r > 1 && !outside(a, r) {
            pqsort_range(v, a, r, cmp, lrange, rrange);
        }
        let r = (pd - pc) as usize;
        if r > 1 {
            a = pn - r;
            n = r;
            if !outside(a, n) {
                continue;
            }
        }
        return;
    }
}

/// Appends the members of `z` inside `shape` to `found`, box by box
/// (`membersOfAllNeighbors`). With a `limit` (COUNT ... ANY), stops as
/// soon as that many were found.
fn members_in_shape<'a>(z: &'a ZSetValue, shape: &Shape, limit: usize, found: &mut Vec<Found<'a>>) {
    let full = |found: &Vec<Found>| limit != 0 && found.len() >= limit;
    let boxes = geohash::areas_by_shape(shape).boxes();
    let mut last_processed = 0;
    for (i, hash) in boxes.iter().enumerate() {
        if hash.is_zero() {
            continue;
        }
        // With huge radii neighbours repeat: skip a box just visited.
        if last_processed != 0 && *hash == boxes[last_processed] {
            continue;
        }
        if full(found) {
            break;
        }
        let (min, max) = hash.score_range();
        if let Some((first, last)) = z.score_range_ranks(min as f64, false, max as f64, true) {
            for (member, score) in z.iter_from(first, false).take(last - first + 1) {
                let [longitude, latitude] = geohash::decode_score(score);
                if let Some(dist) = shape.contains(longitude, latitude) {
                    found.push(Found {
                        longitude,
                        latitude,
                        dist,
                        score,
                        member,
                    });
                }
                if full(found) {
                    break;
                }
            }
        }
        last_processed = i;
    }
}

/// The options of a search, as `georadiusGeneric` parses them.
struct Search {
    shape: Shape,
    with_dist: bool,
    with_hash: bool,
    with_coord: bool,
    sort: Sort,
    any: bool,
    count: usize,
    store: Option<usize>,
    store_dist: bool,
}

/// Parses the arguments in Redis's order (the center member is looked up
/// in `z` while parsing, so its errors come in the same place).
fn parse_search(
    argv: &[&[u8]],
    form: Form,
    read_only: bool,
    search_store: bool,
    z: Option<&ZSetValue>,
) -> Result<Search> {
    let member_center = |member: &[u8]| -> Result<[f64; 2]> {
        let score = z
            .and_then(|z| z.score(member))
            .ok_or_else(|| Error::err("could not decode requested zset member"))?;
        Ok(geohash::decode_score(score))
    };
    let mut search = Search {
        shape: Shape {
            center: [0.0, 0.0],
            conversion: 0.0,
            kind: ShapeKind::Radius(0.0),
        },
        with_dist: false,
        with_hash: false,
        with_coord: false,
        sort: Sort::None,
        any: false,
        count: 0,
        store: search_store.then_some(1),
        store_dist: false,
    };
    let base = match form {
        Form::Coords => {
            search.shape.center = long_lat_args(argv[2], argv[3])?;
            let (radius, conversion) = radius_args(argv[4], argv[5])?;
            search.shape.kind = ShapeKind::Radius(radius);
            search.shape.conversion = conversion;
            6
        }
        Form::Member if z.is_none() => 5,
        Form::Member => {
            search.shape.center = member_center(argv[2])?;
            let (radius, conversion) = radius_args(argv[3], argv[4])?;
            search.shape.kind = ShapeKind::Radius(radius);
            search.shape.conversion = conversion;
            5
        }
        Form::Search if search_store => 3,
        Form::Search => 2,
    };
    let geosearch = form == Form::Search;
    let (mut from_member, mut from_lonlat, mut by_radius, mut by_box) =
        (false, false, false, false);
    let mut i = base;
    while i < argv.len() {
        let arg = argv[i];
        let remaining = argv.len() - i - 1;
        if is_option(arg, "withdist") {
            search.with_dist = true;
        } else if is_option(arg, "withhash") {
            search.with_hash = true;
        } else if is_option(arg, "withcoord") {
            search.with_coord = true;
        } else if is_option(arg, "any") {
            search.any = true;
        } else if is_option(arg, "asc") {
            search.sort = Sort::Asc;
        } else if is_option(arg, "desc") {
            search.sort = Sort::Desc;
        } else if is_option(arg, "count") && remaining >= 1 {
            let count = int_arg(argv[i + 1])?;
            if count <= 0 {
                return Err(Error::err("COUNT must be > 0"));
            }
            search.count = usize::try_from(count).unwrap_or(usize::MAX);
            i += 1;
        } else if (is_option(arg, "store") || is_option(arg, "storedist"))
            && remaining >= 1
            && !read_only
            && !geosearch
        {
            search.store = Some(i + 1);
            search.store_dist = is_option(arg, "storedist");
            i += 1;
        } else if is_option(arg, "storedist") && geosearch && search_store {
            search.store_dist = true;
        } else if is_option(arg, "frommember") && remaining >= 1 && geosearch && !from_lonlat {
            // A missing key still parses on, to answer as it would.
            if z.is_some() {
                search.shape.center = member_center(argv[i + 1])?;
            }
            from_member = true;
            i += 1;
        } else if is_option(arg, "fromlonlat") && remaining >= 2 && geosearch && !from_member {
            search.shape.center = long_lat_args(argv[i + 1], argv[i + 2])?;
            from_lonlat = true;
            i += 2;
        } else if is_option(arg, "byradius") && remaining >= 2 && geosearch && !by_box {
            let (radius, conversion) = radius_args(argv[i + 1], argv[i + 2])?;
            search.shape.kind = ShapeKind::Radius(radius);
            search.shape.conversion = conversion;
            by_radius = true;
            i += 2;
        } else if is_option(arg, "bybox") && remaining >= 3 && geosearch && !by_radius {
            let (width, height, conversion) = box_args(argv[i + 1], argv[i + 2], argv[i + 3])?;
            search.shape.kind = ShapeKind::Box { width, height };
            search.shape.conversion = conversion;
            by_box = true;
            i += 3;
        } else {
            return Err(Error::syntax());
        }
        i += 1;
    }

    if search.store.is_some() && (search.with_dist || search.with_hash || search.with_coord) {
        return Err(Error::err(format!(
            "{} is not compatible with WITHDIST, WITHHASH and WITHCOORD options",
            if search_store {
                "GEOSEARCHSTORE"
            } else {
                "STORE option in GEORADIUS"
            }
        )));
    }
    let name = || String::from_utf8_lossy(c_str(argv[0])).into_owned();
    if geosearch && !(from_member || from_lonlat) {
        return Err(Error::err(format!(
            "exactly one of FROMMEMBER or FROMLONLAT can be specified for {}",
            name()
        )));
    }
    if geosearch && !(by_radius || by_box) {
        return Err(Error::err(format!(
            "exactly one of BYRADIUS and BYBOX can be specified for {}",
            name()
        )));
    }
    if search.any && search.count == 0 {
        return Err(Error::err("the ANY argument requires COUNT argument"));
    }
    Ok(search)
}

/// `georadiusGeneric`: every search command.
fn radius_generic(
    ctx: &mut Ctx,
    argv: &[&[u8]],
    form: Form,
    read_only: bool,
    search_store: bool,
) -> Result<()> {
    let src = argv[if search_store { 2 } else { 1 }];
    // The keys this command may write, found as the command table finds
    // them, so that inside a transaction the held locks cover them.
    let planned_store = if search_store {
        Some(1)
    } else if read_only {
        None
    } else {
        store_key_position(argv)
    };
    let now = ctx.now_ms;
    let dbi = ctx.session.db;
    let shared = ctx.shared;
    let pubsub = &*shared.pubsub;
    let mut locked = match planned_store {
        Some(at) => ctx.locks.keys(&[argv[at], src])?,
        None => ctx.locks.key(src)?,
    };
    let z = read_zset(shared, locked.db(dbi, src)?, dbi, src, now)?;
    let search = parse_search(argv, form, read_only, search_store, z)?;
    if search.store.is_some() && search.store != planned_store {
        return Err(Error::err("internal error: GEORADIUS store key"));
    }

    let Some(z) = z else {
        match search.store {
            Some(at) => {
                let dst = argv[at];
                let db = locked.db(dbi, dst)?;
                if db.remove(dst, now).is_some() {
                    pubsub.notify(events::GENERIC, "del", dst, dbi);
                }
                ctx.out.int(0);
            }
            None => ctx.out.array(0),
        }
        return Ok(());
    };

    // COUNT returns the nearest ones: sort ascending unless told otherwise
    // (not with ANY, which takes the first found).
    let mut sort = search.sort;
    if search.count != 0 && sort == Sort::None && !search.any {
        sort = Sort::Asc;
    }
    let mut found = Vec::new();
    let limit = if search.any { search.count } else { 0 };
    members_in_shape(z, &search.shape, limit, &mut found);
    if found.is_empty() && search.store.is_none() {
        ctx.out.array(0);
        return Ok(());
    }
    let returned = if search.count == 0 {
        found.len()
    } else {
        found.len().min(search.count)
    };
    if sort != Sort::None {
        let cmp: Compare = if sort == Sort::Asc {
            compare_asc
        } else {
            compare_desc
        };
        if returned == found.len() {
            let mut scratch = Vec::with_capacity(found.len());
            glibc_msort(&mut found, &mut scratch, cmp);
        } else {
            pqsort(&mut found, cmp, 0, returned - 1);
        }
    }
    let conversion = search.shape.conversion;

    let Some(at) = search.store else {
        let options =
            search.with_dist as usize + search.with_hash as usize + search.with_coord as usize;
        let out = &mut *ctx.out;
        out.array(returned);
        for point in &found[..returned] {
            if options > 0 {
                out.array(options + 1);
            }
            out.bulk(point.member);
            if search.with_dist {
                reply_distance(out, point.dist / conversion);
            }
            if search.with_hash {
                out.int(point.score as i64);
            }
            if search.with_coord {
                out.array(2);
                reply_coordinate(out, point.longitude);
                reply_coordinate(out, point.latitude);
            }
        }
        return Ok(());
    };

    // STORE / STOREDIST / GEOSEARCHSTORE: copy the result out (the
    // destination may be the source), then replace the destination.
    let dst = argv[at];
    let mut result = ZSetValue::new();
    for point in &found[..returned] {
        let score = if search.store_dist {
            point.dist / conversion
        } else {
            point.score
        };
        result.push_new(ThinBytes::from(point.member), score);
    }
    result.finish_store();
    let db = locked.db(dbi, dst)?;
    if returned > 0 {
        db.insert(dst, Value::ZSet(Box::new(result)), None, now);
        let event = if search_store {
            "geosearchstore"
        } else {
            "georadiusstore"
        };
        pubsub.notify(events::ZSET, event, dst, dbi);
        drop(locked);
        shared.blocking.key_ready(dbi, dst, Some(WaitKind::ZSet));
    } else if db.remove(dst, now).is_some() {
        pubsub.notify(events::GENERIC, "del", dst, dbi);
    }
    ctx.out.int(returned as i64);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c_cmp(a: &(f64, u32), b: &(f64, u32)) -> i32 {
        if a.0 > b.0 {
            1
        } else if a.0 == b.0 {
            0
        } else {
            -1
        }
    }

    #[test]
    fn msort_is_stable() {
        let mut items: Vec<(f64, u32)> = (0..50).map(|i| ((i % 5) as f64, i)).collect();
        glibc_msort(&mut items, &mut Vec::new(), c_cmp);
        for pair in items.windows(2) {
            assert!(pair[0].0 < pair[1].0 || (pair[0].0 == pair[1].0 && pair[0].1 < pair[1].1));
        }
    }

    #[test]
    fn pqsort_sorts_the_wanted_ranks() {
        let mut seed = 12345u64;
        for n in [1usize, 5, 7, 8, 30, 41, 100, 500] {
            let items: Vec<(f64, u32)> = (0..n as u32)
                .map(|i| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (((seed >> 33) % 50) as f64, i)
                })
                .collect();
            let mut sorted = items.clone();
            sorted.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
            for count in [1, 3, n / 2, n] {
                if count == 0 || count > n {
                    continue;
                }
                let mut partial = items.clone();
                pqsort(&mut partial, c_cmp, 0, count - 1);
                let got: Vec<f64> = partial[..count].iter().map(|x| x.0).collect();
                let want: Vec<f64> = sorted[..count].iter().map(|x| x.0).collect();
                assert_eq!(got, want, "n={n} count={count}");
            }
        }
    }

    /// A case redis-server 7.0.15 answered (GEORADIUS ... COUNT 7 over
    /// these distances): its pqsort reorders the ties as the partitions
    /// go, where NetBSD's insertion sort fallback would have kept them.
    #[test]
    fn pqsort_reorders_ties_as_redis_does() {
        let dists = [105.7, 54.5, 66.1, 40.3, 42.2, 76.3, 76.3, 76.3, 76.3, 81.4];
        let mut items: Vec<(f64, u32)> = dists.iter().zip(0..).map(|(&d, i)| (d, i)).collect();
        pqsort(&mut items, c_cmp, 0, 6);
        let order: Vec<u32> = items[..7].iter().map(|x| x.1).collect();
        assert_eq!(order, [3, 4, 1, 2, 7, 5, 6]);
    }

    #[test]
    fn store_key_follows_the_last_store_option() {
        let argv: Vec<&[u8]> = vec![
            b"georadius",
            b"k",
            b"1",
            b"2",
            b"3",
            b"km",
            b"STORE",
            b"a",
            b"storedist",
            b"b",
        ];
        assert_eq!(store_key_position(&argv), Some(9));
        assert_eq!(store_key_position(&argv[..7]), None);
        assert_eq!(store_key_position(&argv[..8]), Some(7));
    }

    #[test]
    fn distances_and_coordinates_format_like_c() {
        assert_eq!(format_distance(166274.1516), "166274.1516");
        assert_eq!(format_distance(14191129.865050001), "14191129.8650");
        assert_eq!(format_distance(0.00004), "0.0000");
        assert_eq!(format_distance(0.00006), "0.0001");
        assert_eq!(format_distance(12.5), "12.5000");
        assert_eq!(format_distance(f64::NAN), "-922337203685477.5808");
        let mut out = ReplyBuf::new();
        reply_coordinate(&mut out, 13.361389338970184);
        reply_coordinate(&mut out, 2.0);
        reply_coordinate(&mut out, -0.0);
        assert_eq!(
            &out.buffer()[..],
            b"$20\r\n13.36138933897018433\r\n$1\r\n2\r\n$1\r\n0\r\n"
        );
    }
}
