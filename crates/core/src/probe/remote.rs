//! Probing media that is read in byte ranges over a network (HTTP `Range`
//! requests), by the same header reader as local files.
//!
//! [`RangeProbe`] does no I/O: it says which bytes it needs
//! ([`Step::Fetch`]), is given them ([`RangeProbe::supply`]), and runs the
//! header reader again over what it holds until the reader has all it
//! reads ([`Step::Done`]). The reader is cheap (headers only), so running
//! it again beats making it resumable; what is costly, the round trips and
//! the bytes, is what this bounds: an MP4 of any size whose `moov` sits at
//! its end takes two ranges, the first [`FIRST_BYTES`] and the `moov`,
//! and no more bytes than the `moov` and 1 MiB.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;

use super::{ProbeError, Probed, probe_reader};

/// The first range asked for: the head of the file, which holds a
/// fast-start MP4's `moov`, or an image's header, more often than not.
pub const FIRST_BYTES: u64 = 64 << 10;

/// The least asked for after the first range: a miss is usually followed
/// by another close after it (a box header, then its body; an image's
/// header read up to 1 MiB), and a round trip costs more than the bytes.
/// With the first range, 1 MiB: a `moov` at the end of any file costs at
/// most its own size and 1 MiB.
const READ_AHEAD: u64 = (1 << 20) - FIRST_BYTES;

/// The most ranges one probe asks for. A fast-start or moov-at-end MP4
/// takes one or two; only a fragmented file with its fragments' headers
/// spread through it takes more, and its length can then go unchecked.
pub const MAX_RANGES: u32 = 6;

/// The most bytes one probe holds: the largest `moov` read, and room for
/// the ranges around it.
pub const MAX_BYTES: u64 = super::mp4::MOOV_MAX_BYTES + (4 << 20);

/// The most read of a source that serves only its whole content (one that
/// ignores `Range`): a fast-start MP4's header, or an image's, is there.
pub const WHOLE_BODY_CAP: u64 = 4 << 20;

/// What a [`RangeProbe`] needs next.
#[derive(Debug)]
#[non_exhaustive]
pub enum Step {
    /// The bytes of this range (ends exclusive, within the source).
    Fetch(Range<u64>),
    /// What the source is, or why it is not usable media: the same answer
    /// [`probe_reader`] gives for the same bytes.
    Done(Result<Probed, ProbeError>),
    /// The source could not be checked, for a reason that says nothing
    /// about the media (the server ignores `Range` and the headers are
    /// past what was read; too many ranges): why.
    Unchecked(String),
}

/// A probe of media read in ranges; see the [module](self) for how.
///
/// ```
/// use kling_core::probe::remote::{RangeProbe, Step};
/// use kling_core::probe::Probed;
///
/// // A source holding the smallest PNG header: 400 x 300.
/// let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
/// png.extend_from_slice(&400u32.to_be_bytes());
/// png.extend_from_slice(&300u32.to_be_bytes());
/// png.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
///
/// let mut probe = RangeProbe::new();
/// let probed = loop {
///     match probe.step() {
///         Step::Fetch(range) => {
///             let end = usize::try_from(range.end.min(png.len() as u64)).unwrap();
///             let start = usize::try_from(range.start).unwrap();
///             probe.supply(range.start, png[start..end].to_vec(), png.len() as u64);
///         }
///         Step::Done(result) => break result?,
///         Step::Unchecked(why) => panic!("{why}"),
///         _ => unreachable!(),
///     }
/// };
/// assert!(matches!(probed, Probed::Image(image) if image.width == 400));
/// assert_eq!(probe.ranges(), 1);
/// # Ok::<(), kling_core::probe::ProbeError>(())
/// ```
#[derive(Debug, Default)]
pub struct RangeProbe {
    /// The source's length, once known.
    len: Option<u64>,
    /// What was fetched: disjoint, non-adjacent runs by start.
    runs: BTreeMap<u64, Vec<u8>>,
    /// Ranges asked for so far.
    ranges: u32,
    /// Bytes supplied so far.
    bytes: u64,
    /// The source serves only its start (it ignores `Range`): nothing
    /// more will come.
    start_only: bool,
}

impl RangeProbe {
    /// A probe that knows nothing of its source yet.
    pub fn new() -> RangeProbe {
        RangeProbe::default()
    }

    /// How many ranges it asked for.
    pub fn ranges(&self) -> u32 {
        self.ranges
    }

