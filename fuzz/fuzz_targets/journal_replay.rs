//! Journal replay on arbitrary files: raw bytes (after the magic, or not),
//! or records whose bodies are arbitrary but framed with a right length
//! and CRC (so the fuzzer reaches the record parser and the effects), some
//! framed wrong. Checks: no panic; the torn-record rule (reading stops at
//! the first torn or corrupt record: the records before it, and only they,
//! count, exactly as if the file ended there); bytes after a whole file
//! never change what was read.
#![no_main]

use arbitrary::Arbitrary;
use larder::writebehind::journal::{check_file, frame_record, FILE_HEADER};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Input<'a> {
    Raw { magic: bool, bytes: &'a [u8] },
    Records(Vec<Framed>),
}

#[derive(Arbitrary, Debug)]
struct Framed {
    body: Vec<u8>,
    /// 0: framed right; otherwise a byte of the frame is flipped, or the
    /// record is cut short.
    damage: u8,
}

fuzz_target!(|input: Input<'_>| {
    let data = match input {
        Input::Raw { magic, bytes } => {
            let mut data = Vec::new();
            if magic {
                data.extend_from_slice(FILE_HEADER);
            }
            data.extend_from_slice(bytes);
            data
        }
        Input::Records(records) => {
            let mut data = FILE_HEADER.to_vec();
            for framed in records {
                let mut record = frame_record(&framed.body);
                match framed.damage % 8 {
                    1 => {
                        let at = framed.damage as usize % record.len();
                        record[at] ^= 0x5A;
                    }
                    2 => record.truncate(framed.damage as usize % record.len()),
                    _ => {}
                }
                data.extend_from_slice(&record);
            }
            data
        }
    };
    let whole = check_file(&data);
    assert!(whole.valid_bytes <= data.len());
    assert_eq!(
        whole.error.is_none(),
        whole.valid_bytes == data.len()
            || data.is_empty()
            || (data.len() < FILE_HEADER.len() && FILE_HEADER.starts_with(&data))
    );
    // Only the whole records before the first bad one count.
    let prefix = check_file(&data[..whole.valid_bytes]);
    assert_eq!(prefix.error, None);
    assert_eq!(prefix.records, whole.records);
    assert_eq!(prefix.keys, whole.keys);
    assert_eq!(prefix.flushes, whole.flushes);
    assert_eq!(prefix.states, whole.states);
    // A torn tail after whole records is ignored.
    if whole.valid_bytes >= FILE_HEADER.len() {
        let mut torn = data[..whole.valid_bytes].to_vec();
        torn.extend_from_slice(&[0xFF; 5]);
        let read = check_file(&torn);
        assert!(read.error.is_some());
        assert_eq!(read.states, whole.states);
    }
});
