//! Validation of request values, producing the contract's 422 items.
//!
//! Every surface (HTTP bodies, Python keyword arguments) turns its input into a JSON value and
//! hands it to the `from_json` constructor of a core request type, which reads it with
//! [`Fields`]. All failing fields are collected, in declaration order, before anything is
//! reported, and nothing is written unless every field is valid. The coercions follow the
//! contract (10 §3.3, 20 §1.3): numbers accept numeric strings and booleans, integers accept
//! whole floats, booleans accept the usual words.

use crate::error::{Error, FieldError, LocPart, Result};
use serde_json::{Map, Value, json};

/// Length bounds of a string field, in Unicode code points.
#[derive(Debug, Clone, Copy)]
pub struct Len {
    /// Minimum length (inclusive).
    pub min: usize,
    /// Maximum length (inclusive), if any.
    pub max: Option<usize>,
}

impl Len {
    /// Between `min` and `max` characters.
    pub const fn between(min: usize, max: usize) -> Len {
        Len {
            min,
            max: Some(max),
        }
    }

    /// At most `max` characters.
    pub const fn at_most(max: usize) -> Len {
        Len {
            min: 0,
            max: Some(max),
        }
    }

    /// Any length.
    pub const ANY: Len = Len { min: 0, max: None };

    /// At least one character, no maximum.
    pub const NON_EMPTY: Len = Len { min: 1, max: None };

    /// An optional free text: at most [`TEXT_MAX`] characters.
    pub const TEXT: Len = Len::at_most(TEXT_MAX);

    /// A required free text: 1 to [`TEXT_MAX`] characters.
    pub const TEXT_REQUIRED: Len = Len::between(1, TEXT_MAX);
}

// Limits of the free-text fields the contract leaves open (the README's "Limits" lists them).
// What is stored grows with what a request is billed for only if every stored text is bounded:
// a record's text, its search-index entries (at most `coreos::search::MAX_RECORD_TOKENS`) and
// its JSON members together stay within a fixed multiple of the largest request.

/// Descriptions, decision texts, memory fact values, review comments, evidence snippets.
pub const TEXT_MAX: usize = 10_000;
/// Meeting notes (a meeting's minutes run longer than a description).
pub const NOTES_MAX: usize = 50_000;
/// Titles the contract does not bound (conversations), like the titles it does.
pub const TITLE_MAX: usize = 255;
/// JSON-object members (action `payload`, execution `result`, evidence `source_ref`, a tool's
/// `payload`), counted as compact JSON bytes.
pub const OBJECT_MAX_BYTES: usize = 16 * 1024;

/// Bounds of a numeric field.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bounds {
    /// Minimum (inclusive).
    pub ge: Option<i64>,
    /// Maximum (inclusive).
    pub le: Option<i64>,
}

impl Bounds {
    /// `>= ge`.
    pub const fn ge(ge: i64) -> Bounds {
        Bounds {
            ge: Some(ge),
            le: None,
        }
    }

    /// `ge <= x <= le`.
    pub const fn range(ge: i64, le: i64) -> Bounds {
        Bounds {
            ge: Some(ge),
            le: Some(le),
        }
    }
}

/// The length of `v` as compact JSON, counted without building the text.
pub fn json_len(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    // Writing a `Value` into a counter cannot fail.
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Reads the members of one JSON object, recording a [`FieldError`] for each bad member.
pub struct Fields<'a> {
    obj: &'a Map<String, Value>,
    whole: &'a Value,
    base: Vec<LocPart>,
    errors: Vec<FieldError>,
}

/// What an absent or `null` member means for an optional field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// The member must be present and not null (null is a type error).
    Required,
    /// Absent or `null` reads as "not given".
    Optional,
}

