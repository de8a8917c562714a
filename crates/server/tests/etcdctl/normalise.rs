//! Normalisation of etcdctl output, so that two clusters' runs of one script
//! can be compared: member, cluster and lease IDs (hex and decimal) and ports
//! become symbolic names (`M1_ID`, `CLUSTER_ID`, `LEASE1`, `M1_CLIENT`),
//! scratch paths become `$TMP`, and values that legitimately differ between
//! runs (raft terms and indexes, db sizes, server versions, hashes, timings,
//! log timestamps, a lease's remaining seconds) become `*`; lists printed in
//! Go map order (members, leases, a lease's keys) are sorted. Revisions,
//! counts, keys, values and granted TTLs are left alone: they must match.

use std::collections::HashMap;

use serde_json::Value;

/// Table columns (by header) whose cells are masked.
const MASKED_COLUMNS: &[&str] = &[
    "VERSION",
    "DB SIZE",
    "RAFT TERM",
    "RAFT INDEX",
    "RAFT APPLIED INDEX",
    "TOOK",
    "HASH",
    "TOTAL KEYS",
    "TOTAL SIZE",
];

/// `-w fields` keys whose values are masked (`Version` only when a string:
/// a key's version is a number and must match).
const MASKED_FIELDS: &[&str] = &[
    "RaftTerm",
    "RaftIndex",
    "RaftAppliedIndex",
    "DBSize",
    "DBSizeInUse",
    "Hash",
    "TotalKey",
    "TotalSize",
    "Took",
];

/// `-w json` keys (and etcdctl's own JSON log lines) whose values are masked.
const MASKED_JSON_KEYS: &[&str] = &[
    "ts",
    "target",
    "took",
    "size",
    "raft_term",
    "raftTerm",
    "raftIndex",
    "raftAppliedIndex",
    "dbSize",
    "dbSizeInUse",
    "hash",
    "totalKey",
    "totalSize",
];

const MASK: &str = "*";

/// How one command's output is to be read.
#[derive(Clone, Debug, Default)]
pub struct View {
    /// The first two words, e.g. `endpoint status` (`get foo` for a get).
    pub subcommand: String,
    /// `simple` unless `-w`/`--write-out` says otherwise.
    pub write_out: String,
    /// Sort lines and top-level JSON arrays: order depends on IDs or timing.
    pub sort: bool,
    /// Standard output (rows are masked by column) or standard error.
    pub stdout: bool,
}

impl View {
    pub fn of(words: &[String], sort: bool) -> View {
        let positional: Vec<&str> = words
            .iter()
            .map(String::as_str)
            .filter(|w| !w.starts_with('-'))
            .take(2)
            .collect();
        let mut write_out = "simple".to_string();
        for (i, word) in words.iter().enumerate() {
            if let Some(value) = word
                .strip_prefix("--write-out=")
                .or_else(|| word.strip_prefix("-w="))
            {
                write_out = value.to_string();
            } else if word == "-w" || word == "--write-out" {
                write_out = words.get(i + 1).cloned().unwrap_or_default();
            }
        }
        View {
            subcommand: positional.join(" "),
            write_out,
            sort,
            stdout: true,
        }
    }

    /// The same command's standard error.
    pub fn stderr(&self) -> View {
        View {
            stdout: false,
            ..self.clone()
        }
    }
}

/// One cluster's run-specific values and their symbolic names.
#[derive(Debug, Default)]
pub struct Symbols {
    /// Whole alphanumeric tokens (IDs in hex and decimal, ports) → name.
    tokens: HashMap<String, String>,
    /// Substrings (scratch paths) → name; replaced before tokens.
    paths: Vec<(String, String)>,
    /// Script placeholders (the text inside `${}`) → value.
    placeholders: HashMap<String, String>,
    added_members: usize,
    granted_leases: usize,
}

impl Symbols {
    /// Registers an ID under `name` (e.g. `M1_ID`); `${name}` is its hex form.
    pub fn add_id(&mut self, name: &str, id: u64) {
        assert_ne!(id, 0, "{name} is zero");
        self.tokens.insert(format!("{id:x}"), name.to_string());
        self.tokens.insert(format!("{id:016x}"), name.to_string());
        self.tokens.insert(id.to_string(), name.to_string());
        self.placeholders
            .insert(name.to_string(), format!("{id:x}"));
    }

