//! Probing the committed fixtures, and the file rules applied to them.
//!
//! The figures expected are ffprobe's for the same files (format duration;
//! stream width and height, swapped for the 90-degree rotation ffprobe
//! shows as `rotation=-90`). `tests/fixtures/make.sh` made the files.

use std::path::{Path, PathBuf};

use kling_core::probe::{self, Container, ImageFormat, ProbeError, Probed};
use kling_core::rules::check_file;
use kling_core::{EditRequest, Element, Media, MediaKind, Request};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Probes a fixture and describes it in one line: `video WxH rot R
/// D.DDD s brand B container C [fragmented]`, `audio-only D.DDD s`, or
/// `image FORMAT WxH`.
fn describe(name: &str) -> String {
    match probe::probe_file(&fixture(name)) {
        Ok(Probed::Video(v)) => {
            let duration = format!(
                "{}.{:03} s",
                v.duration.as_secs(),
                v.duration.subsec_millis()
            );
            let container = match v.container {
                Container::Mp4 => "mp4",
                Container::QuickTime => "quicktime",
                _ => "other",
            };
            let brand = v.brand.as_deref().unwrap_or("none");
            let fragmented = if v.fragmented { " fragmented" } else { "" };
            let size = std::fs::metadata(fixture(name)).unwrap().len();
            assert_eq!(v.size_bytes, size, "{name}: size");
            match v.video {
                Some(t) => format!(
                    "video {}x{} rot {} {duration} brand {brand:?} {container}{fragmented}",
                    t.width, t.height, t.rotation
                ),
                None => format!("audio-only {duration} brand {brand:?} {container}"),
            }
        }
        Ok(Probed::Image(i)) => format!("image {} {}x{}", i.format, i.width, i.height),
        Err(e) => format!("error: {e}"),
    }
}

