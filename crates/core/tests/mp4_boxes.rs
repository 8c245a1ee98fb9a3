//! The MP4 reader on files built box by box: every structure the probe
//! must handle, and properties over generated and mutated box trees.

mod support;

use std::io::Cursor;
use std::time::Duration;

use kling_core::probe::{self, Container, ProbeError, Probed, VideoInfo};
use proptest::prelude::*;
use support::*;

fn probe_bytes(bytes: &[u8]) -> Result<VideoInfo, ProbeError> {
    match probe::probe_reader(Cursor::new(bytes))? {
        Probed::Video(video) => Ok(video),
        Probed::Image(image) => panic!("an image: {image:?}"),
    }
}

fn moov(mvhd_version: u8, timescale: u32, duration: u64, tracks: &[TrackSpec]) -> Vec<u8> {
    let mut payload = mvhd(mvhd_version, timescale, duration);
    for t in tracks {
        payload.extend(trak(t));
    }
    bx(b"moov", &payload)
}

/// `ftyp`, `moov`, then an `mdat` of `media` bytes.
fn faststart(moov: &[u8], media: usize) -> Vec<u8> {
    [ftyp(b"isom"), moov.to_vec(), bx(b"mdat", &vec![0; media])].concat()
}

/// Describes a probe result as `WxH rot R D.DDD s` or the error.
fn describe(bytes: &[u8]) -> String {
    match probe_bytes(bytes) {
        Ok(v) => {
            let d = v.duration;
            let ms = format!("{}.{:03} s", d.as_secs(), d.subsec_millis());
            match v.video {
                Some(t) => format!("{}x{} rot {} {ms}", t.width, t.height, t.rotation),
                None => format!("no video {ms}"),
            }
        }
        Err(e) => format!("error: {e}"),
    }
}

#[test]
fn versions_zero_and_one_of_every_header() {
    for version in [0, 1] {
        let track = TrackSpec {
            version,
            duration: 96_000,
            ..TrackSpec::video(1280, 720)
        };
        let file = faststart(&moov(version, 600, 4_500, &[track]), 100);
        assert_eq!(
            describe(&file),
            "1280x720 rot 0 7.500 s",
            "version {version}"
        );
    }
    // Version 1 carries 64-bit durations.
    let file = faststart(
        &moov(
            1,
            1_000,
            u64::from(u32::MAX) + 1_000,
            &[TrackSpec::video(720, 720)],
        ),
        0,
    );
    assert_eq!(describe(&file), "720x720 rot 0 4294968.295 s");
}

#[test]
fn moov_after_mdat_and_large_sizes() {
    let movie = moov(0, 1_000, 5_000, &[TrackSpec::video(1920, 1080)]);
    let at_end = [ftyp(b"isom"), bx(b"mdat", &[0; 5000]), movie.clone()].concat();
    assert_eq!(describe(&at_end), "1920x1080 rot 0 5.000 s");

    let largesize = [
        ftyp(b"isom"),
        bx64(b"mdat", &[0; 300]),
        bx64(b"moov", &movie[8..]),
    ]
    .concat();
    assert_eq!(describe(&largesize), "1920x1080 rot 0 5.000 s");

    // A size-0 box runs to the end of the file.
    let mut open_ended = [ftyp(b"isom"), movie.clone(), bx(b"mdat", &[7; 999])].concat();
    let mdat = open_ended.len() - 999 - 8;
    open_ended[mdat..mdat + 4].copy_from_slice(&0u32.to_be_bytes());
    assert_eq!(describe(&open_ended), "1920x1080 rot 0 5.000 s");

    // QuickTime files may start with `wide` and have no `ftyp`.
    let quicktime = [bx(b"wide", &[]), bx(b"mdat", &[0; 10]), movie].concat();
    let info = probe_bytes(&quicktime).unwrap();
    assert_eq!((info.container, info.brand), (Container::QuickTime, None));
}

