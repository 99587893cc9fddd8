//! Downloads of a request's documents: authorized as the request is (staff of its desk and
//! administrators; a link's holder for what their page shows), always as an attachment
//! (never rendered by the browser), read from the store in chunks.

use super::*;

use guichet_definitions::model::FieldType;
use guichet_engine::core::dossier::Dossier;

/// The document of `sha256` among what `dossier` shows: its name and media type.
fn find<'d>(dossier: &'d Dossier, sha256: &str) -> Option<(&'d str, &'d str)> {
    dossier
        .intake
        .iter()
        .chain(dossier.steps.iter().flat_map(|s| s.fields.iter()))
        .filter(|f| f.ty == FieldType::File)
        .find(|f| f.value.get("sha256").and_then(|v| v.as_str()) == Some(sha256))
        .map(|f| {
            (
                f.value
                    .get("name")
                    .and_then(|v| v.as_str())
                    .unwrap_or("document"),
                f.value
                    .get("type")
                    .and_then(|v| v.as_str())
                    .unwrap_or("application/octet-stream"),
            )
        })
}

/// The document of `sha256` if `dossier` shows it, as a download; the not-found page
/// otherwise (as for anything not the reader's to see).
pub(crate) async fn download(s: &AppState, dossier: &Dossier, sha256: &str) -> PageResult {
    let Some((name, media_type)) = find(dossier, sha256) else {
        return Ok(staff::not_found());
    };
    let Some(path) = s.engine.documents().path(sha256) else {
        return Ok(staff::not_found());
    };
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => {
            // Recorded but not on disk: a fault of the installation (a lost or unrestored
            // folder), for the operator.
            return Err(Error::Io(std::io::Error::new(
                e.kind(),
                format!("document {sha256} of request {}: {e}", dossier.id),
            ))
            .into());
        }
    };
    let size = file.metadata().await.map(|m| m.len()).ok();
    let body =
        axum::body::Body::from_stream(futures_util::stream::unfold(file, |mut file| async {
            use tokio::io::AsyncReadExt as _;
            let mut buf = vec![0u8; 64 * 1024];
            match file.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok::<_, std::io::Error>(Bytes::from(buf)), file))
                }
                Err(e) => Some((Err(e), file)),
            }
        }));
    let mut response = body.into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(media_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Some(n) = size {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    if let Ok(v) = HeaderValue::from_str(&attachment(name)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// `Content-Disposition` for a download named `name`: an ASCII fallback and the UTF-8 name
/// (RFC 6266, RFC 8187).
fn attachment(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " .-_()".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b".-_".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::attachment;

    #[test]
    fn names_are_quoted_safely() {
        assert_eq!(
            attachment("protocole \"v2\".pdf"),
            "attachment; filename=\"protocole _v2_.pdf\"; filename*=UTF-8''protocole%20%22v2%22.pdf"
        );
        assert_eq!(
            attachment("données.pdf"),
            "attachment; filename=\"donn_es.pdf\"; filename*=UTF-8''donn%C3%A9es.pdf"
        );
    }
}