impl<'a> Fields<'a> {
    /// Starts reading `value`, which must be a JSON object (else `model_attributes_type`).
    pub fn new(value: &'a Value) -> Result<Fields<'a>> {
        Self::at(value, Vec::new())
    }

    /// Starts reading an object nested at `base`.
    pub fn at(value: &'a Value, base: Vec<LocPart>) -> Result<Fields<'a>> {
        match value {
            Value::Object(obj) => Ok(Fields {
                obj,
                whole: value,
                base,
                errors: Vec::new(),
            }),
            Value::Null if base.is_empty() => Err(Error::field(FieldError::new(
                "missing",
                base,
                "Field required",
                Value::Null,
            ))),
            other => Err(Error::field(FieldError::new(
                "model_attributes_type",
                base,
                "Input should be a valid dictionary or object to extract fields from",
                other.clone(),
            ))),
        }
    }

    fn loc(&self, name: &str) -> Vec<LocPart> {
        let mut l = self.base.clone();
        l.push(LocPart::Field(name.to_owned()));
        l
    }

    /// Records an error at member `name`.
    pub fn fail(&mut self, name: &str, kind: &'static str, msg: impl Into<String>, input: Value) {
        let loc = self.loc(name);
        self.errors.push(FieldError::new(kind, loc, msg, input));
    }

    fn fail_ctx(&mut self, name: &str, kind: &'static str, msg: String, input: Value, ctx: Value) {
        let loc = self.loc(name);
        self.errors
            .push(FieldError::new(kind, loc, msg, input).with_ctx(ctx));
    }

    /// Records a `value_error` at member `name`: a rule beyond type and length, saying `reason`.
    pub fn value_error(&mut self, name: &str, reason: String) {
        let input = self.obj.get(name).cloned().unwrap_or(Value::Null);
        let loc = self.loc(name);
        self.errors
            .push(FieldError::value_error(loc, input, &reason));
    }

    /// Adds errors found elsewhere (e.g. in a nested list).
    pub fn extend(&mut self, errors: Vec<FieldError>) {
        self.errors.extend(errors);
    }

    /// The raw member, treating `null` as absent.
    pub fn raw(&self, name: &str) -> Option<&'a Value> {
        match self.obj.get(name) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    /// Whether the member is present (even as `null`).
    pub fn has(&self, name: &str) -> bool {
        self.obj.contains_key(name)
    }

    fn missing(&mut self, name: &str) {
        let whole = self.whole.clone();
        self.fail(name, "missing", "Field required", whole);
    }

    /// Returns the member for a field that may be required; records `missing` when a required
    /// member is absent. `Ok(None)` means "not given" (absent, or null on an optional field).
    fn member(&mut self, name: &str, presence: Presence) -> Option<Option<&'a Value>> {
        match (self.obj.get(name), presence) {
            (None, Presence::Required) => {
                self.missing(name);
                None
            }
            (None, Presence::Optional) | (Some(Value::Null), Presence::Optional) => Some(None),
            (Some(v), _) => Some(Some(v)),
        }
    }

    /// A string field with length bounds. Required fields must be present and a string;
    /// optional ones read `null`/absent as `None`.
    pub fn string(&mut self, name: &str, presence: Presence, len: Len) -> Option<Option<String>> {
        let v = self.member(name, presence)?;
        let Some(v) = v else { return Some(None) };
        let Value::String(s) = v else {
            self.fail(
                name,
                "string_type",
                "Input should be a valid string",
                v.clone(),
            );
            return None;
        };
        let n = s.chars().count();
        if n < len.min {
            self.fail_ctx(
                name,
                "string_too_short",
                format!(
                    "String should have at least {}",
                    plural(len.min, "character")
                ),
                v.clone(),
                json!({"min_length": len.min}),
            );
            return None;
        }
        if let Some(max) = len.max
            && n > max
        {
            self.fail_ctx(
                name,
                "string_too_long",
                format!("String should have at most {}", plural(max, "character")),
                v.clone(),
                json!({"max_length": max}),
            );
            return None;
        }
        Some(Some(s.clone()))
    }

    /// A required string field.
    pub fn req_string(&mut self, name: &str, len: Len) -> Option<String> {
        self.string(name, Presence::Required, len).flatten()
    }

    /// A string field that must be one of `choices`, reported as a pattern mismatch against
    /// `pattern` (the regular expression the contract names, e.g. `^(admin|member)$`).
    pub fn choice(
        &mut self,
        name: &str,
        presence: Presence,
        choices: &[&str],
        pattern: &str,
    ) -> Option<Option<String>> {
        let s = self.string(name, presence, Len::ANY)?;
        match s {
            Some(s) if !choices.contains(&s.as_str()) => {
                self.fail_ctx(
                    name,
                    "string_pattern_mismatch",
                    format!("String should match pattern '{pattern}'"),
                    Value::String(s),
                    json!({"pattern": pattern}),
                );
                None
            }
            other => Some(other),
        }
    }

    /// An integer field with bounds (whole floats, numeric strings and booleans are accepted).
    pub fn int(&mut self, name: &str, presence: Presence, bounds: Bounds) -> Option<Option<i64>> {
        let v = self.member(name, presence)?;
        let Some(v) = v else { return Some(None) };
        let n = match coerce_int(v) {
            Ok(n) => n,
            Err((kind, msg)) => {
                self.fail(name, kind, msg, v.clone());
                return None;
            }
        };
        if let Some(ge) = bounds.ge
            && n < ge
        {
            self.fail_ctx(
                name,
                "greater_than_equal",
                format!("Input should be greater than or equal to {ge}"),
                v.clone(),
                json!({"ge": ge}),
            );
            return None;
        }
        if let Some(le) = bounds.le
            && n > le
        {
            self.fail_ctx(
                name,
                "less_than_equal",
                format!("Input should be less than or equal to {le}"),
                v.clone(),
                json!({"le": le}),
            );
            return None;
        }
        Some(Some(n))
    }

    /// A finite number field with an optional lower bound (numeric strings and booleans are
    /// accepted; `NaN` and infinities are refused).
    pub fn number(
        &mut self,
        name: &str,
        presence: Presence,
        ge: Option<f64>,
    ) -> Option<Option<f64>> {
        let v = self.member(name, presence)?;
        let Some(v) = v else { return Some(None) };
        let n = match coerce_number(v) {
            Ok(n) => n,
            Err((kind, msg)) => {
                self.fail(name, kind, msg, v.clone());
                return None;
            }
        };
        if let Some(ge) = ge
            && n < ge
        {
            self.fail_ctx(
                name,
                "greater_than_equal",
                format!(
                    "Input should be greater than or equal to {}",
                    trim_float(ge)
                ),
                v.clone(),
                json!({"ge": ge}),
            );
            return None;
        }
        Some(Some(n))
    }

    /// A boolean field (accepts `true`/`false`, `1`/`0` and the usual words).
    pub fn boolean(&mut self, name: &str, presence: Presence) -> Option<Option<bool>> {
        let v = self.member(name, presence)?;
        let Some(v) = v else { return Some(None) };
        match coerce_bool(v) {
            Some(b) => Some(Some(b)),
            None => {
                self.fail(
                    name,
                    "bool_parsing",
                    "Input should be a valid boolean, unable to interpret input",
                    v.clone(),
                );
                None
            }
        }
    }

    /// A JSON-object field (any members), at most [`OBJECT_MAX_BYTES`] as compact JSON
    /// (`too_long` beyond).
    pub fn object(&mut self, name: &str, presence: Presence) -> Option<Option<Map<String, Value>>> {
        let v = match (self.obj.get(name), presence) {
            (None, Presence::Optional) => return Some(None),
            (None, Presence::Required) => {
                self.missing(name);
                return None;
            }
            (Some(v), _) => v,
        };
        match v {
            Value::Object(_) if json_len(v) > OBJECT_MAX_BYTES => {
                self.fail_ctx(
                    name,
                    "too_long",
                    format!("Object should have at most {OBJECT_MAX_BYTES} bytes as JSON"),
                    v.clone(),
                    json!({"max_bytes": OBJECT_MAX_BYTES}),
                );
                None
            }
            Value::Object(m) => Some(Some(m.clone())),
            other => {
                self.fail(
                    name,
                    "dict_type",
                    "Input should be a valid dictionary",
                    other.clone(),
                );
                None
            }
        }
    }

    /// A list field; returns the items for element-wise validation.
    pub fn list(
        &mut self,
        name: &str,
        presence: Presence,
        min_items: usize,
    ) -> Option<Option<&'a Vec<Value>>> {
        let v = self.member(name, presence)?;
        let Some(v) = v else { return Some(None) };
        let Value::Array(items) = v else {
            self.fail(name, "list_type", "Input should be a valid list", v.clone());
            return None;
        };
        if items.len() < min_items {
            self.fail_ctx(
                name,
                "too_short",
                format!(
                    "List should have at least {} after validation, not {}",
                    plural(min_items, "item"),
                    items.len()
                ),
                v.clone(),
                json!({"field_type": "List", "min_length": min_items, "actual_length": items.len()}),
            );
            return None;
        }
        Some(Some(items))
    }

