//! Go's `flag` package as etcd uses it: how a command line is split into
//! flags and values ([`classify`], [`parse_command_line`]), and values read
//! as `strconv.ParseBool`, `ParseUint`, `ParseInt` and `time.ParseDuration`
//! read them.

use super::settings::Settings;
use super::table::{spec_index, FLAGS};
use super::FlagError;

/// Whether the command line asks to run with its flags or for the help
/// text.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum CommandLine {
    Flags,
    Help,
}

/// One command-line argument as Go's flag package sees it.
enum Token<'a> {
    /// Not a flag: etcd refuses it.
    Word,
    /// `--`: the end of the flags.
    End,
    Flag {
        name: &'a str,
        value: Option<&'a str>,
    },
}

fn classify(arg: &str) -> Result<Token<'_>, FlagError> {
    if arg.len() < 2 || !arg.starts_with('-') {
        return Ok(Token::Word);
    }
    if arg == "--" {
        return Ok(Token::End);
    }
    let body = arg.strip_prefix("--").unwrap_or(&arg[1..]);
    if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
        return Err(FlagError::BadSyntax(arg.to_string()));
    }
    Ok(match body.split_once('=') {
        Some((name, value)) => Token::Flag {
            name,
            value: Some(value),
        },
        None => Token::Flag {
            name: body,
            value: None,
        },
    })
}

/// Reads the flags in order, checking each value as Go does when it is
/// set: the first bad argument is the error, and `-h` stops parsing.
pub(super) fn parse_command_line(
    args: &[String],
    settings: &mut Settings,
) -> Result<CommandLine, FlagError> {
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let (name, value) = match classify(arg)? {
            Token::Word => return Err(FlagError::NotAFlag(arg.clone())),
            Token::End => break,
            Token::Flag { name, value } => (name, value),
        };
        if name == "h" || name == "help" {
            return Ok(CommandLine::Help);
        }
        let index = spec_index(name).ok_or_else(|| FlagError::UnknownFlag(name.to_string()))?;
        let spec = &FLAGS[index];
        let text = match value {
            Some(value) => value,
            None if spec.kind.takes_no_value() => "true",
            None => rest
                .next()
                .ok_or_else(|| FlagError::MissingValue(name.to_string()))?,
        };
        let parsed = spec
            .kind
            .parse(text)
            .map_err(|reason| FlagError::InvalidValue {
                flag: name.to_string(),
                env: None,
                value: text.to_string(),
                reason,
            })?;
        settings.given[index] = Some(parsed);
    }
    match rest.next() {
        Some(word) => Err(FlagError::NotAFlag(word.clone())),
        None => Ok(CommandLine::Flags),
    }
}

pub(super) fn out_of_range() -> String {
    "value out of range".to_string()
}

/// Go's `strconv.ParseBool`.
pub(super) fn parse_go_bool(text: &str) -> Result<bool, String> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err("expected a boolean (true or false)".to_string()),
    }
}

/// Go's `strconv.ParseUint(text, 0, 64)`: a base prefix (`0x`, `0o`, `0b`,
/// or a bare leading `0` for octal) and `_` between digits.
pub(super) fn parse_go_uint(text: &str) -> Result<u64, String> {
    let syntax = || "expected an unsigned integer".to_string();
    let lower = text.to_ascii_lowercase();
    let (radix, digits) = if let Some(rest) = lower.strip_prefix("0x") {
        (16, rest)
    } else if let Some(rest) = lower.strip_prefix("0o") {
        (8, rest)
    } else if let Some(rest) = lower.strip_prefix("0b") {
        (2, rest)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    let prefixed = digits.len() < lower.len();
    let groups: Vec<&str> = digits.split('_').collect();
    let bad_group = |(i, group): (usize, &&str)| group.is_empty() && !(i == 0 && prefixed);
    if groups.iter().enumerate().any(bad_group) {
        return Err(syntax());
    }
    let digits: String = groups.concat();
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(syntax());
    }
    u64::from_str_radix(&digits, radix).map_err(|_| out_of_range())
}

