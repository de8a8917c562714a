//! The comparison as markdown: figures formatted for reading, ratios
//! (ironcd / etcd), and each target's verdict.

use std::fmt::Write as _;

/// What a figure measures, which decides how it is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Operations per second, written `20.7k/s`.
    PerSec,
    /// A latency in seconds, written in milliseconds: `0.43 ms`.
    LatencySecs,
    /// A size in bytes, written in MiB: `123.4 MiB`.
    Bytes,
    /// A duration in seconds: `1.23 s`.
    Secs,
}

/// Which way a target bounds the ratio.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// Met when ironcd / etcd ≥ the ratio (throughput).
    AtLeast,
    /// Met when ironcd / etcd ≤ the ratio (latency, memory, size, time).
    AtMost,
}

/// A target on the ratio ironcd / etcd.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Target {
    /// Which way the target bounds the ratio.
    pub bound: Bound,
    /// The bound itself.
    pub ratio: f64,
}

impl Target {
    /// ironcd / etcd must reach `ratio`.
    pub const fn at_least(ratio: f64) -> Target {
        Target {
            bound: Bound::AtLeast,
            ratio,
        }
    }

    /// ironcd / etcd must stay within `ratio`.
    pub const fn at_most(ratio: f64) -> Target {
        Target {
            bound: Bound::AtMost,
            ratio,
        }
    }

    /// Whether `ratio` meets the target (bounds inclusive).
    pub fn is_met_by(self, ratio: f64) -> bool {
        match self.bound {
            Bound::AtLeast => ratio >= self.ratio,
            Bound::AtMost => ratio <= self.ratio,
        }
    }

    fn display(self) -> String {
        let sign = match self.bound {
            Bound::AtLeast => "≥",
            Bound::AtMost => "≤",
        };
        format!("{sign} {:.1}×", self.ratio)
    }
}

/// One implementation's entry in the table.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// A measured figure; `errors` failed requests went with it.
    Figure {
        /// The figure in the unit's base (per second, seconds, bytes).
        value: f64,
        /// What it measures.
        unit: Unit,
        /// Requests that failed during the run.
        errors: u64,
    },
    /// The server answered the workload's service with Unimplemented.
    NotServed,
    /// The figure could not be measured; a one-line summary.
    Failed(String),
}

impl Cell {
    /// A figure from a run without errors.
    pub fn figure(value: f64, unit: Unit) -> Cell {
        Cell::Figure {
            value,
            unit,
            errors: 0,
        }
    }

    fn value(&self) -> Option<f64> {
        match self {
            Cell::Figure { value, .. } => Some(*value),
            _ => None,
        }
    }

    fn has_errors(&self) -> bool {
        matches!(self, Cell::Figure { errors, .. } if *errors > 0)
    }

    fn display(&self) -> String {
        match self {
            Cell::Figure {
                value,
                unit,
                errors,
            } => {
                let figure = format_value(*value, *unit);
                match errors {
                    0 => figure,
                    1 => format!("{figure} (1 error)"),
                    n => format!("{figure} ({n} errors)"),
                }
            }
            Cell::NotServed => "not yet served".to_string(),
            Cell::Failed(summary) => format!("failed: {}", escape_cell(summary)),
        }
    }
}

/// One line of the table: one metric of one workload, both implementations.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    /// `1 node` or `3 nodes`.
    pub shape: String,
    /// The workload and its load, e.g. `put (256 clients, 16 conns)`.
    pub workload: String,
    /// What is compared, e.g. `requests/s`.
    pub metric: String,
    /// etcd's figure.
    pub etcd: Cell,
    /// ironcd's figure.
    pub ironcd: Cell,
    /// The target on ironcd / etcd, if the issue sets one.
    pub target: Option<Target>,
}

impl Line {
    /// ironcd / etcd, when both were measured and etcd's is not zero.
    pub fn ratio(&self) -> Option<f64> {
        let etcd = self.etcd.value()?;
        let ironcd = self.ironcd.value()?;
        (etcd > 0.0).then(|| ironcd / etcd)
    }