    /// An e-mail field: syntax-checked and normalised (see [`crate::email`]).
    pub fn email(&mut self, name: &str) -> Option<String> {
        let s = self.req_string(name, Len::ANY)?;
        match crate::email::normalize(&s) {
            Ok(addr) => Some(addr),
            Err(reason) => {
                self.fail_ctx(
                    name,
                    "value_error",
                    format!("value is not a valid email address: {reason}"),
                    Value::String(s),
                    json!({"reason": reason}),
                );
                None
            }
        }
    }

    /// A calendar-date field: a real `YYYY-MM-DD` date (spec README decision 3), else
    /// `date_from_datetime_parsing`.
    pub fn date(&mut self, name: &str, presence: Presence) -> Option<Option<crate::time::Date>> {
        match self.string(name, presence, Len::ANY)? {
            None => Some(None),
            Some(s) => match crate::time::Date::parse(&s) {
                Some(d) => Some(Some(d)),
                None => {
                    self.fail(
                        name,
                        "date_from_datetime_parsing",
                        INVALID_DATE,
                        Value::String(s),
                    );
                    None
                }
            },
        }
    }

    /// An optional date field where an empty string also means "not given".
    pub fn date_or_blank(&mut self, name: &str) -> Option<Option<crate::time::Date>> {
        if matches!(self.raw(name), Some(Value::String(s)) if s.is_empty()) {
            return Some(None);
        }
        self.date(name, Presence::Optional)
    }

