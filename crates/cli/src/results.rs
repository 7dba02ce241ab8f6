//! What a successful build leaves besides its outputs, as buildx does: `--iidfile` and `-q`
//! give the image ID (the config digest of the exported image, buildx's `getImageID`: the
//! config digest when the exporter reports one, else the manifest digest; kiln's image outputs
//! always report one), `--metadata-file` buildx's `containerimage.*` and `image.name` keys.

use std::path::Path;

use anyhow::Context as _;

/// The image ID of a build's exported image; empty when no output wrote an image.
pub(crate) fn image_id(image: Option<&engine::ExportedImage>) -> String {
    image.map(|i| i.config.to_string()).unwrap_or_default()
}

/// Removes an old `--iidfile` before a build, so that a failed build leaves none behind.
pub(crate) fn remove_old(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("failed to remove the old --iidfile {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Writes `--iidfile` and `--metadata-file` after a successful build.
pub(crate) fn write(
    iidfile: Option<&Path>,
    metadata_file: Option<&Path>,
    image: Option<&engine::ExportedImage>,
) -> anyhow::Result<()> {
    if let Some(path) = iidfile {
        std::fs::write(path, image_id(image))
            .with_context(|| format!("failed to write the --iidfile {}", path.display()))?;
    }
    if let Some(path) = metadata_file {
        let text =
            serde_json::to_vec_pretty(&metadata(image)).context("failed to encode the --metadata-file")?;
        std::fs::write(path, text)
            .with_context(|| format!("failed to write the --metadata-file {}", path.display()))?;
    }
    Ok(())
}

/// The `--metadata-file` document: buildx's `containerimage.*` and `image.name` keys.
fn metadata(image: Option<&engine::ExportedImage>) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    if let Some(image) = image {
        map.insert(
            "containerimage.config.digest".into(),
            image.config.to_string().into(),
        );
        map.insert(
            "containerimage.descriptor".into(),
            serde_json::to_value(&image.manifest).unwrap_or_default(),
        );
        map.insert(
            "containerimage.digest".into(),
            image.manifest.digest.to_string().into(),
        );
        if !image.names.is_empty() {
            map.insert("image.name".into(), image.names.join(",").into());
        }
    }
    serde_json::Value::Object(map)
}
