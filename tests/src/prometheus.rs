//! A strict reader of the Prometheus text exposition format (0.0.4), for
//! tests of `/metrics`: it parses every line, checks the format's rules —
//! one `# TYPE` per family, before its samples; samples named after their
//! family (`_bucket`, `_sum`, `_count` for histograms and summaries);
//! well-formed, escaped labels; numeric values; histogram buckets that
//! never decrease and end in `+Inf` equal to `_count` — and returns the
//! families for tests to look metrics up in.

use std::collections::BTreeMap;

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The sample's own name (`x_bucket` within family `x`).
    pub name: String,
    /// Its labels, by name.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

/// A metric family: its `# TYPE`, `# HELP` and samples in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Family {
    /// `counter`, `gauge`, `histogram`, `summary` or `untyped`.
    pub kind: String,
    /// The help text.
    pub help: String,
    /// Its samples, in the order written.
    pub samples: Vec<Sample>,
}

impl Family {
    /// The value of the sample named `name` whose labels include every
    /// pair of `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
    }

    /// Every label name used by the family's samples (`le` and
    /// `quantile` included).
    pub fn label_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .samples
            .iter()
            .flat_map(|s| s.labels.keys().cloned())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// A parsed exposition: families by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Exposition {
    /// Every family.
    pub families: BTreeMap<String, Family>,
}

impl Exposition {
    /// The family `name`.
    pub fn family(&self, name: &str) -> Option<&Family> {
        self.families.get(name)
    }

    /// The value of an unlabelled gauge or counter `name`.
    pub fn scalar(&self, name: &str) -> Option<f64> {
        self.family(name)?.value(name, &[])
    }
}

/// The family a sample name belongs to, given the families declared.
fn family_of<'a>(name: &'a str, declared: &BTreeMap<String, Family>) -> &'a str {
    if declared.contains_key(name) {
        return name;
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if declared
                .get(base)
                .is_some_and(|f| f.kind == "histogram" || f.kind == "summary")
            {
                return base;
            }
        }
    }
    name
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        t => t.parse::<f64>().map_err(|e| format!("value {t:?}: {e}")),
    }
}

