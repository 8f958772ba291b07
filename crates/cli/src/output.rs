//! Rendering: the server's JSON re-indented as received (for scripts), and
//! plain-text tables for people — one row per item for lists, one row per
//! field for single objects.

use chrono::{DateTime, SecondsFormat, Utc};
use comfy_table::{presets, Table};
use serde_json::Value;

/// Re-indents JSON text the way `serde_json::to_string_pretty` does, without
/// parsing it into a map: keys keep the server's order and numbers keep the
/// server's spelling. `text` must be valid JSON.
pub fn pretty_json(text: &str) -> String {
    fn newline(out: &mut String, depth: usize) {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("  ");
        }
    }
    let mut out = String::with_capacity(text.len() * 2);
    let mut depth = 0usize;
    let mut chars = text.trim().chars().peekable();
    let mut in_string = false;
    let mut escaped = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                while chars.peek().is_some_and(|n| n.is_whitespace()) {
                    chars.next();
                }
                out.push(c);
                if chars.peek() == Some(&close) {
                    chars.next();
                    out.push(close);
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(',');
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

/// How a cell shows its value.
#[derive(Debug, Clone, Copy)]
pub enum Fmt {
    /// The value as text (see [`cell_text`]).
    Text,
    /// An RFC 3339 timestamp as `YYYY-MM-DD HH:MM:SS` (UTC).
    Time,
    /// A byte count as `12.3 KiB`.
    Bytes,
    /// A boolean as `yes`/`no`.
    YesNo,
    /// A number with a `%` suffix.
    Percent,
    /// A number with a unit suffix (`MB`, `s`).
    Unit(&'static str),
    /// At most this many characters (hashes, IDs).
    Short(usize),
}

/// What a list column shows: a field (dotted path) in a format, or a value
/// computed from the whole item.
#[derive(Clone, Copy)]
pub enum Cell {
    Field(&'static str, Fmt),
    Computed(fn(&Value) -> String),
}

/// One column of a list table.
#[derive(Clone, Copy)]
pub struct Column {
    pub header: &'static str,
    pub cell: Cell,
}

/// A column showing field `path` in format `fmt`.
pub const fn col(header: &'static str, path: &'static str, fmt: Fmt) -> Column {
    Column {
        header,
        cell: Cell::Field(path, fmt),
    }
}

/// A column computed from the whole item.
pub const fn computed(header: &'static str, f: fn(&Value) -> String) -> Column {
    Column {
        header,
        cell: Cell::Computed(f),
    }
}

/// How a single object is shown as key/value rows: `order` first, then the
/// remaining fields alphabetically. Fields named in `flatten` are objects
/// shown one row per nested field (`health.isHealthy`), leaving out nulls.
#[derive(Debug, Clone, Copy, Default)]
pub struct Detail {
    pub order: &'static [&'static str],
    pub flatten: &'static [&'static str],
}

/// The value at a dotted path (`health.isHealthy`), if any.
pub fn lookup<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(value, |v, key| v.get(key))
}

/// A value as one line of text: `-` for null or empty, numbers without a
/// useless `.0`, arrays joined with `, `, flat objects as `k=v, k=v`, and
/// compact JSON for anything deeper.
pub fn cell_text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number_text(n),
        Value::String(s) if s.is_empty() => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(a) if a.is_empty() => "-".to_owned(),
        Value::Array(a) if a.iter().all(is_scalar) => {
            a.iter().map(cell_text).collect::<Vec<_>>().join(", ")
        }
        Value::Object(m) if m.is_empty() => "-".to_owned(),
        Value::Object(m) if m.values().all(is_scalar) => m
            .iter()
            .map(|(k, v)| format!("{k}={}", scalar_text(v)))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

fn is_scalar(v: &Value) -> bool {
    !matches!(v, Value::Array(_) | Value::Object(_))
}

/// Like [`cell_text`] but keeps empty strings empty (inside `k=v`).
fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => cell_text(other),
    }
}

fn number_text(n: &serde_json::Number) -> String {
    match n.as_f64() {
        Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
        Some(f) if n.is_f64() => {
            let s = format!("{f:.2}");
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        }
        _ => n.to_string(),
    }
}

/// A value formatted for a cell.
pub fn format_cell(value: Option<&Value>, fmt: Fmt) -> String {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return "-".to_owned();
    };
    match fmt {
        Fmt::Text => cell_text(value),
        Fmt::Time => value
            .as_str()
            .map(format_time)
            .unwrap_or_else(|| cell_text(value)),
        Fmt::Bytes => value
            .as_f64()
            .map(format_bytes)
            .unwrap_or_else(|| cell_text(value)),
        Fmt::YesNo => match value.as_bool() {
            Some(true) => "yes".to_owned(),
            Some(false) => "no".to_owned(),
            None => cell_text(value),
        },
        Fmt::Percent => format!("{}%", cell_text(value)),
        Fmt::Unit(unit) => format!("{}{unit}", cell_text(value)),
        Fmt::Short(n) => cell_text(value).chars().take(n).collect(),
    }
}

