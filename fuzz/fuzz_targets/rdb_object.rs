//! RDB values from arbitrary bytes: `read_object` of any type byte over
//! any body must return a value or an error, never panic, loop or allocate
//! beyond its input; a value it accepts writes back to bytes it reads
//! again, and that value writes the same bytes (DUMP of a RESTORE of a
//! DUMP is the DUMP).
#![no_main]

use larder::rdb::{read_object, write_object, Reader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&type_byte, body)) = data.split_first() else {
        return;
    };
    let mut r = Reader::new(body);
    let Ok(Some(value)) = read_object(&mut r, type_byte, 0) else {
        return;
    };
    assert!(r.position() <= body.len());
    let mut out = Vec::new();
    write_object(&mut out, value.view(), true);
    let mut again = Reader::new(&out[1..]);
    let back = read_object(&mut again, out[0], 0)
        .expect("what we wrote reads back")
        .expect("not empty");
    let mut rewritten = Vec::new();
    write_object(&mut rewritten, back.view(), true);
    assert_eq!(rewritten, out);
});
