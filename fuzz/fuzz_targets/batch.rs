//! Record-batch validation.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ringlet_server::fuzzing::batch_target(data);
});
