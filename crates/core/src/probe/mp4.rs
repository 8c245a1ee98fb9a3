//! A header-only reader of MP4 and QuickTime files.
//!
//! It walks the top-level boxes by seeking, so `mdat` and other large boxes
//! are never read; it reads `moov` (bounded by [`MOOV_MAX_BYTES`]) and, in
//! fragmented files without `mehd`, each `moof` (bounded by
//! [`MOOF_MAX_BYTES`]). Every length comes from the file, so every
//! length is checked: against the file's size before anything is read, and
//! against its parent box before anything is sliced. Nothing here indexes
//! or does arithmetic that can panic.

use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;

use super::{Container, ProbeError, VideoInfo, VideoTrack};

/// The largest `moov` we read. A 10-second clip's is a few kilobytes; a
/// two-hour film's a few megabytes.
pub(crate) const MOOV_MAX_BYTES: u64 = 16 << 20;
/// The largest `moof` we read.
pub(crate) const MOOF_MAX_BYTES: u64 = 1 << 20;
/// The most top-level boxes we walk before giving up on a file.
pub(crate) const MAX_TOP_LEVEL_BOXES: u32 = 100_000;
/// The most sample-table entries we sum per track (bounds time, not memory).
const MAX_TABLE_ENTRIES: u32 = 1 << 20;
/// How much of `ftyp` we read: major brand, version and a few compatible brands.
const FTYP_MAX_BYTES: u64 = 64;

type FourCc = [u8; 4];

/// A box header: its type, where its payload starts and where it ends.
#[derive(Debug, Clone, Copy)]
struct BoxHeader {
    kind: FourCc,
    payload_start: u64,
    end: u64,
}

/// Reads the top-level box header at `pos`.
fn read_header<R: Read + Seek>(
    r: &mut R,
    pos: u64,
    file_len: u64,
) -> Result<BoxHeader, ProbeError> {
    let available = file_len.saturating_sub(pos);
    if available < 8 {
        return Err(ProbeError::Truncated {
            what: "a box header".to_owned(),
            box_end: pos.saturating_add(8),
            file_len,
        });
    }
    let mut head = [0u8; 16];
    let want = usize::try_from(available.min(16)).unwrap_or(16);
    r.seek(SeekFrom::Start(pos))?;
    let head = head.get_mut(..want).unwrap_or_default();
    r.read_exact(head)?;
    let size32 = u64::from(be_u32(head, 0).unwrap_or(0));
    let kind = fourcc(head, 4).unwrap_or_default();
    let (size, header_len) = match size32 {
        0 => (file_len - pos, 8),
        1 => match be_u64(head, 8) {
            Some(size) => (size, 16),
            None => {
                return Err(ProbeError::Truncated {
                    what: format!("the {} box header", name(kind)),
                    box_end: pos.saturating_add(16),
                    file_len,
                });
            }
        },
        size => (size, 8),
    };
    if size < header_len {
        return Err(ProbeError::Malformed(format!(
            "box {:?} at offset {pos} declares {size} bytes, less than its own header",
            name(kind)
        )));
    }
    let end = pos.checked_add(size).ok_or_else(|| {
        ProbeError::Malformed(format!(
            "box {:?} at offset {pos} has an impossible size",
            name(kind)
        ))
    })?;
    if end > file_len {
        return Err(ProbeError::Truncated {
            what: format!("the {} box", name(kind)),
            box_end: end,
            file_len,
        });
    }
    Ok(BoxHeader {
        kind,
        payload_start: pos + header_len,
        end,
    })
}

/// Reads a box's payload, refusing one larger than `cap`.
fn read_payload<R: Read + Seek>(
    r: &mut R,
    header: BoxHeader,
    cap: u64,
) -> Result<Vec<u8>, ProbeError> {
    let len = header.end - header.payload_start;
    if len > cap {
        return Err(ProbeError::TooLarge {
            what: format!("{} box", name(header.kind)),
            size: len,
            cap,
        });
    }
    // `len <= cap`, which fits in memory by construction.
    let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
    r.seek(SeekFrom::Start(header.payload_start))?;
    r.read_exact(&mut buf)?;
    Ok(buf)
}

