//! Entry points for the fuzz targets (`fuzz/`): every decoder of what a registry sends back,
//! run on arbitrary bytes. Not part of the API; each function must return without panicking
//! whatever its input.

use oci::{ImageConfig, ImageIndex, ImageManifest, Platform};

/// Decodes `data` as each kind of registry response kiln reads: a `WWW-Authenticate` header,
/// `Docker-Content-Digest` and `Content-Length` headers, a token response, an error body, a manifest or index (with its media type detected from the
/// body and, for an index, a platform chosen from it), and an image config.
pub fn registry_response(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = crate::auth::parse_challenges(&text);
    if let Ok(value) = reqwest::header::HeaderValue::from_bytes(data) {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("docker-content-digest", value.clone());
        headers.insert(reqwest::header::CONTENT_LENGTH, value);
        let _ = crate::http::header_digest(&headers);
        let _ = crate::http::header_length(&headers);
    }
    let _ = crate::auth::parse_token_response(data);
    let _ = crate::http::describe_error_body(data);
    let media_type = crate::manifest::detect_media_type(None, data);
    let _ = crate::manifest::detect_media_type(Some(&text), data);
    if oci::media_type::is_index(&media_type) {
        if let Ok(index) = serde_json::from_slice::<ImageIndex>(data) {
            let _ = crate::manifest::select_platform(&index, &Platform::linux_amd64());
        }
    } else if let Ok(manifest) = serde_json::from_slice::<ImageManifest>(data) {
        let _ = serde_json::to_vec(&manifest);
    }
    if let Ok(config) = serde_json::from_slice::<ImageConfig>(data) {
        let _ = serde_json::to_vec(&config);
    }
}
