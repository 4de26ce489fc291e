//! The InfluxQL MessagePack answer decoder: any bytes, cut anywhere, end in batches or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = influx2td_reader::recorded::influxql_answer(
        influx2td_fuzz::client(),
        influx2td_fuzz::schema(),
        influx2td_fuzz::window(),
        1024,
        influx2td_fuzz::parts(data),
    );
});