/// Probes an MP4 or QuickTime file of `file_len` bytes.
pub(crate) fn probe<R: Read + Seek>(r: &mut R, file_len: u64) -> Result<VideoInfo, ProbeError> {
    let mut brand: Option<FourCc> = None;
    let mut moov: Option<Moov> = None;
    let mut pos = 0u64;
    let mut boxes = 0u32;
    while pos < file_len {
        boxes += 1;
        if boxes > MAX_TOP_LEVEL_BOXES {
            return Err(ProbeError::Malformed(format!(
                "more than {MAX_TOP_LEVEL_BOXES} top-level boxes"
            )));
        }
        let header = read_header(r, pos, file_len)?;
        match &header.kind {
            b"ftyp" if brand.is_none() => {
                let len = (header.end - header.payload_start).min(FTYP_MAX_BYTES);
                let capped = BoxHeader {
                    end: header.payload_start + len,
                    ..header
                };
                brand = fourcc(&read_payload(r, capped, FTYP_MAX_BYTES)?, 0);
            }
            b"moov" if moov.is_none() => {
                moov = Some(parse_moov(&read_payload(r, header, MOOV_MAX_BYTES)?)?);
            }
            b"moof" => {
                // Fragments come after `moov`; their durations matter only
                // when `mehd` does not give the total.
                if let Some(moov) = moov.as_mut().filter(|m| m.fragmented && m.mehd.is_none()) {
                    moov.add_fragment(&read_payload(r, header, MOOF_MAX_BYTES)?)?;
                }
            }
            _ => {}
        }
        pos = header.end;
    }
    let moov = moov.ok_or(ProbeError::NoMoov)?;
    let container = match brand.as_ref() {
        Some(b"qt  ") | None => Container::QuickTime,
        Some(_) => Container::Mp4,
    };
    Ok(VideoInfo {
        duration: moov.duration()?,
        video: moov.video_track(),
        size_bytes: file_len,
        brand: brand.map(|b| String::from_utf8_lossy(&b).into_owned()),
        container,
        fragmented: moov.fragmented,
    })
}

/// What `moov` (and the fragments after it) tell us.
#[derive(Debug, Default)]
struct Moov {
    timescale: u32,
    duration: u64,
    fragmented: bool,
    mehd: Option<u64>,
    tracks: Vec<Track>,
    /// `trex` default sample durations by track id, for fragments that
    /// give none.
    trex_durations: Vec<(u32, u32)>,
}

#[derive(Debug, Default, Clone)]
struct Track {
    id: u32,
    handler: FourCc,
    /// 16.16 fixed point, before the matrix.
    width: u32,
    height: u32,
    /// The rotation part of the matrix: a, b, c, d in 16.16.
    matrix: [i32; 4],
    media_timescale: u32,
    media_duration: u64,
    /// Width and height from the first visual sample entry.
    sample_entry_size: Option<(u16, u16)>,
    /// Sum of the sample durations in `stts`, in media timescale.
    table_duration: u64,
    /// Sum of the sample durations in fragments, in media timescale.
    fragment_duration: u64,
}

