//! Structure-aware mutations of a JSON document: one value somewhere in the tree is replaced by
//! a value of another type, an absurd number (huge, negative, fractional, 2^64), a long string
//! or array, or removed; keys are renamed or duplicated; and the whole document can be nested
//! deeper than any parser's recursion limit. The result is valid JSON unless said otherwise,
//! so the loader's own checks (not only the parser) are exercised.

use crate::rng::Rng;
use serde_json::{Map, Number, Value};

/// Numbers a size or count field is set to.
const ABSURD_NUMBERS: &[&str] = &[
    "0",
    "-1",
    "1",
    "2",
    "3",
    "0.5",
    "-0.0",
    "1e-300",
    "1e300",
    "1e308",
    "65536",
    "1000000000",
    "2147483647",
    "2147483648",
    "4294967295",
    "4294967296",
    "9007199254740993",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
];

/// One mutation of the JSON document `value`; returns the new document's bytes and what was
/// done.
pub fn mutate_json(rng: &mut Rng, value: &Value) -> (Vec<u8>, String) {
    if rng.one_in(24) {
        return deep_nesting(rng, value);
    }
    let mut v = value.clone();
    let mut what = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let count = count_nodes(&v);
        let target = rng.below(count);
        let mut seen = 0;
        what.push(mutate_node(rng, &mut v, target, &mut seen).unwrap_or_default());
    }
    let text = if rng.one_in(2) {
        serde_json::to_vec(&v)
    } else {
        serde_json::to_vec_pretty(&v)
    };
    (text.expect("a JSON value serialises"), what.join("+"))
}

/// The document wrapped in (or with one value replaced by) nesting 64 to 100 000 levels deep:
/// the parser's recursion limit must turn it into an error, not a stack overflow.
fn deep_nesting(rng: &mut Rng, value: &Value) -> (Vec<u8>, String) {
    let depth = *rng.pick(&[64usize, 127, 128, 129, 1000, 100_000]);
    let body = serde_json::to_string(value).expect("a JSON value serialises");
    let (open, close) = if rng.one_in(2) {
        ("[", "]")
    } else {
        ("{\"a\":", "}")
    };
    let mut s = String::with_capacity(body.len() + depth * 6);
    for _ in 0..depth {
        s.push_str(open);
    }
    s.push_str(&body);
    for _ in 0..depth {
        s.push_str(close);
    }
    (s.into_bytes(), format!("nest{depth}"))
}

fn count_nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count_nodes).sum(),
        Value::Object(o) => o.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// Walks to the `target`-th node (pre-order) and mutates it.
fn mutate_node(rng: &mut Rng, v: &mut Value, target: usize, seen: &mut usize) -> Option<String> {
    if *seen == target {
        return Some(replace(rng, v));
    }
    *seen += 1;
    match v {
        Value::Array(a) => {
            for child in a.iter_mut() {
                if let Some(w) = mutate_node(rng, child, target, seen) {
                    return Some(w);
                }
            }
            None
        }
        Value::Object(o) => {
            let keys: Vec<String> = o.keys().cloned().collect();
            for k in keys {
                if *seen == target && rng.one_in(4) {
                    // A key-level change instead of a change of the key's value.
                    return Some(key_change(rng, o, &k));
                }
                let child = o.get_mut(&k).expect("key just listed");
                if let Some(w) = mutate_node(rng, child, target, seen) {
                    return Some(format!("{k}:{w}"));
                }
            }
            None
        }
        _ => None,
    }
}

fn key_change(rng: &mut Rng, o: &mut Map<String, Value>, k: &str) -> String {
    let v = o.remove(k).expect("key present");
    match rng.below(3) {
        0 => format!("remove {k}"),
        1 => {
            o.insert(format!("{k}_"), v);
            format!("rename {k}")
        }
        _ => {
            o.insert(k.to_ascii_uppercase(), v.clone());
            o.insert(k.to_string(), v);
            format!("case-duplicate {k}")
        }
    }
}

/// A new value in place of `v`.
fn replace(rng: &mut Rng, v: &mut Value) -> String {
    let new = match rng.below(12) {
        0 => Value::Null,
        1 => Value::Bool(rng.one_in(2)),
        2 => Value::String(String::new()),
        3 => Value::String("\u{0}\u{ffff}é".repeat(1 + rng.below(4))),
        4 => Value::String("x".repeat(1 << (8 + rng.below(12)))),
        5 => Value::Array(Vec::new()),
        6 => Value::Object(Map::new()),
        7 => match v {
            // Repeat an array's elements (a long vocabulary, merges, shape).
            Value::Array(a) if !a.is_empty() => {
                let times = 1 + rng.below(64);
                let first = a.clone();
                for _ in 0..times {
                    a.extend(first.iter().cloned());
                }
                return format!("repeat x{times}");
            }
            _ => Value::Array(vec![v.clone(); 1 + rng.below(4)]),
        },
        8 if v.is_array() => {
            let a = v.as_array_mut().expect("checked");
            if !a.is_empty() {
                let i = rng.below(a.len());
                a.remove(i);
            }
            return "drop element".into();
        }
        8 => Value::Array(vec![v.clone()]),
        9 if v.is_number() => {
            // Off by one from the seed's own value.
            let n = v.as_f64().unwrap_or(0.0);
            let d = if rng.one_in(2) { 1.0 } else { -1.0 };
            match v.as_i64() {
                Some(i) => Value::from(i.saturating_add(d as i64)),
                None => Number::from_f64(n + d).map_or(Value::Null, Value::Number),
            }
        }
        _ => absurd_number(rng),
    };
    let what = format!("{}->{}", kind(v), short(&new));
    *v = new;
    what
}

fn absurd_number(rng: &mut Rng) -> Value {
    let text = *rng.pick(ABSURD_NUMBERS);
    // serde_json keeps integers beyond u64 as f64.
    serde_json::from_str(text).expect("the absurd numbers are valid JSON")
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 24 {
        format!(
            "{}…({} bytes)",
            &s[..s.floor_char_boundary_compat(24)],
            s.len()
        )
    } else {
        s
    }
}

/// `str::floor_char_boundary` for the stable toolchain.
trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}

impl FloorCharBoundary for str {
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        while !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}
