//! Documents, stored by content beside the database: `DIR/ab/abcdef...` named by their
//! SHA-256, so a document sent twice is kept once and a stored file can be checked against
//! the hash the request's history holds.
//!
//! A document arrives in two steps. It is *staged* while it streams in (a temporary file in
//! `DIR/tmp/`, hashed as it is written, refused as soon as it passes its size limit, its type
//! sniffed from its first bytes, never taken from its name); then, once the command that
//! records it has been saved, it is *kept* (renamed into place). A staged document that is
//! not kept (the form was refused, the upload broke off) is deleted when dropped: nothing is
//! left half-stored.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt as _;

/// What was stored: the document's hash, size and sniffed media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub sha256: String,
    pub size: u64,
    pub media_type: String,
}

/// Why a document was not stored.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("the document is larger than the {limit} bytes accepted")]
    TooLarge { limit: u64 },
    #[error("the document could not be written: {0}")]
    Io(#[from] std::io::Error),
}

/// The folder of documents.
#[derive(Debug, Clone)]
pub struct Documents {
    dir: PathBuf,
}

/// How many first bytes the media type is sniffed from.
const SNIFF: usize = 8192;

impl Documents {
    pub fn new(dir: impl Into<PathBuf>) -> Documents {
        Documents { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the document of `sha256` is kept (`None` for what is not a SHA-256).
    pub fn path(&self, sha256: &str) -> Option<PathBuf> {
        (sha256.len() == 64
            && sha256
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then(|| self.dir.join(&sha256[..2]).join(sha256))
    }

    /// Starts staging a document of at most `limit` bytes.
    pub async fn stage(&self, limit: u64) -> Result<Staging, Refusal> {
        let tmp = self.dir.join("tmp");
        tokio::fs::create_dir_all(&tmp).await?;
        let mut name = [0u8; 16];
        getrandom::fill(&mut name).map_err(|e| std::io::Error::other(e.to_string()))?;
        let path = tmp.join(hex::encode(name));
        let file = tokio::fs::File::create(&path).await?;
        Ok(Staging {
            file: Some(file),
            staged: Staged {
                path: Some(path),
                dir: self.dir.clone(),
                stored: Stored {
                    sha256: String::new(),
                    size: 0,
                    media_type: String::new(),
                },
            },
            hasher: Sha256::new(),
            head: Vec::new(),
            limit,
        })
    }
}

/// A document being written.
#[derive(Debug)]
pub struct Staging {
    file: Option<tokio::fs::File>,
    staged: Staged,
    hasher: Sha256,
    head: Vec<u8>,
    limit: u64,
}

impl Staging {
    /// Appends a chunk; refused (and the document dropped) past the limit.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), Refusal> {
        let size = self.staged.stored.size + chunk.len() as u64;
        if size > self.limit {
            return Err(Refusal::TooLarge { limit: self.limit });
        }
        if self.head.len() < SNIFF {
            let take = (SNIFF - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        self.hasher.update(chunk);
        if let Some(f) = self.file.as_mut() {
            f.write_all(chunk).await?;
        }
        self.staged.stored.size = size;
        Ok(())
    }

    /// The whole document is written: flushed to disk, its hash and type known.
    pub async fn finish(mut self) -> Result<Staged, Refusal> {
        if let Some(mut f) = self.file.take() {
            f.flush().await?;
            f.sync_all().await?;
        }
        let hasher = std::mem::take(&mut self.hasher);
        self.staged.stored.sha256 = hex::encode(hasher.finalize());
        self.staged.stored.media_type = sniff(&self.head);
        Ok(std::mem::replace(
            &mut self.staged,
            Staged {
                path: None,
                dir: PathBuf::new(),
                stored: Stored {
                    sha256: String::new(),
                    size: 0,
                    media_type: String::new(),
                },
            },
        ))
    }
}

/// A document written in full, not yet kept: deleted when dropped unless [`Staged::keep`]
/// moved it into place.
#[derive(Debug)]
pub struct Staged {
    path: Option<PathBuf>,
    dir: PathBuf,
    pub stored: Stored,
}

impl Staged {
    /// Moves the document into place, under its hash (a document kept already stays as it
    /// is: same hash, same content).
    pub async fn keep(mut self) -> std::io::Result<()> {
        let Some(from) = self.path.take() else {
            return Ok(());
        };
        let sha = &self.stored.sha256;
        let folder = self.dir.join(&sha[..2]);
        tokio::fs::create_dir_all(&folder).await?;
        let to = folder.join(sha);
        if tokio::fs::try_exists(&to).await.unwrap_or(false) {
            return tokio::fs::remove_file(&from).await;
        }
        tokio::fs::rename(&from, &to).await
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The media type of a document, from its first bytes (never from its name): the common
/// formats of a desk's documents by their signatures, UTF-8 text as `text/plain`, anything
/// else `application/octet-stream`.
pub fn sniff(head: &[u8]) -> String {
    if let Some(t) = infer::get(head) {
        return t.mime_type().to_owned();
    }
    let text = match std::str::from_utf8(head) {
        Ok(_) => true,
        // A multi-byte character cut at the end of the sniffed bytes.
        Err(e) => e.error_len().is_none() && e.valid_up_to() + 4 > head.len(),
    };
    if !head.is_empty() && text && !head.contains(&0) {
        return "text/plain".to_owned();
    }
    "application/octet-stream".to_owned()
}

#[cfg(test)]
mod tests {
    use super::sniff;

    #[test]
    fn types_come_from_the_content() {
        assert_eq!(sniff(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"), "application/pdf");
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), "image/png");
        assert_eq!(
            sniff("variable;définition\nage;âge\n".as_bytes()),
            "text/plain"
        );
        assert_eq!(sniff(b"\0\x01\x02binary"), "application/octet-stream");
        assert_eq!(sniff(b""), "application/octet-stream");
    }
}
