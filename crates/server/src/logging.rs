//! Log lines as etcd writes them: with `--logger=zap` (etcd 3.5's default)
//! one JSON object a line — `level`, `ts`, `caller`, `msg`, then the
//! event's fields — and with `--logger=capnslog` human-readable text;
//! to every `--log-outputs` target (stderr, stdout, files, `/dev/null`).

use std::fmt::{self, Write as _};
use std::fs::File;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

use crate::config::{LogLevel, Logger, ServerConfig};

/// One place log lines go.
enum Output {
    Stderr,
    Stdout,
    File(Mutex<File>),
}

/// Every `--log-outputs` target; a line is written to each in turn.
#[derive(Clone)]
pub struct Outputs(Arc<Vec<Output>>);

impl Outputs {
    /// Opens `outputs` (files are created or appended to). `/dev/null`
    /// among them discards everything, as in etcd.
    pub fn open(outputs: &[String]) -> io::Result<Outputs> {
        if outputs.iter().any(|o| o == "/dev/null") {
            return Ok(Outputs(Arc::new(Vec::new())));
        }
        let mut opened = Vec::new();
        for target in outputs {
            opened.push(match target.as_str() {
                "default" | "stderr" => Output::Stderr,
                "stdout" => Output::Stdout,
                // Journald is not spoken here: etcd falls back to stderr
                // when it cannot reach the journal, and so does ironcd.
                "systemd/journal" => Output::Stderr,
                path => Output::File(Mutex::new(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .map_err(|e| io::Error::new(e.kind(), format!("open {path}: {e}")))?,
                )),
            });
        }
        Ok(Outputs(Arc::new(opened)))
    }
}

/// A writer over [`Outputs`]: the formatter writes each line with one
/// `write_all`, which goes to every output whole.
pub struct Tee(Arc<Vec<Output>>);

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for output in self.0.iter() {
            // A full disk or a closed pipe must not stop the member.
            let _ = match output {
                Output::Stderr => io::stderr().write_all(buf),
                Output::Stdout => io::stdout().write_all(buf),
                Output::File(f) => f.lock().unwrap_or_else(|e| e.into_inner()).write_all(buf),
            };
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Outputs {
    type Writer = Tee;

    fn make_writer(&'a self) -> Tee {
        Tee(self.0.clone())
    }
}

/// `ts` as etcd formats it (`2006-01-02T15:04:05.000000Z0700`), in UTC.
pub fn timestamp(since_epoch: std::time::Duration) -> String {
    let secs = since_epoch.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since_epoch.subsec_micros()
    )
}

/// Appends `s` to `out` as a JSON string.
fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Collects an event's message and fields as JSON members.
#[derive(Default)]
struct JsonFields {
    message: String,
    fields: String,
}

impl JsonFields {
    fn key(&mut self, field: &Field) {
        self.fields.push(',');
        json_string(&mut self.fields, field.name());
        self.fields.push(':');
    }
}

impl Visit for JsonFields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.key(field);
            json_string(&mut self.fields, &text);
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.key(field);
            json_string(&mut self.fields, value);
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        let _ = write!(self.fields, "{value}");
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        let _ = write!(self.fields, "{value}");
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        let _ = write!(self.fields, "{value}");
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        if value.is_finite() {
            let _ = write!(self.fields, "{value}");
        } else {
            json_string(&mut self.fields, &value.to_string());
        }
    }
}

/// zap's JSON encoding of an event, as etcd configures it.
pub struct ZapJson;

/// `caller` as zap's short encoder writes it: the package and file — here
/// the crate (without `ironcd_`) and the file name — and the line.
fn caller(meta: &tracing::Metadata<'_>) -> String {
    let module = meta.module_path().unwrap_or(meta.target());
    let krate = module.split("::").next().unwrap_or(module);
    let krate = krate.strip_prefix("ironcd_").unwrap_or(krate);
    let file = meta
        .file()
        .and_then(|f| f.rsplit('/').next())
        .unwrap_or("?");
    format!("{krate}/{file}:{}", meta.line().unwrap_or(0))
}

