//! HyperLogLog values from arbitrary bytes: a valid header (sparse or
//! dense) followed by any body, read and changed by every operation of
//! `larder::hyperloglog`. Nothing may panic or read out of bounds, a value
//! found valid must stay valid after an add, and where the sparse opcodes
//! decode, the dense form must count the same.
#![no_main]

use arbitrary::Arbitrary;
use larder::hyperloglog as hll;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    dense: bool,
    body: Vec<u8>,
    elements: Vec<Vec<u8>>,
    registers: Vec<(u16, u8)>,
    sparse_max_bytes: u16,
}

fuzz_target!(|input: Input| {
    let mut value = b"HYLL".to_vec();
    value.push(if input.dense { hll::DENSE } else { hll::SPARSE });
    value.extend_from_slice(&[0; 11]);
    value.extend_from_slice(&input.body);
    if input.dense {
        value.resize(hll::DENSE_SIZE, 0);
    }
    assert!(hll::is_hll(&value));
    let max_bytes = input.sparse_max_bytes as u64;

    let counted = hll::count(&value);
    let mut max = Box::new([0u8; hll::REGISTERS]);
    let merged = hll::merge_into(&mut max, &value);
    assert_eq!(counted.is_ok(), merged.is_ok());
    if let Ok(card) = counted {
        assert_eq!(card, hll::count_registers(&max));
    }
    if !input.dense {
        let _ = hll::decode_sparse(&value);
    }
    let mut dense = value.clone();
    if hll::sparse_to_dense(&mut dense).is_ok() {
        assert_eq!(hll::count(&dense), counted);
        assert_eq!(hll::dense_registers(&dense), max.to_vec());
    }

    let mut changed = value.clone();
    let mut ok = true;
    for element in &input.elements {
        if hll::add(&mut changed, element, max_bytes).is_err() {
            ok = false;
            break;
        }
    }
    for &(index, count) in &input.registers {
        if !ok {
            break;
        }
        let index = index as usize % hll::REGISTERS;
        let count = count % 64;
        ok = hll::set_register(&mut changed, index, count, max_bytes).is_ok();
    }
    assert!(hll::is_hll(&changed));
    if ok && counted.is_ok() {
        // A valid value stays valid through adds.
        assert!(hll::count(&changed).is_ok());
    }
});