/// Go's `strconv.ParseInt(text, 0, 64)`.
pub(super) fn parse_go_int(text: &str) -> Result<i64, String> {
    let (negative, magnitude) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let magnitude = parse_go_uint(magnitude).map_err(|reason| reason.replace("unsigned ", ""))?;
    let value = if negative {
        -i128::from(magnitude)
    } else {
        i128::from(magnitude)
    };
    i64::try_from(value).map_err(|_| out_of_range())
}

/// Go's `time.ParseDuration`, in nanoseconds: a sign, then one or more
/// `<number><unit>` with units ns, us (µs), ms, s, m, h; `0` needs no unit.
pub(super) fn parse_go_duration(text: &str) -> Result<i64, String> {
    let invalid = || "expected a duration such as 1h30m, 90s or 500ms".to_string();
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total_ns: u128 = 0;
    while !rest.is_empty() {
        let int_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int_digits, after_int) = rest.split_at(int_end);
        let (frac_digits, after_number) = match after_int.strip_prefix('.') {
            Some(frac) => {
                let end = frac
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(frac.len());
                frac.split_at(end)
            }
            None => ("", after_int),
        };
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(invalid());
        }
        let unit_end = after_number
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after_number.len());
        let (unit, after_unit) = after_number.split_at(unit_end);
        let unit_ns = duration_unit_ns(unit).ok_or_else(invalid)?;
        total_ns = total_ns
            .checked_add(number_times_unit(int_digits, frac_digits, unit_ns).ok_or_else(invalid)?)
            .ok_or_else(invalid)?;
        rest = after_unit;
    }
    let signed = if negative {
        -(total_ns as i128)
    } else {
        total_ns as i128
    };
    i64::try_from(signed).map_err(|_| out_of_range())
}