    /// `met`, `**missed**` or `—` (no target or no ratio); a run with
    /// errors says so.
    pub fn verdict(&self) -> String {
        let verdict = match (self.target, self.ratio()) {
            (Some(target), Some(ratio)) if target.is_met_by(ratio) => "met",
            (Some(_), Some(_)) => "**missed**",
            _ => "—",
        };
        if self.etcd.has_errors() || self.ironcd.has_errors() {
            format!("{verdict} (with errors)")
        } else {
            verdict.to_string()
        }
    }

    fn row(&self) -> String {
        let ratio = self
            .ratio()
            .map_or_else(|| "—".to_string(), |r| format!("{r:.2}×"));
        let target = self.target.map_or_else(|| "—".to_string(), Target::display);
        format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            self.shape,
            escape_cell(&self.workload),
            self.metric,
            self.etcd.display(),
            self.ironcd.display(),
            ratio,
            target,
            self.verdict()
        )
    }
}

/// The table's header row.
pub const TABLE_HEADER: &str = "| shape | workload | metric | etcd | ironcd | ratio | target | |";

/// The markdown table of `lines`.
pub fn table(lines: &[Line]) -> String {
    let mut out = String::new();
    out.push_str(TABLE_HEADER);
    out.push_str("\n|---|---|---|---|---|---|---|---|\n");
    for line in lines {
        let _ = writeln!(out, "{}", line.row());
    }
    out
}

/// One sentence under the table: how many targets were met and missed,
/// and how many lack a figure of either side.
pub fn targets_summary(lines: &[Line]) -> String {
    let (mut met, mut missed, mut unmeasured) = (0, 0, 0);
    for line in lines {
        match (line.target, line.ratio()) {
            (None, _) => {}
            (Some(target), Some(ratio)) if target.is_met_by(ratio) => met += 1,
            (Some(_), Some(_)) => missed += 1,
            (Some(_), None) => unmeasured += 1,
        }
    }
    format!(
        "Targets: {met} met, {missed} missed, {unmeasured} without a ratio \
         (not yet served, or failed to run)."
    )
}

/// `value` in `unit`, as the table writes it.
pub fn format_value(value: f64, unit: Unit) -> String {
    match unit {
        Unit::PerSec => format_rate(value),
        Unit::LatencySecs => format!("{:.2} ms", value * 1e3),
        Unit::Bytes => format!("{:.1} MiB", value / (1u64 << 20) as f64),
        Unit::Secs if value < 1.0 => format!("{value:.3} s"),
        Unit::Secs => format!("{value:.2} s"),
    }
}

/// Three significant digits with a k or M suffix: `20.7k/s`, `2.37k/s`,
/// `812/s`, `1.25M/s`.
fn format_rate(per_sec: f64) -> String {
    if per_sec >= 999_500.0 {
        format!("{:.2}M/s", per_sec / 1e6)
    } else if per_sec >= 99_950.0 {
        format!("{:.0}k/s", per_sec / 1e3)
    } else if per_sec >= 9_995.0 {
        format!("{:.1}k/s", per_sec / 1e3)
    } else if per_sec >= 1_000.0 {
        format!("{:.2}k/s", per_sec / 1e3)
    } else if per_sec >= 100.0 {
        format!("{per_sec:.0}/s")
    } else {
        format!("{per_sec:.1}/s")
    }
}

