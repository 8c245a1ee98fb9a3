//! Builds MP4 files box by box, for tests that need exact structures.

#![allow(dead_code)] // each test binary uses a different part
#![allow(
    clippy::trivially_copy_pass_by_ref,
    clippy::cast_possible_truncation,
    clippy::many_single_char_names
)] // test builders: fourccs by reference read best, sizes are small

/// A box with a 32-bit size.
pub(crate) fn bx(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(8 + payload.len())
        .unwrap()
        .to_be_bytes()
        .to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(payload);
    out
}

/// A box with a 64-bit `largesize`.
pub(crate) fn bx64(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut out = 1u32.to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(&(16 + payload.len() as u64).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A full box: version and flags, then `payload`.
pub(crate) fn full(kind: &[u8; 4], version: u8, flags: u32, payload: &[u8]) -> Vec<u8> {
    let mut body = ((u32::from(version) << 24) | flags).to_be_bytes().to_vec();
    body.extend_from_slice(payload);
    bx(kind, &body)
}

/// A field that is 32 bits in version 0 and 64 in version 1.
fn versioned(version: u8, value: u64) -> Vec<u8> {
    if version == 1 {
        value.to_be_bytes().to_vec()
    } else {
        u32::try_from(value).unwrap().to_be_bytes().to_vec()
    }
}

pub(crate) fn ftyp(brand: &[u8; 4]) -> Vec<u8> {
    let mut payload = brand.to_vec();
    payload.extend_from_slice(&[0, 0, 2, 0]);
    payload.extend_from_slice(brand);
    bx(b"ftyp", &payload)
}

pub(crate) fn mvhd(version: u8, timescale: u32, duration: u64) -> Vec<u8> {
    let mut p = versioned(version, 0); // creation
    p.extend(versioned(version, 0)); // modification
    p.extend_from_slice(&timescale.to_be_bytes());
    p.extend(versioned(version, duration));
    p.extend_from_slice(&[0, 1, 0, 0, 1, 0]); // rate, volume
    p.extend_from_slice(&[0; 10]);
    p.extend(identity_matrix());
    p.extend_from_slice(&[0; 24]);
    p.extend_from_slice(&2u32.to_be_bytes());
    full(b"mvhd", version, 0, &p)
}

fn identity_matrix() -> Vec<u8> {
    [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect()
}

/// The rotation part of a track matrix for a clockwise quarter-turn count.
pub(crate) fn rotation_matrix(quarter_turns: u8) -> [i32; 4] {
    match quarter_turns % 4 {
        0 => [0x1_0000, 0, 0, 0x1_0000],
        1 => [0, 0x1_0000, -0x1_0000, 0],
        2 => [-0x1_0000, 0, 0, -0x1_0000],
        _ => [0, -0x1_0000, 0x1_0000, 0],
    }
}

pub(crate) fn tkhd(
    version: u8,
    id: u32,
    width: u32,
    height: u32,
    [a, b, c, d]: [i32; 4],
) -> Vec<u8> {
    let mut p = versioned(version, 0);
    p.extend(versioned(version, 0));
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&[0; 4]);
    p.extend(versioned(version, 0)); // duration
    p.extend_from_slice(&[0; 8 + 2 + 2 + 2 + 2]);
    for v in [a, b, 0, c, d, 0, 0, 0, 0x4000_0000] {
        p.extend_from_slice(&v.to_be_bytes());
    }
    p.extend_from_slice(&(width << 16).to_be_bytes());
    p.extend_from_slice(&(height << 16).to_be_bytes());
    full(b"tkhd", version, 7, &p)
}

pub(crate) fn mdhd(version: u8, timescale: u32, duration: u64) -> Vec<u8> {
    let mut p = versioned(version, 0);
    p.extend(versioned(version, 0));
    p.extend_from_slice(&timescale.to_be_bytes());
    p.extend(versioned(version, duration));
    p.extend_from_slice(&[0x55, 0xC4, 0, 0]);
    full(b"mdhd", version, 0, &p)
}

pub(crate) fn hdlr(handler: &[u8; 4]) -> Vec<u8> {
    let mut p = vec![0; 4];
    p.extend_from_slice(handler);
    p.extend_from_slice(&[0; 12]);
    p.push(0);
    full(b"hdlr", 0, 0, &p)
}

pub(crate) fn stsd_visual(width: u16, height: u16) -> Vec<u8> {
    let mut entry = vec![0; 6];
    entry.extend_from_slice(&1u16.to_be_bytes());
    entry.extend_from_slice(&[0; 16]);
    entry.extend_from_slice(&width.to_be_bytes());
    entry.extend_from_slice(&height.to_be_bytes());
    entry.extend_from_slice(&[0; 50]);
    let mut p = 1u32.to_be_bytes().to_vec();
    p.extend(bx(b"avc1", &entry));
    full(b"stsd", 0, 0, &p)
}

pub(crate) fn stts(entries: &[(u32, u32)]) -> Vec<u8> {
    let mut p = u32::try_from(entries.len()).unwrap().to_be_bytes().to_vec();
    for (count, delta) in entries {
        p.extend_from_slice(&count.to_be_bytes());
        p.extend_from_slice(&delta.to_be_bytes());
    }
    full(b"stts", 0, 0, &p)
}

/// A track description.
#[derive(Clone, Debug)]
pub(crate) struct TrackSpec {
    pub(crate) id: u32,
    pub(crate) handler: [u8; 4],
    pub(crate) version: u8,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) quarter_turns: u8,
    pub(crate) timescale: u32,
    pub(crate) duration: u64,
    pub(crate) samples: Vec<(u32, u32)>,
}

impl TrackSpec {
    pub(crate) fn video(width: u32, height: u32) -> Self {
        TrackSpec {
            id: 1,
            handler: *b"vide",
            version: 0,
            width,
            height,
            quarter_turns: 0,
            timescale: 12_800,
            duration: 64_000,
            samples: vec![(125, 512)],
        }
    }
}

pub(crate) fn trak(t: &TrackSpec) -> Vec<u8> {
    let stbl = bx(
        b"stbl",
        &[
            stsd_visual(t.width as u16, t.height as u16),
            stts(&t.samples),
        ]
        .concat(),
    );
    let minf = bx(b"minf", &stbl);
    let mdia = bx(
        b"mdia",
        &[
            mdhd(t.version, t.timescale, t.duration),
            hdlr(&t.handler),
            minf,
        ]
        .concat(),
    );
    bx(
        b"trak",
        &[
            tkhd(
                t.version,
                t.id,
                t.width,
                t.height,
                rotation_matrix(t.quarter_turns),
            ),
            mdia,
        ]
        .concat(),
    )
}

pub(crate) fn mehd(version: u8, duration: u64) -> Vec<u8> {
    full(b"mehd", version, 0, &versioned(version, duration))
}

pub(crate) fn trex(track_id: u32, default_duration: u32) -> Vec<u8> {
    let mut p = track_id.to_be_bytes().to_vec();
    p.extend_from_slice(&1u32.to_be_bytes());
    p.extend_from_slice(&default_duration.to_be_bytes());
    p.extend_from_slice(&[0; 8]);
    full(b"trex", 0, 0, &p)
}

/// A `moof` with one `traf` for `track_id` holding `samples` samples, each
/// `duration` long: given per sample in `trun`, or as the `tfhd` default.
pub(crate) fn moof(track_id: u32, samples: u32, duration: u32, per_sample: bool) -> Vec<u8> {
    let mfhd = full(b"mfhd", 0, 0, &1u32.to_be_bytes());
    let (tfhd, trun) = if per_sample {
        let mut p = samples.to_be_bytes().to_vec();
        for _ in 0..samples {
            p.extend_from_slice(&duration.to_be_bytes());
        }
        (
            full(b"tfhd", 0, 0x02_0000, &track_id.to_be_bytes()),
            full(b"trun", 0, 0x100, &p),
        )
    } else {
        let mut p = track_id.to_be_bytes().to_vec();
        p.extend_from_slice(&duration.to_be_bytes());
        (
            full(b"tfhd", 0, 0x02_0008, &p),
            full(b"trun", 0, 0, &samples.to_be_bytes()),
        )
    };
    bx(
        b"moof",
        &[mfhd, bx(b"traf", &[tfhd, trun].concat())].concat(),
    )
}