    /// Registers a port under `name`; `${<prefix>_URL}` is its http URL.
    pub fn add_port(&mut self, name: &str, port: u16) {
        self.tokens.insert(port.to_string(), name.to_string());
        self.placeholders
            .insert(format!("{name}_URL"), format!("http://127.0.0.1:{port}"));
    }

    /// Registers a scratch path; `${name}` is the path.
    pub fn add_path(&mut self, name: &str, path: &str) {
        self.paths.push((path.to_string(), format!("${name}")));
        self.placeholders.insert(name.to_string(), path.to_string());
    }

    /// Learns the ID in `Member <hex> added to cluster <hex>` as `NEW<n>_ID`.
    pub fn learn_added_member(&mut self, stdout: &str) {
        for line in stdout.lines() {
            let Some(rest) = line.strip_prefix("Member ") else {
                continue;
            };
            // etcdctl prints `%16x`: space-padded.
            let Some((hex, _)) = rest.trim_start().split_once(" added to cluster ") else {
                continue;
            };
            let id = u64::from_str_radix(hex, 16)
                .unwrap_or_else(|e| panic!("member ID {hex:?} in {line:?}: {e}"));
            self.added_members += 1;
            let name = format!("NEW{}_ID", self.added_members);
            self.add_id(&name, id);
        }
    }

    /// Learns the ID a `lease grant` printed as `LEASE<n>` (`${LEASE<n>}` is
    /// its hex form, as etcdctl takes it), counting the grants that
    /// succeeded. etcdctl prints it in hex (`lease %016x granted with
    /// TTL(..)`) or in decimal (`"ID"` of `-w json` and `-w fields`).
    pub fn learn_granted_lease(&mut self, stdout: &str, view: &View) {
        if view.subcommand != "lease grant" {
            return;
        }
        for line in stdout.lines() {
            let id = if let Some(rest) = line.strip_prefix("lease ") {
                rest.split_once(" granted with TTL(").map(|(hex, _)| {
                    u64::from_str_radix(hex, 16)
                        .unwrap_or_else(|e| panic!("lease ID {hex:?} in {line:?}: {e}"))
                })
            } else if let Some(decimal) = line.strip_prefix("\"ID\" : ") {
                Some(
                    decimal
                        .parse()
                        .unwrap_or_else(|e| panic!("lease ID in {line:?}: {e}")),
                )
            } else if line.starts_with('{') {
                serde_json::from_str::<Value>(line)
                    .ok()
                    .and_then(|json| json.get("ID").and_then(Value::as_u64))
            } else {
                None
            };
            if let Some(id) = id {
                self.granted_leases += 1;
                let name = format!("LEASE{}", self.granted_leases);
                self.add_id(&name, id);
            }
        }
    }

