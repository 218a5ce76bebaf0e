//! One request frame (without its size prefix) through the broker's dispatcher.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ringlet_server::fuzzing::RequestTarget;
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    static TARGET: OnceLock<(RequestTarget, std::path::PathBuf)> = OnceLock::new();
    let (t, _) = TARGET.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ringlet-fuzz-request-{}", std::process::id()));
        (RequestTarget::new(&dir), dir)
    });
    t.run(vec![data.to_vec()]);
});