fn parse_moov(data: &[u8]) -> Result<Moov, ProbeError> {
    let mut moov = Moov::default();
    let mut mvhd_seen = false;
    for child in children(data, "moov") {
        let (kind, payload) = child?;
        match &kind {
            b"mvhd" => {
                let mut c = FullBox::new(payload, "mvhd")?;
                c.skip_versioned(8, 16)?; // creation and modification times
                moov.timescale = c.u32()?;
                moov.duration = c.versioned(4, 8)?;
                mvhd_seen = true;
            }
            b"trak" => moov.tracks.push(parse_trak(payload)?),
            b"mvex" => {
                moov.fragmented = true;
                for child in children(payload, "mvex") {
                    let (kind, payload) = child?;
                    match &kind {
                        b"mehd" => {
                            moov.mehd = Some(FullBox::new(payload, "mehd")?.versioned(4, 8)?);
                        }
                        b"trex" => {
                            let mut c = FullBox::new(payload, "trex")?;
                            let track_id = c.u32()?;
                            let _description_index = c.u32()?;
                            let default_duration = c.u32()?;
                            moov.trex_durations.push((track_id, default_duration));
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if !mvhd_seen {
        return Err(ProbeError::Malformed(
            "moov has no mvhd (movie header)".to_owned(),
        ));
    }
    Ok(moov)
}

fn parse_trak(data: &[u8]) -> Result<Track, ProbeError> {
    let mut track = Track::default();
    for child in children(data, "trak") {
        let (kind, payload) = child?;
        match &kind {
            b"tkhd" => {
                let mut c = FullBox::new(payload, "tkhd")?;
                c.skip_versioned(8, 16)?; // creation and modification times
                track.id = c.u32()?;
                c.skip(4)?; // reserved
                c.skip_versioned(4, 8)?; // duration: mvhd/mdhd say it better
                c.skip(8 + 2 + 2 + 2 + 2)?; // reserved, layer, group, volume, reserved
                let a = c.i32()?;
                let b = c.i32()?;
                c.skip(4)?; // u
                let cc = c.i32()?;
                let d = c.i32()?;
                c.skip(4 * 4)?; // v, x, y, w
                track.matrix = [a, b, cc, d];
                track.width = c.u32()?;
                track.height = c.u32()?;
            }
            b"mdia" => parse_mdia(payload, &mut track)?,
            _ => {}
        }
    }
    Ok(track)
}

fn parse_mdia(data: &[u8], track: &mut Track) -> Result<(), ProbeError> {
    for child in children(data, "mdia") {
        let (kind, payload) = child?;
        match &kind {
            b"mdhd" => {
                let mut c = FullBox::new(payload, "mdhd")?;
                c.skip_versioned(8, 16)?; // creation and modification times
                track.media_timescale = c.u32()?;
                track.media_duration = c.versioned(4, 8)?;
            }
            b"hdlr" => {
                let mut c = FullBox::new(payload, "hdlr")?;
                c.skip(4)?; // pre_defined (QuickTime: component type)
                track.handler = c.fourcc()?;
            }
            b"minf" => {
                for child in children(payload, "minf") {
                    let (kind, payload) = child?;
                    if &kind == b"stbl" {
                        parse_stbl(payload, track)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn parse_stbl(data: &[u8], track: &mut Track) -> Result<(), ProbeError> {
    for child in children(data, "stbl") {
        let (kind, payload) = child?;
        match &kind {
            b"stsd" => {
                let mut c = FullBox::new(payload, "stsd")?;
                if c.u32()? > 0 {
                    // First sample entry: size, format, 6 reserved, data
                    // reference index, then (visual) 16 bytes before width
                    // and height.
                    c.skip(4 + 4 + 6 + 2 + 16)?;
                    if let (Ok(w), Ok(h)) = (c.u16(), c.u16()) {
                        track.sample_entry_size = Some((w, h));
                    }
                }
            }
            b"stts" => {
                let mut c = FullBox::new(payload, "stts")?;
                let entries = c.u32()?.min(MAX_TABLE_ENTRIES);
                let mut total = 0u64;
                for _ in 0..entries {
                    let count = u64::from(c.u32()?);
                    let delta = u64::from(c.u32()?);
                    total = total.saturating_add(count.saturating_mul(delta));
                }
                track.table_duration = total;
            }
            _ => {}
        }
    }
    Ok(())
}

impl Moov {
    /// Adds the sample durations of one `moof` to its tracks.
    fn add_fragment(&mut self, data: &[u8]) -> Result<(), ProbeError> {
        for child in children(data, "moof") {
            let (kind, traf) = child?;
            if &kind != b"traf" {
                continue;
            }
            let mut track_id = None;
            let mut default_duration = None;
            let mut total = 0u64;
            for child in children(traf, "traf") {
                let (kind, payload) = child?;
                match &kind {
                    b"tfhd" => {
                        let mut c = FullBox::new(payload, "tfhd")?;
                        let flags = c.flags;
                        let id = c.u32()?;
                        track_id = Some(id);
                        if flags & 0x01 != 0 {
                            c.skip(8)?; // base data offset
                        }
                        if flags & 0x02 != 0 {
                            c.skip(4)?; // sample description index
                        }
                        default_duration = if flags & 0x08 != 0 {
                            Some(c.u32()?)
                        } else {
                            self.trex_durations
                                .iter()
                                .find(|(track, _)| *track == id)
                                .map(|(_, duration)| *duration)
                        };
                    }
                    b"trun" => {
                        let mut c = FullBox::new(payload, "trun")?;
                        let flags = c.flags;
                        let samples = c.u32()?.min(MAX_TABLE_ENTRIES);
                        if flags & 0x01 != 0 {
                            c.skip(4)?; // data offset
                        }
                        if flags & 0x04 != 0 {
                            c.skip(4)?; // first sample flags
                        }
                        if flags & 0x100 == 0 {
                            let each = u64::from(default_duration.unwrap_or(0));
                            total = total.saturating_add(u64::from(samples).saturating_mul(each));
                            continue;
                        }
                        let per_sample_extra = [0x200u32, 0x400, 0x800]
                            .iter()
                            .filter(|bit| flags & **bit != 0)
                            .count()
                            * 4;
                        for _ in 0..samples {
                            total = total.saturating_add(u64::from(c.u32()?));
                            c.skip(per_sample_extra)?;
                        }
                    }
                    _ => {}
                }
            }
            if let Some(track) = track_id.and_then(|id| self.tracks.iter_mut().find(|t| t.id == id))
            {
                track.fragment_duration = track.fragment_duration.saturating_add(total);
            }
        }
        Ok(())
    }

    /// The duration as ffprobe reports a file's: the movie header's, or for
    /// a fragmented file `mehd`'s, or else the longest track counting its
    /// fragments.
    fn duration(&self) -> Result<Duration, ProbeError> {
        if self.timescale == 0 {
            return Err(ProbeError::Malformed(
                "mvhd has a timescale of 0".to_owned(),
            ));
        }
        let movie = to_duration(self.duration, self.timescale);
        if let Some(mehd) = self.mehd {
            return Ok(to_duration(mehd, self.timescale));
        }
        let tracks = self
            .tracks
            .iter()
            .filter(|t| t.media_timescale > 0)
            .map(|t| {
                let units = if self.fragmented {
                    t.table_duration.saturating_add(t.fragment_duration)
                } else {
                    t.media_duration
                };
                to_duration(units, t.media_timescale)
            })
            .max()
            .unwrap_or_default();
        Ok(if self.fragmented || self.duration == 0 {
            movie.max(tracks)
        } else {
            movie
        })
    }

    /// The first video track, as displayed.
    fn video_track(&self) -> Option<VideoTrack> {
        let track = self.tracks.iter().find(|t| &t.handler == b"vide")?;
        let (mut width, mut height) = (track.width >> 16, track.height >> 16);
        if width == 0 || height == 0 {
            let (w, h) = track.sample_entry_size.unwrap_or_default();
            (width, height) = (u32::from(w), u32::from(h));
        }
        let rotation = rotation(track.matrix);
        if rotation % 180 == 90 {
            std::mem::swap(&mut width, &mut height);
        }
        Some(VideoTrack {
            width,
            height,
            rotation,
        })
    }
}

/// Clockwise rotation in degrees from the matrix's rotation part, to the
/// nearest quarter turn.
fn rotation([a, b, _, _]: [i32; 4]) -> u16 {
    if a.unsigned_abs() >= b.unsigned_abs() {
        if a >= 0 { 0 } else { 180 }
    } else if b > 0 {
        90
    } else {
        270
    }
}

fn to_duration(units: u64, timescale: u32) -> Duration {
    let nanos = u128::from(units) * 1_000_000_000 / u128::from(timescale.max(1));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// The child boxes of a box held in memory, each checked against the
/// parent's end.
fn children<'a>(
    data: &'a [u8],
    parent: &'static str,
) -> impl Iterator<Item = Result<(FourCc, &'a [u8]), ProbeError>> + 'a {
    let mut rest = data;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || rest.len() < 8 {
            return None;
        }
        let result = split_box(rest, parent);
        match result {
            Ok((kind, payload, after)) => {
                rest = after;
                Some(Ok((kind, payload)))
            }
            Err(e) => {
                failed = true;
                Some(Err(e))
            }
        }
    })
}

fn split_box<'a>(data: &'a [u8], parent: &str) -> Result<(FourCc, &'a [u8], &'a [u8]), ProbeError> {
    let kind = fourcc(data, 4).unwrap_or_default();
    let size32 = be_u32(data, 0).unwrap_or(0);
    let (size, header_len) = match size32 {
        0 => (data.len() as u64, 8),
        1 => (be_u64(data, 8).unwrap_or(0), 16),
        size => (u64::from(size), 8),
    };
    let overflow = || {
        ProbeError::Malformed(format!(
            "box {:?} inside {parent} declares {size} bytes but {} remain",
            name(kind),
            data.len()
        ))
    };
    let size = usize::try_from(size).map_err(|_| overflow())?;
    if size < header_len || size > data.len() {
        return Err(overflow());
    }
    let payload = data.get(header_len..size).ok_or_else(overflow)?;
    let after = data.get(size..).ok_or_else(overflow)?;
    Ok((kind, payload, after))
}

/// A cursor over a full box's payload (version and flags read first) that
/// reports a short read as a malformed box instead of panicking.
struct FullBox<'a> {
    data: &'a [u8],
    pos: usize,
    version: u8,
    flags: u32,
    kind: &'static str,
}

impl<'a> FullBox<'a> {
    fn new(data: &'a [u8], kind: &'static str) -> Result<Self, ProbeError> {
        let mut c = FullBox {
            data,
            pos: 0,
            version: 0,
            flags: 0,
            kind,
        };
        let word = c.u32()?;
        c.version = word.to_be_bytes()[0];
        c.flags = word & 0x00FF_FFFF;
        Ok(c)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProbeError> {
        let end = self.pos.checked_add(n);
        match end.and_then(|end| self.data.get(self.pos..end)) {
            Some(bytes) => {
                self.pos += n;
                Ok(bytes)
            }
            None => Err(ProbeError::Malformed(format!(
                "{} box is {} bytes, too short for its fields",
                self.kind,
                self.data.len()
            ))),
        }
    }

    fn skip(&mut self, n: usize) -> Result<(), ProbeError> {
        self.take(n).map(|_| ())
    }

    /// Skips a field that is `v0` bytes in version 0 and `v1` in version 1.
    fn skip_versioned(&mut self, v0: usize, v1: usize) -> Result<(), ProbeError> {
        self.skip(if self.version == 1 { v1 } else { v0 })
    }

    /// Reads a field that is 32 bits in version 0 and 64 in version 1.
    fn versioned(&mut self, v0: usize, v1: usize) -> Result<u64, ProbeError> {
        if self.version == 1 {
            debug_assert_eq!(v1, 8);
            self.u64()
        } else {
            debug_assert_eq!(v0, 4);
            self.u32().map(u64::from)
        }
    }

    fn u16(&mut self) -> Result<u16, ProbeError> {
        let bytes: [u8; 2] = self
            .take(2)?
            .try_into()
            .map_err(|_| ProbeError::Malformed("short read".to_owned()))?;
        Ok(u16::from_be_bytes(bytes))
    }

    fn u32(&mut self) -> Result<u32, ProbeError> {
        let bytes = self.take(4)?;
        be_u32(bytes, 0).ok_or_else(|| ProbeError::Malformed("short read".to_owned()))
    }

    fn i32(&mut self) -> Result<i32, ProbeError> {
        self.u32().map(|v| i32::from_be_bytes(v.to_be_bytes()))
    }

    fn u64(&mut self) -> Result<u64, ProbeError> {
        let bytes = self.take(8)?;
        be_u64(bytes, 0).ok_or_else(|| ProbeError::Malformed("short read".to_owned()))
    }

    fn fourcc(&mut self) -> Result<FourCc, ProbeError> {
        let bytes = self.take(4)?;
        fourcc(bytes, 0).ok_or_else(|| ProbeError::Malformed("short read".to_owned()))
    }
}

fn be_u32(data: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = data.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

fn be_u64(data: &[u8], at: usize) -> Option<u64> {
    let bytes: [u8; 8] = data.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

fn fourcc(data: &[u8], at: usize) -> Option<FourCc> {
    data.get(at..at.checked_add(4)?)?.try_into().ok()
}

/// A box type for messages: printable as is, escaped otherwise.
fn name(kind: FourCc) -> String {
    kind.iter()
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .collect()
}
