//! `Located<T>`: a policy value together with the line and column it was written at,
//! so every problem in a policy — and every bound a finding cites — points back to the
//! exact place in the YAML. Deserializes through serde-saphyr's `Spanned`, and has the
//! JSON Schema of the bare value.

use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::Rc;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer};

use super::Loc;

/// A value with its source document and 1-based line and column.
#[derive(Clone, Debug, PartialEq)]
pub struct Located<T> {
    pub value: T,
    pub line: u64,
    pub column: u64,
    /// The policy file or `preset:<name>` the value was read from.
    pub source: Rc<str>,
}

impl<T> Located<T> {
    /// Where the value was written.
    pub fn loc(&self) -> Loc {
        Loc {
            file: self.source.to_string(),
            line: self.line,
            column: self.column,
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Located<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = serde_saphyr::Spanned::<T>::deserialize(deserializer)?;
        Ok(Located {
            line: spanned.referenced.line(),
            column: spanned.referenced.column(),
            source: CURRENT_SOURCE.with(|s| s.borrow().clone()),
            value: spanned.value,
        })
    }
}

thread_local! {
    /// The name of the document being deserialized (set by the loader around each parse),
    /// so that values from a preset and from the user's file keep their own origin after
    /// the two are merged.
    static CURRENT_SOURCE: RefCell<Rc<str>> = RefCell::new(Rc::from(""));
}

/// Run `f` with `source` recorded as the origin of every `Located` it deserializes.
pub(crate) fn with_source<R>(source: &str, f: impl FnOnce() -> R) -> R {
    let previous = CURRENT_SOURCE.with(|s| s.replace(Rc::from(source)));
    let result = f();
    CURRENT_SOURCE.with(|s| *s.borrow_mut() = previous);
    result
}

impl<T: JsonSchema> JsonSchema for Located<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }

    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}
