//! Sprig date functions over a `time.Time` host object, with Go's layout strings.

use std::sync::Arc;

use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

use super::{Funcs, arg_str, pure, sig, to_int64};
use crate::Param::{Any, String as Str};
use crate::value::{Object, Value};

/// A Go `time.Time`.
struct Time(Zoned);

impl Object for Time {
    fn type_name(&self) -> &str {
        "time.Time"
    }

    fn field(&self, name: &str) -> Option<Value> {
        Some(match name {
            "Unix" => Value::Int(self.0.timestamp().as_second()),
            "Year" => Value::Int(i64::from(self.0.year())),
            "Day" => Value::Int(i64::from(self.0.day())),
            "Hour" => Value::Int(i64::from(self.0.hour())),
            "Minute" => Value::Int(i64::from(self.0.minute())),
            "Second" => Value::Int(i64::from(self.0.second())),
            "UTC" => time_value(self.0.with_time_zone(TimeZone::UTC)),
            "String" => Value::from(go_time_string(&self.0)),
            _ => return None,
        })
    }

    fn call_method(
        &self,
        name: &str,
        args: &[Value],
        _ctx: &mut crate::Context<'_>,
    ) -> Option<Result<Value, crate::Error>> {
        match (name, args) {
            ("Format", [Value::String(layout)]) => {
                Some(Ok(Value::from(format_go(&self.0, layout))))
            }
            _ => None,
        }
    }

