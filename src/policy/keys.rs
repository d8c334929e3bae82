//! The unknown-key pass of policy loading: every key of a YAML document with its
//! position (`KeyTree`), walked against the policy's JSON Schema, so that every unknown
//! key anywhere is reported at once with its line:column and a "did you mean" suggestion.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value as Json;

use super::load::PolicyError;
use super::located::Located;

/// Every key of a YAML document with its position, and nothing else: enough to find
/// unknown keys everywhere in one pass.
#[derive(Debug, Default)]
pub(super) struct KeyTree {
    keys: Vec<(Located<String>, KeyTree)>,
    items: Vec<KeyTree>,
}

impl<'de> Deserialize<'de> for KeyTree {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(KeyTreeVisitor)
    }
}

struct KeyTreeVisitor;

impl<'de> Visitor<'de> for KeyTreeVisitor {
    type Value = KeyTree;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<KeyTree, E> {
        Ok(KeyTree::default())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<KeyTree, E> {
        Ok(KeyTree::default())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<KeyTree, E> {
        Ok(KeyTree::default())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<KeyTree, E> {
        Ok(KeyTree::default())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<KeyTree, E> {
        Ok(KeyTree::default())
    }
    fn visit_unit<E: de::Error>(self) -> Result<KeyTree, E> {
        Ok(KeyTree::default())
    }
    fn visit_none<E: de::Error>(self) -> Result<KeyTree, E> {
        Ok(KeyTree::default())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<KeyTree, D::Error> {
        KeyTree::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<KeyTree, A::Error> {
        let mut tree = KeyTree::default();
        while let Some(item) = seq.next_element::<KeyTree>()? {
            tree.items.push(item);
        }
        Ok(tree)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyTree, A::Error> {
        let mut tree = KeyTree::default();
        while let Some(key) = map.next_key::<Located<String>>()? {
            let value = map.next_value::<KeyTree>()?;
            tree.keys.push((key, value));
        }
        Ok(tree)
    }
}

/// Follow `$ref` and pick the non-null branch of `anyOf`/`oneOf` (how `Option<T>` shows).
fn resolve<'a>(node: &'a Json, root: &'a Json) -> &'a Json {
    let mut node = node;
    for _ in 0..16 {
        if let Some(r) = node.get("$ref").and_then(Json::as_str) {
            let name = r.rsplit('/').next().unwrap_or("");
            match root.get("$defs").and_then(|d| d.get(name)) {
                Some(target) => node = target,
                None => return node,
            }
            continue;
        }
        let branches = node
            .get("anyOf")
            .or_else(|| node.get("oneOf"))
            .and_then(Json::as_array);
        if let Some(branch) = branches.and_then(|b| {
            b.iter().find(|x| {
                x.get("$ref").is_some() || x.get("properties").is_some() || x.get("items").is_some()
            })
        }) {
            node = branch;
            continue;
        }
        return node;
    }
    node
}

pub(super) fn check_keys(
    tree: &KeyTree,
    schema: &Json,
    root: &Json,
    errors: &mut Vec<PolicyError>,
) {
    let node = resolve(schema, root);
    // A free-form value (messages, tool schemas, template variables): any key goes.
    if node.as_bool() == Some(true) || node.as_object().is_some_and(|o| o.is_empty()) {
        return;
    }
    let props = node.get("properties").and_then(Json::as_object);
    let extra = node.get("additionalProperties").filter(|a| a.is_object());
    for (key, sub) in &tree.keys {
        match (props.and_then(|p| p.get(&key.value)), extra) {
            (Some(s), _) | (None, Some(s)) => check_keys(sub, s, root, errors),
            (None, None) => {
                let known: Vec<&str> = props
                    .map(|p| p.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                let mut message = format!("unknown key `{}`", key.value);
                if let Some(best) = suggest(&key.value, &known) {
                    message.push_str(&format!("; did you mean `{best}`?"));
                } else if !known.is_empty() {
                    message.push_str(&format!("; expected one of: {}", known.join(", ")));
                }
                errors.push(PolicyError {
                    loc: key.loc(),
                    message,
                });
            }
        }
    }
    if let Some(items) = node.get("items") {
        for item in &tree.items {
            check_keys(item, items, root, errors);
        }
    }
}

/// The closest known name, if it is close enough to be a typo.
pub(crate) fn suggest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(word, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
