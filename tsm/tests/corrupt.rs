//! Damaged files, made from real ones influxd 1.6 wrote: truncated or altered TSM files and
//! WAL segments give `Error::Corrupt` naming the file, never a panic and never other points.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use influx2td_testkit::{Influxd, InfluxdOptions};
use influx2td_tsm::{Error, Points, Shard, TsmFile, wal};

/// A TSM file and a WAL segment as influxd wrote them: (tsm bytes, wal bytes).
fn real_files() -> Option<(Vec<u8>, Vec<u8>)> {
    let mut influxd = Influxd::start_with(InfluxdOptions {
        cache_snapshot_write_cold_duration: Some("1s".into()),
        ..InfluxdOptions::default()
    })?;
    influxd.query("CREATE DATABASE db");
    let lines: Vec<String> = (0..3000i64)
        .map(|index| {
            format!(
                "m,host=h{} f={},i={}i,s=\"v{}\",b={} {}",
                index % 3,
                index as f64 / 3.0,
                index * index,
                index % 7,
                index % 2 == 0,
                1_600_000_000_000_000_000 + index * 1_000_003
            )
        })
        .collect();
    influxd.write("db", &lines.join("\n"));
    let shard = influxd.data_dir().join("db/autogen/1");
    let tsm = wait_for_file(&shard, "tsm");
    // Then more points that stay in the WAL: the cold duration has passed, so write and kill.
    influxd.write(
        "db",
        "m,host=h0 f=1.5 1600000000000000001\nm,host=h1 i=7i 1600000000000000002",
    );
    influxd.stop();
    let wal = wait_for_file(&influxd.wal_dir().join("db/autogen/1"), "wal");
    Some((
        std::fs::read(tsm).expect("tsm file"),
        std::fs::read(wal).expect("wal segment"),
    ))
}

fn wait_for_file(directory: &Path, extension: &str) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = std::fs::read_dir(directory).ok().and_then(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .find(|path| {
                    path.extension().is_some_and(|found| found == extension)
                        && path.metadata().is_ok_and(|metadata| metadata.len() > 0)
                })
        });
        if let Some(found) = found {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "no .{extension} file in {}",
            directory.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Each key with its blocks.
type Blocks = Vec<(Vec<u8>, Vec<Points>)>;

/// Every key's every block, or the first error.
fn read_all(file: &TsmFile) -> Result<Blocks, Error> {
    let keys: Vec<Vec<u8>> = file.keys().map(|(key, _)| key.to_vec()).collect();
    let mut all = Vec::new();
    for key in keys {
        let (field_type, entries) = file.entries(&key)?.expect("listed key");
        let blocks = entries
            .iter()
            .map(|entry| file.read_block(field_type, entry))
            .collect::<Result<Vec<_>, _>>()?;
        all.push((key, blocks));
    }
    Ok(all)
}

fn assert_corrupt_naming(error: &Error, name: &str) {
    assert!(matches!(error, Error::Corrupt { .. }), "{error}");
    assert!(error.to_string().contains(name), "{error}");
    assert!(!error.is_retryable());
}

#[test]
fn damaged_tsm_and_wal_files_are_corrupt_and_named() {
    let Some((tsm, segment)) = real_files() else {
        return;
    };
    let name = "000000001-000000001.tsm";
    let good = read_all(&TsmFile::from_bytes(name, tsm.clone()).expect("the real file"))
        .expect("its blocks");
    assert_eq!(good.len(), 3 * 4);
    let index_offset = u64::from_be_bytes(tsm[tsm.len() - 8..].try_into().unwrap()) as usize;

    // Cut short anywhere: an error, never fewer points.
    let step = (tsm.len() / 400).max(1);
    for length in (0..tsm.len())
        .step_by(step)
        .chain([tsm.len() - 1, tsm.len() - 8])
    {
        let result =
            TsmFile::from_bytes(name, tsm[..length].to_vec()).and_then(|file| read_all(&file));
        match result {
            Err(error) => assert_corrupt_naming(&error, name),
            Ok(_) => panic!("a TSM file cut to {length} of {} bytes was read", tsm.len()),
        }
    }

    // One byte changed in the header, a block, or the footer: an error. (A changed byte
    // inside a key name in the index is undetectable: TSM has no index checksum.)
    let mut positions: Vec<usize> = (0..index_offset)
        .step_by((index_offset / 300).max(1))
        .collect();
    positions.extend([0, 4, tsm.len() - 1, tsm.len() - 5]);
    for position in positions {
        let mut damaged = tsm.clone();
        damaged[position] ^= 0x5a;
        match TsmFile::from_bytes(name, damaged).and_then(|file| read_all(&file)) {
            Err(error) => assert_corrupt_naming(&error, name),
            Ok(read) => panic!(
                "a change at byte {position} went unnoticed ({} keys)",
                read.len()
            ),
        }
    }
    // Anywhere in the index: an error or the same points, never a panic.
    for position in (index_offset..tsm.len()).step_by(7) {
        let mut damaged = tsm.clone();
        damaged[position] ^= 0x01;
        if let Err(error) = TsmFile::from_bytes(name, damaged).and_then(|file| read_all(&file)) {
            assert_corrupt_naming(&error, name);
        }
    }

    // The same through a shard directory on disk: the error names the file's path.
    let directory = tempfile::tempdir().unwrap();
    std::fs::write(directory.path().join(name), &tsm[..tsm.len() / 2]).unwrap();
    let error = Shard::open(directory.path(), None).unwrap_err();
    assert_corrupt_naming(&error, &directory.path().join(name).display().to_string());

    // WAL: a torn last entry ends the segment (as influxd's replay truncates it); a complete
    // entry with damaged contents is corrupt.
    let wal_name = Path::new("_00001.wal");
    let whole = wal::parse(wal_name, &segment).expect("the real segment");
    assert!(!whole.entries.is_empty());
    assert_eq!(whole.torn_tail_bytes, 0);
    let torn = wal::parse(wal_name, &segment[..segment.len() - 3]).expect("a torn tail");
    assert_eq!(torn.entries.len(), whole.entries.len() - 1);
    let mut damaged = segment.clone();
    damaged[0] = 9;
    assert_corrupt_naming(&wal::parse(wal_name, &damaged).unwrap_err(), "_00001.wal");
    for position in (5..segment.len()).step_by(3) {
        let mut damaged = segment.clone();
        damaged[position] ^= 0xff;
        // Snappy has no checksum: a change is caught by the entry's structure or not at all,
        // but never panics.
        if let Err(error) = wal::parse(wal_name, &damaged) {
            assert_corrupt_naming(&error, "_00001.wal");
        }
    }
}

#[test]
fn a_file_that_vanished_is_retryable() {
    let directory = tempfile::tempdir().unwrap();
    let error = TsmFile::open(&directory.path().join("000000001-000000001.tsm")).unwrap_err();
    assert!(
        matches!(error, Error::Io { .. }) && error.is_retryable(),
        "{error}"
    );
    assert!(
        error.to_string().contains("000000001-000000001.tsm"),
        "{error}"
    );
    let error = Shard::open(&directory.path().join("gone"), None).unwrap_err();
    assert!(error.is_retryable(), "{error}");
}
