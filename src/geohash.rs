//! Redis's geohash math (`geohash.c`, `geohash_helper.c` of Redis 7.0),
//! ported operation for operation so that scores, decoded coordinates,
//! search areas and distances are the same doubles Redis computes.
//!
//! A position is a 52-bit interleaved geohash (26 bits of longitude in the
//! odd positions, 26 of latitude in the even ones) over longitudes
//! -180..180 and latitudes -85.05112878..85.05112878 (the Web Mercator
//! limits), stored as a sorted set score. A search covers its shape with
//! the geohash box of the center and its 8 neighbours at a step (bits per
//! coordinate) chosen from the radius, each box being one score range.
//!
//! Pure arithmetic, no I/O: it stands on the bottom floor.
//!
//! ```
//! use larder::geohash::{decode_score, encode_wgs84, STEP_MAX};
//!
//! let hash = encode_wgs84(13.361389, 38.115556, STEP_MAX).unwrap();
//! assert_eq!(hash.align52(), 3479099956230698);
//! let [lon, lat] = decode_score(3479099956230698.0);
//! assert!((lon - 13.361389).abs() < 1e-5 && (lat - 38.115556).abs() < 1e-5);
//! ```

/// Bits per coordinate of a stored position (52 bits in all).
pub const STEP_MAX: u8 = 26;
pub const LAT_MIN: f64 = -85.05112878;
pub const LAT_MAX: f64 = 85.05112878;
pub const LONG_MIN: f64 = -180.0;
pub const LONG_MAX: f64 = 180.0;

/// Earth's quadratic mean radius for WGS-84, as Redis uses it.
const EARTH_RADIUS_IN_METERS: f64 = 6372797.560856;
const MERCATOR_MAX: f64 = 20037726.37;
/// `M_PI / 180.0`, folded the same way a C compiler folds it.
const D_R: f64 = std::f64::consts::PI / 180.0;

fn deg_rad(ang: f64) -> f64 {
    ang * D_R
}

fn rad_deg(ang: f64) -> f64 {
    ang / D_R
}

/// A geohash of `step` bits per coordinate. All zero means "no box" (a
/// neighbour excluded from a search).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HashBits {
    pub bits: u64,
    pub step: u8,
}

impl HashBits {
    pub fn is_zero(&self) -> bool {
        self.bits == 0 && self.step == 0
    }

    /// The hash shifted to 52 bits: the lowest score of its box.
    pub fn align52(&self) -> u64 {
        self.bits << (52 - self.step as u32 * 2)
    }

    /// The scores `[min, max)` of the positions inside this box.
    pub fn score_range(&self) -> (u64, u64) {
        let next = HashBits {
            bits: self.bits.wrapping_add(1),
            step: self.step,
        };
        (self.align52(), next.align52())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Range {
    pub min: f64,
    pub max: f64,
}

impl Range {
    fn is_zero(&self) -> bool {
        self.min == 0.0 && self.max == 0.0
    }
}

/// The box a hash stands for.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Area {
    pub hash: HashBits,
    pub longitude: Range,
    pub latitude: Range,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Neighbors {
    pub north: HashBits,
    pub east: HashBits,
    pub west: HashBits,
    pub south: HashBits,
    pub north_east: HashBits,
    pub south_east: HashBits,
    pub north_west: HashBits,
    pub south_west: HashBits,
}

/// The boxes a search visits: the center's and its neighbours (some of
/// them zeroed when the shape cannot reach them).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SearchArea {
    pub hash: HashBits,
    pub neighbors: Neighbors,
    pub area: Area,
}

impl SearchArea {
    /// The 9 boxes in the order Redis visits them.
    pub fn boxes(&self) -> [HashBits; 9] {
        let n = &self.neighbors;
        [
            self.hash,
            n.north,
            n.south,
            n.east,
            n.west,
            n.north_east,
            n.north_west,
            n.south_east,
            n.south_west,
        ]
    }
}

/// What a search covers, in the unit of `conversion` (meters per unit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ShapeKind {
    Radius(f64),
    Box { width: f64, height: f64 },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    /// Longitude, latitude of the center.
    pub center: [f64; 2],
    /// Meters per unit.
    pub conversion: f64,
    pub kind: ShapeKind,
}

