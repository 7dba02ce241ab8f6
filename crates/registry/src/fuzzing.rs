//! Entry points for the fuzz targets (`fuzz/`): every decoder of what a registry sends back,
//! run on arbitrary bytes. Not part of the API; each function must return without panicking
//! whatever its input.

use oci::{ImageConfig, ImageIndex, ImageManifest, Platform};

/// Decodes `data` as each kind of registry response kiln reads: a `WWW-Authenticate` header, a
/// token response, an error body, a manifest or index (with its media type detected from the
/// body and, for an index, a platform chosen from it), and an image config.
pub fn registry_response(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = crate::auth::parse_challenges(&text);
    let _ = crate::auth::parse_token_response(data);
    let _ = crate::client::describe_error_body(data);
    let media_type = crate::client::detect_media_type(None, data);
    let _ = crate::client::detect_media_type(Some(&text), data);
    if oci::media_type::is_index(&media_type) {
        if let Ok(index) = serde_json::from_slice::<ImageIndex>(data) {
            let _ = crate::client::select_platform(&index, &Platform::linux_amd64());
        }
    } else if let Ok(manifest) = serde_json::from_slice::<ImageManifest>(data) {
        let _ = serde_json::to_vec(&manifest);
    }
    if let Ok(config) = serde_json::from_slice::<ImageConfig>(data) {
        let _ = serde_json::to_vec(&config);
    }
}
