//! Output paths, checked before anything is paid for.

use std::path::Path;

use crate::Error;

/// Checks that a result can be written to `path`, before anything is sent:
/// its folder exists and takes new files, and `path` is not a folder, a
/// device or another special file. An existing regular file is refused
/// unless `overwrite`.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// kling_ledger::check_output(&dir.path().join("out.mp4"), false)?;
/// assert!(kling_ledger::check_output(dir.path(), false).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// [`Error::Output`], saying what is wrong and what would do.
pub fn check_output(path: &Path, overwrite: bool) -> Result<(), Error> {
    let refuse = |problem: String| Error::Output {
        path: path.to_owned(),
        problem,
    };
    if path.as_os_str().is_empty() {
        return Err(refuse("the path is empty".to_owned()));
    }
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            return Err(refuse(
                "it is a folder; give a file name, such as out.mp4 in it".to_owned(),
            ));
        }
        Ok(meta) if !meta.is_file() => {
            return Err(refuse(
                "it is not a regular file (a device, a pipe or a socket); results are written \
                 only as regular files"
                    .to_owned(),
            ));
        }
        Ok(_) if !overwrite => {
            return Err(refuse(
                "the file exists; allow overwriting (--overwrite) to replace it, or choose \
                 another name"
                    .to_owned(),
            ));
        }
        _ => {}
    }
    check_dir(
        path.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
    )
    .map_err(refuse)
}

/// Checks that `dir` is a folder that takes new files, by making one.
pub(crate) fn check_dir(dir: &Path) -> Result<(), String> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(format!("{} is not a folder", dir.display())),
        Err(e) => {
            return Err(format!(
                "its folder {} cannot be used ({e}); create it first",
                dir.display()
            ));
        }
    }
    tempfile::Builder::new()
        .prefix(".kling-check-")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|e| format!("its folder {} does not take new files ({e})", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_paths_are_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let existing = dir.path().join("taken.mp4");
        std::fs::write(&existing, b"x").unwrap();
        let cases: [(&Path, bool, Option<&str>); 7] = [
            (&dir.path().join("new.mp4"), false, None),
            (&existing, true, None),
            (&existing, false, Some("the file exists")),
            (dir.path(), false, Some("it is a folder")),
            (Path::new("/"), true, Some("it is a folder")),
            (
                &dir.path().join("missing/out.mp4"),
                false,
                Some("create it first"),
            ),
            (Path::new("/dev/null"), true, Some("not a regular file")),
        ];
        for (path, overwrite, expect) in cases {
            let result = check_output(path, overwrite);
            match expect {
                None => assert!(result.is_ok(), "{}: {result:?}", path.display()),
                Some(words) => {
                    let message = result.unwrap_err().to_string();
                    assert!(message.contains(words), "{}: {message}", path.display());
                    assert!(message.contains("nothing was sent"), "{message}");
                }
            }
        }
        // The check leaves nothing behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