/// Interleaves the low 32 bits of `x` (even positions) and `y` (odd).
fn interleave64(xlo: u32, ylo: u32) -> u64 {
    const B: [u64; 5] = [
        0x5555555555555555,
        0x3333333333333333,
        0x0F0F0F0F0F0F0F0F,
        0x00FF00FF00FF00FF,
        0x0000FFFF0000FFFF,
    ];
    const S: [u32; 5] = [1, 2, 4, 8, 16];
    let mut x = xlo as u64;
    let mut y = ylo as u64;
    for (&mask, &shift) in B.iter().zip(&S).rev() {
        x = (x | (x << shift)) & mask;
        y = (y | (y << shift)) & mask;
    }
    x | (y << 1)
}

/// The reverse of [`interleave64`]: even bits in the low half, odd bits in
/// the high half.
fn deinterleave64(interleaved: u64) -> u64 {
    const B: [u64; 6] = [
        0x5555555555555555,
        0x3333333333333333,
        0x0F0F0F0F0F0F0F0F,
        0x00FF00FF00FF00FF,
        0x0000FFFF0000FFFF,
        0x00000000FFFFFFFF,
    ];
    const S: [u32; 6] = [0, 1, 2, 4, 8, 16];
    let mut x = interleaved;
    let mut y = interleaved >> 1;
    for (&mask, &shift) in B.iter().zip(&S) {
        x = (x | (x >> shift)) & mask;
        y = (y | (y >> shift)) & mask;
    }
    x | (y << 32)
}

/// The WGS84/Mercator ranges positions are encoded in.
pub fn coord_range() -> (Range, Range) {
    (
        Range {
            min: LONG_MIN,
            max: LONG_MAX,
        },
        Range {
            min: LAT_MIN,
            max: LAT_MAX,
        },
    )
}

/// `geohashEncode`: None for a step out of 1..=32 or a position outside
/// the Mercator limits or the given ranges.
pub fn encode(
    long_range: Range,
    lat_range: Range,
    longitude: f64,
    latitude: f64,
    step: u8,
) -> Option<HashBits> {
    if step > 32 || step == 0 || lat_range.is_zero() || long_range.is_zero() {
        return None;
    }
    if !(LONG_MIN..=LONG_MAX).contains(&longitude) || !(LAT_MIN..=LAT_MAX).contains(&latitude) {
        return None;
    }
    if latitude < lat_range.min
        || latitude > lat_range.max
        || longitude < long_range.min
        || longitude > long_range.max
    {
        return None;
    }
    let mut lat_offset = (latitude - lat_range.min) / (lat_range.max - lat_range.min);
    let mut long_offset = (longitude - long_range.min) / (long_range.max - long_range.min);
    lat_offset *= (1u64 << step) as f64;
    long_offset *= (1u64 << step) as f64;
    Some(HashBits {
        bits: interleave64(lat_offset as u32, long_offset as u32),
        step,
    })
}

/// [`encode`] over the WGS84/Mercator ranges.
pub fn encode_wgs84(longitude: f64, latitude: f64, step: u8) -> Option<HashBits> {
    let (long_range, lat_range) = coord_range();
    encode(long_range, lat_range, longitude, latitude, step)
}

/// `geohashDecode`: the box of `hash`.
pub fn decode(long_range: Range, lat_range: Range, hash: HashBits) -> Option<Area> {
    if hash.is_zero() || lat_range.is_zero() || long_range.is_zero() {
        return None;
    }
    let step = hash.step as u32;
    let hash_sep = deinterleave64(hash.bits);
    let lat_scale = lat_range.max - lat_range.min;
    let long_scale = long_range.max - long_range.min;
    let ilato = hash_sep as u32;
    let ilono = (hash_sep >> 32) as u32;
    let cells = (1u64 << step) as f64;
    Some(Area {
        hash,
        latitude: Range {
            min: lat_range.min + (ilato as f64 / cells) * lat_scale,
            max: lat_range.min + (ilato.wrapping_add(1) as f64 / cells) * lat_scale,
        },
        longitude: Range {
            min: long_range.min + (ilono as f64 / cells) * long_scale,
            max: long_range.min + (ilono.wrapping_add(1) as f64 / cells) * long_scale,
        },
    })
}

