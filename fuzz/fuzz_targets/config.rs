//! The job loader: any text as the job file ends in a job or in problems naming keys.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut layers = influx2td_config::Layers::default();
    if layers.toml_text(&text, "fuzz.toml").is_ok() {
        let _ = influx2td_config::validate(layers);
    }
});
