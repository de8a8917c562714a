//! The generated section: when, where and how the figures were taken, the
//! table, notes on failures, and every `ironcd-bench` command run.

use std::fmt::Write as _;
use std::process::Command;
use std::time::Duration;

use crate::report::{self, Line};
use crate::{system, Binaries};

/// The section's heading.
pub const HEADING: &str = "## ironcd vs etcd 3.4 — bench-compare";
/// Appended to the heading of a `--quick` run.
pub const QUICK_MARK: &str = "(quick smoke run — not a measurement)";

/// Everything the section says; [`Section::finish`] adds the results.
pub struct Section {
    quick: bool,
    secs: u64,
    fill_keys: u64,
    date: String,
    machine: String,
    etcd_version: String,
    ironcd_version: String,
    binaries: String,
    invocation: String,
    elapsed: Duration,
    lines: Vec<Line>,
    commands: Vec<(String, String)>,
    notes: Vec<String>,
}

impl Section {
    /// Gathers the facts about this run: date, machine, versions, command.
    pub fn describe(quick: bool, secs: u64, fill_keys: u64, binaries: &Binaries) -> Section {
        Section {
            quick,
            secs,
            fill_keys,
            date: system::now_utc(),
            machine: system::machine(&std::env::temp_dir()),
            etcd_version: system::first_line_of(Command::new(&binaries.etcd).arg("--version")),
            ironcd_version: system::first_line_of(Command::new(&binaries.ironcd).arg("--version")),
            binaries: format!(
                "etcd `{}`, ironcd `{}`, ironcd-bench `{}`",
                binaries.etcd.display(),
                binaries.ironcd.display(),
                binaries.bench.display()
            ),
            invocation: invocation(std::env::args().skip(1)),
            elapsed: Duration::ZERO,
            lines: Vec::new(),
            commands: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Adds the run's results.
    pub fn finish(
        &mut self,
        lines: Vec<Line>,
        commands: Vec<(String, String)>,
        notes: Vec<String>,
        elapsed: Duration,
    ) {
        self.lines = lines;
        self.commands = commands;
        self.notes = notes;
        self.elapsed = elapsed;
    }

    /// The section's markdown, heading first, ending in a newline.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let heading = if self.quick {
            format!("{HEADING} {QUICK_MARK}")
        } else {
            HEADING.to_string()
        };
        let _ = writeln!(out, "{heading}\n");
        let _ = writeln!(
            out,
            "Written by `bench-compare` on {}; the run took {:.0} s. \
             The next run rewrites everything between the bench-compare markers.\n",
            self.date,
            self.elapsed.as_secs_f64()
        );
        let _ = writeln!(out, "- Machine: {}.", self.machine);
        let _ = writeln!(
            out,
            "- Versions: `{}`; `{}`. Binaries: {}.",
            self.etcd_version, self.ironcd_version, self.binaries
        );
        let _ = writeln!(
            out,
            "- Command: `{}` (`make bench-compare` runs \
             `bench-compare --out BENCHMARKS.md $(ARGS)`).",
            self.invocation
        );
        out.push_str(&self.method());
        out.push('\n');
        out.push_str(&report::table(&self.lines));
        let _ = writeln!(out, "\n{}", report::targets_summary(&self.lines));
        if !self.notes.is_empty() {
            out.push_str("\nNotes:\n\n");
            for note in &self.notes {
                let _ = writeln!(out, "{}", note_item(note));
            }
        }
        out.push_str(
            "\n`ironcd-bench` command of each row, the same for both \
             (`<endpoints>` are the cluster's client URLs):\n\n",
        );
        for (row, command) in &self.commands {
            let _ = writeln!(out, "- {row}: `{command}`");
        }
        out
    }

    fn method(&self) -> String {
        format!(
            "- Method: for every row a fresh cluster of each implementation with fresh \
             data directories (1 member, or 3 on loopback), etcd first on odd rows and \
             ironcd first on even rows; members get only \
             `--name --data-dir --listen-client-urls --advertise-client-urls \
             --listen-peer-urls --initial-advertise-peer-urls --initial-cluster \
             --initial-cluster-state=new --initial-cluster-token`, otherwise both run \
             with their defaults. Each row runs {} s per implementation. The last rows \
             fill one fresh member with {} keys, read its peak RSS (VmHWM) and data \
             directory size (`du`), then SIGTERM it and time from spawning it again to \
             its first linearizable read. Ratio = ironcd / etcd.\n",
            self.secs,
            group_thousands(self.fill_keys)
        )
    }
}

/// One list item of notes; a multi-line note becomes a code block under it.
fn note_item(note: &str) -> String {
    let mut lines = note.lines();
    let first = lines.next().unwrap_or("");
    let rest: Vec<&str> = lines.collect();
    if rest.is_empty() {
        return format!("- {first}");
    }
    let mut out = format!("- {first}\n\n  ```text\n");
    for line in rest {
        // A fence inside the quoted text would close the block early.
        let _ = writeln!(out, "  {}", line.replace("```", "'''"));
    }
    out.push_str("  ```");
    out
}

/// `1000000` → `1 000 000`, as the rest of BENCHMARKS.md writes counts.
pub fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(digit);
    }
    out
}

/// The command line as it was typed, as near as shell quoting allows.
fn invocation(args: impl Iterator<Item = String>) -> String {
    let mut words = vec!["bench-compare".to_string()];
    words.extend(args.map(|arg| shell_quote(&arg)));
    words.join(" ")
}

fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(2_000), "2 000");
        assert_eq!(group_thousands(1_000_000), "1 000 000");
        assert_eq!(group_thousands(12_345_678), "12 345 678");
    }

    #[test]
    fn invocation_quotes_what_the_shell_would_split() {
        let args = ["--out", "my file.md", "--secs", "5", "it's"].map(String::from);
        assert_eq!(
            invocation(args.into_iter()),
            r"bench-compare --out 'my file.md' --secs 5 'it'\''s'"
        );
    }

    #[test]
    fn multi_line_notes_quote_their_tail() {
        assert_eq!(note_item("one line"), "- one line");
        assert_eq!(
            note_item("failed\nlog ```x\nlast"),
            "- failed\n\n  ```text\n  log '''x\n  last\n  ```"
        );
    }
}