/// The center of a box, clamped to the Mercator limits.
fn area_center(area: &Area) -> [f64; 2] {
    let lon = ((area.longitude.min + area.longitude.max) / 2.0).clamp(LONG_MIN, LONG_MAX);
    let lat = ((area.latitude.min + area.latitude.max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    [lon, lat]
}

/// Longitude and latitude of a 52-bit hash (the center of its box).
pub fn decode_to_long_lat(hash: HashBits) -> Option<[f64; 2]> {
    let (long_range, lat_range) = coord_range();
    decode(long_range, lat_range, hash).map(|area| area_center(&area))
}

/// C's `(uint64_t)` conversion of a double as x86-64 compilers emit it
/// (values from 2^63 go through a subtraction, everything unrepresentable
/// gives the "integer indefinite" pattern), so that any score decodes to
/// what Redis decodes it to.
pub fn c_double_to_u64(value: f64) -> u64 {
    const TWO_63: f64 = 9223372036854775808.0;
    fn cvttsd2si(v: f64) -> u64 {
        if v.is_nan() || !(-TWO_63..TWO_63).contains(&v) {
            0x8000_0000_0000_0000
        } else {
            v as i64 as u64
        }
    }
    if value.is_nan() || value < TWO_63 {
        cvttsd2si(value)
    } else {
        cvttsd2si(value - TWO_63) ^ 0x8000_0000_0000_0000
    }
}

/// The position a sorted set score stands for (`decodeGeohash`): every
/// score decodes to something, as in Redis.
pub fn decode_score(score: f64) -> [f64; 2] {
    let hash = HashBits {
        bits: c_double_to_u64(score),
        step: STEP_MAX,
    };
    decode_to_long_lat(hash).unwrap_or([0.0, 0.0])
}

/// The 52-bit score of a position, None outside the Mercator limits.
pub fn encode_score(longitude: f64, latitude: f64) -> Option<u64> {
    encode_wgs84(longitude, latitude, STEP_MAX).map(|hash| hash.align52())
}

/// The standard 11-character geohash of a score (GEOHASH): the position
/// re-encoded over latitudes -90..90, the 11th character always '0'.
pub fn geohash_string(score: f64) -> [u8; 11] {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let [lon, lat] = decode_score(score);
    let standard_lat = Range {
        min: -90.0,
        max: 90.0,
    };
    let standard_long = Range {
        min: -180.0,
        max: 180.0,
    };
    let bits = encode(standard_long, standard_lat, lon, lat, 26).map_or(0, |h| h.bits);
    let mut text = [b'0'; 11];
    for (i, c) in text.iter_mut().enumerate().take(10) {
        let index = (bits >> (52 - (i + 1) * 5)) & 0x1f;
        *c = ALPHABET[index as usize];
    }
    text
}

fn move_x(hash: &mut HashBits, d: i8) {
    if d == 0 {
        return;
    }
    let mut x = hash.bits & 0xaaaaaaaaaaaaaaaa;
    let y = hash.bits & 0x5555555555555555;
    let shift = 64 - hash.step as u32 * 2;
    let zz = 0x5555555555555555u64 >> shift;
    if d > 0 {
        x = x.wrapping_add(zz.wrapping_add(1));
    } else {
        x |= zz;
        x = x.wrapping_sub(zz.wrapping_add(1));
    }
    x &= 0xaaaaaaaaaaaaaaaau64 >> shift;
    hash.bits = x | y;
}

fn move_y(hash: &mut HashBits, d: i8) {
    if d == 0 {
        return;
    }
    let x = hash.bits & 0xaaaaaaaaaaaaaaaa;
    let mut y = hash.bits & 0x5555555555555555;
    let shift = 64 - hash.step as u32 * 2;
    let zz = 0xaaaaaaaaaaaaaaaau64 >> shift;
    if d > 0 {
        y = y.wrapping_add(zz.wrapping_add(1));
    } else {
        y |= zz;
        y = y.wrapping_sub(zz.wrapping_add(1));
    }
    y &= 0x5555555555555555u64 >> shift;
    hash.bits = x | y;
}

/// The 8 boxes around `hash` (wrapping around at the edges).
pub fn neighbors(hash: &HashBits) -> Neighbors {
    let moved = |dx: i8, dy: i8| {
        let mut h = *hash;
        move_x(&mut h, dx);
        move_y(&mut h, dy);
        h
    };
    Neighbors {
        east: moved(1, 0),
        west: moved(-1, 0),
        south: moved(0, -1),
        north: moved(0, 1),
        north_west: moved(-1, 1),
        north_east: moved(1, 1),
        south_east: moved(1, -1),
        south_west: moved(-1, -1),
    }
}

/// `geohashEstimateStepsByRadius`: the bits per coordinate of the boxes a
/// search of `range_meters` around latitude `lat` visits.
pub fn estimate_steps_by_radius(mut range_meters: f64, lat: f64) -> u8 {
    if range_meters == 0.0 {
        return 26;
    }
    let mut step: i32 = 1;
    while range_meters < MERCATOR_MAX {
        range_meters *= 2.0;
        step += 1;
    }
    step -= 2;
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u8
}

/// `geohashBoundingBox`: [min lon, min lat, max lon, max lat] of a shape.
pub fn bounding_box(shape: &Shape) -> [f64; 4] {
    let [longitude, latitude] = shape.center;
    let (height, width) = match shape.kind {
        ShapeKind::Radius(r) => (shape.conversion * r, shape.conversion * r),
        ShapeKind::Box { width, height } => (
            shape.conversion * (height / 2.0),
            shape.conversion * (width / 2.0),
        ),
    };
    let lat_delta = rad_deg(height / EARTH_RADIUS_IN_METERS);
    let long_delta_top =
        rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(latitude + lat_delta).cos());
    let long_delta_bottom =
        rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(latitude - lat_delta).cos());
    let southern = latitude < 0.0;
    let long_delta = if southern {
        long_delta_bottom
    } else {
        long_delta_top
    };
    [
        longitude - long_delta,
        latitude - lat_delta,
        longitude + long_delta,
        latitude + lat_delta,
    ]
}