fn duration_unit_ns(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "µs" | "μs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// `int.frac × unit`, truncated to whole nanoseconds; `None` on overflow.
fn number_times_unit(int_digits: &str, frac_digits: &str, unit_ns: u128) -> Option<u128> {
    let int: u128 = if int_digits.is_empty() {
        0
    } else {
        int_digits.parse().ok()?
    };
    // Digits past the 18th cannot move a result in whole nanoseconds.
    let frac_digits = &frac_digits[..frac_digits.len().min(18)];
    let frac: u128 = if frac_digits.is_empty() {
        0
    } else {
        frac_digits.parse().ok()?
    };
    let scale = 10u128.pow(frac_digits.len() as u32);
    int.checked_mul(unit_ns)?
        .checked_add(frac * unit_ns / scale)
}

#[cfg(test)]
mod tests {
    use crate::config::DEFAULT_PEER_URL;

    use super::*;
    use crate::flags::testkit::*;

    #[test]
    fn value_syntaxes() {
        let cases: &[&[&str]] = &[
            &["--name", "infra1"],
            &["--name=infra1"],
            &["-name", "infra1"],
            &["-name=infra1"],
            &["--name", "x", "--name", "infra1"], // the last one wins, as in Go
            &["--name", "infra1", "--"],
        ];
        for args in cases {
            let config = serve(args);
            assert_eq!(config.name, "infra1", "{args:?}");
            assert_eq!(config.data_dir.to_str(), Some("infra1.ironcd"), "{args:?}");
            assert_eq!(
                members(&config),
                [("infra1".into(), vec![DEFAULT_PEER_URL.into()])]
            );
        }
        // A value is taken even when it looks like a flag, as Go does.
        assert_eq!(
            serve(&["--initial-cluster-token", "-x-"]).initial_cluster_token,
            "-x-"
        );
        assert_eq!(
            serve(&["--initial-cluster-token="]).initial_cluster_token,
            ""
        );
    }

    #[test]
    fn bool_syntaxes() {
        let cases: &[(&[&str], bool)] = &[
            (&[], false),
            (&["--force-new-cluster"], true),
            (&["-force-new-cluster"], true),
            (&["--force-new-cluster=true"], true),
            (&["--force-new-cluster=false"], false),
            (&["--force-new-cluster=1"], true),
            (&["--force-new-cluster=F"], false),
            (&["--force-new-cluster=TRUE"], true),
        ];
        for (args, want) in cases {
            assert_eq!(serve(args).force_new_cluster, *want, "{args:?}");
        }
        // Go never takes a bool's value from the next argument.
        assert_eq!(
            error(&["--force-new-cluster", "false"]),
            r#""false" is not a valid flag"#
        );
        let e = error(&["--force-new-cluster=yes"]);
        assert!(
            e.starts_with(r#"invalid value "yes" for flag --force-new-cluster"#),
            "{e}"
        );
    }

    #[test]
    fn syntax_errors() {
        let cases: &[(&[&str], &str)] = &[
            (&["--foo"], "unknown flag: --foo"),
            (&["-foo=1"], "unknown flag: --foo"),
            (&["--name"], "flag needs an argument: --name"),
            (&["---name", "x"], "bad flag syntax: ---name"),
            (&["-=x"], "bad flag syntax: -=x"),
            (&["infra1"], r#""infra1" is not a valid flag"#),
            (&["-"], r#""-" is not a valid flag"#),
            (&["--", "--name", "x"], r#""--name" is not a valid flag"#),
            (
                &["--snapshot-count", "x", "--foo"],
                "invalid value \"x\" for flag --snapshot-count",
            ),
        ];
        for (args, want) in cases {
            let e = error(args);
            assert!(e.starts_with(want), "{args:?}: {e}");
        }
        assert_eq!(parse(&["--foo"]).unwrap_err().exit_code(), 2);
        assert_eq!(parse(&["--proxy=on"]).unwrap_err().exit_code(), 1);
    }

    #[test]
    fn go_durations() {
        let s = 1_000_000_000i64;
        let cases: &[(&str, Result<i64, ()>)] = &[
            ("0", Ok(0)),
            ("1h", Ok(3600 * s)),
            ("30m", Ok(1800 * s)),
            ("90s", Ok(90 * s)),
            ("1h30m", Ok(5400 * s)),
            ("1.5h", Ok(5400 * s)),
            ("500ms", Ok(s / 2)),
            ("2us", Ok(2000)),
            ("2µs", Ok(2000)),
            ("7ns", Ok(7)),
            (".5s", Ok(s / 2)),
            ("-1m", Ok(-60 * s)),
            ("+1s", Ok(s)),
            ("0s", Ok(0)),
            ("2", Err(())),
            ("", Err(())),
            ("h", Err(())),
            ("1d", Err(())),
            ("1h-30m", Err(())),
            ("3000000h", Err(())),
        ];
        for (text, want) in cases {
            assert_eq!(parse_go_duration(text).map_err(|_| ()), *want, "{text:?}");
        }
    }

    #[test]
    fn go_integers() {
        let cases: &[(&str, Result<u64, ()>)] = &[
            ("0", Ok(0)),
            ("128", Ok(128)),
            ("0x80", Ok(128)),
            ("0X80", Ok(128)),
            ("0o200", Ok(128)),
            ("0200", Ok(128)),
            ("0b10000000", Ok(128)),
            ("1_000", Ok(1000)),
            ("0x_80", Ok(128)),
            ("18446744073709551615", Ok(u64::MAX)),
            ("18446744073709551616", Err(())),
            ("", Err(())),
            ("+1", Err(())),
            ("1_", Err(())),
            ("1__0", Err(())),
            ("_1", Err(())),
            ("0x", Err(())),
            ("08", Err(())),
            ("1e3", Err(())),
        ];
        for (text, want) in cases {
            assert_eq!(parse_go_uint(text).map_err(|_| ()), *want, "{text:?}");
        }
        assert_eq!(parse_go_int("-0x10"), Ok(-16));
        assert_eq!(parse_go_int("+5"), Ok(5));
        assert_eq!(parse_go_int("-9223372036854775808"), Ok(i64::MIN));
        assert!(parse_go_int("9223372036854775808").is_err());
    }
}
