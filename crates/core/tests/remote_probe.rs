//! Media read in ranges is probed as the same bytes read from a file are:
//! same answer for any bytes, in few ranges.

use std::io::Cursor;
use std::path::Path;

use kling_core::probe::probe_reader;
use kling_core::probe::remote::{MAX_RANGES, RangeProbe, Step};
use proptest::prelude::*;

/// Probes `bytes` as a server honouring ranges would serve them: the
/// answer (Debug, to compare errors too), and the ranges asked for.
fn in_ranges(bytes: &[u8]) -> (Result<String, String>, u32) {
    let mut probe = RangeProbe::new();
    let total = bytes.len() as u64;
    loop {
        match probe.step() {
            Step::Fetch(range) => {
                assert!(range.start < range.end, "an empty range: {range:?}");
                let start = usize::try_from(range.start.min(total)).unwrap();
                let end = usize::try_from(range.end.min(total)).unwrap();
                probe.supply(range.start, bytes[start..end].to_vec(), total);
            }
            Step::Done(result) => return (Ok(format!("{result:?}")), probe.ranges()),
            Step::Unchecked(why) => return (Err(why), probe.ranges()),
            _ => unreachable!(),
        }
    }
}

fn fixtures() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e != "sh"))
        .collect();
    names.sort();
    names
        .iter()
        .map(|path| std::fs::read(path).unwrap())
        .collect()
}

#[test]
fn every_fixture_probes_in_ranges_as_from_its_file() {
    for bytes in fixtures() {
        let local = format!("{:?}", probe_reader(Cursor::new(&bytes)));
        let (remote, ranges) = in_ranges(&bytes);
        assert_eq!(remote, Ok(local));
        // Each fixture is smaller than the first range, or close to it.
        assert!(ranges <= 2, "{ranges} ranges for {} bytes", bytes.len());
    }
}

#[test]
fn empty_media_is_empty_in_ranges_too() {
    let (remote, _) = in_ranges(&[]);
    assert_eq!(
        remote,
        Ok(format!("{:?}", probe_reader(Cursor::new(&[][..]))))
    );
}

/// `file` with a `free` box of `padding` bytes after its first box when it
/// is an MP4 (the boxes after it then lie past the first range), or
/// `padding` zeros after it.
fn spread(file: &[u8], padding: usize) -> Vec<u8> {
    let first = file
        .get(..4)
        .map(|size| u32::from_be_bytes(size.try_into().unwrap()) as usize)
        .filter(|size| *size >= 8 && *size <= file.len() && file.get(4..8) == Some(b"ftyp"));
    let Some(first) = first else {
        let mut padded = file.to_vec();
        padded.extend(std::iter::repeat_n(0u8, padding));
        return padded;
    };
    let mut spread = file[..first].to_vec();
    spread.extend_from_slice(&u32::try_from(padding + 8).unwrap().to_be_bytes());
    spread.extend_from_slice(b"free");
    spread.extend(std::iter::repeat_n(0u8, padding));
    spread.extend_from_slice(&file[first..]);
    spread
}

#[test]
fn every_fixture_spread_past_the_first_range_probes_in_two_or_three() {
    for file in fixtures() {
        let bytes = spread(&file, 5 << 20);
        let local = format!("{:?}", probe_reader(Cursor::new(&bytes)));
        let (remote, ranges) = in_ranges(&bytes);
        assert_eq!(remote, Ok(local));
        assert!(ranges <= 3, "{ranges} ranges");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Damaged copies of every fixture, cut anywhere and with bytes
    /// changed anywhere: the same answer, or "unchecked" only when the
    /// headers are spread over more ranges than are asked for.
    #[test]
    fn damaged_media_probes_in_ranges_as_from_its_file(
        pick in 0usize..64,
        cut in proptest::option::of(0usize..200_000),
        changes in proptest::collection::vec((0usize..200_000, any::<u8>()), 0..12),
        padding in 0usize..(3 << 16),
    ) {
        let all = fixtures();
        let mut bytes = spread(&all[pick % all.len()], padding);
        for (at, value) in changes {
            if !bytes.is_empty() {
                let at = at % bytes.len();
                bytes[at] = value;
            }
        }
        if let Some(cut) = cut {
            bytes.truncate(cut % (bytes.len() + 1));
        }
        let local = format!("{:?}", probe_reader(Cursor::new(&bytes)));
        let (remote, ranges) = in_ranges(&bytes);
        prop_assert!(ranges <= MAX_RANGES);
        match remote {
            Ok(remote) => prop_assert_eq!(remote, local),
            Err(why) => prop_assert!(ranges == MAX_RANGES, "{}", why),
        }
    }

    /// Any bytes at all.
    #[test]
    fn any_bytes_probe_in_ranges_as_from_a_file(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let local = format!("{:?}", probe_reader(Cursor::new(&bytes)));
        let (remote, _) = in_ranges(&bytes);
        prop_assert_eq!(remote, Ok(local));
    }
}