    /// The location of member `name` (for nested validation).
    pub fn loc_of(&self, name: &str) -> Vec<LocPart> {
        self.loc(name)
    }

    /// Ends reading: `Err(Validation)` with every recorded error, if any.
    pub fn finish(self) -> Result<()> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation(self.errors))
        }
    }
}

/// The message of a value that is not a real `YYYY-MM-DD` date.
pub const INVALID_DATE: &str = "Input should be a valid date in the format YYYY-MM-DD";

/// Unwraps a value that [`Fields::finish`] has vouched for.
pub fn got<T>(v: Option<T>) -> Result<T> {
    v.ok_or_else(|| Error::Internal("validated field missing".into()))
}

fn trim_float(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Integer coercion of the contract: ints, whole floats, integer strings (surrounding white
/// space allowed), booleans.
pub fn coerce_int(v: &Value) -> std::result::Result<i64, (&'static str, &'static str)> {
    const PARSING: (&str, &str) = (
        "int_parsing",
        "Input should be a valid integer, unable to parse string as an integer",
    );
    match v {
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i)
            } else if n.is_u64() {
                Err((
                    "int_parsing_size",
                    "Input should be a valid integer, unable to parse string as an integer",
                ))
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if !f.is_finite() {
                    Err(("finite_number", "Input should be a finite number"))
                } else if f.fract() != 0.0 {
                    Err((
                        "int_from_float",
                        "Input should be a valid integer, got a number with a fractional part",
                    ))
                } else if f.abs() > 9.2e18 {
                    Err((
                        "int_parsing_size",
                        "Input should be a valid integer, unable to parse string as an integer",
                    ))
                } else {
                    Ok(f as i64)
                }
            }
        }
        Value::String(s) => parse_int_str(s).ok_or(PARSING),
        _ => Err(("int_type", "Input should be a valid integer")),
    }
}

/// Integer query parameters `names`, read with `get`: each absent one is `None`; a value that
/// is not an integer literal is `int_parsing` at `[name]` (every bad one is reported, in one
/// error). Literals too big for an `i64` saturate (they are limits and offsets, clamped by the
/// caller anyway).
pub fn query_ints<'q>(
    get: impl Fn(&str) -> Option<&'q str>,
    names: &[&str],
) -> Result<Vec<Option<i64>>> {
    let mut errors = Vec::new();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let Some(raw) = get(name) else {
            out.push(None);
            continue;
        };
        let t = raw.trim();
        let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
        match t.parse::<i64>() {
            Ok(v) => out.push(Some(v)),
            Err(_) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                out.push(Some(if t.starts_with('-') {
                    i64::MIN
                } else {
                    i64::MAX
                }))
            }
            Err(_) => {
                errors.push(FieldError::new(
                    "int_parsing",
                    vec![LocPart::Field((*name).to_owned())],
                    "Input should be a valid integer, unable to parse string as an integer",
                    Value::String(raw.to_owned()),
                ));
                out.push(None);
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(Error::Validation(errors))
    }
}

/// Parses an integer literal (optional sign, digits, optional surrounding white space; also a
/// whole-number decimal like `"5.0"`).
pub fn parse_int_str(s: &str) -> Option<i64> {
    let t = s.trim();
    if let Ok(i) = t.parse::<i64>() {
        return Some(i);
    }
    let (whole, frac) = t.split_once('.')?;
    if !frac.is_empty() && frac.bytes().all(|b| b == b'0') {
        whole.parse::<i64>().ok()
    } else {
        None
    }
}

