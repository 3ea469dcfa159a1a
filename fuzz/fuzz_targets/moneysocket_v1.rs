#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| moip_fuzz::moneysocket_v1(data));