#[test]
fn rotation_and_resolution_limits() {
    for (quarter_turns, expected) in [
        (0, "1280x720 rot 0"),
        (1, "720x1280 rot 90"),
        (2, "1280x720 rot 180"),
        (3, "720x1280 rot 270"),
    ] {
        let track = TrackSpec {
            quarter_turns,
            ..TrackSpec::video(1280, 720)
        };
        let file = faststart(&moov(0, 1_000, 4_000, &[track]), 0);
        assert_eq!(describe(&file), format!("{expected} 4.000 s"));
    }
    // A zero tkhd size falls back to the sample entry's.
    let mut track = TrackSpec::video(0, 0);
    track.width = 0;
    let mut file = faststart(&moov(0, 1_000, 4_000, &[track]), 0);
    let avc1 = file.windows(4).position(|w| w == b"avc1").unwrap();
    file[avc1 + 4 + 24..avc1 + 4 + 28].copy_from_slice(&[0x03, 0x20, 0x02, 0x58]); // 800x600
    assert_eq!(describe(&file), "800x600 rot 0 4.000 s");
}

#[test]
fn the_first_video_track_is_the_one_measured() {
    let audio = TrackSpec {
        id: 1,
        handler: *b"soun",
        width: 0,
        height: 0,
        ..TrackSpec::video(0, 0)
    };
    let video = TrackSpec {
        id: 2,
        ..TrackSpec::video(2160, 2160)
    };
    let file = faststart(&moov(0, 1_000, 3_000, &[audio.clone(), video]), 0);
    assert_eq!(describe(&file), "2160x2160 rot 0 3.000 s");
    let file = faststart(&moov(0, 1_000, 3_000, &[audio]), 0);
    assert_eq!(describe(&file), "no video 3.000 s");
}

#[test]
fn fragmented_durations() {
    let track = TrackSpec {
        duration: 0,
        samples: vec![],
        timescale: 12_800,
        ..TrackSpec::video(1280, 720)
    };
    let with_mvex = |mvex_children: Vec<u8>| {
        let mut payload = mvhd(0, 1_000, 0);
        payload.extend(trak(&track));
        payload.extend(bx(b"mvex", &mvex_children));
        bx(b"moov", &payload)
    };
    // Fragments: 2 x 25 samples of 512 units at 12,800/s = 2 s.
    let fragments = [
        moof(1, 25, 512, true),
        bx(b"mdat", &[0; 10]),
        moof(1, 25, 512, false),
        bx(b"mdat", &[0; 10]),
    ]
    .concat();
    let from_fragments = [ftyp(b"iso5"), with_mvex(trex(1, 0)), fragments.clone()].concat();
    assert_eq!(describe(&from_fragments), "1280x720 rot 0 2.000 s");

    // trex defaults apply when tfhd gives none.
    let mut trex_default = fragments.clone();
    let flags_at = trex_default.windows(4).rposition(|w| w == b"tfhd").unwrap() + 4;
    trex_default[flags_at..flags_at + 4].copy_from_slice(&0x02_0000u32.to_be_bytes());
    // The tfhd default duration field is now read as nothing, so the box
    // still parses; trex says 1,024 units per sample: 1 s + 2 s = 3 s.
    let file = [ftyp(b"iso5"), with_mvex(trex(1, 1_024)), trex_default].concat();
    assert_eq!(describe(&file), "1280x720 rot 0 3.000 s");

    // mehd, in version 0 or 1, is the total and wins over the fragments.
    for version in [0, 1] {
        let file = [
            ftyp(b"iso5"),
            with_mvex([trex(1, 0), mehd(version, 9_500)].concat()),
            fragments.clone(),
        ]
        .concat();
        assert_eq!(describe(&file), "1280x720 rot 0 9.500 s", "mehd v{version}");
        assert!(probe_bytes(&file).unwrap().fragmented);
    }
}