/// `geohashCalculateAreasByShapeWGS84`: the center box and the neighbours
/// a search must visit.
pub fn areas_by_shape(shape: &Shape) -> SearchArea {
    let [min_lon, min_lat, max_lon, max_lat] = bounding_box(shape);
    let [longitude, latitude] = shape.center;
    let radius_meters = match shape.kind {
        ShapeKind::Radius(r) => r,
        ShapeKind::Box { width, height } => {
            ((width / 2.0) * (width / 2.0) + (height / 2.0) * (height / 2.0)).sqrt()
        }
    } * shape.conversion;
    let mut steps = estimate_steps_by_radius(radius_meters, latitude);
    let (long_range, lat_range) = coord_range();
    let locate = |steps: u8| {
        let hash = encode(long_range, lat_range, longitude, latitude, steps).unwrap_or_default();
        let around = neighbors(&hash);
        let area = decode(long_range, lat_range, hash).unwrap_or_default();
        (hash, around, area)
    };
    let (mut hash, mut around, mut area) = locate(steps);

    // Near the edge of the center box, a neighbour may not reach the far
    // side of the shape: use boxes twice as large then.
    let decode_box = |h: HashBits| decode(long_range, lat_range, h).unwrap_or_default();
    let north = decode_box(around.north);
    let south = decode_box(around.south);
    let east = decode_box(around.east);
    let west = decode_box(around.west);
    let decrease_step = north.latitude.max < max_lat
        || south.latitude.min > min_lat
        || east.longitude.max < max_lon
        || west.longitude.min > min_lon;
    if steps > 1 && decrease_step {
        steps -= 1;
        (hash, around, area) = locate(steps);
    }

    // Skip the neighbours the shape cannot reach.
    if steps >= 2 {
        let zero = HashBits::default();
        if area.latitude.min < min_lat {
            around.south = zero;
            around.south_west = zero;
            around.south_east = zero;
        }
        if area.latitude.max > max_lat {
            around.north = zero;
            around.north_east = zero;
            around.north_west = zero;
        }
        if area.longitude.min < min_lon {
            around.west = zero;
            around.south_west = zero;
            around.north_west = zero;
        }
        if area.longitude.max > max_lon {
            around.east = zero;
            around.south_east = zero;
            around.north_east = zero;
        }
    }
    SearchArea {
        hash,
        neighbors: around,
        area,
    }
}

