//! [`Fields`]: an event's `metadata` or `details` object, empty on most events.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::LazyLock;

/// A JSON object of an event, used as a `serde_json::Map` (it derefs to one). Most events
/// (every output line) have none, so an empty one is a null pointer: 8 bytes in the event
/// instead of the map's 72, nothing to set up when an event is made or to free when it is
/// dropped. Empty and absent are the same object: equal, and written as `{}`.
#[derive(Clone, Default)]
pub struct Fields(Option<Box<Map<String, Value>>>);

/// What an absent object reads as.
static EMPTY: LazyLock<Map<String, Value>> = LazyLock::new(Map::new);

impl Fields {
    pub const fn new() -> Self {
        Fields(None)
    }

    /// No key (`skip_serializing_if` names it as a path, which deref does not reach).
    pub fn is_empty(&self) -> bool {
        self.deref().is_empty()
    }

    /// The map to change in place, where there is one; unlike `DerefMut`, makes none where
    /// there is none. (One test of the pointer: iterating the values of an absent map through
    /// `flat_map` cost ~14 instructions per event and map on the scrubber's path.)
    pub fn as_map_mut(&mut self) -> Option<&mut Map<String, Value>> {
        self.0.as_deref_mut()
    }

    /// The object as a map of its own.
    pub fn into_map(self) -> Map<String, Value> {
        self.0.map(|m| *m).unwrap_or_default()
    }
}

impl Deref for Fields {
    type Target = Map<String, Value>;

    fn deref(&self) -> &Map<String, Value> {
        match &self.0 {
            Some(m) => m,
            None => &EMPTY,
        }
    }
}

impl DerefMut for Fields {
    /// The map, made on first use.
    fn deref_mut(&mut self) -> &mut Map<String, Value> {
        self.0.get_or_insert_with(Box::default)
    }
}

impl From<Map<String, Value>> for Fields {
    fn from(m: Map<String, Value>) -> Self {
        if m.is_empty() {
            Fields(None)
        } else {
            Fields(Some(Box::new(m)))
        }
    }
}

impl<'a> IntoIterator for &'a Fields {
    type Item = (&'a String, &'a Value);
    type IntoIter = serde_json::map::Iter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.deref().iter()
    }
}

impl PartialEq for Fields {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.deref().fmt(f)
    }
}

impl Serialize for Fields {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.deref().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Map::deserialize(d).map(Fields::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_and_absent_are_one_object() {
        let absent = Fields::new();
        let mut emptied = Fields::new();
        emptied.insert("k".into(), json!(1));
        emptied.remove("k");
        assert_eq!(absent, emptied);
        assert!(absent.is_empty() && emptied.is_empty());
        assert_eq!(serde_json::to_string(&absent).unwrap(), "{}");
        assert_eq!(serde_json::to_string(&emptied).unwrap(), "{}");
        let read: Fields = serde_json::from_str("{}").unwrap();
        assert!(read.0.is_none(), "an empty object read back holds no map");
    }

    #[test]
    fn a_map_is_made_on_first_write_and_reads_and_writes_as_one() {
        let mut f = Fields::new();
        assert!(f.0.is_none());
        assert_eq!(f.get("exit_code"), None);
        assert!(f.0.is_none(), "reading makes no map");
        f.insert("exit_code".into(), json!(2));
        f.insert("command".into(), json!("make"));
        assert!(f.0.is_some());
        assert_eq!(f["exit_code"], 2);
        // Insertion order kept, as serde_json's map (preserve_order) keeps it.
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            r#"{"exit_code":2,"command":"make"}"#
        );
        let keys: Vec<&String> = (&f).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["exit_code", "command"]);
        let back: Fields = serde_json::from_str(r#"{"exit_code":2,"command":"make"}"#).unwrap();
        assert_eq!(back, f);
        assert_ne!(back, Fields::new());
        assert_eq!(back.clone().into_map().len(), 2);
        assert_eq!(format!("{f:?}"), format!("{:?}", f.clone().into_map()));
    }

    #[test]
    fn changing_the_values_of_none_makes_no_map() {
        let mut f = Fields::new();
        assert!(f.as_map_mut().is_none());
        assert!(f.0.is_none());
        f.insert("a".into(), json!("x"));
        for v in f.as_map_mut().expect("a map was made").values_mut() {
            *v = json!("y");
        }
        assert_eq!(f["a"], "y");
    }

    #[test]
    fn is_eight_bytes() {
        assert_eq!(std::mem::size_of::<Fields>(), 8);
    }
}
