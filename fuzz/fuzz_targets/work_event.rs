#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| moip_fuzz::work_event(data));
