//! Writes a benchmark's generated results into its markdown page, between two marker
//! lines, keeping the hand-written text around them. The fleet and server benchmarks both
//! include this file.

use std::path::Path;

/// The marker lines of one benchmark's generated part, and the title of a new page.
pub struct PageMarkers {
    pub begin: &'static str,
    pub end: &'static str,
    pub title: &'static str,
}

/// Writes `generated` into the page at `path` between the markers, keeping the text
/// around them. A page without markers gets the title and the generated part.
pub fn write_page(path: &Path, markers: &PageMarkers, generated: &str) -> std::io::Result<()> {
    let block = format!("{}\n{generated}{}\n", markers.begin, markers.end);
    let existing = std::fs::read_to_string(path).unwrap_or_default();
    let page = match (existing.find(markers.begin), existing.find(markers.end)) {
        (Some(begin), Some(end)) if begin < end => {
            let after = &existing[end + markers.end.len()..];
            let after = after.strip_prefix('\n').unwrap_or(after);
            format!("{}{block}{after}", &existing[..begin])
        }
        _ => format!("# {}\n\n{block}", markers.title),
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, page)
}