    /// Replaces every `${NAME}` in `text`; an unknown name fails the test,
    /// except `NEW<n>_ID` and `LEASE<n>`, which only exist once a `member
    /// add` or a `lease grant` succeeded.
    pub fn substitute(&self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..]
                .find('}')
                .unwrap_or_else(|| panic!("unterminated placeholder in {text:?}"));
            let name = &rest[start + 2..start + end];
            match self.placeholders.get(name) {
                Some(value) => out.push_str(value),
                // A member that was never added or a lease never granted
                // (the command failed): the command runs with the
                // placeholder and fails visibly.
                None if name.starts_with("NEW") || name.starts_with("LEASE") => {
                    out.push_str(&rest[start..=start + end])
                }
                None => panic!("unknown placeholder ${{{name}}} in {text:?}"),
            }
            rest = &rest[start + end + 1..];
        }
        out.push_str(rest);
        out
    }

    /// The normalised form of one stream of one command's output.
    pub fn normalise(&self, text: &str, view: &View) -> String {
        let mut text = text.to_string();
        for (path, name) in &self.paths {
            text = text.replace(path.as_str(), name);
        }
        let mut header = Vec::new();
        // `-w fields` of `lease timetolive` prints the granted TTL after the
        // remaining one.
        let granted_ttl_s = text
            .lines()
            .find_map(|line| line.strip_prefix("\"GrantedTTL\" : ")?.parse().ok());
        // One entry per line of output (a JSON line becomes several lines).
        let mut lines: Vec<String> = text
            .lines()
            .map(|line| self.normalise_line(line, view, &mut header, granted_ttl_s))
            .collect();
        if view.sort {
            lines.sort();
        }
        lines.join("\n")
    }

    fn normalise_line(
        &self,
        line: &str,
        view: &View,
        header: &mut Vec<String>,
        granted_ttl_s: Option<i64>,
    ) -> String {
        if line.starts_with('{') || line.starts_with('[') {
            if let Ok(json) = serde_json::from_str::<Value>(line) {
                let json = self.normalise_json(json, None, view.sort, view);
                // Responses pretty, so that a diff points at the field that
                // differs; etcdctl's own log lines on stderr compact.
                return if view.stdout {
                    serde_json::to_string_pretty(&json).expect("JSON serialises")
                } else {
                    json.to_string()
                };
            }
        }
        if line.starts_with('+') {
            return collapse_border(line);
        }
        if line.starts_with('|') {
            return self.table_row(line, header);
        }
        if let Some(normalised) = self.fields_line(line, view, granted_ttl_s) {
            return normalised;
        }
        self.simple_line(line, view)
    }

    fn normalise_json(&self, value: Value, key: Option<&str>, sort: bool, view: &View) -> Value {
        match value {
            Value::Object(map) => {
                // `lease timetolive -w json`: `ttl` is the remaining time.
                let granted_ttl_s = map.get("granted-ttl").and_then(Value::as_i64);
                Value::Object(
                    map.into_iter()
                        .map(|(k, v)| {
                            let masked = MASKED_JSON_KEYS.contains(&k.as_str())
                                || (k == "version" && v.is_string())
                                || (k == "ttl" && is_remaining_ttl(v.as_i64(), granted_ttl_s));
                            let v = if masked {
                                Value::String(MASK.to_string())
                            } else {
                                self.normalise_json(v, Some(&k), false, view)
                            };
                            (k, v)
                        })
                        .collect(),
                )
            }
            Value::Array(items) => {
                let mut items: Vec<Value> = items
                    .into_iter()
                    .map(|v| self.normalise_json(v, None, false, view))
                    .collect();
                // Members come in ID order and IDs differ between runs;
                // leases and a lease's keys come in Go map order.
                let unordered = matches!(key, Some("members" | "leases"))
                    || (key == Some("keys") && view.subcommand == "lease timetolive");
                if sort || unordered {
                    items.sort_by_key(|v| v.to_string());
                }
                Value::Array(items)
            }
            Value::Number(n) => match self.tokens.get(&n.to_string()) {
                Some(name) => Value::String(name.clone()),
                None => Value::Number(n),
            },
            Value::String(s) => Value::String(self.replace_tokens(&s)),
            other => other,
        }
    }

    fn table_row(&self, line: &str, header: &mut Vec<String>) -> String {
        let cells: Vec<String> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(|cell| cell.trim().to_string())
            .collect();
        let cells = if header.is_empty() {
            *header = cells.clone();
            cells
        } else {
            cells
                .iter()
                .enumerate()
                .map(|(i, cell)| {
                    let masked = header
                        .get(i)
                        .is_some_and(|h| MASKED_COLUMNS.contains(&h.as_str()));
                    if masked {
                        MASK.to_string()
                    } else {
                        self.replace_tokens(cell)
                    }
                })
                .collect()
        };
        format!("| {} |", cells.join(" | "))
    }

    /// `"Key" : value` lines of `-w fields`.
    fn fields_line(&self, line: &str, view: &View, granted_ttl_s: Option<i64>) -> Option<String> {
        let rest = line.strip_prefix('"')?;
        let (key, value) = rest.split_once("\" : ")?;
        let remaining_ttl = view.subcommand == "lease timetolive"
            && key == "TTL"
            && is_remaining_ttl(value.parse().ok(), granted_ttl_s);
        let masked = MASKED_FIELDS.contains(&key)
            || (key == "Version" && value.starts_with('"'))
            || remaining_ttl;
        let value = if masked {
            MASK.to_string()
        } else {
            self.replace_tokens(value)
        };
        Some(format!("\"{key}\" : {value}"))
    }

    fn simple_line(&self, line: &str, view: &View) -> String {
        let mut line = mask_after(&self.replace_tokens(line), "took = ");
        if line.starts_with("lease ") {
            line = normalise_time_to_live(&line);
        }
        if line.starts_with("Member ") {
            // `Member %16x added to cluster %16x`: an ID below 2^60 is
            // padded with spaces, and IDs differ between runs.
            line = line
                .split(' ')
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
        }
        if let Some(list) = line
            .strip_prefix("ETCD_INITIAL_CLUSTER=\"")
            .and_then(|l| l.strip_suffix('"'))
        {
            // etcdctl prints this from a Go map: the order is random.
            let mut entries: Vec<&str> = list.split(',').collect();
            entries.sort();
            return format!("ETCD_INITIAL_CLUSTER=\"{}\"", entries.join(","));
        }
        if view.write_out != "simple" {
            return line;
        }
        // (cells in a row, cells to mask) of etcdctl's comma-separated rows.
        let (width, masked_columns): (usize, &[usize]) = match view.subcommand.as_str() {
            "endpoint status" => (10, &[2, 3, 6, 7, 8]),
            "endpoint hashkv" => (2, &[1]),
            "snapshot status" => (4, &[0, 2, 3]),
            _ => return line,
        };
        let mut cells: Vec<&str> = line.split(", ").collect();
        if !view.stdout || cells.len() != width {
            return line;
        }
        for &i in masked_columns {
            cells[i] = MASK;
        }
        cells.join(", ")
    }

    fn replace_tokens(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut token = String::new();
        for c in text.chars() {
            if c.is_ascii_alphanumeric() {
                token.push(c);
                continue;
            }
            self.flush_token(&mut out, &mut token);
            out.push(c);
        }
        self.flush_token(&mut out, &mut token);
        out
    }

    fn flush_token(&self, out: &mut String, token: &mut String) {
        match self.tokens.get(token.as_str()) {
            Some(name) => out.push_str(name),
            None => out.push_str(token),
        }
        token.clear();
    }
}

