//! Rewrites the generated section of the output file and nothing else.
//!
//! The section is everything between a line `<!-- bench-compare:begin -->`
//! and a line `<!-- bench-compare:end -->`; the marker lines and all bytes
//! outside them stay as they are. A file without markers gets both appended,
//! with the section between them. The file is replaced atomically (a
//! temporary file in the same directory, renamed over it).

use std::fs;
use std::io::{self, Write};
use std::ops::Range;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// The line that opens the generated section.
pub const BEGIN_MARKER: &str = "<!-- bench-compare:begin -->";
/// The line that closes the generated section.
pub const END_MARKER: &str = "<!-- bench-compare:end -->";
/// Permissions of a newly created output file.
const NEW_FILE_MODE: u32 = 0o644;

/// The byte range between the marker lines of `document` (after the begin
/// line's newline, up to the start of the end line), `None` when the
/// document has neither marker, an error when the markers are malformed.
pub fn locate(document: &str) -> Result<Option<Range<usize>>> {
    let mut begins = Vec::new();
    let mut ends = Vec::new();
    let mut offset = 0;
    for line in document.split_inclusive('\n') {
        let text = line.trim_end_matches(['\n', '\r']);
        if text == BEGIN_MARKER {
            begins.push(offset + line.len());
        } else if text == END_MARKER {
            ends.push(offset);
        }
        offset += line.len();
    }
    match (begins.as_slice(), ends.as_slice()) {
        ([], []) => Ok(None),
        ([begin], [end]) if begin <= end => Ok(Some(*begin..*end)),
        _ => bail!(
            "expected one line {BEGIN_MARKER:?} and, after it, one line {END_MARKER:?}; \
             found {} begin and {} end line(s)",
            begins.len(),
            ends.len()
        ),
    }
}

/// `document` with the generated section replaced by `section` (which is
/// given a final newline if it lacks one).
pub fn splice(document: &str, section: &str) -> Result<String> {
    let mut section = section.to_string();
    if !section.ends_with('\n') {
        section.push('\n');
    }
    match locate(document)? {
        Some(inside) => Ok(format!(
            "{}{section}{}",
            &document[..inside.start],
            &document[inside.end..]
        )),
        None => {
            let mut out = document.to_string();
            if !out.is_empty() {
                if !out.ends_with('\n') {
                    out.push('\n');
                }
                out.push('\n');
            }
            out.push_str(BEGIN_MARKER);
            out.push('\n');
            out.push_str(&section);
            out.push_str(END_MARKER);
            out.push('\n');
            Ok(out)
        }
    }
}

/// The file's text, or an empty document if it does not exist.
pub fn read_document(path: &Path) -> Result<String> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(error) => Err(error).with_context(|| format!("read {}", path.display())),
    }
}

/// Replaces `path` with `contents` atomically, keeping its permissions.
pub fn write_atomically(path: &Path, contents: &str) -> Result<()> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mode = match fs::metadata(path) {
        Ok(metadata) => metadata.permissions().mode(),
        Err(_) => NEW_FILE_MODE,
    };
    let mut temp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("create a temporary file in {}", dir.display()))?;
    temp.write_all(contents.as_bytes())?;
    temp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))?;
    temp.as_file().sync_all()?;
    temp.persist(path)
        .with_context(|| format!("rename over {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_markers_append_the_section() {
        let document = "# Benchmarks\n\ntext without a final newline";
        let out = splice(document, "new\n").unwrap();
        assert_eq!(
            out,
            "# Benchmarks\n\ntext without a final newline\n\n\
             <!-- bench-compare:begin -->\nnew\n<!-- bench-compare:end -->\n"
        );
        assert_eq!(
            splice("", "new").unwrap(),
            "<!-- bench-compare:begin -->\nnew\n<!-- bench-compare:end -->\n"
        );
    }

    #[test]
    fn present_markers_replace_only_the_inside() {
        let before = "# Benchmarks\r\n\nintro ✓\n<!-- bench-compare:begin -->\n";
        let after = "<!-- bench-compare:end -->\n\ntrailer\n  <!-- not a marker -->";
        let document = format!("{before}old table\nold lines\n{after}");
        let out = splice(&document, "new table\n").unwrap();
        assert_eq!(out, format!("{before}new table\n{after}"));
        // Splicing again is stable, and an empty inside works.
        assert_eq!(splice(&out, "new table\n").unwrap(), out);
        let empty = format!("{before}{after}");
        assert_eq!(splice(&empty, "x").unwrap(), format!("{before}x\n{after}"));
    }

    #[test]
    fn spliced_document_round_trips_through_locate() {
        let out = splice("head\n", "section\n").unwrap();
        let inside = locate(&out).unwrap().unwrap();
        assert_eq!(&out[inside], "section\n");
    }

    #[test]
    fn malformed_markers_are_errors() {
        let begin = BEGIN_MARKER;
        let end = END_MARKER;
        for document in [
            format!("{begin}\nno end\n"),
            format!("no begin\n{end}\n"),
            format!("{end}\n{begin}\n"),
            format!("{begin}\n{end}\n{begin}\n{end}\n"),
        ] {
            assert!(locate(&document).is_err(), "{document:?}");
            assert!(splice(&document, "x").is_err(), "{document:?}");
        }
        // A marker inside a longer line is text, not a marker.
        assert_eq!(locate(&format!("see {begin} and {end}\n")).unwrap(), None);
    }

    #[test]
    fn writes_replace_the_file_and_keep_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("BENCHMARKS.md");
        write_atomically(&path, "first\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "first\n");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        write_atomically(&path, "second\n").unwrap();
        assert_eq!(read_document(&path).unwrap(), "second\n");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temp left");
        assert_eq!(read_document(&dir.path().join("absent")).unwrap(), "");
    }
}
