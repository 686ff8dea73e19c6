//! A packed context on its way out: written to an unnamed temporary file (gone when the
//! process ends, whatever happens), counted as it is written, so that a large context is never
//! held in memory and its size is known before a store is chosen. A [`Spool::discard`] only
//! counts (the packer's dry runs).

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

#[derive(Debug)]
pub struct Spool {
    file: Option<File>,
    len: u64,
}

impl Spool {
    pub fn new() -> io::Result<Self> {
        Ok(Spool {
            file: Some(tempfile::tempfile()?),
            len: 0,
        })
    }

    /// One that counts what is written and keeps none of it.
    pub fn discard() -> Self {
        Spool { file: None, len: 0 }
    }

    fn file(&self) -> io::Result<&File> {
        self.file
            .as_ref()
            .ok_or_else(|| io::Error::other("a discarding spool keeps nothing"))
    }

    /// Bytes written.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// All of it, in memory (for a small store: a ConfigMap).
    pub fn bytes(&self) -> io::Result<Vec<u8>> {
        let len = usize::try_from(self.len).map_err(io::Error::other)?;
        let mut buf = vec![0; len];
        self.file()?.read_exact_at(&mut buf, 0)?;
        Ok(buf)
    }

    /// A reader from its first byte.
    pub fn reader(&self) -> io::Result<File> {
        let mut f = self.file()?.try_clone()?;
        f.seek(SeekFrom::Start(0))?;
        Ok(f)
    }
}

impl Write for Spool {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match &mut self.file {
            Some(f) => f.write(buf)?,
            None => buf.len(),
        };
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().map_or(Ok(()), Write::flush)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn what_is_written_is_counted_and_read_back() {
        let mut s = Spool::new().expect("spool");
        assert!(s.is_empty());
        s.write_all(b"hello ").expect("write");
        s.write_all(b"world").expect("write");
        assert_eq!(s.len(), 11);
        assert_eq!(s.bytes().expect("bytes"), b"hello world");
        let mut again = String::new();
        s.reader()
            .expect("reader")
            .read_to_string(&mut again)
            .expect("read");
        assert_eq!(again, "hello world");
        // A second reader starts over too.
        let mut third = String::new();
        s.reader()
            .expect("reader")
            .read_to_string(&mut third)
            .expect("read");
        assert_eq!(third, "hello world");
        let mut d = Spool::discard();
        d.write_all(b"counted").expect("write");
        assert_eq!(d.len(), 7);
        assert!(d.bytes().is_err());
    }
}