#[test]
fn damaged_files_are_named_as_such() {
    let movie = moov(0, 1_000, 4_000, &[TrackSpec::video(1280, 720)]);
    let good = faststart(&movie, 2_000);
    let header_at = good.len() - 2_008; // where the mdat header starts
    let cut_moov = [
        ftyp(b"isom"),
        bx(b"mdat", &[0; 50]),
        movie[..movie.len() - 10].to_vec(),
    ]
    .concat();
    let truncated = |what: &str, end: usize, len: usize| {
        format!(
            "error: truncated: {what} ends at byte {end} but the file has {len} bytes (an incomplete copy or download?)"
        )
    };
    for (case, bytes, expected) in [
        (
            "cut in mdat",
            good[..good.len() - 1].to_vec(),
            truncated("the mdat box", good.len(), good.len() - 1),
        ),
        (
            "cut in moov",
            cut_moov.clone(),
            truncated("the moov box", cut_moov.len() + 10, cut_moov.len()),
        ),
        (
            "cut in a header",
            good[..header_at + 5].to_vec(),
            truncated("a box header", header_at + 8, header_at + 5),
        ),
        (
            "no moov",
            [ftyp(b"isom"), bx(b"mdat", &[0; 10])].concat(),
            "error: no moov box: the file has no index (a recording that was never finished?)"
                .to_owned(),
        ),
        (
            "child overruns moov",
            [
                ftyp(b"isom"),
                bx(b"moov", &[0, 0, 1, 0, b't', b'r', b'a', b'k']),
            ]
            .concat(),
            "error: damaged: box \"trak\" inside moov declares 256 bytes but 8 remain".to_owned(),
        ),
        (
            "short mvhd",
            [ftyp(b"isom"), bx(b"moov", &full(b"mvhd", 0, 0, &[0; 6]))].concat(),
            "error: damaged: mvhd box is 10 bytes, too short for its fields".to_owned(),
        ),
        (
            "zero timescale",
            [ftyp(b"isom"), moov(0, 0, 4_000, &[])].concat(),
            "error: damaged: mvhd has a timescale of 0".to_owned(),
        ),
        (
            "box smaller than its header",
            [ftyp(b"isom"), vec![0, 0, 0, 4, b'f', b'r', b'e', b'e']].concat(),
            "error: damaged: box \"free\" at offset 20 declares 4 bytes, less than its own header"
                .to_owned(),
        ),
        (
            "moov without mvhd",
            [
                ftyp(b"isom"),
                bx(b"moov", &trak(&TrackSpec::video(1280, 720))),
            ]
            .concat(),
            "error: damaged: moov has no mvhd (movie header)".to_owned(),
        ),
    ] {
        assert_eq!(describe(&bytes), expected, "{case}");
    }
}

#[test]
fn oversized_boxes_are_refused_before_reading() {
    // A 64-bit size past the end is a truncation, found without allocating.
    let mut claim = ftyp(b"isom");
    claim.extend_from_slice(&1u32.to_be_bytes());
    claim.extend_from_slice(b"moov");
    claim.extend_from_slice(&(u64::MAX / 2).to_be_bytes());
    let end = u64::MAX / 2 + 20; // the moov box starts after the 20-byte ftyp
    assert_eq!(
        describe(&claim),
        format!(
            "error: truncated: the moov box ends at byte {end} but the file has 36 bytes (an incomplete copy or download?)"
        )
    );

    // A whole moov larger than the cap is refused, not read.
    let big = 17 << 20;
    let file = [ftyp(b"isom"), bx(b"moov", &vec![0; big])].concat();
    assert_eq!(
        describe(&file),
        format!("error: the moov box is {big} bytes, more than the 16777216 bytes read for it")
    );
}

#[test]
fn many_tiny_boxes_stop_at_the_cap() {
    let file: Vec<u8> = std::iter::once(ftyp(b"isom"))
        .chain(std::iter::repeat_n(bx(b"free", &[]), 100_001))
        .flatten()
        .collect();
    assert_eq!(
        describe(&file),
        "error: damaged: more than 100000 top-level boxes"
    );
}

