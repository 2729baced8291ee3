//! Output of `imgstat check`: an aligned table for people, JSON for scripts.

use std::io::{self, Write};

use crate::rules::Status;
use crate::status::ContainerReport;

/// Writes one line per container: name, image, status, and the reason for `skipped` and
/// `error`.
pub fn write_table(out: &mut impl Write, reports: &[ContainerReport]) -> io::Result<()> {
    let header = ["CONTAINER", "IMAGE", "STATUS", "REASON"];
    let rows: Vec<[&str; 4]> = reports
        .iter()
        .map(|report| {
            let reason = match report.status {
                Status::Skipped | Status::Error => report.message.as_str(),
                _ => "",
            };
            [
                report.name.as_str(),
                report.image.as_str(),
                report.status.as_str(),
                reason,
            ]
        })
        .collect();

    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    write_row(out, &header, &widths)?;
    for row in &rows {
        write_row(out, row, &widths)?;
    }
    Ok(())
}

fn write_row(out: &mut impl Write, cells: &[&str; 4], widths: &[usize; 4]) -> io::Result<()> {
    let mut line = String::new();
    for (i, cell) in cells.iter().enumerate() {
        if i + 1 == cells.len() {
            line.push_str(cell);
        } else {
            line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
        }
    }
    writeln!(out, "{}", line.trim_end())
}

/// Writes all reports as one JSON array.
pub fn write_json(out: &mut impl Write, reports: &[ContainerReport]) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, reports)?;
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(name: &str, status: Status, message: &str) -> ContainerReport {
        ContainerReport {
            container: format!("{name}-id"),
            name: name.to_owned(),
            image: "example.com/app:v1".to_owned(),
            status,
            message: message.to_owned(),
            local_digests: vec!["sha256:aa".to_owned()],
            remote_digest: Some("sha256:bb".to_owned()),
            reference: Some("example.com/app:v1".to_owned()),
            registry: Some("example.com".to_owned()),
            checked_at: None,
        }
    }

    #[test]
    fn table_aligns_and_shows_reasons_for_skipped_and_error() {
        let reports = [
            report("web", Status::Outdated, "the registry has a newer digest"),
            report(
                "database",
                Status::Error,
                "cannot reach registry example.com",
            ),
        ];
        let mut out = Vec::new();
        write_table(&mut out, &reports).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "CONTAINER  IMAGE               STATUS    REASON");
        assert_eq!(lines[1], "web        example.com/app:v1  outdated");
        assert_eq!(
            lines[2],
            "database   example.com/app:v1  error     cannot reach registry example.com"
        );
    }

    #[test]
    fn json_has_the_documented_fields() {
        let mut out = Vec::new();
        write_json(&mut out, &[report("web", Status::Updated, "")]).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let object = &value[0];
        for field in [
            "container",
            "name",
            "image",
            "status",
            "message",
            "local_digests",
            "remote_digest",
        ] {
            assert!(object.get(field).is_some(), "missing {field}");
        }
        assert_eq!(object["status"], "updated");
        assert_eq!(object["container"], "web-id");
    }
}