/// The distance in meters along a meridian (`geohashGetLatDistance`).
pub fn lat_distance(lat1d: f64, lat2d: f64) -> f64 {
    EARTH_RADIUS_IN_METERS * (deg_rad(lat2d) - deg_rad(lat1d)).abs()
}

/// Haversine great circle distance in meters, as redis-server 7.0.15
/// computes it: on one meridian (`v == 0`) it takes the simpler
/// [`lat_distance`], which can differ from the haversine in the last bit.
pub fn distance(lon1d: f64, lat1d: f64, lon2d: f64, lat2d: f64) -> f64 {
    let lon1r = deg_rad(lon1d);
    let lon2r = deg_rad(lon2d);
    let v = ((lon2r - lon1r) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1d, lat2d);
    }
    let lat1r = deg_rad(lat1d);
    let lat2r = deg_rad(lat2d);
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_IN_METERS * a.sqrt().asin()
}

/// The distance from the center (x1, y1) to (x2, y2), if within `radius`
/// meters. A NaN distance (nearly antipodal points) is "within", as in C.
pub fn distance_if_in_radius(x1: f64, y1: f64, x2: f64, y2: f64, radius: f64) -> Option<f64> {
    let d = distance(x1, y1, x2, y2);
    if d > radius {
        None
    } else {
        Some(d)
    }
}

/// The distance from the center (x1, y1) of a `width_m` x `height_m`
/// box to (x2, y2), if the point is in the box (its distances to the
/// center along the parallel and the meridian are within half the sides).
pub fn distance_if_in_rectangle(
    width_m: f64,
    height_m: f64,
    x1: f64,
    y1: f64,
    x2: f64,
    y2: f64,
) -> Option<f64> {
    if lat_distance(y2, y1) > height_m / 2.0 {
        return None;
    }
    if distance(x2, y2, x1, y2) > width_m / 2.0 {
        return None;
    }
    Some(distance(x1, y1, x2, y2))
}