/// A valid file with every variation the reader must handle.
fn any_valid_file() -> impl Strategy<Value = (Vec<u8>, u64, u32, u32, u8)> {
    (
        0u8..2,
        1u32..100_000,
        0u64..10_000_000,
        16u32..4_096,
        16u32..4_096,
        0u8..4,
        any::<bool>(),
        any::<bool>(),
        0usize..64,
    )
        .prop_map(
            |(version, timescale, duration, width, height, turns, moov_last, large, media)| {
                let track = TrackSpec {
                    version,
                    quarter_turns: turns,
                    ..TrackSpec::video(width, height)
                };
                let movie = moov(version, timescale, duration, &[track]);
                let mdat = if large {
                    bx64(b"mdat", &vec![1; media])
                } else {
                    bx(b"mdat", &vec![1; media])
                };
                let file = if moov_last {
                    [ftyp(b"mp42"), mdat, movie].concat()
                } else {
                    [ftyp(b"mp42"), movie, mdat].concat()
                };
                let expected_nanos = u128::from(duration) * 1_000_000_000 / u128::from(timescale);
                (
                    file,
                    u64::try_from(expected_nanos).unwrap(),
                    width,
                    height,
                    turns,
                )
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn valid_box_trees_probe_exactly((file, nanos, width, height, turns) in any_valid_file()) {
        let info = probe_bytes(&file).unwrap();
        prop_assert_eq!(info.duration, Duration::from_nanos(nanos));
        let track = info.video.unwrap();
        let (w, h) = if turns % 2 == 1 { (height, width) } else { (width, height) };
        prop_assert_eq!((track.width, track.height, track.rotation), (w, h, u16::from(turns) * 90));
        prop_assert_eq!(info.size_bytes, file.len() as u64);
    }

    #[test]
    fn mutated_box_trees_never_panic(
        (file, ..) in any_valid_file(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..12),
    ) {
        let mut file = file;
        for (at, byte, how) in edits {
            if file.is_empty() {
                break;
            }
            let i = at.index(file.len());
            match how {
                0 => file[i] = byte,
                1 => file.truncate(i),
                2 => file.insert(i, byte),
                _ => { file.remove(i); }
            }
        }
        let _ = probe::probe_reader(Cursor::new(&file));
    }

    #[test]
    fn arbitrary_bytes_after_a_box_header_never_panic(
        kind in prop::sample::select(vec![*b"ftyp", *b"moov", *b"moof", *b"mdat", *b"wide"]),
        body in prop::collection::vec(any::<u8>(), 0..2_048),
    ) {
        let file = [vec![0, 0, 0, 8], kind.to_vec(), body].concat();
        let _ = probe::probe_reader(Cursor::new(&file));
    }
}

#[test]
fn a_declared_gigabyte_moov_is_refused_unread() {
    // A sparse file: 1 GiB of moov declared and present, none of it read.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge_moov.mp4");
    let size: u64 = 1 << 30;
    let mut head = ftyp(b"isom");
    head.extend_from_slice(&1u32.to_be_bytes());
    head.extend_from_slice(b"moov");
    head.extend_from_slice(&(size + 16).to_be_bytes());
    std::fs::write(&path, &head).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(head.len() as u64 + size).unwrap();
    let err = probe::probe_file(&path).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("the moov box is {size} bytes, more than the 16777216 bytes read for it")
    );
}

#[test]
fn deeply_nested_boxes_are_refused_without_recursion() {
    // 50,000 traks, each inside the last, inside a moov with a valid mvhd.
    let depth: u32 = 50_000;
    let inner: Vec<u8> = (0..depth)
        .flat_map(|level| {
            let size = 8 * (depth - level);
            [size.to_be_bytes(), *b"trak"].concat()
        })
        .collect();
    let file = [
        ftyp(b"isom"),
        bx(b"moov", &[mvhd(0, 1000, 5000), inner].concat()),
    ]
    .concat();
    // The reader walks the levels it knows and finds no video track.
    assert_eq!(describe(&file), "no video 5.000 s");
}