/// Whether `remaining_s` is a lease's remaining time to live, which depends
/// on when it was asked: more than 0 and at most the granted TTL. Anything
/// else (an expired lease's -1, a remaining time above the granted one) is
/// left to be compared.
fn is_remaining_ttl(remaining_s: Option<i64>, granted_ttl_s: Option<i64>) -> bool {
    match (remaining_s, granted_ttl_s) {
        (Some(remaining), Some(granted)) => 0 < remaining && remaining <= granted,
        _ => false,
    }
}

/// `lease %016x granted with TTL(%ds), remaining(%ds)[, attached keys([..])]`
/// of `lease timetolive`: the remaining seconds are masked (see
/// [`is_remaining_ttl`]) and the keys, printed from a Go map, sorted.
fn normalise_time_to_live(line: &str) -> String {
    let Some((head, rest)) = line.split_once(" granted with TTL(") else {
        return line.to_string();
    };
    let Some((granted, rest)) = rest.split_once("s), remaining(") else {
        return line.to_string();
    };
    let Some((remaining, rest)) = rest.split_once("s)") else {
        return line.to_string();
    };
    let remaining = if is_remaining_ttl(remaining.parse().ok(), granted.parse().ok()) {
        MASK
    } else {
        remaining
    };
    let rest = match rest
        .strip_prefix(", attached keys([")
        .and_then(|keys| keys.strip_suffix("])"))
    {
        Some(keys) => {
            let mut keys: Vec<&str> = keys.split(' ').filter(|k| !k.is_empty()).collect();
            keys.sort();
            format!(", attached keys([{}])", keys.join(" "))
        }
        None => rest.to_string(),
    };
    format!("{head} granted with TTL({granted}s), remaining({remaining}s){rest}")
}

/// `+-----+---+` borders: column widths follow the masked values.
fn collapse_border(line: &str) -> String {
    let mut out = String::new();
    for c in line.trim().chars() {
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
    }
    out
}

/// Replaces the word after `marker` (up to a space or comma) with the mask.
fn mask_after(line: &str, marker: &str) -> String {
    let Some(start) = line.find(marker) else {
        return line.to_string();
    };
    let value_start = start + marker.len();
    let value_end = line[value_start..]
        .find([' ', ','])
        .map_or(line.len(), |end| value_start + end);
    format!("{}{MASK}{}", &line[..value_start], &line[value_end..])
}
