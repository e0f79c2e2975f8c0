//! Attachment files: checked against the configured rules (SPEC §3.4) and
//! stored content-addressed under `attachments.dir`.
//!
//! A file's path is derived from its SHA-256 only (`ab/cd/abcd…`), never
//! from a name that came from outside, so no filename can escape the
//! directory, and the same picture sent twice is stored once. Writes go to
//! a temporary file first and are renamed into place, so a crash never
//! leaves a half-written file under a valid name.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::config::AttachmentsConfig;

/// The rules and the directory.
#[derive(Debug, Clone)]
pub struct Attachments {
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub max_files: u32,
    pub allowed: Vec<String>,
}

/// The extension we trust for a content type, when the name has none.
pub fn extension_for(content_type: &str) -> Option<&'static str> {
    Some(
        match content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "image/jpeg" | "image/jpg" => "jpg",
            "image/png" => "png",
            "image/gif" => "gif",
            "image/webp" => "webp",
            "application/pdf" => "pdf",
            "application/msword" => "doc",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
            "application/vnd.ms-excel" => "xls",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "xlsx",
            "application/vnd.ms-powerpoint" => "ppt",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation" => "pptx",
            _ => return None,
        },
    )
}

/// Whether a file is an image (for the images/documents split).
pub fn is_image(content_type: &str) -> bool {
    content_type
        .trim()
        .to_ascii_lowercase()
        .starts_with("image/")
}

/// A name safe to show and to put in a Content-Disposition header.
pub fn sanitize_filename(name: &str, content_type: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control() && *c != '"')
        .collect::<String>()
        .trim()
        .trim_start_matches('.')
        .to_string();
    if cleaned.is_empty() {
        match extension_for(content_type) {
            Some(ext) => format!("attachment.{ext}"),
            None => "attachment".to_string(),
        }
    } else {
        cleaned.chars().take(200).collect()
    }
}

impl Attachments {
    pub fn from_config(c: &AttachmentsConfig) -> Attachments {
        Attachments {
            dir: c.dir.clone(),
            max_bytes: c.max_bytes,
            max_files: c.max_files,
            allowed: c.allowed.clone(),
        }
    }

    /// Why a file is refused, if it is: type not allowed, too large, or
    /// over the per-message count (`index` is its position, from 0).
    pub fn refusal(
        &self,
        filename: &str,
        content_type: &str,
        size: u64,
        index: usize,
    ) -> Option<String> {
        if index >= self.max_files as usize {
            return Some(format!("more than {} files in one message", self.max_files));
        }
        let ext = Path::new(filename)
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .or_else(|| extension_for(content_type).map(str::to_string));
        match ext {
            Some(e) if self.allowed.iter().any(|a| a.eq_ignore_ascii_case(&e)) => {}
            Some(e) => return Some(format!("file type .{e} is not allowed")),
            None => return Some(format!("file type {content_type} is not allowed")),
        }
        if size > self.max_bytes {
            return Some(format!("larger than {} bytes", self.max_bytes));
        }
        None
    }

    fn path_for(&self, sha: &str) -> PathBuf {
        self.dir.join(&sha[0..2]).join(&sha[2..4]).join(sha)
    }

    /// Stores the bytes; returns their SHA-256 (hex).
    pub async fn save(&self, data: &[u8]) -> std::io::Result<String> {
        let sha = hash_off_thread(data).await?;
        let path = self.path_for(&sha);
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Ok(sha);
        }
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let tmp = path.with_extension(format!("tmp{}", rand::random::<u32>()));
        tokio::fs::write(&tmp, data).await?;
        if let Ok(f) = tokio::fs::File::open(&tmp).await {
            let _ = f.sync_all().await;
        }
        tokio::fs::rename(&tmp, &path).await?;
        Ok(sha)
    }

    /// Reads a stored file back.
    pub async fn read(&self, sha: &str) -> std::io::Result<Vec<u8>> {
        if sha.len() != 64 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "bad attachment hash",
            ));
        }
        tokio::fs::read(self.path_for(sha)).await
    }
}

/// Files at least this large are hashed on the blocking pool.
const HASH_INLINE_MAX: usize = 256 * 1024;

/// SHA-256 (hex) of `data`; a large file is hashed on tokio's blocking
/// pool (tens of milliseconds for 10 MB) so the async workers keep
/// answering webhooks meanwhile.
async fn hash_off_thread(data: &[u8]) -> std::io::Result<String> {
    if data.len() < HASH_INLINE_MAX {
        return Ok(hex::encode(Sha256::digest(data)));
    }
    let owned = data.to_vec();
    tokio::task::spawn_blocking(move || hex::encode(Sha256::digest(&owned)))
        .await
        .map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(dir: &Path) -> Attachments {
        Attachments {
            dir: dir.to_path_buf(),
            max_bytes: 100,
            max_files: 2,
            allowed: vec!["jpg".into(), "png".into(), "pdf".into()],
        }
    }

    #[test]
    fn refusals_name_the_reason() {
        let a = rules(Path::new("/nonexistent"));
        assert_eq!(a.refusal("photo.JPG", "image/jpeg", 10, 0), None);
        assert_eq!(a.refusal("", "image/png", 10, 0), None);
        assert!(
            a.refusal("run.exe", "application/octet-stream", 10, 0)
                .unwrap()
                .contains(".exe")
        );
        assert!(
            a.refusal("big.pdf", "application/pdf", 101, 0)
                .unwrap()
                .contains("larger")
        );
        assert!(
            a.refusal("third.pdf", "application/pdf", 1, 2)
                .unwrap()
                .contains("more than 2")
        );
        assert!(
            a.refusal("noext", "application/zip", 1, 0)
                .unwrap()
                .contains("application/zip")
        );
    }

    #[test]
    fn names_cannot_escape_or_inject() {
        assert_eq!(
            sanitize_filename("../../etc/passwd", "text/plain"),
            "passwd"
        );
        assert_eq!(
            sanitize_filename("C:\\Users\\x\\report.pdf", "application/pdf"),
            "report.pdf"
        );
        assert_eq!(
            sanitize_filename("a\r\nb\".pdf", "application/pdf"),
            "ab.pdf"
        );
        assert_eq!(sanitize_filename("", "image/png"), "attachment.png");
        assert_eq!(sanitize_filename(".hidden", "image/png"), "hidden");
    }

    #[tokio::test]
    async fn files_are_content_addressed() {
        let dir = tempfile::tempdir().unwrap();
        let a = rules(dir.path());
        let sha = a.save(b"hello").await.unwrap();
        assert_eq!(
            sha,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(a.save(b"hello").await.unwrap(), sha);
        assert_eq!(a.read(&sha).await.unwrap(), b"hello");
        assert!(dir.path().join("2c/f2").join(&sha).is_file());
        assert!(a.read("../../etc/passwd").await.is_err());
    }
}
