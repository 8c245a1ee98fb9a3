//! What a file is, from its first bytes, whatever its name says.

use super::{ImageFormat, MediaKind};

/// What the first bytes of a file say it is.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Sniffed {
    /// ISO base media or QuickTime: worth walking its boxes.
    IsoMedia,
    /// An image format we probe.
    Image(ImageFormat),
    /// Something else, named for the user.
    Other {
        found: &'static str,
        kind: Option<MediaKind>,
    },
}

/// Box types that may open an MP4 or QuickTime file.
const FIRST_BOXES: &[&[u8; 4]] = &[
    b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid", b"styp", b"sidx",
    b"moof", b"pdin",
];

/// `ftyp` brands of still-image formats built on ISO base media.
const IMAGE_BRANDS: &[&[u8; 4]] = &[b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis"];

pub(super) fn sniff(head: &[u8]) -> Sniffed {
    let at = |offset: usize, magic: &[u8]| head.get(offset..offset + magic.len()) == Some(magic);
    let other = |found, kind| Sniffed::Other { found, kind };

    if let Some(kind) = head.get(4..8) {
        if kind == b"ftyp" && IMAGE_BRANDS.iter().any(|brand| at(8, *brand)) {
            return other("a HEIF/AVIF image", Some(MediaKind::Image));
        }
        if FIRST_BOXES.iter().any(|first| kind == *first) {
            return Sniffed::IsoMedia;
        }
    }
    if at(0, b"\xFF\xD8\xFF") {
        return Sniffed::Image(ImageFormat::Jpeg);
    }
    if at(0, b"\x89PNG\r\n\x1a\n") {
        return Sniffed::Image(ImageFormat::Png);
    }
    if at(0, b"GIF87a") || at(0, b"GIF89a") {
        return Sniffed::Image(ImageFormat::Gif);
    }
    if at(0, b"RIFF") {
        if at(8, b"WEBP") {
            return Sniffed::Image(ImageFormat::Webp);
        }
        if at(8, b"AVI ") {
            return other("an AVI video", Some(MediaKind::Video));
        }
        if at(8, b"WAVE") {
            return other("a WAV audio file", None);
        }
    }
    let table: &[(usize, &[u8], &'static str, Option<MediaKind>)] = &[
        (
            0,
            b"\x1A\x45\xDF\xA3",
            "a WebM/Matroska video",
            Some(MediaKind::Video),
        ),
        (0, b"FLV\x01", "an FLV video", Some(MediaKind::Video)),
        (
            0,
            b"\x30\x26\xB2\x75\x8E\x66\xCF\x11",
            "a Windows Media video",
            Some(MediaKind::Video),
        ),
        (
            0,
            b"\x00\x00\x01\xBA",
            "an MPEG program stream",
            Some(MediaKind::Video),
        ),
        (0, b"OggS", "an Ogg file", None),
        (0, b"BM", "a BMP image", Some(MediaKind::Image)),
        (0, b"II*\x00", "a TIFF image", Some(MediaKind::Image)),
        (0, b"MM\x00*", "a TIFF image", Some(MediaKind::Image)),
        (0, b"ID3", "an MP3 audio file", None),
        (0, b"fLaC", "a FLAC audio file", None),
        (0, b"%PDF", "a PDF document", None),
        (0, b"PK\x03\x04", "a ZIP archive", None),
        (0, b"\x1F\x8B", "a gzip archive", None),
        (0, b"<", "a text or markup file", None),
        (0, b"{", "a JSON or text file", None),
    ];
    for (offset, magic, found, kind) in table {
        if at(*offset, magic) {
            return other(found, *kind);
        }
    }
    other("data in no known format", None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_what_it_sees() {
        for (head, expected) in [
            (&b"\0\0\0\x20ftypisom"[..], Sniffed::IsoMedia),
            (b"\0\0\0\x08wide\0\0\0\0mdat", Sniffed::IsoMedia),
            (
                b"\0\0\0\x18ftypheic",
                Sniffed::Other {
                    found: "a HEIF/AVIF image",
                    kind: Some(MediaKind::Image),
                },
            ),
            (b"\xFF\xD8\xFF\xE0", Sniffed::Image(ImageFormat::Jpeg)),
            (b"RIFF\0\0\0\0WEBPVP8 ", Sniffed::Image(ImageFormat::Webp)),
            (b"GIF89a", Sniffed::Image(ImageFormat::Gif)),
            (
                b"\x1A\x45\xDF\xA3\x01",
                Sniffed::Other {
                    found: "a WebM/Matroska video",
                    kind: Some(MediaKind::Video),
                },
            ),
            (
                b"RIFF\0\0\0\0AVI LIST",
                Sniffed::Other {
                    found: "an AVI video",
                    kind: Some(MediaKind::Video),
                },
            ),
            (
                b"%PDF-1.7",
                Sniffed::Other {
                    found: "a PDF document",
                    kind: None,
                },
            ),
            (
                b"",
                Sniffed::Other {
                    found: "data in no known format",
                    kind: None,
                },
            ),
            (
                b"\x01\x02\x03",
                Sniffed::Other {
                    found: "data in no known format",
                    kind: None,
                },
            ),
        ] {
            assert_eq!(sniff(head), expected, "{head:?}");
        }
    }
}