/// Parses `{a="x",b="y"}` starting at `text` (after the `{`); returns the
/// labels and the rest after `}`.
fn parse_labels(mut text: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    loop {
        text = text.trim_start();
        if let Some(rest) = text.strip_prefix('}') {
            return Ok((labels, rest));
        }
        let eq = text.find('=').ok_or("label without '='")?;
        let name = text[..eq].trim();
        if !valid_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        let mut rest = text[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value not quoted")?
            .chars();
        let mut value = String::new();
        loop {
            match rest.next().ok_or("unterminated label value")? {
                '"' => break,
                '\\' => match rest.next().ok_or("dangling escape")? {
                    'n' => value.push('\n'),
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    c => return Err(format!("bad escape \\{c}")),
                },
                '\n' => return Err("newline in label value".into()),
                c => value.push(c),
            }
        }
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("label {name} given twice"));
        }
        text = rest.as_str().trim_start();
        if let Some(after) = text.strip_prefix(',') {
            text = after;
        } else if !text.starts_with('}') {
            return Err("expected ',' or '}' after a label".into());
        }
    }
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("sample without a value")?;
    let name = &line[..name_end];
    if !valid_name(name) {
        return Err(format!("bad metric name {name:?}"));
    }
    let (labels, rest) = match line[name_end..].strip_prefix('{') {
        Some(rest) => parse_labels(rest)?,
        None => (BTreeMap::new(), &line[name_end..]),
    };
    let mut fields = rest.split_whitespace();
    let value = parse_value(fields.next().ok_or("sample without a value")?)?;
    if let Some(ts) = fields.next() {
        ts.parse::<i64>()
            .map_err(|e| format!("timestamp {ts:?}: {e}"))?;
    }
    if fields.next().is_some() {
        return Err("extra fields after the timestamp".into());
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// A series' labels but `le`, sorted.
type SeriesKey = Vec<(String, String)>;

/// Checks one histogram family: for each label set (without `le`), the
/// buckets never decrease as `le` grows, `+Inf` is there and equals
/// `_count`, and `_sum` is there.
fn check_histogram(name: &str, family: &Family) -> Result<(), String> {
    let mut series: BTreeMap<SeriesKey, Vec<(f64, f64)>> = BTreeMap::new();
    let mut counts: BTreeMap<SeriesKey, f64> = BTreeMap::new();
    let mut sums = 0;
    for s in &family.samples {
        let mut key: Vec<(String, String)> = s
            .labels
            .iter()
            .filter(|(k, _)| *k != "le")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        key.sort();
        if s.name == format!("{name}_bucket") {
            let le = s
                .labels
                .get("le")
                .ok_or(format!("{name}_bucket without le"))?;
            series
                .entry(key)
                .or_default()
                .push((parse_value(le)?, s.value));
        } else if s.name == format!("{name}_count") {
            counts.insert(key, s.value);
        } else if s.name == format!("{name}_sum") {
            sums += 1;
        }
    }
    for (key, mut buckets) in series {
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        if buckets.windows(2).any(|w| w[1].1 < w[0].1) {
            return Err(format!("{name} {key:?}: buckets decrease: {buckets:?}"));
        }
        let last = buckets.last().copied().unwrap_or((0.0, 0.0));
        if last.0 != f64::INFINITY {
            return Err(format!("{name} {key:?}: no +Inf bucket"));
        }
        if counts.get(&key) != Some(&last.1) {
            return Err(format!(
                "{name} {key:?}: +Inf bucket {} but _count {:?}",
                last.1,
                counts.get(&key)
            ));
        }
    }
    if sums != counts.len() {
        return Err(format!(
            "{name}: {sums} _sum lines for {} series",
            counts.len()
        ));
    }
    Ok(())
}

/// Parses and checks `text`; the first violation is the error, with its
/// line number.
pub fn parse(text: &str) -> Result<Exposition, String> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(at(format!("unknown type {kind}")));
                    }
                    let family = families.entry(name.to_string()).or_default();
                    if !family.kind.is_empty() {
                        return Err(at(format!("second TYPE for {name}")));
                    }
                    if !family.samples.is_empty() {
                        return Err(at(format!("TYPE for {name} after its samples")));
                    }
                    family.kind = kind.to_string();
                }
                (Some("HELP"), Some(name), help) => {
                    families.entry(name.to_string()).or_default().help =
                        help.unwrap_or("").to_string();
                }
                // Other comments are allowed and mean nothing.
                _ => {}
            }
            continue;
        }
        let sample = parse_sample(line).map_err(at)?;
        let family = family_of(&sample.name, &families).to_string();
        let entry = families.entry(family.clone()).or_default();
        if entry.kind.is_empty() {
            return Err(at(format!("sample of {family} before its TYPE")));
        }
        if entry
            .samples
            .iter()
            .any(|s| s.name == sample.name && s.labels == sample.labels)
        {
            return Err(at("the same series twice".into()));
        }
        entry.samples.push(sample);
    }
    for (name, family) in &families {
        if family.kind.is_empty() {
            return Err(format!("{name}: HELP without TYPE"));
        }
        if family.kind == "histogram" {
            check_histogram(name, family)?;
        }
    }
    Ok(Exposition { families })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "# HELP a_total A.\n# TYPE a_total counter\n\
        a_total{code=\"OK\",m=\"x\\\"y\"} 3\na_total{code=\"Unknown\",m=\"z\"} 1 1700000000\n\
        # TYPE h histogram\nh_bucket{le=\"0.1\"} 1\nh_bucket{le=\"1\"} 2\n\
        h_bucket{le=\"+Inf\"} 2\nh_sum 0.6\nh_count 2\n# TYPE g gauge\ng 1.5e3\n";

    #[test]
    fn parses_a_good_exposition() {
        let e = parse(GOOD).unwrap();
        let a = e.family("a_total").unwrap();
        assert_eq!(a.kind, "counter");
        assert_eq!(a.help, "A.");
        assert_eq!(a.value("a_total", &[("m", "x\"y")]), Some(3.0));
        assert_eq!(a.label_names(), ["code", "m"]);
        assert_eq!(e.family("h").unwrap().value("h_count", &[]), Some(2.0));
        assert_eq!(e.scalar("g"), Some(1500.0));
    }

    #[test]
    fn rejects_what_the_format_forbids() {
        let bad = [
            ("x 1\n", "before its TYPE"),
            ("# TYPE x gauge\n# TYPE x gauge\n", "second TYPE"),
            ("# TYPE x gauge\nx{a=\"1\" 1\n", "expected"),
            ("# TYPE x gauge\nx{a=1} 1\n", "not quoted"),
            ("# TYPE x gauge\nx one\n", "value"),
            ("# TYPE x gauge\nx 1\nx 2\n", "twice"),
            ("# TYPE x wat\n", "unknown type"),
            (
                "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
                "decrease",
            ),
            ("# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_sum 1\nh_count 2\n", "+Inf"),
            (
                "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
                "_count",
            ),
        ];
        for (text, why) in bad {
            let e = parse(text).unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }
}