/// `2024-05-01T12:00:00.123456Z` → `2024-05-01 12:00:00`.
pub fn format_time(text: &str) -> String {
    match DateTime::parse_from_rfc3339(text) {
        Ok(t) => t
            .with_timezone(&Utc)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string(),
        Err(_) => text.to_owned(),
    }
}

/// A byte count in binary units.
pub fn format_bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut x = n;
    let mut unit = 0;
    while x >= 1024.0 && unit < UNITS.len() - 1 {
        x /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n:.0} B")
    } else {
        format!("{x:.1} {}", UNITS[unit])
    }
}

fn plain_table() -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    t
}

/// One row per item under the given columns; trailing spaces trimmed.
pub fn render_list(items: &[Value], columns: &[Column]) -> String {
    let mut t = plain_table();
    t.set_header(columns.iter().map(|c| c.header));
    for item in items {
        t.add_row(columns.iter().map(|c| match c.cell {
            Cell::Field(path, fmt) => format_cell(lookup(item, path), fmt),
            Cell::Computed(f) => f(item),
        }));
    }
    finish(t)
}

/// One row per field of a single object (see [`Detail`]). A value that is
/// not an object is shown as it is.
pub fn render_object(value: &Value, detail: &Detail) -> String {
    let Some(map) = value.as_object() else {
        return format!("{}\n", cell_text(value));
    };
    let mut keys: Vec<&str> = detail
        .order
        .iter()
        .copied()
        .filter(|k| map.contains_key(*k))
        .collect();
    let mut rest: Vec<&str> = map
        .keys()
        .map(String::as_str)
        .filter(|k| !detail.order.contains(k))
        .collect();
    rest.sort_unstable();
    keys.extend(rest);

    let mut t = plain_table();
    for key in keys {
        let v = &map[key];
        match v.as_object() {
            Some(inner) if detail.flatten.contains(&key) => {
                let mut any = false;
                for (k, iv) in inner.iter().filter(|(_, iv)| !iv.is_null()) {
                    t.add_row(vec![format!("{key}.{k}"), object_field_text(k, iv)]);
                    any = true;
                }
                if !any {
                    t.add_row(vec![key.to_owned(), "-".to_owned()]);
                }
            }
            _ => {
                t.add_row(vec![key.to_owned(), object_field_text(key, v)]);
            }
        }
    }
    finish(t)
}

/// Fields ending in `At` (and `lastHeartbeat`) are timestamps; the rest are
/// shown as text.
fn object_field_text(key: &str, v: &Value) -> String {
    let is_time = key.ends_with("At") || key == "lastHeartbeat";
    match v.as_str() {
        Some(s) if is_time => DateTime::parse_from_rfc3339(s)
            .map(|t| {
                t.with_timezone(&Utc)
                    .to_rfc3339_opts(SecondsFormat::Secs, true)
            })
            .unwrap_or_else(|_| s.to_owned()),
        _ => cell_text(v),
    }
}