    fn to_value(&self) -> Value {
        Value::from(go_time_string(&self.0))
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

fn time_value(zoned: Zoned) -> Value {
    Value::Object(Arc::new(Time(zoned)))
}

fn local_zone() -> TimeZone {
    TimeZone::try_system().unwrap_or(TimeZone::UTC)
}

/// The time a Sprig date argument denotes: a `time.Time` or Unix seconds; otherwise now.
fn to_time(value: &Value, zone: &TimeZone) -> Zoned {
    match value {
        Value::Object(o) if o.as_any().and_then(|a| a.downcast_ref::<Time>()).is_some() => {
            match o.as_any().and_then(|a| a.downcast_ref::<Time>()) {
                Some(time) => time.0.with_time_zone(zone.clone()),
                None => Zoned::now().with_time_zone(zone.clone()),
            }
        }
        Value::Int(_) | Value::Float(_) => {
            let ts = Timestamp::from_second(to_int64(value)).unwrap_or(Timestamp::UNIX_EPOCH);
            ts.to_zoned(zone.clone())
        }
        _ => Zoned::now().with_time_zone(zone.clone()),
    }
}

pub(super) fn register(funcs: &mut Funcs) {
    pure(funcs, "now", sig(&[]), |_| Ok(time_value(Zoned::now().with_time_zone(local_zone()))));
    for name in ["date", "date_in_zone"] {
        let in_zone = name == "date_in_zone";
        if in_zone {
            continue;
        }
        pure(funcs, name, sig(&[Str, Any]), |a| {
            let zone = local_zone();
            Ok(Value::from(format_go(&to_time(&a[1], &zone), arg_str(a, 0))))
        });
    }
    for name in ["dateInZone", "date_in_zone"] {
        pure(funcs, name, sig(&[Str, Any, Str]), |a| {
            let zone = TimeZone::get(arg_str(a, 2)).unwrap_or(TimeZone::UTC);
            Ok(Value::from(format_go(&to_time(&a[1], &zone), arg_str(a, 0))))
        });
    }
    pure(funcs, "htmlDate", sig(&[Any]), |a| {
        Ok(Value::from(format_go(&to_time(&a[0], &local_zone()), "2006-01-02")))
    });
    pure(funcs, "htmlDateInZone", sig(&[Any, Str]), |a| {
        let zone = TimeZone::get(arg_str(a, 1)).unwrap_or(TimeZone::UTC);
        Ok(Value::from(format_go(&to_time(&a[0], &zone), "2006-01-02")))
    });
    pure(funcs, "unixEpoch", sig(&[Any]), |a| {
        Ok(Value::from(to_time(&a[0], &TimeZone::UTC).timestamp().as_second().to_string()))
    });
    for name in ["dateModify", "date_modify", "mustDateModify"] {
        let must = name == "mustDateModify";
        pure(funcs, name, sig(&[Str, Any]), move |a| {
            let zone = local_zone();
            let time = to_time(&a[1], &zone);
            match parse_go_duration(arg_str(a, 0)) {
                Some(nanos) => Ok(time_value(
                    time.checked_add(jiff::SignedDuration::from_nanos(nanos as i64))
                        .unwrap_or(time.clone()),
                )),
                None if must => Err(crate::FuncError::Call(format!(
                    "time: invalid duration {:?}",
                    arg_str(a, 0)
                ))),
                None => Ok(time_value(time)),
            }
        });
    }
    for name in ["toDate", "mustToDate"] {
        let must = name == "mustToDate";
        pure(funcs, name, sig(&[Str, Str]), move |a| {
            match parse_go(arg_str(a, 0), arg_str(a, 1), &local_zone()) {
                Ok(zoned) => Ok(time_value(zoned)),
                Err(err) if must => Err(crate::FuncError::Call(err)),
                // Go's zero time.Time on a parse failure.
                Err(_) => Ok(time_value(
                    jiff::civil::date(1, 1, 1)
                        .to_zoned(TimeZone::UTC)
                        .unwrap_or_else(|_| Timestamp::UNIX_EPOCH.to_zoned(TimeZone::UTC)),
                )),
            }
        });
    }
    pure(funcs, "ago", sig(&[Any]), |a| {
        let time = to_time(&a[0], &local_zone());
        let seconds = Timestamp::now().as_second() - time.timestamp().as_second();
        Ok(Value::from(go_duration_string(i128::from(seconds) * 1_000_000_000)))
    });
    pure(funcs, "duration", sig(&[Any]), |a| {
        // Sprig accepts only strings (base 10) and integers; anything else is 0s.
        let seconds = match &a[0] {
            Value::String(s) => s.parse::<i64>().unwrap_or(0),
            Value::Int(i) => *i,
            _ => 0,
        };
        Ok(Value::from(go_duration_string(i128::from(seconds) * 1_000_000_000)))
    });
    pure(funcs, "durationRound", sig(&[Any]), |a| {
        let nanos: i128 = match &a[0] {
            Value::String(s) => parse_go_duration(s).unwrap_or(0),
            Value::Int(i) => i128::from(*i),
            Value::Object(_) => {
                let time = to_time(&a[0], &TimeZone::UTC);
                i128::from(Timestamp::now().as_second() - time.timestamp().as_second())
                    * 1_000_000_000
            }
            _ => 0,
        };
        Ok(Value::from(duration_round(nanos)))
    });
}

fn duration_round(nanos: i128) -> String {
    let u = nanos.unsigned_abs();
    const SECOND: u128 = 1_000_000_000;
    const MINUTE: u128 = 60 * SECOND;
    const HOUR: u128 = 60 * MINUTE;
    const DAY: u128 = 24 * HOUR;
    const MONTH: u128 = 30 * DAY;
    const YEAR: u128 = 365 * DAY;
    let (n, unit) = if u > YEAR {
        (u / YEAR, "y")
    } else if u > MONTH {
        (u / MONTH, "mo")
    } else if u > DAY {
        (u / DAY, "d")
    } else if u > HOUR {
        (u / HOUR, "h")
    } else if u > MINUTE {
        (u / MINUTE, "m")
    } else if u > SECOND {
        (u / SECOND, "s")
    } else {
        return "0s".to_string();
    };
    format!("{n}{unit}")
}

/// Go's `time.Duration.String`.
pub(crate) fn go_duration_string(nanos: i128) -> String {
    if nanos == 0 {
        return "0s".to_string();
    }
    let negative = nanos < 0;
    let u = nanos.unsigned_abs();
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if u < 1_000_000_000 {
        let (value, unit, scale) = if u < 1_000 {
            return format!("{}{u}ns", if negative { "-" } else { "" });
        } else if u < 1_000_000 {
            (u, "µs", 1_000u128)
        } else {
            (u, "ms", 1_000_000u128)
        };
        out.push_str(&fraction(value, scale));
        out.push_str(unit);
        return out;
    }
    let hours = u / 3_600_000_000_000;
    let minutes = (u / 60_000_000_000) % 60;
    let rest = u % 60_000_000_000;
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&fraction(rest, 1_000_000_000));
    out.push('s');
    out
}

fn fraction(value: u128, scale: u128) -> String {
    let whole = value / scale;
    let frac = value % scale;
    if frac == 0 {
        return whole.to_string();
    }
    let width = scale.to_string().len() - 1;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Go's `time.ParseDuration`, in nanoseconds.
fn parse_go_duration(text: &str) -> Option<i128> {
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let number: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * unit;
    }
    let nanos = total as i128;
    Some(if negative { -nanos } else { nanos })
}

/// Go's default `time.Time.String` form: `2006-01-02 15:04:05.999999999 -0700 MST`.
fn go_time_string(zoned: &Zoned) -> String {
    format_go(zoned, "2006-01-02 15:04:05.999999999 -0700 MST")
}

/// Translates a Go layout into a strftime format understood by jiff.
fn layout_to_strftime(layout: &str, zoned: Option<&Zoned>) -> String {
    const TOKENS: &[(&str, &str)] = &[
        ("January", "%B"),
        ("Monday", "%A"),
        ("Z07:00", "Z07:00"),
        ("-07:00:00", "%::z"),
        ("-07:00", "%:z"),
        ("Z0700", "Z0700"),
        ("-0700", "%z"),
        ("2006", "%Y"),
        ("Jan", "%b"),
        ("Mon", "%a"),
        ("MST", "%Z"),
        ("002", "%j"),
        ("__2", "%j"),
        ("_2", "%e"),
        ("01", "%m"),
        ("02", "%d"),
        ("03", "%I"),
        ("04", "%M"),
        ("05", "%S"),
        ("06", "%y"),
        ("15", "%H"),
        ("-07", "%z"),
        ("PM", "%p"),
        ("pm", "%P"),
        ("1", "%-m"),
        ("2", "%-d"),
        ("3", "%-I"),
        ("4", "%-M"),
        ("5", "%-S"),
    ];
    let mut out = String::new();
    let mut rest = layout;
    'outer: while !rest.is_empty() {
        // Fractional seconds: .000 / ,000 (fixed) and .999 (trimmed).
        if let Some(c) = rest.chars().next()
            && (c == '.' || c == ',')
        {
            let digits: String = rest[1..].chars().take_while(|d| *d == '0' || *d == '9').collect();
            if !digits.is_empty()
                && digits.chars().all(|d| d == digits.chars().next().unwrap_or('0'))
            {
                let next = rest[1 + digits.len()..].chars().next();
                if !next.is_some_and(|n| n.is_ascii_digit()) {
                    if zoned.is_none() {
                        // Parsing: Go accepts any fraction after the seconds.
                        out.push_str("%.f");
                    } else if digits.starts_with('0') {
                        out.push_str(&format!("%.{}f", digits.len()));
                    } else if let Some(z) = zoned {
                        let nanos = z.subsec_nanosecond();
                        if nanos != 0 {
                            let text = format!("{nanos:09}");
                            let text = &text[..digits.len().min(9)];
                            let text = text.trim_end_matches('0');
                            if !text.is_empty() {
                                out.push(c);
                                out.push_str(text);
                            }
                        }
                    }
                    rest = &rest[1 + digits.len()..];
                    continue;
                }
            }
        }
        for (token, fmt) in TOKENS {
            if let Some(after) = rest.strip_prefix(token) {
                match *fmt {
                    "Z07:00" | "Z0700" => {
                        let is_utc = zoned.is_some_and(|z| z.offset().seconds() == 0);
                        if is_utc {
                            out.push('Z');
                        } else {
                            out.push_str(if *fmt == "Z07:00" { "%:z" } else { "%z" });
                        }
                    }
                    "%z" if *token == "-07" => {
                        out.push_str("%z");
                    }
                    other => out.push_str(other),
                }
                rest = after;
                continue 'outer;
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        if c == '%' {
            out.push_str("%%");
        } else {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Formats with a Go layout.
fn format_go(zoned: &Zoned, layout: &str) -> String {
    let fmt = layout_to_strftime(layout, Some(zoned));
    let mut text = zoned.strftime(&fmt).to_string();
    if layout.contains("-07") && !layout.contains("-0700") && !layout.contains("-07:00") {
        // "-07" is hours only.
        text =
            text.replace(&zoned.strftime("%z").to_string(), &zoned.strftime("%z").to_string()[..3]);
    }
    text
}

/// Parses with a Go layout.
fn parse_go(layout: &str, text: &str, zone: &TimeZone) -> Result<Zoned, String> {
    let fmt = layout_to_strftime(layout, None).replace("%-", "%");
    // Go's `Z07:00` accepts a literal `Z` for UTC.
    let text = &if (layout.contains("Z07:00") || layout.contains("Z0700")) && text.ends_with('Z') {
        format!(
            "{}{}",
            &text[..text.len() - 1],
            if layout.contains("Z07:00") { "+00:00" } else { "+0000" }
        )
    } else {
        text.to_string()
    };
    let fmt_has_offset = fmt.contains("%z") || fmt.contains("%:z");
    if fmt_has_offset {
        if let Ok(zoned) = Zoned::strptime(&fmt, text) {
            return Ok(zoned);
        }
        let ts = jiff::fmt::strtime::parse(&fmt, text)
            .and_then(|p| p.to_timestamp())
            .map_err(|e| e.to_string())?;
        return Ok(ts.to_zoned(zone.clone()));
    }
    let parsed = jiff::fmt::strtime::parse(&fmt, text)
        .map_err(|err| format!("parsing time {text:?} as {layout:?}: {err}"))?;
    if let Ok(datetime) = parsed.to_datetime() {
        return datetime.to_zoned(zone.clone()).map_err(|e| e.to_string());
    }
    let date =
        parsed.to_date().map_err(|err| format!("parsing time {text:?} as {layout:?}: {err}"))?;
    date.to_zoned(zone.clone()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_layouts() {
        let zoned: Zoned = "2024-03-05T07:08:09.5+00:00[UTC]".parse().unwrap();
        assert_eq!(format_go(&zoned, "2006-01-02"), "2024-03-05");
        assert_eq!(format_go(&zoned, "Jan 2, 2006 at 3:04pm (MST)"), "Mar 5, 2024 at 7:08am (UTC)");
        assert_eq!(format_go(&zoned, "2006-01-02T15:04:05Z07:00"), "2024-03-05T07:08:09Z");
        assert_eq!(format_go(&zoned, "15:04:05.000"), "07:08:09.500");
        assert_eq!(go_time_string(&zoned), "2024-03-05 07:08:09.5 +0000 UTC");
        let parsed = parse_go("2006-01-02", "2024-03-05", &TimeZone::UTC).unwrap();
        assert_eq!(format_go(&parsed, "02/01/2006"), "05/03/2024");
    }

    #[test]
    fn durations() {
        assert_eq!(go_duration_string(90 * 1_000_000_000), "1m30s");
        assert_eq!(go_duration_string(3600 * 1_000_000_000), "1h0m0s");
        assert_eq!(go_duration_string(0), "0s");
        assert_eq!(go_duration_string(1_500_000_000), "1.5s");
        assert_eq!(parse_go_duration("1h30m"), Some(5_400_000_000_000));
        assert_eq!(duration_round(3 * 86_400 * 1_000_000_000 + 1), "3d");
    }
}