/// Text safe inside one markdown table cell: one line, no bare `|`, short.
pub fn escape_cell(text: &str) -> String {
    const MAX_CHARS: usize = 120;
    let line = text.lines().next().unwrap_or("").trim();
    let mut short: String = line.chars().take(MAX_CHARS).collect();
    if line.chars().count() > MAX_CHARS {
        short.push('…');
    }
    short.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(etcd: Cell, ironcd: Cell, target: Option<Target>) -> Line {
        Line {
            shape: "1 node".into(),
            workload: "put (256 clients, 16 conns)".into(),
            metric: "requests/s".into(),
            etcd,
            ironcd,
            target,
        }
    }

    #[test]
    fn rates_keep_three_significant_digits() {
        let cases = [
            (20_700.0, "20.7k/s"),
            (20_749.0, "20.7k/s"),
            (2_369.0, "2.37k/s"),
            (812.4, "812/s"),
            (3.31, "3.3/s"),
            (0.0, "0.0/s"),
            (9_999.0, "10.0k/s"),
            (297_381.0, "297k/s"),
            (1_250_000.0, "1.25M/s"),
        ];
        for (value, expected) in cases {
            assert_eq!(format_value(value, Unit::PerSec), expected, "{value}");
        }
    }

    #[test]
    fn latencies_sizes_and_times_have_their_units() {
        assert_eq!(format_value(0.000_431, Unit::LatencySecs), "0.43 ms");
        assert_eq!(format_value(0.012_345, Unit::LatencySecs), "12.35 ms");
        assert_eq!(format_value(3.5 * 1048576.0, Unit::Bytes), "3.5 MiB");
        assert_eq!(format_value(1.234, Unit::Secs), "1.23 s");
        assert_eq!(format_value(0.0421, Unit::Secs), "0.042 s");
    }

    #[test]
    fn verdicts_follow_the_bound() {
        let fig = |v| Cell::figure(v, Unit::PerSec);
        let at_least = Some(Target::at_least(2.0));
        let at_most = Some(Target::at_most(0.5));
        assert_eq!(line(fig(10.0), fig(20.0), at_least).verdict(), "met");
        assert_eq!(line(fig(10.0), fig(19.9), at_least).verdict(), "**missed**");
        assert_eq!(line(fig(10.0), fig(5.0), at_most).verdict(), "met");
        assert_eq!(line(fig(10.0), fig(5.1), at_most).verdict(), "**missed**");
        assert_eq!(line(fig(10.0), fig(1.0), None).verdict(), "—");
        assert_eq!(
            line(fig(10.0), Cell::NotServed, at_least).verdict(),
            "—",
            "no ratio, no verdict"
        );
        assert_eq!(line(fig(0.0), fig(1.0), at_least).ratio(), None);
        let with_errors = Cell::Figure {
            value: 30.0,
            unit: Unit::PerSec,
            errors: 5,
        };
        assert_eq!(
            line(fig(10.0), with_errors, at_least).verdict(),
            "met (with errors)"
        );
    }

    #[test]
    fn summary_counts_targets_only() {
        let fig = |v| Cell::figure(v, Unit::PerSec);
        let lines = [
            line(fig(1.0), fig(2.0), Some(Target::at_least(2.0))),
            line(fig(1.0), fig(1.0), Some(Target::at_least(2.0))),
            line(fig(1.0), fig(1.0), Some(Target::at_most(0.5))),
            line(fig(1.0), Cell::NotServed, Some(Target::at_least(2.0))),
            line(fig(1.0), fig(9.0), None),
        ];
        assert_eq!(
            targets_summary(&lines),
            "Targets: 1 met, 2 missed, 1 without a ratio (not yet served, or failed to run)."
        );
    }

    #[test]
    fn rows_show_figures_ratio_target_and_verdict() {
        let row = line(
            Cell::figure(20_700.0, Unit::PerSec),
            Cell::Figure {
                value: 45_000.0,
                unit: Unit::PerSec,
                errors: 5,
            },
            Some(Target::at_least(2.0)),
        )
        .row();
        assert_eq!(
            row,
            "| 1 node | put (256 clients, 16 conns) | requests/s | 20.7k/s | 45.0k/s (5 errors) \
             | 2.17× | ≥ 2.0× | met (with errors) |"
        );
        let row = line(
            Cell::figure(1.0, Unit::PerSec),
            Cell::NotServed,
            Some(Target::at_least(2.0)),
        )
        .row();
        assert!(
            row.ends_with("| not yet served | — | ≥ 2.0× | — |"),
            "{row}"
        );
        let row = line(
            Cell::Failed("exited 1 | oops\nsecond line".into()),
            Cell::figure(1.0, Unit::PerSec),
            None,
        )
        .row();
        assert!(
            row.contains("| failed: exited 1 \\| oops | 1.0/s | — | — | — |"),
            "{row}"
        );
    }
}
