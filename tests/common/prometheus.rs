//! A strict reader of the Prometheus/OpenMetrics text exposition, for the tests of
//! `/metrics`.

use std::collections::BTreeMap;

/// One sample of the exposition.
#[derive(Debug)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// The value of the sample `name` with exactly `labels`; 0 when absent (a counter's series
/// appears at its first increment).
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    samples
        .iter()
        .find(|s| s.name == name && s.labels == want)
        .map_or(0.0, |s| s.value)
}

pub fn sum(samples: &[Sample], name: &str) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .sum()
}

/// A strict reading of the OpenMetrics text format as the gateway writes it: every family
/// declared by `# TYPE` before its samples, names and labels well formed, values numbers,
/// `# EOF` last; anything else fails the test.
pub fn parse_exposition(text: &str) -> Vec<Sample> {
    let body = text
        .strip_suffix("# EOF\n")
        .unwrap_or_else(|| panic!("no final # EOF:\n{text}"));
    let mut families: Vec<(String, String)> = Vec::new();
    let mut samples = Vec::new();
    for line in body.lines() {
        if let Some(meta) = line.strip_prefix("# ") {
            let mut parts = meta.splitn(3, ' ');
            let (kind, name) = (parts.next(), parts.next().filter(|n| is_name(n)));
            match (kind, name, parts.next()) {
                (Some("TYPE"), Some(n), Some(t)) => {
                    let known = ["counter", "gauge", "histogram", "info", "unknown"];
                    assert!(known.contains(&t), "type {t:?} in {line:?}");
                    families.push((n.to_string(), t.to_string()));
                }
                (Some("HELP" | "UNIT"), Some(_), _) => {}
                _ => panic!("a malformed comment line: {line:?}"),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest.strip_suffix('}').unwrap_or_else(|| panic!("{line:?}"));
                (name, parse_labels(inner, line))
            }
            None => (series, BTreeMap::new()),
        };
        assert!(is_name(name), "name in {line:?}");
        let declared = families.iter().any(|(f, t)| {
            let suffixes: &[&str] = match t.as_str() {
                "counter" => &["_total", "_created"],
                "histogram" => &["_bucket", "_count", "_sum", "_created"],
                "info" => &["_info"],
                _ => &[""],
            };
            suffixes.iter().any(|s| name == format!("{f}{s}"))
        });
        assert!(declared, "{name} has no # TYPE before it");
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    samples
}

fn parse_labels(mut inner: &str, line: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    while !inner.is_empty() {
        let (key, rest) = inner
            .split_once("=\"")
            .unwrap_or_else(|| panic!("{line:?}"));
        assert!(
            is_name(key) && !key.contains(':'),
            "label {key:?} in {line:?}"
        );
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    _ => panic!("an escape in {line:?}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("an unterminated label value in {line:?}"),
            }
        };
        assert!(
            labels.insert(key.to_string(), value).is_none(),
            "{key} twice in {line:?}"
        );
        inner = &rest[end + 1..];
        inner = inner.strip_prefix(',').unwrap_or(inner);
    }
    labels
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}