#[test]
fn fixtures_probe_as_ffprobe_reports_them() {
    for (name, expected) in [
        (
            "faststart.mp4",
            r#"video 1280x720 rot 0 4.200 s brand "isom" mp4"#,
        ),
        (
            "moov_at_end.mp4",
            r#"video 1280x720 rot 0 5.040 s brand "isom" mp4"#,
        ),
        (
            "clip.mov",
            r#"video 1920x1080 rot 0 3.520 s brand "qt  " quicktime"#,
        ),
        (
            "rotated.mp4",
            r#"video 720x1280 rot 90 4.000 s brand "isom" mp4"#,
        ),
        (
            "fragmented.mp4",
            r#"video 1280x720 rot 0 6.000 s brand "isom" mp4 fragmented"#,
        ),
        (
            "fragmented_mehd.mp4",
            r#"video 1280x720 rot 0 6.000 s brand "isom" mp4 fragmented"#,
        ),
        (
            "fragmented_first_in_moov.mp4",
            r#"video 1280x720 rot 0 6.000 s brand "isom" mp4 fragmented"#,
        ),
        (
            "too_short.mp4",
            r#"video 1280x720 rot 0 2.960 s brand "isom" mp4"#,
        ),
        (
            "too_long.mp4",
            r#"video 1280x720 rot 0 10.040 s brand "isom" mp4"#,
        ),
        (
            "too_small.mp4",
            r#"video 1280x718 rot 0 4.000 s brand "isom" mp4"#,
        ),
        (
            "too_large.mp4",
            r#"video 2176x1224 rot 0 4.000 s brand "isom" mp4"#,
        ),
        ("audio_only.mp4", r#"audio-only 4.000 s brand "isom" mp4"#),
        ("image.png", "image PNG 640x480"),
        ("image.jpg", "image JPEG 640x480"),
        ("image.webp", "image WebP 640x480"),
        ("image.gif", "image GIF 640x480"),
        ("image_too_small.png", "image PNG 298x400"),
        ("image_too_wide.png", "image PNG 1260x500"),
        ("png_renamed.mp4", "image PNG 640x480"),
        (
            "truncated.mp4",
            "error: truncated: the mdat box ends at byte 16541 but the file has 8000 bytes (an incomplete copy or download?)",
        ),
        (
            "webm_renamed.mp4",
            "error: a WebM/Matroska video, a video format that is not supported",
        ),
    ] {
        assert_eq!(describe(name), expected, "{name}");
    }
}

/// Checks a fixture against the file rules, as `kling validate` does, and
/// compares the broken rules as `rule: message` lines.
#[track_caller]
fn check(name: &str, expect: &[&str]) {
    let report = check_file(&fixture(name), None);
    let got: Vec<String> = report
        .violations
        .iter()
        .map(|v| format!("{}: {}", v.rule(), v.message()))
        .collect();
    assert_eq!(got, expect, "{name}");
}

#[test]
fn file_rules() {
    for ok in [
        "faststart.mp4",
        "moov_at_end.mp4",
        "clip.mov",
        "rotated.mp4",
        "fragmented.mp4",
        "fragmented_mehd.mp4",
        "image.png",
        "image.jpg",
        "image.webp",
    ] {
        check(ok, &[]);
    }
    check(
        "too_short.mp4",
        &["video_duration: 2.960 s long, allowed 3 to 10 s"],
    );
    check(
        "too_long.mp4",
        &["video_duration: 10.040 s long, allowed 3 to 10 s"],
    );
    check(
        "too_small.mp4",
        &["video_resolution: 1280x718 px, each side must be 720 to 2160 px"],
    );
    check(
        "too_large.mp4",
        &["video_resolution: 2176x1224 px, each side must be 720 to 2160 px"],
    );
    check(
        "audio_only.mp4",
        &["video_track: has no video track (audio only?); a video track is required"],
    );
    check(
        "truncated.mp4",
        &[
            "file_truncated: truncated: the mdat box ends at byte 16541 but the file has 8000 bytes (an incomplete copy or download?)",
        ],
    );
    check(
        "webm_renamed.mp4",
        &["video_container: a WebM/Matroska video; a video must be an MP4 or MOV file"],
    );
    check(
        "png_renamed.mp4",
        &["video_container: a PNG image; a video must be an MP4 or MOV file"],
    );
    check(
        "image.gif",
        &[
            "image_format: a GIF image; an image must be JPEG, PNG or WebP (GIF too where a provider takes it)",
        ],
    );
    check(
        "image_too_small.png",
        &["image_resolution: 298x400 px, each side must be at least 300 px"],
    );
    check(
        "image_too_wide.png",
        &["image_aspect: 1260x500 px is 2.52:1, the aspect ratio must be 0.4 to 2.5"],
    );
}

#[test]
fn empty_random_and_missing_files_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let empty = dir.join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    let random = dir.join("random.mp4");
    std::fs::write(
        &random,
        (0..4096u32)
            .map(|i| i.wrapping_mul(2_654_435_761).to_be_bytes()[1])
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let missing = dir.join("missing.mp4");

    let rules = |path: &Path| -> Vec<String> {
        check_file(path, None)
            .violations
            .iter()
            .map(|v| format!("{}: {}", v.rule(), v.message()))
            .collect()
    };
    assert_eq!(rules(&empty), ["media_empty: empty (0 bytes)"]);
    assert_eq!(
        rules(&random),
        ["video_container: data in no known format; a video must be an MP4 or MOV file"]
    );
    let missing_rules = rules(&missing);
    assert_eq!(missing_rules.len(), 1);
    assert!(
        missing_rules[0].starts_with("file_unreadable: cannot read the file: No such file"),
        "{missing_rules:?}"
    );
    assert!(matches!(probe::probe_file(&empty), Err(ProbeError::Empty)));
}

#[test]
fn size_limits_come_from_the_file_size() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    // A video whose mdat makes it 200 MB + 1 byte: sparse, so instant.
    let big = dir.join("big.mp4");
    let mut bytes = std::fs::read(fixture("faststart.mp4")).unwrap();
    let extra = 200_000_001 - bytes.len() as u64;
    let mut free = u32::try_from(extra).unwrap().to_be_bytes().to_vec();
    free.extend_from_slice(b"free");
    bytes.extend_from_slice(&free);
    std::fs::write(&big, &bytes).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&big)
        .unwrap()
        .set_len(200_000_001)
        .unwrap();
    let report = check_file(&big, None);
    let got: Vec<String> = report
        .violations
        .iter()
        .map(|v| format!("{}: {}", v.rule(), v.message()))
        .collect();
    assert_eq!(got, ["video_size: 200.000001 MB, the limit is 200 MB"]);

    // An image of 10 MB + 1 byte: a real PNG header, then padding.
    let image = dir.join("big.png");
    let mut bytes = std::fs::read(fixture("image.png")).unwrap();
    bytes.resize(10_000_001, 0);
    std::fs::write(&image, &bytes).unwrap();
    let report = check_file(&image, None);
    let got: Vec<String> = report
        .violations
        .iter()
        .map(|v| format!("{}: {}", v.rule(), v.message()))
        .collect();
    assert_eq!(got, ["image_size: 10.000001 MB, the limit is 10 MB"]);
}

#[test]
fn request_validation_probes_local_files_and_bytes() {
    let request = Request::from(
        EditRequest::new(Media::file(fixture("too_short.mp4")), "Make @Video1 snowy")
            .image(Media::file(fixture("image.jpg")))
            .image(Media::bytes(
                std::fs::read(fixture("image_too_small.png")).unwrap(),
                None,
            ))
            .element(
                Element::new(Media::file(fixture("faststart.mp4")))
                    .reference(Media::file(fixture("image.webp"))),
            ),
    );
    let err = request.validate().unwrap_err();
    let got: Vec<String> = err
        .violations()
        .iter()
        .map(|v| format!("{}: {v}", v.rule()))
        .collect();
    assert_eq!(
        got,
        [
            "video_duration: video: 2.960 s long, allowed 3 to 10 s",
            "image_resolution: images[1]: 298x400 px, each side must be at least 300 px",
            "image_format: elements[0].frontal_image: an MP4/MOV video; an image must be JPEG, PNG or WebP (GIF too where a provider takes it)",
        ]
    );
    // The same inputs, each as it should be, pass.
    let request = Request::from(
        EditRequest::new(
            Media::file(fixture("moov_at_end.mp4")),
            "Make @Video1 snowy",
        )
        .image(Media::bytes(
            std::fs::read(fixture("image.png")).unwrap(),
            Some("image/png"),
        )),
    );
    request.validate().unwrap();
    assert_eq!(
        MediaKind::from_extension(&fixture("clip.mov")),
        Some(MediaKind::Video)
    );
    assert!(matches!(
        probe::probe_file(&fixture("image.webp")).unwrap(),
        Probed::Image(i) if i.format == ImageFormat::Webp
    ));
}
