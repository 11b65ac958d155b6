//! [`SharedStr`]: the text a build, a file or a command gives all its events (the correlation
//! id, the source file), shared by reference count.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

/// An immutable string shared by reference count (an `Arc<str>`), whose empty value is no
/// allocation and no count at all.
///
/// Why not `Arc<str>` itself: its empty value (`Arc::default()`) is one static shared by the
/// whole process, counted up and down by every event made empty and filled in later, twice
/// an event, from every thread at once: a cache line that the parser threads of `--jobs` and
/// a pipeline's parser and sinks all write.
#[derive(Clone, Default)]
pub struct SharedStr(Option<Arc<str>>);

impl SharedStr {
    pub fn as_str(&self) -> &str {
        self.0.as_deref().unwrap_or("")
    }

    /// Whether both are the same allocation (or both empty): the same text, known without
    /// reading it.
    pub fn ptr_eq(&self, other: &SharedStr) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }
}

impl Deref for SharedStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for SharedStr {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for SharedStr {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<Arc<str>> for SharedStr {
    fn from(s: Arc<str>) -> Self {
        SharedStr((!s.is_empty()).then_some(s))
    }
}

impl From<&str> for SharedStr {
    fn from(s: &str) -> Self {
        SharedStr((!s.is_empty()).then(|| Arc::from(s)))
    }
}

impl From<String> for SharedStr {
    fn from(s: String) -> Self {
        SharedStr((!s.is_empty()).then(|| Arc::from(s)))
    }
}

impl PartialEq for SharedStr {
    fn eq(&self, other: &Self) -> bool {
        self.ptr_eq(other) || self.as_str() == other.as_str()
    }
}

impl Eq for SharedStr {}

impl PartialEq<str> for SharedStr {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for SharedStr {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialOrd for SharedStr {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SharedStr {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for SharedStr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl fmt::Debug for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for SharedStr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SharedStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(SharedStr::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_empty_string_holds_nothing_and_equals_every_empty_string() {
        let empty = SharedStr::default();
        assert!(empty.0.is_none());
        assert_eq!(&*empty, "");
        for e in [
            SharedStr::from(""),
            SharedStr::from(String::new()),
            SharedStr::from(Arc::<str>::from("")),
        ] {
            assert!(e.0.is_none(), "an empty string allocates nothing");
            assert_eq!(e, empty);
            assert!(e.ptr_eq(&empty));
        }
        assert_eq!(serde_json::to_string(&empty).unwrap(), r#""""#);
    }

    #[test]
    fn clones_share_one_allocation_and_equal_text_is_equal() {
        let a = SharedStr::from("build-1763290245-q7m2xa");
        let b = a.clone();
        let c = SharedStr::from("build-1763290245-q7m2xa".to_string());
        assert!(a.ptr_eq(&b));
        assert!(!a.ptr_eq(&c), "equal text, another allocation");
        assert_eq!(a, c);
        assert_ne!(a, SharedStr::from("build-1763290245-q7m2xb"));
        let later = SharedStr::from("build-1763290245-q7m2xb");
        assert!(a < later && SharedStr::default() < a);
        assert!(!a.ptr_eq(&SharedStr::default()));
        assert_eq!(a, "build-1763290245-q7m2xa");
        assert_eq!(a.len(), 23);
        assert_eq!(
            format!("{a} {a:?}"),
            "build-1763290245-q7m2xa \"build-1763290245-q7m2xa\""
        );
    }

    #[test]
    fn it_reads_and_writes_as_a_json_string() {
        let a: SharedStr = serde_json::from_str(r#""python-install.log""#).unwrap();
        assert_eq!(a, "python-install.log");
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#""python-install.log""#
        );
        let empty: SharedStr = serde_json::from_str(r#""""#).unwrap();
        assert!(empty.0.is_none());
        assert!(serde_json::from_str::<SharedStr>("12").is_err());
    }
}
