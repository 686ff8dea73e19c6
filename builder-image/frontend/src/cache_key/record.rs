//! The canonical record a key folds in: named fields, each name and each value framed by its
//! length (a big-endian u64), lists by their count, maps sorted by key. Two different inputs
//! never encode to the same bytes, whatever the values hold: joining strings with a separator
//! is how kaniko's keys collided (osscontainertools/kaniko #873 for build args, #912 for
//! directory trees), so nothing here is joined.

use std::collections::BTreeMap;

/// A record under construction; [`Record::as_bytes`] is what gets hashed (and what a cache
/// entry keeps, to re-check a hit against).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    buf: Vec<u8>,
}

impl Record {
    /// A record of one kind (`run`, `copy`, `origin`, ...): the kind is its first field.
    pub fn new(kind: &str) -> Self {
        let mut r = Record::default();
        r.str("kind", kind);
        r
    }

    fn frame(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(&(b.len() as u64).to_be_bytes());
        self.buf.extend_from_slice(b);
    }

    fn name(&mut self, name: &str) {
        self.frame(name.as_bytes());
    }

    pub fn bytes(&mut self, name: &str, v: &[u8]) -> &mut Self {
        self.name(name);
        self.frame(v);
        self
    }

    pub fn str(&mut self, name: &str, v: &str) -> &mut Self {
        self.bytes(name, v.as_bytes())
    }

    pub fn u64(&mut self, name: &str, v: u64) -> &mut Self {
        self.bytes(name, &v.to_be_bytes())
    }

    pub fn i64(&mut self, name: &str, v: i64) -> &mut Self {
        self.bytes(name, &v.to_be_bytes())
    }

    pub fn bool(&mut self, name: &str, v: bool) -> &mut Self {
        self.bytes(name, &[u8::from(v)])
    }

    /// An optional value: absent and empty differ.
    pub fn opt_str(&mut self, name: &str, v: Option<&str>) -> &mut Self {
        self.opt_bytes(name, v.map(str::as_bytes))
    }

    pub fn opt_u64(&mut self, name: &str, v: Option<u64>) -> &mut Self {
        self.opt_bytes(name, v.map(u64::to_be_bytes).as_ref().map(|b| &b[..]))
    }

    pub fn opt_bool(&mut self, name: &str, v: Option<bool>) -> &mut Self {
        self.opt_bytes(name, v.map(|b| [u8::from(b)]).as_ref().map(|b| &b[..]))
    }

    pub fn opt_bytes(&mut self, name: &str, v: Option<&[u8]>) -> &mut Self {
        self.name(name);
        match v {
            None => self.frame(&[0]),
            Some(b) => {
                self.frame(&[1]);
                self.frame(b);
            }
        }
        self
    }

    /// A list, in its order (argv, sources: order matters).
    pub fn list<'a>(&mut self, name: &str, items: impl IntoIterator<Item = &'a str>) -> &mut Self {
        let items: Vec<&str> = items.into_iter().collect();
        self.name(name);
        self.frame(&(items.len() as u64).to_be_bytes());
        for i in items {
            self.frame(i.as_bytes());
        }
        self
    }

    /// A map, by key (a BTreeMap is already sorted; order of writing never matters).
    pub fn map(&mut self, name: &str, m: &BTreeMap<String, String>) -> &mut Self {
        self.name(name);
        self.frame(&(m.len() as u64).to_be_bytes());
        for (k, v) in m {
            self.frame(k.as_bytes());
            self.frame(v.as_bytes());
        }
        self
    }

    /// Records inside this one (mounts of a RUN), each framed whole.
    pub fn records<'a>(
        &mut self,
        name: &str,
        items: impl IntoIterator<Item = &'a Record>,
    ) -> &mut Self {
        let items: Vec<&Record> = items.into_iter().collect();
        self.name(name);
        self.frame(&(items.len() as u64).to_be_bytes());
        for r in items {
            self.frame(&r.buf);
        }
        self
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_keeps_values_apart() {
        let two = |a: &str, b: &str| {
            let mut r = Record::new("t");
            r.str("a", a).str("b", b);
            r
        };
        assert_ne!(two("x-", "y"), two("x", "-y"));
        let list = |v: &[&str]| {
            let mut r = Record::new("t");
            r.list("l", v.iter().copied());
            r
        };
        assert_ne!(list(&["a,b"]), list(&["a", "b"]));
        assert_ne!(list(&[""]), list(&[]));
        let opt = |v: Option<&str>| {
            let mut r = Record::new("t");
            r.opt_str("o", v);
            r
        };
        assert_ne!(opt(None), opt(Some("")));
        let map = |pairs: &[(&str, &str)]| {
            let mut r = Record::new("t");
            let m = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            r.map("m", &m);
            r
        };
        assert_ne!(map(&[("a", "1,b=2")]), map(&[("a", "1"), ("b", "2")]));
        assert_eq!(
            map(&[("a", "1"), ("b", "2")]),
            map(&[("b", "2"), ("a", "1")])
        );
    }
}
