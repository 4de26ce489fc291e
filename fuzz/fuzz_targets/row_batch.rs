//! A row batch off the bus, as the writer takes it: protobuf decode, the columns it needs, the
//! DDL, the conversion and the INSERT statements. Any bytes end in statements or a refusal.
#![no_main]

use influx2td_proto::{Message, pb};
use influx2td_writer::Precision;
use influx2td_writer::convert::{convert, needs};
use influx2td_writer::schema::plan;
use influx2td_writer::sql::InsertBuilder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(batch) = pb::RowBatch::decode_checked(data) else {
        return;
    };
    let needs = needs(&batch, None);
    let (_, schema) = plan("db", "cpu", None, &needs);
    let converted = convert(&batch, &schema, Precision::Nanoseconds);
    let mut builder = InsertBuilder::new("db", "cpu", 100);
    for table in &converted.tables {
        builder.add(table);
    }
    let _ = builder.finish();
});
