//! Recovery of a segment (and its index) left by a crash: the first 4 bytes say how much of the
//! rest is the index.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let split = (u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize) % (data.len() - 3);
    let (index, log) = data[4..].split_at(split.min(data.len() - 4));
    let dir = std::env::temp_dir().join(format!("ringlet-fuzz-recovery-{}", std::process::id()));
    ringlet_server::fuzzing::recovery_target(&dir, log, index);
});