/// The table's text: columns two spaces apart, no indent, no trailing spaces.
fn finish(mut t: Table) -> String {
    for column in t.column_iter_mut() {
        column.set_padding((0, 2));
    }
    let mut s: String = t
        .lines()
        .map(|l| l.trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample_function() -> Value {
        json!({
            "name": "hello",
            "description": null,
            "runtime": "Python311",
            "handler": "app.handler",
            "memorySize": 256,
            "timeout": 30,
            "environment": {"STAGE": "prod", "EMPTY": ""},
            "layers": [],
            "vpcConfig": null,
            "tags": {},
            "publishedVersion": "v2",
            "ownerId": "alice",
            "createdAt": "2024-05-01T12:00:00.123456Z",
            "updatedAt": "2024-05-02T08:30:05Z",
            "totalInvocations": 12,
            "lastInvokedAt": null,
            "scalingConfig": {"minInstances": 0, "maxInstances": 10, "targetUtilization": 0.7}
        })
    }

    #[test]
    fn pretty_json_matches_serde_and_keeps_order() {
        let v = sample_function();
        let compact = serde_json::to_string(&v).unwrap();
        assert_eq!(
            pretty_json(&compact),
            serde_json::to_string_pretty(&v).unwrap()
        );

        let text = r#" {"z":1, "a":[ ],"m":{},"s":"a,b:{\"c\"}","n":[1.50,{"k":null}]} "#;
        assert_eq!(
            pretty_json(text),
            "{\n  \"z\": 1,\n  \"a\": [],\n  \"m\": {},\n  \"s\": \"a,b:{\\\"c\\\"}\",\n  \"n\": [\n    1.50,\n    {\n      \"k\": null\n    }\n  ]\n}"
        );
        assert_eq!(pretty_json("[]"), "[]");
    }

    #[test]
    fn list_table_renders_columns() {
        let columns = [
            col("NAME", "name", Fmt::Text),
            col("RUNTIME", "runtime", Fmt::Text),
            col("MEMORY", "memorySize", Fmt::Unit("MB")),
            col("PUBLISHED", "publishedVersion", Fmt::Text),
            col("SCALE", "scalingConfig.maxInstances", Fmt::Text),
            col("UPDATED", "updatedAt", Fmt::Time),
            computed("ENV", |f| {
                lookup(f, "environment")
                    .and_then(Value::as_object)
                    .map_or(0, |m| m.len())
                    .to_string()
            }),
        ];
        let mut other = sample_function();
        other["name"] = json!("image-resizer");
        other["publishedVersion"] = Value::Null;
        let text = render_list(&[sample_function(), other], &columns);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        let words = |l: &str| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(
            words(lines[0]),
            [
                "NAME",
                "RUNTIME",
                "MEMORY",
                "PUBLISHED",
                "SCALE",
                "UPDATED",
                "ENV"
            ]
        );
        assert_eq!(
            words(lines[1]),
            [
                "hello",
                "Python311",
                "256MB",
                "v2",
                "10",
                "2024-05-02",
                "08:30:05",
                "2"
            ]
        );
        assert_eq!(
            words(lines[2]),
            [
                "image-resizer",
                "Python311",
                "256MB",
                "-",
                "10",
                "2024-05-02",
                "08:30:05",
                "2"
            ]
        );
        // Columns line up: every value starts where its header starts.
        let at = lines[0].find("RUNTIME").unwrap();
        assert_eq!(&lines[2][at..at + 9], "Python311");
        assert!(text.lines().all(|l| l == l.trim_end()));
    }

    #[test]
    fn object_table_renders_fields() {
        let detail = Detail {
            order: &["name", "runtime", "handler"],
            flatten: &["scalingConfig"],
        };
        let text = render_object(&sample_function(), &detail);
        let rows: Vec<Vec<&str>> = text
            .lines()
            .map(|l| {
                let l = l.trim();
                match l.split_once(char::is_whitespace) {
                    Some((k, v)) => vec![k, v.trim()],
                    None => vec![l],
                }
            })
            .collect();
        assert_eq!(rows[0], ["name", "hello"]);
        assert_eq!(rows[1], ["runtime", "Python311"]);
        assert_eq!(rows[2], ["handler", "app.handler"]);
        let find = |k: &str| rows.iter().find(|r| r[0] == k).map(|r| r[1]).unwrap();
        assert_eq!(find("createdAt"), "2024-05-01T12:00:00Z");
        assert_eq!(find("description"), "-");
        assert_eq!(find("environment"), "EMPTY=, STAGE=prod");
        assert_eq!(find("layers"), "-");
        assert_eq!(find("scalingConfig.maxInstances"), "10");
        assert_eq!(find("scalingConfig.targetUtilization"), "0.7");
        assert_eq!(find("memorySize"), "256");
        // After the ordered keys, the rest come alphabetically.
        let keys: Vec<&str> = rows[3..].iter().map(|r| r[0]).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn cells() {
        assert_eq!(cell_text(&json!(null)), "-");
        assert_eq!(cell_text(&json!(90.0)), "90");
        assert_eq!(cell_text(&json!(12.345)), "12.35");
        assert_eq!(
            cell_text(&json!(["Python311", "Node20"])),
            "Python311, Node20"
        );
        assert_eq!(cell_text(&json!([{"a": 1}])), r#"[{"a":1}]"#);
        assert_eq!(format_cell(Some(&json!(true)), Fmt::YesNo), "yes");
        assert_eq!(format_cell(None, Fmt::YesNo), "-");
        assert_eq!(format_cell(Some(&json!(12.5)), Fmt::Percent), "12.5%");
        assert_eq!(
            format_cell(Some(&json!("0123456789abcdef")), Fmt::Short(12)),
            "0123456789ab"
        );
        assert_eq!(format_bytes(512.0), "512 B");
        assert_eq!(format_bytes(1536.0), "1.5 KiB");
        assert_eq!(format_bytes(5.0 * 1024.0 * 1024.0), "5.0 MiB");
        assert_eq!(format_time("not a time"), "not a time");
        assert_eq!(lookup(&json!({"a": {"b": 1}}), "a.b"), Some(&json!(1)));
        assert_eq!(lookup(&json!({"a": 1}), "a.b"), None);
    }
}