/// zap's lowercase level names (it has no trace level: trace is debug).
fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        _ => "debug",
    }
}

impl ZapJson {
    /// One log line (without its newline) for `event` at `now`.
    fn line(event: &Event<'_>, now: std::time::Duration) -> String {
        let meta = event.metadata();
        let mut fields = JsonFields::default();
        event.record(&mut fields);
        let mut line = String::with_capacity(128 + fields.fields.len());
        line.push_str("{\"level\":");
        json_string(&mut line, level_name(meta.level()));
        line.push_str(",\"ts\":");
        json_string(&mut line, &timestamp(now));
        line.push_str(",\"caller\":");
        json_string(&mut line, &caller(meta));
        line.push_str(",\"msg\":");
        json_string(&mut line, &fields.message);
        line.push_str(&fields.fields);
        line.push('}');
        line
    }
}

impl<S, N> FormatEvent<S, N> for ZapJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        writeln!(writer, "{}", Self::line(event, now))
    }
}

/// Sets up logging for the process as `cfg` asks (`RUST_LOG` overrides
/// the level). Fails only when an output file cannot be opened.
pub fn init(cfg: &ServerConfig) -> io::Result<()> {
    let default = match cfg.log_level {
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{default},raft=warn")));
    let outputs = Outputs::open(&cfg.log_outputs)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(outputs)
        .with_ansi(false);
    // Set once per process; a second call (tests) keeps the first.
    let _ = match cfg.logger {
        Logger::Zap => builder.event_format(ZapJson).try_init(),
        Logger::Capnslog => builder.try_init(),
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timestamps_are_etcds_format_in_utc() {
        assert_eq!(timestamp(Duration::ZERO), "1970-01-01T00:00:00.000000Z");
        // 2024-02-29T23:59:58.123456Z: a leap day.
        let t = Duration::new(1_709_251_198, 123_456_789);
        assert_eq!(timestamp(t), "2024-02-29T23:59:58.123456Z");
        let t = Duration::from_secs(4_102_444_800); // 2100-01-01
        assert_eq!(timestamp(t), "2100-01-01T00:00:00.000000Z");
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut out = String::new();
        json_string(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(out, "\"a\\\"b\\\\c\\nd\\u0001é\"");
    }

    /// Captures the lines a subscriber with [`ZapJson`] writes.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn events_are_zap_json_lines() {
        let capture = Capture::default();
        let sink = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_max_level(Level::DEBUG)
            .event_format(ZapJson)
            .finish();
        let line = tracing::subscriber::with_default(subscriber, || {
            let line = line!() + 1;
            tracing::info!(address = %"127.0.0.1:2379", count = 3_u64, ok = true, "serving \"client\"");
            tracing::trace!("not shown");
            tracing::debug!(ratio = 0.5, "detail");
            line
        });
        let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        let (head, tail) = lines[0].split_once(",\"ts\":\"").unwrap();
        assert_eq!(head, "{\"level\":\"info\"");
        let (ts, rest) = tail.split_once('"').unwrap();
        assert_eq!(ts.len(), "2006-01-02T15:04:05.000000Z".len(), "{ts}");
        assert_eq!(
            rest,
            format!(
                ",\"caller\":\"server/logging.rs:{line}\",\"msg\":\"serving \\\"client\\\"\",\
                 \"address\":\"127.0.0.1:2379\",\"count\":3,\"ok\":true}}"
            )
        );
        assert!(lines[1].starts_with("{\"level\":\"debug\""), "{}", lines[1]);
        assert!(
            lines[1].ends_with("\"msg\":\"detail\",\"ratio\":0.5}"),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn dev_null_discards_and_files_are_appended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "old\n").unwrap();
        let outputs = Outputs::open(&[path.display().to_string()]).unwrap();
        outputs.make_writer().write_all(b"new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\nnew\n");
        let none = Outputs::open(&["stderr".into(), "/dev/null".into()]).unwrap();
        assert!(none.0.is_empty());
        let missing = dir.path().join("no/such/dir.log").display().to_string();
        assert!(Outputs::open(&[missing]).is_err());
    }
}