    /// How many bytes it was given.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Gives it the bytes of the source from `start` on, and the source's
    /// whole length.
    pub fn supply(&mut self, start: u64, bytes: Vec<u8>, total: u64) {
        self.len = Some(total);
        self.bytes += bytes.len() as u64;
        if bytes.is_empty() {
            return;
        }
        // Runs stay disjoint: the new one joins every run it touches.
        let mut runs: Vec<(u64, Vec<u8>)> = std::mem::take(&mut self.runs).into_iter().collect();
        runs.push((start, bytes));
        runs.sort_by_key(|(at, _)| *at);
        for (at, run) in runs {
            if let Some((last_at, last)) = self.runs.iter_mut().next_back()
                && *last_at + last.len() as u64 >= at
            {
                let overlap =
                    usize::try_from(*last_at + last.len() as u64 - at).unwrap_or(usize::MAX);
                last.extend_from_slice(run.get(overlap..).unwrap_or_default());
                continue;
            }
            self.runs.insert(at, run);
        }
    }

    /// Gives it the first bytes of a source that serves only its whole
    /// content, which it stopped reading there, and the source's length
    /// when the server said it (`None`: the bytes are all there is, when
    /// the body ended; or unknown, when it was cut at a cap). It asks for
    /// nothing more: headers past these bytes leave the source unchecked.
    pub fn supply_start(&mut self, bytes: Vec<u8>, total: Option<u64>, ended: bool) {
        self.start_only = true;
        let len = bytes.len() as u64;
        let total = match (total, ended) {
            (Some(total), _) => Some(total),
            (None, true) => Some(len),
            (None, false) => None,
        };
        self.supply(0, bytes, total.unwrap_or(u64::MAX));
        self.len = total;
    }

    /// Runs the header reader over what it holds: the answer, or the
    /// range it needs next.
    pub fn step(&mut self) -> Step {
        let Some(len) = self.len else {
            if self.start_only {
                return Step::Unchecked(
                    "the server ignores Range requests and did not say how long the file is"
                        .to_owned(),
                );
            }
            self.ranges += 1;
            return Step::Fetch(0..FIRST_BYTES);
        };
        let mut reader = Sparse {
            len,
            runs: &self.runs,
            pos: 0,
            miss: Cell::new(None),
        };
        let result = probe_reader(&mut reader);
        // A read of bytes not held voids the answer, whatever the reader
        // made of the failed read: fetch them and read again.
        let Some((at, wanted)) = reader.miss.get() else {
            return Step::Done(result);
        };
        if self.start_only {
            return Step::Unchecked(format!(
                "the server ignores Range requests, and the headers are past the first {} \
                 bytes read",
                self.bytes
            ));
        }
        if self.ranges >= MAX_RANGES {
            return Step::Unchecked(format!(
                "its headers are spread over more than {MAX_RANGES} ranges (a fragmented file?)"
            ));
        }
        let end = len.min(at.saturating_add(wanted.max(READ_AHEAD)));
        if self.bytes.saturating_add(end - at) > MAX_BYTES {
            return Step::Unchecked(format!(
                "its headers take more than the {MAX_BYTES} bytes read to probe a file"
            ));
        }
        self.ranges += 1;
        Step::Fetch(at..end)
    }
}

/// The source as far as it was fetched: reads of bytes not fetched fail,
/// and the first such read is kept in `miss`.
struct Sparse<'a> {
    len: u64,
    runs: &'a BTreeMap<u64, Vec<u8>>,
    pos: u64,
    miss: Cell<Option<(u64, u64)>>,
}

impl Read for Sparse<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let held = self
            .runs
            .range(..=self.pos)
            .next_back()
            .and_then(|(at, run)| {
                let offset = usize::try_from(self.pos - at).ok()?;
                run.get(offset..).filter(|rest| !rest.is_empty())
            });
        let Some(held) = held else {
            if self.miss.get().is_none() {
                let wanted = (buf.len() as u64).min(self.len - self.pos);
                self.miss.set(Some((self.pos, wanted)));
            }
            return Err(io::Error::other("these bytes were not fetched yet"));
        };
        let n = held.len().min(buf.len());
        buf[..n].copy_from_slice(&held[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Sparse<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(at) => Some(at),
            SeekFrom::End(back) => self.len.checked_add_signed(back),
            SeekFrom::Current(by) => self.pos.checked_add_signed(by),
        };
        self.pos = pos.ok_or_else(|| io::Error::other("seek out of range"))?;
        Ok(self.pos)
    }
}