/// Number coercion of the contract: numbers, numeric strings, booleans; finite only.
pub fn coerce_number(v: &Value) -> std::result::Result<f64, (&'static str, &'static str)> {
    let f = match v {
        Value::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
        Value::Number(n) => n
            .as_f64()
            .ok_or(("float_type", "Input should be a valid number")),
        Value::String(s) => s.trim().parse::<f64>().map_err(|_| {
            (
                "float_parsing",
                "Input should be a valid number, unable to parse string as a number",
            )
        }),
        _ => Err(("float_type", "Input should be a valid number")),
    }?;
    if f.is_finite() {
        Ok(f)
    } else {
        Err(("finite_number", "Input should be a finite number"))
    }
}

/// Boolean coercion of the contract.
#[allow(clippy::redundant_guards)] // float literals read better as guards
pub fn coerce_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => {
            let f = n.as_f64()?;
            if f == 1.0 {
                Some(true)
            } else if f == 0.0 {
                Some(false)
            } else {
                None
            }
        }
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" | "t" | "y" => Some(true),
            "false" | "no" | "off" | "0" | "f" | "n" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(r: Result<()>) -> Vec<FieldError> {
        match r {
            Err(Error::Validation(v)) => v,
            other => panic!("expected validation error, got {other:?}"),
        }
    }

    #[test]
    fn reports_every_missing_field_in_order() {
        let v = json!({});
        let mut f = Fields::new(&v).expect("object");
        f.req_string("name", Len::between(1, 255));
        f.req_string("region", Len::between(1, 50));
        let errs = errors(f.finish());
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].kind, "missing");
        assert_eq!(errs[0].loc, vec![LocPart::from("name")]);
        assert_eq!(errs[1].loc, vec![LocPart::from("region")]);
        assert_eq!(errs[0].input, json!({}));
    }

    #[test]
    fn string_lengths_count_code_points() {
        let v = json!({"a": "ééé", "b": "", "c": 5});
        let mut f = Fields::new(&v).expect("object");
        assert_eq!(f.req_string("a", Len::between(1, 3)), Some("ééé".into()));
        assert_eq!(f.req_string("b", Len::between(1, 3)), None);
        assert_eq!(f.req_string("c", Len::ANY), None);
        let errs = errors(f.finish());
        assert_eq!(errs[0].msg, "String should have at least 1 character");
        assert_eq!(errs[0].ctx, Some(json!({"min_length": 1})));
        assert_eq!(errs[1].kind, "string_type");
    }

    #[test]
    fn integer_coercions() {
        assert_eq!(coerce_int(&json!(5.0)), Ok(5));
        assert_eq!(coerce_int(&json!("5")), Ok(5));
        assert_eq!(coerce_int(&json!(true)), Ok(1));
        assert_eq!(
            coerce_int(&json!(5.5)).map_err(|e| e.0),
            Err("int_from_float")
        );
        assert_eq!(coerce_int(&json!("x")).map_err(|e| e.0), Err("int_parsing"));
        assert_eq!(coerce_int(&json!(null)).map_err(|e| e.0), Err("int_type"));
    }

    #[test]
    fn bounds_and_booleans() {
        let v = json!({"n": 0, "m": 101, "b": "maybe", "c": "YES"});
        let mut f = Fields::new(&v).expect("object");
        assert_eq!(f.int("n", Presence::Required, Bounds::range(1, 100)), None);
        assert_eq!(f.int("m", Presence::Required, Bounds::range(1, 100)), None);
        assert_eq!(f.boolean("b", Presence::Required), None);
        assert_eq!(f.boolean("c", Presence::Required), Some(Some(true)));
        let errs = errors(f.finish());
        assert_eq!(errs[0].kind, "greater_than_equal");
        assert_eq!(errs[0].msg, "Input should be greater than or equal to 1");
        assert_eq!(errs[1].kind, "less_than_equal");
        assert_eq!(errs[2].kind, "bool_parsing");
    }

    #[test]
    fn numbers_refuse_non_finite_and_check_bounds() {
        let v = json!({"a": " 2.5 ", "b": -1, "c": "nan"});
        let mut f = Fields::new(&v).expect("object");
        assert_eq!(
            f.number("a", Presence::Required, Some(0.0)),
            Some(Some(2.5))
        );
        assert_eq!(f.number("b", Presence::Required, Some(0.0)), None);
        assert_eq!(f.number("c", Presence::Required, None), None);
        let errs = errors(f.finish());
        assert_eq!(errs[0].msg, "Input should be greater than or equal to 0");
        assert_eq!(errs[1].kind, "finite_number");
    }

    #[test]
    fn non_objects_are_refused() {
        let v = json!([1]);
        let e = Fields::new(&v).err().expect("refused");
        assert_eq!(e.code(), "validation_error");
    }
}
