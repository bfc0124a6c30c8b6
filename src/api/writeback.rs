//! Bodies of `PUT` routes whose `GET` answers more than the `PUT` sets: a client that reads a
//! document, edits it and writes it back sends the read-only fields too. Those are accepted and
//! ignored; any other unknown field is still refused with its name, so a typo never passes as a
//! silently ignored setting.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// A JSON object body, before it is read as the route's type.
pub struct Document {
    /// The object's fields, read-only ones removed as they are named.
    fields: Map<String, Value>,
    /// What the body is, for error messages ("thresholds document").
    what: &'static str,
}

impl Document {
    /// Reads `body` as a JSON object; anything else is an error naming `what`.
    pub fn parse(body: &[u8], what: &'static str) -> Result<Self, String> {
        match serde_json::from_slice(body) {
            Ok(Value::Object(fields)) => Ok(Document { fields, what }),
            Ok(other) => Err(format!(
                "invalid {what}: expected a JSON object, got {}",
                kind(&other)
            )),
            Err(e) => Err(format!("invalid {what}: {e}")),
        }
    }

    /// Drops the fields that the route's `GET` adds and its `PUT` cannot set.
    pub fn ignore(&mut self, read_only: &[&str]) {
        for field in read_only {
            self.fields.remove(*field);
        }
    }

    /// Takes one field out of the document, for routes whose `GET` nests what a `PUT` sets.
    pub fn take(&mut self, field: &str) -> Option<Value> {
        self.fields.remove(field)
    }

    /// Whether any field is left.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Names of the fields left, for an error that says which ones clash.
    pub fn field_names(&self) -> Vec<&str> {
        self.fields.keys().map(String::as_str).collect()
    }

    /// Reads what is left as `T`; the error names the offending field's path.
    pub fn read<T: DeserializeOwned>(self) -> Result<T, String> {
        read_value(Value::Object(self.fields), self.what)
    }
}

/// Reads `value` as `T`; the error names `what` and the offending field's path.
pub fn read_value<T: DeserializeOwned>(value: Value, what: &str) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            format!("invalid {what}: {inner}")
        } else {
            format!("invalid {what}: {path}: {inner}")
        }
    })
}

/// JSON's name for the kind of `value`.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Limits {
        max: Option<u32>,
    }

    #[test]
    fn read_only_fields_are_dropped_and_others_still_refused() {
        let mut doc = Document::parse(br#"{"max": 3, "source": "global"}"#, "limits").unwrap();
        doc.ignore(&["source"]);
        assert_eq!(doc.read::<Limits>().unwrap(), Limits { max: Some(3) });
        let mut doc = Document::parse(br#"{"max": 3, "sourse": "global"}"#, "limits").unwrap();
        doc.ignore(&["source"]);
        let error = doc.read::<Limits>().unwrap_err();
        assert!(error.contains("unknown field `sourse`"), "{error}");
    }

    #[test]
    fn a_body_that_is_not_an_object_says_what_it_is() {
        let error = Document::parse(b"[1]", "limits").err().unwrap();
        assert_eq!(
            error,
            "invalid limits: expected a JSON object, got an array"
        );
        let error = read_value::<Limits>(serde_json::json!({"max": "x"}), "limits").unwrap_err();
        assert!(
            error.starts_with("invalid limits: max: invalid type"),
            "{error}"
        );
    }
}