impl Shape {
    /// The distance in meters from the center to (lon, lat), if the point
    /// is inside the shape (`geoAppendIfWithinShape`).
    pub fn contains(&self, lon: f64, lat: f64) -> Option<f64> {
        let [x, y] = self.center;
        match self.kind {
            ShapeKind::Radius(r) => distance_if_in_radius(x, y, lon, lat, r * self.conversion),
            ShapeKind::Box { width, height } => distance_if_in_rectangle(
                width * self.conversion,
                height * self.conversion,
                x,
                y,
                lon,
                lat,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleave_round_trips() {
        for (x, y) in [
            (0u32, 0u32),
            (1, 0),
            (0, 1),
            (0x3ff_ffff, 0x155_5555),
            (u32::MAX, 7),
        ] {
            let z = interleave64(x, y);
            let back = deinterleave64(z);
            assert_eq!((back as u32, (back >> 32) as u32), (x, y));
        }
        assert_eq!(interleave64(1, 0), 1);
        assert_eq!(interleave64(0, 1), 2);
    }

    #[test]
    fn encodes_redis_documentation_examples() {
        // GEOADD Sicily 13.361389 38.115556 "Palermo" 15.087269 37.502669 "Catania"
        assert_eq!(encode_score(13.361389, 38.115556), Some(3479099956230698));
        assert_eq!(encode_score(15.087269, 37.502669), Some(3479447370796909));
        assert_eq!(encode_score(181.0, 0.0), None);
        assert_eq!(encode_score(0.0, 85.06), None);
        assert_eq!(&geohash_string(3479099956230698.0), b"sqc8b49rny0");
        assert_eq!(&geohash_string(3479447370796909.0), b"sqdtr74hyu0");
    }

    #[test]
    fn decodes_to_box_centers() {
        let [lon, lat] = decode_score(3479099956230698.0);
        assert_eq!(lon, 13.361389338970184);
        assert_eq!(lat, 38.1155563954963);
        // Redis's GEODIST Sicily Palermo Catania: 166274.1516 m.
        let [lon2, lat2] = decode_score(3479447370796909.0);
        assert_eq!(
            format!("{:.4}", distance(lon, lat, lon2, lat2)),
            "166274.1516"
        );
    }

    #[test]
    fn odd_scores_decode_like_c_casts() {
        assert_eq!(c_double_to_u64(-1.0), u64::MAX);
        assert_eq!(c_double_to_u64(1e300), 0);
        assert_eq!(c_double_to_u64(9.3e18), 9300000000000000000);
        assert_eq!(c_double_to_u64(f64::NAN), 1 << 63);
        // Out-of-range boxes clamp to the Mercator limits.
        let [lon, lat] = decode_score(-1.0);
        assert_eq!((lon, lat), (LONG_MAX, LAT_MAX));
    }

    #[test]
    fn neighbors_wrap_around() {
        let hash = encode_wgs84(179.99, 0.0, 4).unwrap();
        let around = neighbors(&hash);
        let (long_range, lat_range) = coord_range();
        let east = decode(long_range, lat_range, around.east).unwrap();
        assert_eq!(east.longitude.min, -180.0);
        let west = decode(long_range, lat_range, around.west).unwrap();
        let center = decode(long_range, lat_range, hash).unwrap();
        assert_eq!(west.longitude.max, center.longitude.min);
        assert_eq!(around.north.step, 4);
    }

    #[test]
    fn steps_follow_the_radius() {
        assert_eq!(estimate_steps_by_radius(0.0, 0.0), 26);
        assert_eq!(estimate_steps_by_radius(1.0, 0.0), 24);
        assert_eq!(estimate_steps_by_radius(1000.0, 0.0), 14);
        assert_eq!(estimate_steps_by_radius(1000.0, 70.0), 13);
        assert_eq!(estimate_steps_by_radius(1000.0, -85.0), 12);
        assert_eq!(estimate_steps_by_radius(1e8, 0.0), 1);
    }

    #[test]
    fn search_areas_cover_the_shape() {
        let shape = Shape {
            center: [15.0, 37.0],
            conversion: 1000.0,
            kind: ShapeKind::Radius(200.0),
        };
        let search = areas_by_shape(&shape);
        let [min_lon, min_lat, max_lon, max_lat] = bounding_box(&shape);
        let (long_range, lat_range) = coord_range();
        let boxes: Vec<Area> = search
            .boxes()
            .iter()
            .filter(|h| !h.is_zero())
            .map(|h| decode(long_range, lat_range, *h).unwrap())
            .collect();
        let lo_lon = boxes
            .iter()
            .map(|a| a.longitude.min)
            .fold(f64::MAX, f64::min);
        let hi_lat = boxes
            .iter()
            .map(|a| a.latitude.max)
            .fold(f64::MIN, f64::max);
        assert!(lo_lon <= min_lon && hi_lat >= max_lat);
        assert!(
            boxes
                .iter()
                .map(|a| a.longitude.max)
                .fold(f64::MIN, f64::max)
                >= max_lon
        );
        assert!(
            boxes
                .iter()
                .map(|a| a.latitude.min)
                .fold(f64::MAX, f64::min)
                <= min_lat
        );
        let (min, max) = search.hash.score_range();
        assert!(min < max && max <= 1 << 52);
    }

    #[test]
    fn rectangle_and_radius_tests() {
        let shape = Shape {
            center: [0.0, 0.0],
            conversion: 1.0,
            kind: ShapeKind::Box {
                width: 200_000.0,
                height: 100_000.0,
            },
        };
        assert!(shape.contains(0.8, 0.0).is_some());
        assert!(shape.contains(0.0, 0.8).is_none());
        assert!(shape.contains(0.95, 0.0).is_none());
        let circle = Shape {
            kind: ShapeKind::Radius(100.0),
            conversion: 1000.0,
            ..shape
        };
        assert!(circle.contains(0.8, 0.0).is_some());
        assert!(circle.contains(0.7, 0.7).is_none());
    }
}
